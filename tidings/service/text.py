"""Checks shared by every text the service stores."""

from __future__ import annotations

from tidings.errors import bad_request


def without_nul(value: str, field: str) -> str:
    """``value``, refused when it holds U+0000.

    PostgreSQL cannot store NUL in text, SQLite and MySQL can: refusing it
    everywhere keeps one contract on every stack, and keeps one bad message
    from failing a whole group-commit batch (everyone's sends in it) on
    PostgreSQL.
    """
    if "\x00" in value:
        raise bad_request(f"{field}: U+0000 (NUL) is not allowed")
    return value
