"""Blob keys: the server makes them, every store checks them.

A key becomes a file name on disk and part of an object name in S3, so it
is held to a charset no filesystem or URL treats specially: lowercase
letters (one case, so a case-insensitive filesystem cannot merge two keys),
digits, ``_`` and ``-``, starting with a letter or digit, 8 to 128
characters. That rules out path separators, ``.`` and ``..``, spaces,
control characters and option-like names.
"""

from __future__ import annotations

import re
import secrets

_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{7,127}")


class InvalidBlobKey(ValueError):
    """A key that is not one the server could have made."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise InvalidBlobKey(f"not a blob key: {key!r}")
    return key


def is_key(name: str) -> bool:
    """Whether a stored name is a key (a listing skips anything else it finds)."""
    return _KEY.fullmatch(name) is not None


def new_blob_key() -> str:
    """A fresh random key: 128 bits, lowercase hex."""
    return secrets.token_hex(16)
