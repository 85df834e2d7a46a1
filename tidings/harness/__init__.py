"""What the tests and the tools beside the product (``tidings bench``, ``tidings soak``) share.

:mod:`tidings.harness.spawn` starts ``tidings serve`` as a subprocess on
loopback and stops it; :mod:`tidings.harness.wsframes` is the client side
of RFC 6455 frames (encode a client frame, decode a server frame) and a
lean asyncio WebSocket client for load. Nothing here imports the server:
it drives one from outside, as a user's deployment is driven.
"""
