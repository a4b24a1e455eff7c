"""Traffic frames and the checker that counts what a link did to them (pure).

A byte stream through a relay has no boundaries, may start mid-frame (the
checker connected late) and may lose, repeat or reorder data.  So every
write of the generator is one self-checking frame::

    magic A5 5A | pattern u8 | sequence u32 | payload length u16 | payload | CRC-32 u32

(big-endian; the CRC covers pattern to payload).  The decoder finds frames by
the magic and accepts one only when its CRC matches, skipping one byte and
searching again otherwise: after any damage it resynchronises on the next
intact frame.  The payload is a function of the pattern and the sequence
number, so the checker verifies it without being told what was sent.

The sequence tracker counts from the first frame received: frames before it
were sent while nobody listened (a relay drops serial data with no session),
which no receiver can tell from loss.
"""

from __future__ import annotations

import enum
import random
import struct
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

MAGIC = b"\xa5\x5a"
_HEADER = struct.Struct(">2sBIH")
_CRC = struct.Struct(">I")
OVERHEAD = _HEADER.size + _CRC.size
MAX_FRAME = 65535
#: How far back a late frame can still be told a reorder (it was counted
#: missing) from a duplicate; older gaps stay counted as lost.
WINDOW = 65536


class Pattern(enum.IntEnum):
    COUNTER = 1  # byte i of frame s is (s + i) mod 256
    RANDOM = 2  # pseudo-random bytes seeded by the sequence number
    FIXED = 3  # 0x55 (alternating bits) throughout


def payload(pattern: Pattern, seq: int, length: int) -> bytes:
    if pattern is Pattern.COUNTER:
        start = seq & 0xFF
        return bytes((start + i) & 0xFF for i in range(length))
    if pattern is Pattern.RANDOM:
        return random.Random(seq).randbytes(length)
    return b"\x55" * length


def encode(seq: int, size: int, pattern: Pattern) -> bytes:
    """Frame ``seq`` of ``size`` bytes in all (OVERHEAD to MAX_FRAME)."""
    if not OVERHEAD <= size <= MAX_FRAME:
        raise ValueError(f"a frame is {OVERHEAD} to {MAX_FRAME} bytes, not {size}")
    seq &= 0xFFFFFFFF  # the stream's numbers wrap, as the header's field does
    length = size - OVERHEAD
    body = _HEADER.pack(MAGIC, pattern, seq, length)[2:] + payload(pattern, seq, length)
    return MAGIC + body + _CRC.pack(zlib.crc32(body))


@dataclass(frozen=True)
class Frame:
    seq: int
    pattern: Pattern
    payload_ok: bool  # the payload is the pattern's (CRC intact but content wrong: a bug)
    size: int


class Decoder:
    """Bytes in, intact frames out; counts what it had to skip."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.garbage_bytes = 0  # skipped while searching for a frame
        self.crc_errors = 0  # candidate frames whose CRC did not match

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buffer
        buf += data
        frames: list[Frame] = []
        while True:
            start = buf.find(MAGIC)
            if start < 0:
                keep = 1 if buf.endswith(MAGIC[:1]) else 0  # half a magic: wait
                self.garbage_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return frames
            self.garbage_bytes += start
            del buf[:start]
            if len(buf) < _HEADER.size:
                return frames
            _, kind, seq, length = _HEADER.unpack_from(buf)
            if kind not in Pattern._value2member_map_ or length > MAX_FRAME - OVERHEAD:
                self._skip()
                continue
            size = length + OVERHEAD
            if len(buf) < size:
                return frames
            body = bytes(buf[2 : size - _CRC.size])
            (crc,) = _CRC.unpack_from(buf, size - _CRC.size)
            if crc != zlib.crc32(body):
                self.crc_errors += 1
                self._skip()
                continue
            pattern = Pattern(kind)
            content = body[_HEADER.size - 2 :]
            frames.append(Frame(seq, pattern, content == payload(pattern, seq, length), size))
            del buf[:size]

    def _skip(self) -> None:
        self.garbage_bytes += 1
        del self._buffer[:1]

    def finish(self) -> None:
        """End of stream: a partial frame left over counts as garbage."""
        self.garbage_bytes += len(self._buffer)
        self._buffer.clear()


@dataclass
class SequenceTracker:
    """Classifies each sequence number against those seen before."""

    first: int | None = None
    highest: int | None = None
    received: int = 0
    lost: int = 0  # missing between the first and the highest received
    reordered: int = 0  # arrived after a higher one, filling a gap
    duplicated: int = 0  # arrived again
    _missing: set[int] = field(default_factory=set, repr=False)

    def add(self, seq: int) -> None:
        self.received += 1
        if self.highest is None:
            self.first = self.highest = seq
            return
        if seq > self.highest:
            gap = seq - self.highest - 1
            self.lost += gap
            self._missing.update(range(max(self.highest + 1, seq - WINDOW), seq))
            self.highest = seq
            if len(self._missing) > WINDOW:
                floor = seq - WINDOW
                self._missing = {s for s in self._missing if s >= floor}
        elif seq in self._missing:
            self._missing.discard(seq)
            self.lost -= 1
            self.reordered += 1
        else:
            self.duplicated += 1

    def expect_up_to(self, last: int) -> None:
        """The sender's last frame was ``last``: frames after the highest
        received never came."""
        if self.highest is None:
            return
        if last > self.highest:
            self.lost += last - self.highest
            self.highest = last


@dataclass(frozen=True)
class Report:
    bytes: int
    frames: int
    first_seq: int | None
    last_seq: int | None
    lost: int
    reordered: int
    duplicated: int
    crc_errors: int
    payload_errors: int
    garbage_bytes: int

    @property
    def clean(self) -> bool:
        """Something arrived and nothing was wrong with it."""
        return self.frames > 0 and not (
            self.lost or self.reordered or self.duplicated or self.crc_errors or self.payload_errors
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


class Checker:
    """A stream's bytes in, its :class:`Report` out."""

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.sequence = SequenceTracker()
        self.bytes = 0
        self.payload_errors = 0

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        for frame in self.decoder.feed(data):
            self.sequence.add(frame.seq)
            if not frame.payload_ok:
                self.payload_errors += 1

    def reached(self, seq: int) -> bool:
        return self.sequence.highest is not None and self.sequence.highest >= seq

    def report(self) -> Report:
        s = self.sequence
        return Report(
            self.bytes,
            s.received,
            s.first,
            s.highest,
            s.lost,
            s.reordered,
            s.duplicated,
            self.decoder.crc_errors,
            self.payload_errors,
            self.decoder.garbage_bytes,
        )


class Pacer:
    """A token bucket: how many frames of ``size`` bytes may go out at time
    ``now`` for ``rate`` bytes per second.  The bucket holds at most a tenth
    of a second (and one frame), so a pause (the reader stalled) is not
    followed by a burst."""

    def __init__(self, rate: float, size: int, now: float) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.rate = rate
        self.size = size
        self._tokens = float(size)
        self._cap = max(float(size), rate / 10)
        self._last = now

    def due(self, now: float) -> int:
        self._tokens = min(self._cap, self._tokens + (now - self._last) * self.rate)
        self._last = now
        count = int((self._tokens + 1e-9) // self.size)  # float steps: 9.999... is 10
        self._tokens -= count * self.size
        return count

    def wait(self) -> float:
        """Seconds until the next frame is due."""
        return max(0.0, (self.size - self._tokens) / self.rate)
