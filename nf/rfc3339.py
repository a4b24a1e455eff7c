"""RFC 3339 date-and-time (yang:date-and-time) in UTC: the one place the
daemon formats and parses timestamps (state leaves, locks, sessions,
notifications)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(when: datetime, micro: bool = True) -> str:
    """``when`` in UTC with a Z.  Microseconds keep events within one second
    ordered; leaves that RFC 6022 and friends fill per second go without."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def now(micro: bool = True) -> str:
    """The current time, formatted as ``format_time`` does."""
    return format_time(datetime.now(UTC), micro)


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-and-time (yang:date-and-time); the offset is required."""
    value = text.strip()
    if "T" not in value and "t" not in value:
        raise ValueError(f'"{text}" is not an RFC 3339 date-and-time')
    when = datetime.fromisoformat(value.replace("z", "Z"))
    if when.tzinfo is None:
        raise ValueError(f'"{text}" has no time zone offset (RFC 3339 requires one)')
    return when
