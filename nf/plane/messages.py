"""What the planes say to each other, and how it crosses a stream socket.

Each message is a frozen ``msgspec.Struct`` with a tag; what a side may
receive is one union (``Request`` for the data plane, ``Reply`` for the
control plane) decoded by a typed msgpack decoder.  Decoding validates:
a field of the wrong type, a message of a tag the receiver does not take
or a missing field is a ``FrameError`` naming the field, never a half-built
value reaching a handler.  No pickle: nothing received can run code.  The
payload types are those of the boundary itself (``nf.model``,
``nf.runtime.transaction``): msgspec encodes and checks their dataclasses.

Framing: a 4-byte big-endian length, then that many bytes of msgpack.  A
frame longer than ``MAX_FRAME`` is refused from its header, before any of
it is read, so a broken or hostile peer cannot make the other side buffer
gigabytes.

Versioning: the first message on a connection is the control plane's
``Hello(version)``; a data plane that does not speak that version answers
``Failed`` saying which it speaks, and closes.  ``Hello`` and
``HelloReply`` keep their fields for ever (a newer version may only add
fields with defaults to them), so any two versions can tell each other
apart.  Within a version, requests are answered strictly in order, one
reply each, so the control plane matches replies by position;
``Event``\\s from the data plane may come between replies at any time.
"""

from __future__ import annotations

import struct
from typing import Generic, TypeAlias, TypeVar

import anyio
import msgspec
from anyio.abc import ByteStream

from nf.model import RelayConfig
from nf.runtime.document import DocumentPatch
from nf.runtime.transaction import ChannelState, Delta, Fault, PortState, Snapshot

VERSION = 2
"""The protocol version these messages are."""
MAX_FRAME = 64 * 1024 * 1024
"""Largest frame body either side sends or accepts (bytes).  A snapshot of
1000 channels with a session each is about 400 KB; a configuration of as
many channels with its document about 1 MB."""
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """What arrived is not a whole, valid message: the connection is closed."""


# -- control plane -> data plane ------------------------------------------------------
class Hello(msgspec.Struct, frozen=True, tag="hello"):
    """The first message on a connection."""

    version: int
    role: str = "control-plane"


class Prepare(msgspec.Struct, frozen=True, tag="prepare"):
    """Runtime.prepare: acquire what ``delta`` needs; the transaction is
    then named ``txid`` (chosen by the control plane) until applied or
    aborted."""

    txid: int
    delta: Delta
    document: DocumentPatch
    """Of the document the data plane keeps (nf.runtime.document)."""
    boot: bool = False


class Apply(msgspec.Struct, frozen=True, tag="apply"):
    txid: int


class Abort(msgspec.Struct, frozen=True, tag="abort"):
    txid: int


class Running(msgspec.Struct, frozen=True, tag="running"):
    """Runtime.running: what runs, and the document it came with."""


class SnapshotRequest(msgspec.Struct, frozen=True, tag="snapshot"):
    """Runtime.snapshot: of these channels, or of all (None)."""

    channels: tuple[str, ...] | None = None
    since: int | None = None
    """The ``seq`` of the whole snapshot the control plane keeps: the reply
    may then carry only the states that changed since (``SnapshotParts``)."""


class ClearCounters(msgspec.Struct, frozen=True, tag="clear-counters"):
    channel: str | None = None


class SendBreak(msgspec.Struct, frozen=True, tag="send-break"):
    """Runtime.send_break: the serial-port action."""

    port: str
    duration_ms: int


class Inspect(msgspec.Struct, frozen=True, tag="inspect"):
    """The data plane's own state, for tests and troubleshooting."""


Request: TypeAlias = (
    Hello
    | Prepare
    | Apply
    | Abort
    | Running
    | SnapshotRequest
    | ClearCounters
    | SendBreak
    | Inspect
)


# -- data plane -> control plane ------------------------------------------------------
class HelloReply(msgspec.Struct, frozen=True, tag="hello-reply"):
    """The data plane's answer to ``Hello``: who it is.  A different
    ``pid``/``started_at`` than on the last connection means the data plane
    restarted (and runs nothing it ran before)."""

    version: int
    pid: int
    started_at: str
    has_config: bool


class Prepared(msgspec.Struct, frozen=True, tag="prepared"):
    txid: int


class Refused(msgspec.Struct, frozen=True, tag="refused"):
    """Prepare failed (PrepareError); nothing was acquired."""

    txid: int
    faults: tuple[Fault, ...]


class Applied(msgspec.Struct, frozen=True, tag="applied"):
    txid: int


class Aborted(msgspec.Struct, frozen=True, tag="aborted"):
    txid: int


class RunningReply(msgspec.Struct, frozen=True, tag="running-reply"):
    config: RelayConfig | None
    document: bytes | None
    """The kept document, joined."""


