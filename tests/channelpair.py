"""An in-memory harness for the channel logic (after h11's ConnectionPair).

A real ``ChannelRuntime`` runs (its task group, its timer task, its
``Server``), but its serial port is a ``MemoryLink`` and its sessions ride
on ``MemoryTransport``s: both ends of every byte stream are in this
process, so arbitration, packing, takeover, refusals, flow control,
inactivity timeouts and the counters are tested in milliseconds, without
SSH, sockets or ptys.  Time is a ``FakeClock`` given to the channel:
``ChannelPair.advance`` moves it and fires what is due.

What is left to the end-to-end tests (tests/test_relay_*.py): the real
accept/connect loops and socket options, pty/tty reading and writing
(nf.runtime.serial, also tests/test_serial_link.py), TCP_INFO
accounting of reset peers, UDP sockets (a ``MemoryDatagrams`` stands in
for a peer channel's), commits and operational state over NETCONF.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup

from nf.model import ChannelConfig, PackingConfig, SecondaryConfig, SerialPortConfig
from nf.protocol.arbitration import Role
from nf.runtime.channel import ChannelRuntime, Resources
from nf.runtime.serial import WRITE_HIGH, LinkSink, PortError
from nf.runtime.session import Session
from nf.runtime.udp import Datagrams

HIGH = 64 * 1024
"""A MemoryTransport's write-buffer high-water mark (asyncio's default)."""
LOW = 16 * 1024


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryLink:
    """A serial port in memory, with FdLink's interface (nf.runtime.serial.Link).

    ``inject`` is the device sending; ``take`` is what the device received.
    After ``block`` the tty takes nothing: writes wait in the link's buffer,
    and above WRITE_HIGH the channel is told to stop feeding it, as FdLink
    does; ``unblock`` lets the tty take it all.  While the channel pauses
    reading, injected bytes wait, as in a real tty.
    """

    def __init__(self) -> None:
        self.device = "memory"
        self.warning: str | None = None
        self.sink: LinkSink | None = None
        self.paused = False
        self.closed = False
        self.blocked = False
        self.paused_writing = False
        self._written = bytearray()
        self._unsent = bytearray()
        self._unread: list[bytes] = []
        self.line_settings: list[SerialPortConfig] = []
        """What apply_line_settings was given, in order."""
        self.control: tuple[bool, bool, bool] = (True, True, False)
        """DTR, RTS, break as last set."""
        self.modem: int | None = None
        """TIOCM_* bits the device shows (None: no modem lines, as a pty)."""
        self.refuse_line: str | None = None
        """apply_line_settings raises PortError with this (a driver's refusal)."""

    # -- Link --------------------------------------------------------------------------
    def start(self, sink: LinkSink, tg: TaskGroup) -> None:
        del tg
        self.sink = sink

    def stop(self) -> None:
        self.sink = None

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        unread, self._unread = self._unread, []
        for data in unread:
            self.inject(data)

    def write(self, data: bytes) -> None:
        if self.blocked:
            self._unsent += data
            if not self.paused_writing and len(self._unsent) > WRITE_HIGH and self.sink:
                self.paused_writing = True
                self.sink.serial_pause_writing()
            return
        self._written += data
        if self.sink is not None:
            self.sink.serial_sent(len(data))

    def discard(self) -> int:
        lost = len(self._unsent) + sum(len(d) for d in self._unread)
        self._unsent.clear()
        self._unread.clear()
        return lost

    def apply_line_settings(self, cfg: SerialPortConfig) -> None:
        if self.refuse_line is not None:
            raise PortError(self.refuse_line)
        self.line_settings.append(cfg)

    def set_control_lines(self, dtr: bool, rts: bool, break_on: bool) -> None:
        self.control = (dtr, rts, break_on)

    def purge(self, receive: bool, transmit: bool) -> int:
        lost = 0
        if transmit:
            lost += len(self._unsent)
            self._unsent.clear()
        if receive:
            lost += sum(len(d) for d in self._unread)
            self._unread.clear()
        return lost

    def modem_lines(self) -> int | None:
        return self.modem

    def close(self) -> None:
        self.closed = True

    # -- the device's side ---------------------------------------------------------
    def inject(self, data: bytes) -> None:
        """The device sends ``data`` (held while the channel pauses reading)."""
        if self.paused or self.sink is None:
            self._unread.append(data)
        else:
            self.sink.serial_received(data)

    def take(self) -> bytes:
        """Everything the device received since the last call."""
        data = bytes(self._written)
        self._written.clear()
        return data

    def block(self) -> None:
        """The tty stops taking bytes (the device stopped reading)."""
        self.blocked = True

    def unblock(self) -> None:
        """The tty takes everything it was given and has room again."""
        self.blocked = False
        unsent = bytes(self._unsent)
        self._unsent.clear()
        self._written += unsent
        if self.sink is not None:
            if unsent:
                self.sink.serial_sent(len(unsent))
            if self.paused_writing:
                self.paused_writing = False
                self.sink.serial_resume_writing()


class MemoryTransport(asyncio.Transport):
    """A TCP connection in memory; the test plays the remote peer.

    It keeps asyncio's contract for a protocol: ``connection_lost`` comes
    once, from the loop (``call_soon``), after ``close`` (once the buffer is
    taken) or ``abort``; ``pause_writing``/``resume_writing`` at the water
    marks while the peer does not read (``stall``).
    """

    def __init__(self, protocol: Session) -> None:
        super().__init__()
        self.protocol = protocol
        self.received = bytearray()
        """What the peer read; ``recv`` takes it."""
        self.writes: list[bytes] = []
        """Every write, as the channel made it (frames)."""
        self._buffer = bytearray()
        self._stalled = False
        self._paused_writing = False
        self._closing = False
        self._lost = False
        self.reading = True
        self._unread: list[bytes] = []
        self.aborted = False

    # -- asyncio.Transport ------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self._closing, "write on a closing transport"
        self.writes.append(bytes(data))
        if self._stalled:
            self._buffer += data
            if not self._paused_writing and len(self._buffer) > HIGH:
                self._paused_writing = True
                self.protocol.pause_writing()
        else:
            self.received += data

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._lose(None)

    def abort(self) -> None:
        self.aborted = True
        self._closing = True
        self._buffer.clear()
        self._lose(None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True
        unread, self._unread = self._unread, []
        for data in unread:
            self.protocol.data_received(data)

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default  # no socket: no TCP options, no TCP_INFO

    def _lose(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, exc)

    # -- the remote peer ------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """The peer sends ``data`` (held while the channel pauses reading)."""
        if self.reading:
            self.protocol.data_received(data)
        else:
            self._unread.append(data)

    def recv(self) -> bytes:
        """What the peer read since the last call."""
        data = bytes(self.received)
        self.received.clear()
        return data

    def stall(self) -> None:
        """The peer stops reading: writes pile up in the buffer."""
        self._stalled = True

    def drain(self) -> None:
        """The peer reads everything and goes on reading."""
        self._stalled = False
        self.received += self._buffer
        self._buffer.clear()
        if self._paused_writing:
            self._paused_writing = False
            self.protocol.resume_writing()
        if self._closing:
            self._lose(None)

    def hang_up(self) -> None:
        """The peer closes its side (FIN): asyncio then closes ours."""
        if not self.protocol.eof_received():
            self.close()

    def reset(self) -> None:
        """The connection fails (RST): asyncio drops the buffer."""
        self._closing = True
        self._buffer.clear()
        if not self._lost:
            self._lost = True
            asyncio.get_running_loop().call_soon(
                self.protocol.connection_lost, ConnectionResetError("reset by peer")
            )

    @property
    def gone(self) -> bool:
        """connection_lost was delivered."""
        return self.protocol.closed.is_set()


class MemoryDatagrams:
    """A peer channel's UDP socket in memory (nf.runtime.udp.Datagrams's
    interface as the channel uses it); datagrams from the network are
    given to ``Peer.datagram_received`` by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str, int]] = []
        self.refuse: OSError | None = None
        """Raised by the next sends (the kernel refuses them)."""
        self.closed = False

    async def receive(self, on_kernel_drops: Callable[[int], None]) -> tuple[bytes, str]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    def send_now(self, data: bytes, host: str, port: int) -> bool:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((data, host, port))
        return True

    def close(self) -> None:
        self.closed = True


def channel_config(
    mode: str = "server",
    *,
    response_mode: str | None = None,
    slot_ms: int | None = None,
    takeover: bool = False,
    allowed: tuple[str, ...] = (),
    max_frame_size: int | None = None,
    frame_delay_ms: int | None = None,
    delimiter: int | None = None,
    inactivity_timeout: int = 0,
    destinations: tuple[tuple[str, int], ...] = (),
) -> ChannelConfig:
    """A channel as the config model gives it; no listener (the harness
    connects sessions itself)."""
    return ChannelConfig(
        name="c",
        enabled=True,
        serial_port="p",
        mode=mode,
        listen_address="127.0.0.1",
        listen_port=None,
        secondary=(
            SecondaryConfig(0, response_mode, slot_ms) if response_mode is not None else None
        ),
        destinations=destinations,
        multicast_group=None,
        packing=PackingConfig(max_frame_size, frame_delay_ms, delimiter),
        inactivity_timeout=inactivity_timeout,
        keepalive=0,
        takeover=takeover,
        allowed_peers=allowed,
    )


PORT = SerialPortConfig("p", "memory", 115200, 8, "none", "1", "none", "rs232")


class ChannelPair:
    """A running channel with its serial port and sessions in memory."""

    def __init__(self, cfg: ChannelConfig) -> None:
        self.clock = FakeClock()
        self.link = MemoryLink()
        self.udp = MemoryDatagrams()
        self.events: list[tuple[str, dict[str, str]]] = []
        udp = cast(Datagrams, self.udp) if cfg.mode == "peer" else None
        self.channel = ChannelRuntime(
            cfg, PORT, Resources(link=self.link, udp=udp), self._emit, clock=self.clock
        )
        self._next_port = 40000

    def _emit(self, kind: str, payload: dict[str, str]) -> None:
        self.events.append((kind, payload))

    @property
    def counters(self) -> dict[str, int]:
        return {
            name: value
            for name, value in self.channel.counters.by_leaf().items()
            if isinstance(value, int)
        }

    def connect(
        self, role: Role = Role.PRIMARY, address: str = "127.0.0.1"
    ) -> MemoryTransport | None:
        """A connection from ``address`` to the port of ``role``, as the
        accept loop makes it; None when the channel refuses it."""
        server = self.channel.server
        assert server is not None
        assert role is Role.PRIMARY or self.channel.cfg.secondary is not None, "no such port"
        self._next_port += 1
        session = server.admit(role, (address, self._next_port))
        if session is None:
            return None
        transport = MemoryTransport(session)
        session.connection_made(transport)
        return transport

    def statuses(self) -> dict[str, str]:
        """role -> status of the connected sessions (the YANG session/status)."""
        result = {}
        for session in self.channel.session_rows():
            status = self.channel.arbiter.status(session.role)
            result[session.role.value] = status.value if status else ""
        return result

    def session_events(self) -> list[dict[str, str]]:
        return [payload for kind, payload in self.events if kind == "session-event"]

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass and fire what is due (as the timer task would)."""
        self.clock.now += seconds
        self.channel.tick(self.clock())

    async def settle(self) -> None:
        """Let the loop run what is scheduled (connection_lost callbacks)."""
        for _ in range(5):
            await anyio.sleep(0)


@asynccontextmanager
async def channel_pair(cfg: ChannelConfig | None = None) -> AsyncIterator[ChannelPair]:
    """Run a channel in memory for the body of the ``async with``; stop it after."""
    pair = ChannelPair(cfg or channel_config())
    async with anyio.create_task_group() as tg:
        tg.start_soon(pair.channel.run)
        with anyio.fail_after(5):
            while pair.link.sink is None:
                await anyio.sleep(0)
        try:
            yield pair
        finally:
            await pair.channel.stop()
