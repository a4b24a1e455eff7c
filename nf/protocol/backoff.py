"""Retry delays: 1 s, doubling to 30 s, back to 1 s after a success.

Used for reopening a lost serial port and for a client channel's
reconnects (issue 4 and SPEC §3), so that a device or peer that stays away
costs one attempt per 30 s, while a short outage is retried within a
second.  Pure: the caller sleeps.
"""

from __future__ import annotations

START = 1.0
LIMIT = 30.0


class Backoff:
    """The delays before successive retries of one thing."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = START

    def next(self) -> float:
        """The delay before the coming retry; the one after doubles, up to LIMIT."""
        delay = self._next
        self._next = min(delay * 2, LIMIT)
        return delay

    def reset(self) -> None:
        """It worked: the next failure is retried after START again."""
        self._next = START