class SnapshotReply(msgspec.Struct, frozen=True, tag="snapshot-reply"):
    """A Snapshot's fields (see ``SnapshotParts`` for how it is sent)."""

    channels: tuple[ChannelState, ...]
    ports: tuple[PortState, ...]

    @property
    def snapshot(self) -> Snapshot:
        return Snapshot(self.channels, self.ports)


class Cleared(msgspec.Struct, frozen=True, tag="cleared"):
    pass


class BreakStarted(msgspec.Struct, frozen=True, tag="break-started"):
    """The answer to ``SendBreak``: None, or why the break was not sent."""

    error: str | None = None


class InspectReply(msgspec.Struct, frozen=True, tag="inspect-reply"):
    pid: int
    modules: tuple[str, ...]
    """sys.modules of the data-plane process."""
    events_dropped: int
    """Events dropped since it started because no control plane took them."""
    channels: int
    """Channels running."""
    snapshots_built: int
    """Snapshots read since it started (requests that queued behind one
    share it)."""
    snapshots_whole: int
    """Of those asked for whole, the ones sent whole rather than as a
    change against the last (``SnapshotRequest.since``)."""


class Failed(msgspec.Struct, frozen=True, tag="failed"):
    """A request the data plane could not carry out for a reason that is not
    a Fault of the configuration: an unsupported version (then it closes the
    connection), an unknown transaction, an internal error."""

    message: str


class Event(msgspec.Struct, frozen=True, tag="event"):
    """Unsolicited: a ``session-event`` or ``port-event`` of the relay (the
    payload's keys are the YANG notification's leaves), or ``drops``
    (payload: ``channel``, ``dropped-bytes`` the counter's value,
    ``increase`` since the last drops event of the channel), at most one a
    second per channel."""

    kind: str
    payload: dict[str, str]


_Answer: TypeAlias = (
    HelloReply
    | Prepared
    | Refused
    | Applied
    | Aborted
    | RunningReply
    | Cleared
    | BreakStarted
    | InspectReply
    | Failed
    | Event
)
Reply: TypeAlias = _Answer | SnapshotReply


class SnapshotParts(msgspec.Struct, frozen=True, tag="snapshot-reply"):
    """``SnapshotReply`` as the data plane sends it: each channel's and
    port's state already encoded (they are read and encoded a slice at a
    time, yielding to the relays in between, see ``nf.plane.dataplane``),
    inserted as is.
    The bytes are those of a ``SnapshotReply``, which is how they decode."""

    channels: tuple[msgspec.Raw, ...]
    ports: tuple[msgspec.Raw, ...]
    seq: int = 0
    """A whole snapshot's number (0: of some channels only)."""
    base: int | None = None
    """None: ``channels`` and ``ports`` are every channel's and port's.
    Else this is a change of whole snapshot ``base``: the channels are
    those of ``base``, in its order, and ``channels[k]``/``ports[k]`` are
    the new states of the ``changed[k]``-th (one port per channel then):
    a <get> of 500 idle channels moves a few states, not 400 KB."""
    changed: tuple[int, ...] = ()


ControlReply: TypeAlias = _Answer | SnapshotParts
"""``Reply`` as the control plane reads it: a snapshot's states are kept
encoded (``StateCache`` decodes only those that changed)."""

REQUESTS: msgspec.msgpack.Decoder[Request] = msgspec.msgpack.Decoder(Request)
REPLIES: msgspec.msgpack.Decoder[Reply] = msgspec.msgpack.Decoder(Reply)
CONTROL_REPLIES: msgspec.msgpack.Decoder[ControlReply] = msgspec.msgpack.Decoder(ControlReply)
_CHANNEL_STATE = msgspec.msgpack.Decoder(ChannelState)
_PORT_STATE = msgspec.msgpack.Decoder(PortState)


