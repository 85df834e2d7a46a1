"""The scenarios of ``tidings bench``: each is ``async def run(ctx) -> dict`` of figures."""
