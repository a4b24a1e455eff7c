"""The plane's messages and frames: every message survives the round trip
typed, and what is not a valid message of the receiving side is refused
with a clear error (wrong types, unknown tags, oversized or cut frames)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import msgspec
import pytest
from anyio.abc import SocketAttribute, SocketStream
from planehelpers import one_channel, serial_port, server_channel

from nf.model import RelayConfig
from nf.plane import messages
from nf.plane.messages import (
    REPLIES,
    REQUESTS,
    Abort,
    Aborted,
    Applied,
    Apply,
    ClearCounters,
    Cleared,
    Event,
    Failed,
    Framed,
    FrameError,
    Hello,
    HelloReply,
    Inspect,
    InspectReply,
    Prepare,
    Prepared,
    Refused,
    Running,
    RunningReply,
    SnapshotParts,
    SnapshotReply,
    SnapshotRequest,
    encode,
    encode_part,
)
from nf.runtime.document import DocumentPatch, ListPatch
from nf.runtime.transaction import ChannelState, Delta, Fault, PortState, SessionState

SESSION = SessionState(3, "127.0.0.1", 40001, "primary", "active", "2026-01-01T00:00:00Z", 5, 6)
CHANNEL = ChannelState(
    "c", "up", None, (SESSION,), (("dropped-bytes", 0), ("last-cleared", "2026-01-01T00:00:00Z"))
)
PORT = PortState("p", "up", None, 5, 6)
CONFIG = RelayConfig({"p": serial_port("p", "/dev/ttyS0")}, {"c": server_channel("c", "p", 4001)})

REQUEST_SAMPLES = [
    Hello(1),
    Prepare(7, one_channel("/dev/ttyS0", 4001), DocumentPatch.of_bytes(b"<config/>"), boot=True),
    Prepare(8, Delta({"p": None}, {"c": None}), DocumentPatch.of_bytes(b"")),
    Prepare(
        9,
        Delta(),
        DocumentPatch(
            12,
            11,
            (("", b"<config>"), ("channels", b""), ("", b"</config>")),
            (ListPatch("channels", (("c1", b"<channel/>"), ("c2", None))),),
        ),
    ),
    Apply(7),
    Abort(8),
    Running(),
    SnapshotRequest(),
    ClearCounters("c"),
    ClearCounters(None),
    Inspect(),
]
REPLY_SAMPLES = [
    HelloReply(1, 1234, "2026-01-01T00:00:00Z", True),
    Prepared(7),
    Refused(8, (Fault("in-use", "channel c: cannot bind", "c", "listen/port"),)),
    Applied(7),
    Aborted(8),
    RunningReply(CONFIG, b"<config/>"),
    RunningReply(None, None),
    SnapshotReply((CHANNEL,), (PORT,)),
    Cleared(),
    InspectReply(1234, ("nf", "nf.plane"), 0, 1, 2, 1),
    Failed("internal error"),
    Event("session-event", {"channel": "c", "session-id": "3", "event": "connected"}),
]


@pytest.mark.parametrize("message", REQUEST_SAMPLES, ids=lambda m: type(m).__name__)
def test_requests_round_trip(message: msgspec.Struct) -> None:
    assert REQUESTS.decode(encode(message)[4:]) == message


@pytest.mark.parametrize("message", REPLY_SAMPLES, ids=lambda m: type(m).__name__)
def test_replies_round_trip(message: msgspec.Struct) -> None:
    assert REPLIES.decode(encode(message)[4:]) == message


def test_a_frame_is_its_length_then_msgpack() -> None:
    frame = encode(Apply(7))
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert msgspec.msgpack.decode(frame[4:]) == {"type": "apply", "txid": 7}


def test_a_snapshot_sent_in_parts_decodes_as_the_snapshot_reply() -> None:
    parts = SnapshotParts((encode_part(CHANNEL), encode_part(CHANNEL)), (encode_part(PORT),))
    reply = REPLIES.decode(encode(parts)[4:])
    assert reply == SnapshotReply((CHANNEL, CHANNEL), (PORT,))
    assert isinstance(reply, SnapshotReply)
    assert reply.snapshot.channels[0].sessions[0] == SESSION


def test_a_field_of_the_wrong_type_is_refused_naming_it() -> None:
    bad = msgspec.msgpack.encode({"type": "apply", "txid": "7"})
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `str` - at `\$.txid`"):
        REQUESTS.decode(bad)
    # deep inside the typed configuration too
    delta = msgspec.to_builtins(one_channel("/dev/ttyS0", 4001))
    delta["channels"]["c"]["listen_port"] = "4001"
    bad = msgspec.msgpack.encode(
        {"type": "prepare", "txid": 1, "delta": delta, "document": b"", "boot": False}
    )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.delta\.channels\[\.\.\.\]"):
        REQUESTS.decode(bad)


def test_each_side_refuses_what_only_the_other_side_sends() -> None:
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'applied'"):
        REQUESTS.decode(encode(Applied(1))[4:])
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'apply'"):
        REPLIES.decode(encode(Apply(1))[4:])
    with pytest.raises(msgspec.ValidationError, match="missing required field `txid`"):
        REQUESTS.decode(msgspec.msgpack.encode({"type": "apply"}))


def test_a_message_over_the_frame_limit_is_not_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "MAX_FRAME", 1000)
    encode(Prepare(1, Delta(), DocumentPatch.of_bytes(b"x" * 800)))
    with pytest.raises(FrameError, match=r"Prepare of 1\d\d\d bytes exceeds 1000"):
        encode(Prepare(1, Delta(), DocumentPatch.of_bytes(b"x" * 1000)))


# -- frames on a real stream -------------------------------------------------------------
@asynccontextmanager
async def stream_pair() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """Two ends of a loopback TCP connection."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await listener.listeners[0].accept()
        async with client, server:
            yield client, server