class StateCache:
    """The states of the last whole snapshot, by their encoding.  Most
    channels are idle between two <get>s and the data plane re-sends the
    very bytes it sent before (it keeps each idle channel's encoding): those
    are not decoded again, and the same state object comes back, so what
    the control plane renders from a state can be kept by its identity.
    Decoding 1000 channels' states cost a <get> 25 ms of the control
    plane."""

    def __init__(self) -> None:
        self._channels: dict[bytes, ChannelState] = {}
        self._ports: dict[bytes, PortState] = {}
        self._seq: int | None = None
        self._last = Snapshot()
        """The last whole snapshot (number ``_seq``)."""

    @property
    def since(self) -> int | None:
        """The number of the whole snapshot kept (for ``SnapshotRequest``)."""
        return self._seq

    def snapshot(self, parts: SnapshotParts, whole: bool) -> Snapshot | None:
        """``parts`` decoded; ``whole`` (every channel's) replaces what is
        kept.  A change of the whole snapshot kept (``parts.base``) decodes
        only the states it carries, in time of the change; None for a
        change of one no longer kept (ask again, without ``since``)."""
        if parts.base is not None:
            if parts.seq == self._seq:
                return self._last  # the same reply again (requests that queued together)
            if parts.base != self._seq:
                return None
            if not parts.changed:
                # nothing changed: the very snapshot kept, so that what the
                # control plane made of it is known unchanged at a glance
                # (``WholeGet``: no work per channel)
                self._seq = parts.seq
                return self._last
            channels, ports = list(self._last.channels), list(self._last.ports)
            for index, channel, port in zip(
                parts.changed, parts.channels, parts.ports, strict=True
            ):
                channels[index] = _CHANNEL_STATE.decode(channel)
                ports[index] = _PORT_STATE.decode(port)
            self._seq, self._last = parts.seq, Snapshot(tuple(channels), tuple(ports))
            return self._last
        found, kept_channels = _decoded(parts.channels, self._channels, _CHANNEL_STATE)
        port_states, kept_ports = _decoded(parts.ports, self._ports, _PORT_STATE)
        snapshot = Snapshot(tuple(found), tuple(port_states))
        if whole:
            self._channels, self._ports = kept_channels, kept_ports
            self._seq, self._last = parts.seq, snapshot
        return snapshot


_State = TypeVar("_State", ChannelState, PortState)


def _decoded(
    parts: tuple[msgspec.Raw, ...],
    known: dict[bytes, _State],
    decoder: msgspec.msgpack.Decoder[_State],
) -> tuple[list[_State], dict[bytes, _State]]:
    found: list[_State] = []
    kept: dict[bytes, _State] = {}
    for part in parts:
        key = bytes(part)
        state = known.get(key)
        if state is None:
            state = decoder.decode(key)
        kept[key] = state
        found.append(state)
    return found, kept


_ENCODER = msgspec.msgpack.Encoder()


def encode_part(value: object) -> msgspec.Raw:
    """``value`` encoded for insertion into a message still to be encoded."""
    return msgspec.Raw(_ENCODER.encode(value))


def encode(message: msgspec.Struct) -> bytearray:
    """One frame: the length, then the message.  Encoded in place after room
    for the length (copying a snapshot's 200 KB into a bytes object would
    cost five times its encoding)."""
    buffer = bytearray(_HEADER.size)
    _ENCODER.encode_into(message, buffer, _HEADER.size)
    size = len(buffer) - _HEADER.size
    if size > MAX_FRAME:
        raise FrameError(f"a {type(message).__name__} of {size} bytes exceeds {MAX_FRAME}")
    _HEADER.pack_into(buffer, 0, size)
    return buffer


In = TypeVar("In")


class Framed(Generic[In]):
    """Frames on a byte stream: messages of any type out, messages decoded as
    ``In`` (the union the peer may send) in.  Sends are serialised."""

    def __init__(
        self,
        stream: ByteStream,
        decoder: msgspec.msgpack.Decoder[In],
        max_frame: int = MAX_FRAME,
    ) -> None:
        self._stream = stream
        self._decoder = decoder
        self._max = max_frame
        self._buffer = bytearray()
        self._send_lock = anyio.Lock()

    async def receive(self) -> In:
        """The next message.  anyio.EndOfStream when the peer closed between
        frames; FrameError for an oversized, truncated or invalid frame;
        anyio.BrokenResourceError when the connection was reset."""
        (size,) = _HEADER.unpack(await self._read(_HEADER.size, between_frames=True))
        if size > self._max:
            raise FrameError(f"a frame of {size} bytes exceeds the limit of {self._max}")
        body = await self._read(size)
        try:
            return self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise FrameError(f"invalid message: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise FrameError(f"undecodable frame: {exc}") from exc

    async def _read(self, size: int, between_frames: bool = False) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            try:
                buffer += await self._stream.receive(max(65536, min(size - len(buffer), 1 << 20)))
            except anyio.EndOfStream:
                if between_frames and not buffer:
                    raise
                raise FrameError(
                    f"the connection ended inside a frame ({len(buffer)} of {size} bytes)"
                ) from None
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    async def send(self, message: msgspec.Struct) -> None:
        await self.send_frame(encode(message))

    async def send_frame(self, frame: bytearray) -> None:
        """Send one encoded frame (``encode``), whole.  A send cut short (the
        caller cancelled, the peer went away) closes the stream: the rest of
        it would be garbage to the peer."""
        async with self._send_lock:
            try:
                # anyio's socket streams send any buffer; typed as bytes
                await self._stream.send(frame)  # type: ignore[arg-type]
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.aclose_forcefully(self._stream)
                raise

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self._stream)
