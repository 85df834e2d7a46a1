"""Times on the wire: ISO 8601, UTC, milliseconds, Z."""

from __future__ import annotations

from tidings.models import iso_ms


def test_times_have_milliseconds_and_a_z() -> None:
    assert iso_ms(1764168103123) == "2025-11-26T14:41:43.123Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(5) == "1970-01-01T00:00:00.005Z"
