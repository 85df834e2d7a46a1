"""Times on the wire: ISO 8601, UTC, milliseconds, Z."""

from __future__ import annotations

from tidings.models import iso_ms


def test_times_have_milliseconds_and_a_z() -> None:
    assert iso_ms(1764168103123) == "2025-11-26T14:41:43.123Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(5) == "1970-01-01T00:00:00.005Z"


def test_times_agree_with_datetime_across_days_leap_years_and_centuries() -> None:
    from datetime import UTC, datetime

    step = 86_400_000 * 37 + 3_601_337  # walks through every hour, day and month
    for millis in range(-(10**12), 4 * 10**12, step):
        expected = datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="milliseconds")
        assert iso_ms(millis) == expected.replace("+00:00", "Z")
    assert iso_ms(951_782_400_000) == "2000-02-29T00:00:00.000Z"
    assert iso_ms(4_107_542_400_000) == "2100-03-01T00:00:00.000Z"