def on_a_stream(scenario: Callable[[SocketStream, SocketStream], Awaitable[None]]) -> None:
    async def main() -> None:
        async with stream_pair() as (a, b):
            with anyio.fail_after(5):
                await scenario(a, b)

    anyio.run(main)


def test_frames_cross_a_stream_whole_in_any_pieces() -> None:
    async def scenario(a: SocketStream, b: SocketStream) -> None:
        framed = Framed(b, REQUESTS)
        data = b"".join(encode(m) for m in REQUEST_SAMPLES)
        for i in range(0, len(data), 7):  # cut anywhere, headers included
            await a.send(data[i : i + 7])
        assert [await framed.receive() for _ in REQUEST_SAMPLES] == REQUEST_SAMPLES
        await a.aclose()
        with pytest.raises(anyio.EndOfStream):  # a clean end between frames
            await framed.receive()

    on_a_stream(scenario)


def test_an_oversized_frame_is_refused_from_its_header() -> None:
    async def scenario(a: SocketStream, b: SocketStream) -> None:
        # only the header is sent: the refusal must not wait for the body
        await a.send(struct.pack(">I", messages.MAX_FRAME + 1))
        with pytest.raises(FrameError, match="frame of 67108865 bytes exceeds the limit"):
            await Framed(b, REPLIES).receive()

    on_a_stream(scenario)


def test_a_frame_cut_short_and_garbage_are_frame_errors() -> None:
    async def cut(a: SocketStream, b: SocketStream) -> None:
        await a.send(encode(Apply(1))[:-2])
        await a.aclose()
        with pytest.raises(FrameError, match="ended inside a frame"):
            await Framed(b, REQUESTS).receive()

    async def garbage(a: SocketStream, b: SocketStream) -> None:
        await a.send(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
        with pytest.raises(FrameError, match="undecodable frame"):
            await Framed(b, REQUESTS).receive()

    async def wrong_type(a: SocketStream, b: SocketStream) -> None:
        body = msgspec.msgpack.encode({"type": "hello", "version": "one"})
        await a.send(struct.pack(">I", len(body)) + body)
        with pytest.raises(FrameError, match=r"invalid message: Expected `int`.*\$\.version"):
            await Framed(b, REQUESTS).receive()

    for scenario in (cut, garbage, wrong_type):
        on_a_stream(scenario)
