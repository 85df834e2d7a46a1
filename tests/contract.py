"""What the wire contract (docs/protocol.md) says of errors, in one place for the tests."""

from __future__ import annotations

import re
from typing import Any

# The codes docs/protocol.md lists under "Errors". `internal` and
# `method_not_allowed` are this server's extensions, and bad input must never
# earn `internal` (a server bug), so they are deliberately absent.
CONTRACT_CODES = frozenset(
    {
        "unauthorized",
        "forbidden",
        "not_found",
        "bad_request",
        "unknown_type",
        "not_member",
        "too_large",
        "rate_limited",
        "username_taken",
        "unavailable",
        # PROTOCOL-v2 section 10
        "recall_expired",
        "edit_expired",
        "muted",
        "group_dissolved",
    }
)

# Timestamps are ISO 8601 UTC with milliseconds.
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# (status, decoded body) as the tests' raw HTTP helpers return it.
Answer = tuple[int, Any]


def assert_error(answer: Answer, status: int, code: str) -> None:
    """The contract's error: the status and ``{"error": {"code", "message"}}``."""
    got_status, body = answer
    assert got_status == status, body
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
