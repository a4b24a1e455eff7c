"""The serial -> network framer of SPEC §3 (YANG ``packing``).

1. Each rule on its own: passthrough, delimiter (start, middle, end,
   several, the value 0), max-frame-size splits, frame-delay exactly at the
   deadline, and the rules combined.
2. Hypothesis: for any configuration and any reads, the frames put
   together are the input; every frame fits the limit; a delimiter only
   ever ends a frame; every frame is complete by one of the rules; frames
   do not depend on how punctually ``flush_due`` is called, nor (without
   time passing) on how the stream was split into reads.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nf.protocol.packing import HARD_FRAME_LIMIT, Framer

NL = 0x0A


# --------------------------------------------------------------------------
# 1. Rules


def test_passthrough_is_zero_copy() -> None:
    framer = Framer()
    assert framer.passthrough
    data = b"as read\n"
    frames = framer.feed(data, 0.0)
    assert frames == [data] and frames[0] is data
    assert framer.feed(b"", 0.0) == []
    assert framer.pending() == 0 and framer.deadline() is None
    assert framer.flush_due(1e9) == [] and framer.flush() == []
    big = bytes(100_000)  # passthrough applies no size limit
    assert framer.feed(big, 0.0)[0] is big


@pytest.mark.parametrize(
    ("data", "frames", "pending"),
    [
        (b"\nabc", [b"\n"], 3),  # delimiter at the start
        (b"ab\ncd", [b"ab\n"], 2),  # in the middle
        (b"abc\n", [b"abc\n"], 0),  # at the end
        (b"a\nb\n\nc", [b"a\n", b"b\n", b"\n"], 1),  # several, and back to back
        (b"abc", [], 3),  # none
        (b"\n\n\n", [b"\n", b"\n", b"\n"], 0),
    ],
)
def test_delimiter(data: bytes, frames: list[bytes], pending: int) -> None:
    framer = Framer(delimiter=NL)
    assert framer.feed(data, 0.0) == frames
    assert framer.pending() == pending
    assert framer.deadline() is None  # no frame delay: the tail waits
    assert framer.flush_due(1e9) == []


def test_delimiter_completes_pending_across_reads() -> None:
    framer = Framer(delimiter=NL)
    assert framer.feed(b"hel", 0.0) == []
    assert framer.feed(b"lo", 0.0) == []
    assert framer.feed(b" world\nnext", 0.0) == [b"hello world\n"]
    assert framer.feed(b"\n", 0.0) == [b"next\n"]
    assert framer.pending() == 0


def test_delimiter_zero_is_a_delimiter() -> None:
    framer = Framer(delimiter=0)
    assert not framer.passthrough
    assert framer.feed(b"a\x00b\x00", 0.0) == [b"a\x00", b"b\x00"]


def test_one_read_that_is_one_frame_is_not_copied() -> None:
    data = b"line\n"
    assert Framer(delimiter=NL).feed(data, 0.0)[0] is data
    block = b"12345678"
    assert Framer(max_frame_size=8).feed(block, 0.0)[0] is block


@pytest.mark.parametrize(
    ("reads", "frames", "pending"),
    [
        ([b"abcd"], [b"abcd"], 0),
        ([b"abc"], [], 3),
        ([b"abcdefghij"], [b"abcd", b"efgh"], 2),  # several frames from one read
        ([b"ab", b"cdefghijkl"], [b"abcd", b"efgh", b"ijkl"], 0),
        ([b"a", b"b", b"c", b"d", b"e"], [b"abcd"], 1),
    ],
)
def test_max_frame_size_splits_exactly(
    reads: list[bytes], frames: list[bytes], pending: int
) -> None:
    framer = Framer(max_frame_size=4)
    out = [f for r in reads for f in framer.feed(r, 0.0)]
    assert out == frames
    assert framer.pending() == pending


def test_max_frame_size_one() -> None:
    assert Framer(max_frame_size=1).feed(b"abc", 0.0) == [b"a", b"b", b"c"]


def test_frame_delay_flushes_exactly_at_the_deadline() -> None:
    framer = Framer(frame_delay=0.05)
    assert framer.feed(b"ab", 10.0) == []
    assert framer.deadline() == 10.0 + 0.05
    assert framer.feed(b"cd", 10.03) == []  # every byte restarts the delay
    deadline = framer.deadline()
    assert deadline == 10.03 + 0.05
    assert framer.flush_due(math.nextafter(deadline, 0.0)) == []
    assert framer.flush_due(deadline) == [b"abcd"]
    assert framer.pending() == 0 and framer.deadline() is None
    assert framer.flush_due(deadline + 1) == []


def test_frame_delay_late_wakeup_keeps_the_silence() -> None:
    """New bytes after a silence start a new frame even if the runtime did
    not call flush_due in time."""
    framer = Framer(frame_delay=0.05)
    framer.feed(b"old", 10.0)
    assert framer.feed(b"new", 10.05) == [b"old"]  # exactly at the deadline
    assert framer.pending() == 3 and framer.deadline() == 10.05 + 0.05
    assert framer.feed(b"er", 10.09) == []  # within the delay: same frame
    assert framer.flush() == [b"newer"]


def test_delimiter_before_max_size() -> None:
    framer = Framer(max_frame_size=4, delimiter=NL)
    assert framer.feed(b"a\nbcdefg\nhi", 0.0) == [b"a\n", b"bcde", b"fg\n"]
    assert framer.pending() == 2


def test_delimiter_exactly_at_max_size() -> None:
    framer = Framer(max_frame_size=4, delimiter=NL)
    assert framer.feed(b"abc\nd", 0.0) == [b"abc\n"]
    framer = Framer(max_frame_size=4, delimiter=NL)
    assert framer.feed(b"ab", 0.0) == []
    assert framer.feed(b"c\nd", 0.0) == [b"abc\n"]
    # one past the limit: the size rule wins, the delimiter starts a frame
    assert Framer(max_frame_size=4, delimiter=NL).feed(b"abcd\n", 0.0) == [b"abcd", b"\n"]


def test_all_three_rules() -> None:
    framer = Framer(max_frame_size=5, frame_delay=0.1, delimiter=NL)
    assert framer.feed(b"ab\ncdefgh", 1.0) == [b"ab\n", b"cdefg"]
    assert framer.deadline() == 1.1
    assert framer.feed(b"i", 1.05) == []
    assert framer.flush_due(1.1) == []  # the "i" restarted the delay
    deadline = framer.deadline()
    assert deadline == 1.05 + 0.1
    assert framer.flush_due(deadline) == [b"hi"]
    assert framer.feed(b"jk\n", 2.0) == [b"jk\n"]
    assert framer.deadline() is None


def test_frame_delay_with_max_size_across_reads() -> None:
    framer = Framer(max_frame_size=3, frame_delay=0.01)
    assert framer.feed(b"ab", 0.0) == []
    assert framer.feed(b"cdef", 0.005) == [b"abc", b"def"]
    assert framer.pending() == 0 and framer.deadline() is None


def test_hard_limit_without_max_frame_size() -> None:
    framer = Framer(delimiter=NL)
    data = b"x" * (2 * HARD_FRAME_LIMIT + 7)
    frames = framer.feed(data, 0.0)
    assert [len(f) for f in frames] == [HARD_FRAME_LIMIT, HARD_FRAME_LIMIT]
    assert framer.pending() == 7
    assert framer.feed(b"\n", 0.0) == [b"x" * 7 + b"\n"]


def test_flush_hands_out_the_tail() -> None:
    framer = Framer(max_frame_size=10)
    framer.feed(b"abc", 0.0)
    assert framer.flush() == [b"abc"]
    assert framer.flush() == [] and framer.pending() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frame_size": 0},
        {"frame_delay": 0.0},
        {"frame_delay": -1.0},
        {"delimiter": 256},
        {"delimiter": -1},
    ],
)
def test_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Framer(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# 2. Properties

CONFIG = st.tuples(
    st.one_of(st.none(), st.integers(1, 12)),
    st.one_of(st.none(), st.sampled_from([0.01, 0.05])),
    st.one_of(st.none(), st.integers(0, 2)),
)
# A tiny alphabet, so that delimiters are frequent.
CHUNK = st.lists(st.integers(0, 4), max_size=30).map(bytes)
# Before each read the runtime's timer may fire: not at all ("no"), at the
# read's time ("now"), or exactly at deadline() ("at"), when that is not
# already past.
READS = st.lists(
    st.tuples(
        CHUNK,
        st.sampled_from([0.0, 0.0, 0.005, 0.01, 0.05, 0.2]),
        st.sampled_from(["no", "now", "at"]),
    ),
    max_size=40,
)
Config = tuple[int | None, float | None, int | None]
Reads = list[tuple[bytes, float, str]]


def frames_of(config: Config, reads: Reads, probe: bool) -> tuple[list[bytes], Framer]:
    """Feed the reads; with ``probe``, call flush_due where the read says
    so (before feeding it), as a runtime whose timer fired would."""
    framer = Framer(*config)
    max_size, delay, delimiter = config
    limit = max_size if max_size is not None else HARD_FRAME_LIMIT
    frames: list[bytes] = []
    stream = bytearray()
    now = 0.0
    last_byte = -math.inf
    for data, dt, timer in reads:
        now += dt
        deadline = framer.deadline()
        if timer == "at" and deadline is not None and deadline > now:
            # The clock moves to the deadline with or without ``probe``: a
            # framer with a frame not yet due is in the same state either
            # way.  A timer that fires exactly at deadline() releases it.
            now = deadline
            if probe:
                assert framer.flush_due(math.nextafter(deadline, 0.0)) == []
                due = framer.flush_due(now)
                assert len(due) == 1 and framer.pending() == 0
                frames += due
        elif probe and timer == "now":
            due = framer.flush_due(now)
            if due:
                assert delay is not None and now >= last_byte + delay
            frames += due
        out = framer.feed(data, now)
        if framer.passthrough:
            assert out == ([data] if data else []) and all(f is data for f in out)
        for i, frame in enumerate(out):
            complete = (
                len(frame) == limit
                or (delimiter is not None and frame[-1] == delimiter)
                or framer.passthrough
                # only the first frame of a read can be a delay flush
                or (i == 0 and delay is not None and now >= last_byte + delay)
            )
            assert complete, (frame, config)
        frames += out
        stream += data
        if data:
            last_byte = now
        # the pending bytes: the unsent tail, short and delimiter-free
        sent = sum(map(len, frames))
        tail = stream[sent:]
        assert framer.pending() == len(tail)
        assert framer.passthrough or len(tail) < limit
        assert delimiter is None or delimiter not in tail
        if tail and delay is not None:
            assert framer.deadline() == last_byte + delay
        else:
            assert framer.deadline() is None
    return frames + framer.flush(), framer


@settings(max_examples=500, deadline=None)
@given(CONFIG, READS)
def test_property_frames_are_the_stream(config: Config, reads: Reads) -> None:
    frames, framer = frames_of(config, reads, probe=True)
    max_size, _delay, delimiter = config
    assert b"".join(frames) == b"".join(data for data, _, _ in reads)
    assert framer.pending() == 0
    for frame in frames:
        assert frame, "empty frame"
        if not framer.passthrough:
            assert len(frame) <= (max_size or HARD_FRAME_LIMIT)
            if delimiter is not None:
                # a delimiter ends the frame it is in
                assert delimiter not in frame[:-1]


@settings(max_examples=300, deadline=None)
@given(CONFIG, READS)
def test_property_timer_punctuality_does_not_matter(config: Config, reads: Reads) -> None:
    punctual, _ = frames_of(config, reads, probe=True)
    lazy, _ = frames_of(config, reads, probe=False)
    assert punctual == lazy


@settings(max_examples=300, deadline=None)
@given(CONFIG, CHUNK, st.lists(st.integers(0, 30), max_size=6))
def test_property_reads_do_not_matter(config: Config, stream: bytes, cuts: list[int]) -> None:
    """Without time passing, the frames depend on the bytes, not the reads."""
    points = sorted({0, len(stream), *(min(c, len(stream)) for c in cuts)})
    reads = [(stream[a:b], 0.0, "no") for a, b in itertools.pairwise(points)]
    whole, framer = frames_of(config, [(stream, 0.0, "no")], probe=False)
    split, _ = frames_of(config, reads, probe=False)
    if framer.passthrough:
        assert b"".join(split) == b"".join(whole)
    else:
        assert split == whole
