"""Packing of serial data into network frames (SPEC §3, YANG ``packing``).

A frame is sent when the delimiter byte is seen (the delimiter ends the
frame it belongs to), when the frame reaches ``max_frame_size``, or when
``frame_delay`` seconds pass with no new serial byte, whichever comes first.
With none of the three configured, data is passed through as it was read,
without copying, for the lowest latency.

The rules are applied to the byte stream, not to the reads: whatever way
the serial driver splits the stream, the frames are the same, except that
a frame-delay flush depends on when the bytes arrived (that is its
purpose).  The framer never reorders or drops a byte.

Decisions where SPEC is silent:

* A frame-delay flush is due when ``now >= last byte + frame_delay``.  When
  new data arrives after the pending frame's delay has already passed (the
  runtime woke up late), that frame is flushed first, on its own: the bytes
  were separated by a silence, so they are separate frames.
* Without ``max_frame_size`` a frame is still cut at ``HARD_FRAME_LIMIT``
  bytes (the largest IPv4 UDP payload), so that a delimiter that never
  comes cannot grow the buffer without bound and every frame fits in one
  datagram.  (Moxa and WeOS likewise send when their buffer is full.)
* Without ``frame_delay``, a partial frame waits for its delimiter or its
  size, however long that takes, as with Moxa "force transmit 0".  The
  runtime should ``flush`` it when the session it is framed for closes.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["HARD_FRAME_LIMIT", "Framer"]

HARD_FRAME_LIMIT: Final = 65507
"""Largest frame when ``max_frame_size`` is not set: an IPv4 UDP payload."""


class Framer:
    """Cut a stream of serial bytes into frames.

    ``feed`` returns the frames that the new bytes complete; ``flush_due``
    returns the pending frame once its frame delay has passed; the runtime
    calls it at ``deadline()``.  Invariants between calls: the pending
    bytes are shorter than the frame limit and contain no delimiter.
    """

    __slots__ = ("_buf", "_deadline", "_delay", "_delimiter", "_limit", "_passthrough")

    def __init__(
        self,
        max_frame_size: int | None = None,
        frame_delay: float | None = None,
        delimiter: int | None = None,
    ) -> None:
        if max_frame_size is not None and max_frame_size < 1:
            raise ValueError(f"max_frame_size must be at least 1, not {max_frame_size}")
        if frame_delay is not None and not frame_delay > 0:
            raise ValueError(f"frame_delay must be positive, not {frame_delay}")
        if delimiter is not None and not 0 <= delimiter <= 255:
            raise ValueError(f"delimiter must be a byte value 0..255, not {delimiter}")
        self._passthrough = max_frame_size is None and frame_delay is None and delimiter is None
        self._limit: int = max_frame_size if max_frame_size is not None else HARD_FRAME_LIMIT
        self._delay = frame_delay
        self._delimiter = delimiter
        self._buf = bytearray()
        # When the pending frame is due; +inf while there is no frame delay.
        self._deadline = math.inf

    @property
    def passthrough(self) -> bool:
        """True when no packing is configured: ``feed`` returns its input."""
        return self._passthrough

    def pending(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        return len(self._buf)

    def deadline(self) -> float | None:
        """When ``flush_due`` will release the pending frame, or ``None``."""
        return self._deadline if self._buf and self._delay is not None else None

    def flush_due(self, now: float) -> list[bytes]:
        """The pending frame, if its frame delay has passed at ``now``."""
        if self._buf and now >= self._deadline:
            return self.flush()
        return []

    def flush(self) -> list[bytes]:
        """The pending bytes as a frame, now (session close, shutdown)."""
        if not self._buf:
            return []
        frame = bytes(self._buf)
        self._buf.clear()
        return [frame]

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Add serial bytes read at ``now``; return the completed frames."""
        if not data:
            return []
        if self._passthrough:
            return [data]
        buf = self._buf
        frames: list[bytes] = []
        if buf and now >= self._deadline:
            frames.append(bytes(buf))
            buf.clear()
        start = 0
        if buf:
            # Complete the pending frame first.  It holds no delimiter, so
            # only the new bytes need searching, and only as far as the
            # size limit allows.
            need = self._limit - len(buf)
            hit = -1 if self._delimiter is None else data.find(self._delimiter, 0, need)
            end = hit + 1
            if hit < 0:
                if len(data) < need:
                    buf += data
                    self._restart_delay(now)
                    return frames
                end = need
            frames.append(b"".join((buf, memoryview(data)[:end])))
            buf.clear()
            start = end
        start = self._cut(data, start, frames)
        if start < len(data):
            buf += memoryview(data)[start:]
            self._restart_delay(now)
        return frames

    def _restart_delay(self, now: float) -> None:
        if self._delay is not None:
            self._deadline = now + self._delay

    def _cut(self, data: bytes, start: int, frames: list[bytes]) -> int:
        """Append the complete frames of ``data[start:]`` to ``frames``;
        return where the incomplete tail begins.  One ``find`` per frame:
        the scanning is memchr, never a Python loop over bytes."""
        n = len(data)
        limit = self._limit
        delimiter = self._delimiter
        if delimiter is None:
            while n - start >= limit:
                frames.append(data[start : start + limit])
                start += limit
            return start
        find = data.find
        while start < n:
            stop = start + limit
            hit = find(delimiter, start, stop)
            if hit >= 0:
                # data[0:n] of bytes is the object itself: a read that is
                # exactly one frame is not copied.
                frames.append(data[start : hit + 1])
                start = hit + 1
            elif stop <= n:
                frames.append(data[start:stop])
                start = stop
            else:
                break
        return start
