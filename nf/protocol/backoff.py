"""Retry delays: 1 s, doubling to 30 s, back to 1 s after a success.

Used for reopening a lost serial port and for a client channel's
reconnects (issue 4 and SPEC §3), so that a device or peer that stays away
costs one attempt per 30 s, while a short outage is retried within a
second.  The control plane's reconnection to a restarted data plane
(``nf.plane.remote``) uses the same doubling with a shorter start and
limit.  Pure: the caller sleeps.
"""

from __future__ import annotations

START = 1.0
LIMIT = 30.0


class Backoff:
    """The delays before successive retries of one thing."""

    __slots__ = ("_limit", "_next", "_start")

    def __init__(self, start: float = START, limit: float = LIMIT) -> None:
        self._start = start
        self._limit = limit
        self._next = start

    def next(self) -> float:
        """The delay before the coming retry; the one after doubles, up to the limit."""
        delay = self._next
        self._next = min(delay * 2, self._limit)
        return delay

    def reset(self) -> None:
        """It worked: the next failure is retried after the start delay again."""
        self._next = self._start
