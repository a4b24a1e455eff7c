"""One relay channel on the event loop: its serial port, sockets and sessions.

``ChannelRuntime`` owns the serial link and routes between it and the
sessions; what differs between modes is in one small class each, made at
construction: ``nf.runtime.server.Server`` (admits sessions: allowed-peer,
busy, takeover), ``nf.runtime.client.Client`` (connects and reconnects
with backoff), ``nf.runtime.peer.Peer`` (UDP datagrams instead of
sessions).  Sessions (``nf.runtime.session``) and the mode objects use
only its public methods, so the whole of it runs in memory in the tests
(tests/channelpair.py).

A channel is started with resources its commit already acquired (see
``relay.py``): the serial link, the TCP listeners, the UDP socket.  Its
control work runs in one task group, with a task only for what has to wait
(reopening a lost port, connecting, receiving datagrams, a timer while a
deadline exists, an accepted socket while it connects): an idle server
channel has no task but its own ``run``, its listeners accept in loop
callbacks (``Server.listen``).  Stopping cancels it and closes the
resources it still owns (a resource handed to a successor channel in the
same commit is not closed).

The data path runs in event-loop callbacks, not in tasks: each TCP session
is an asyncio ``Protocol`` on the loop's socket transport, and the serial
link calls back with what it reads (``nf.runtime.serial``).  A chunk is
relayed in the callback that read it (a full tty read may wait for the
next one, see ``FdLink._read_ready``), through the sans-I/O core: every
serial read goes through the arbiter (which decides which sessions may see
it; a Raw arbiter's plain fan-out is asked for once, not per action), then
through a per-session framer (packing); every network read goes through
the arbiter to the serial port.  A task per direction would cost a
future, a task switch and a pause/resume of the reader per chunk, which is
what kept latency and the many-channel rate off target.

Flow control keeps the directions independent, with the transports' water
marks: a session whose socket buffer is full pauses reading from the serial
port (``pause_writing``), and a tty whose write buffer is full pauses
reading from the sessions and the UDP socket (``serial_pause_writing``).
Neither stops the opposite direction, so full-duplex load cannot deadlock.

RFC 2217 (``rfc2217``): the channel keeps the port's effective state
(``port_state``: line settings, DTR/RTS/break) and the session whose
changes are in effect (``line_owner``).  A session may change it when
``allow-line-control`` is true and the arbiter lets it use the port now
(``may_control``: Raw, either session; Failover, the active one; Slotted,
the slot owner or either while no slot is open).  Changes go to the open
link in place (``Link.apply_line_settings``); when the owning session
ends, the configured settings come back.  Serial data for a Telnet session
is escaped in ``_send_frame``, after packing: frames are cut on data bytes,
so no frame boundary can split an escape, and the arbiter and framers
never see Telnet bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import termios
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Any, TypeVarTuple

import anyio
from anyio.abc import TaskGroup

from nf import rfc3339
from nf.model import ChannelConfig, SecondaryConfig, SerialPortConfig
from nf.protocol.arbitration import (
    Action,
    Arbiter,
    Counter,
    Drop,
    DropReason,
    RawArbiter,
    Role,
    SlottedArbiter,
    Status,
    StatusChange,
    ToNet,
    ToSerial,
    create_arbiter,
)
from nf.protocol.backoff import Backoff
from nf.protocol.packing import Framer
from nf.protocol.telnet import PortState, modem_state
from nf.runtime.client import Client
from nf.runtime.peer import Peer
from nf.runtime.serial import MODEM_LINES, Link, PortError, open_link
from nf.runtime.server import AllowedPeers, Server
from nf.runtime.session import Session
from nf.runtime.udp import Datagrams

log = logging.getLogger(__name__)
_Args = TypeVarTuple("_Args")

CLOSE_TIMEOUT = 0.5
"""How long a closing session may take to flush what it still has to send:
a peer that stopped reading must not hold a socket open for ever."""
MODEM_POLL = 0.05
"""How often the modem lines of a port that has them are read (TIOCMGET):
at most 20 reads a second per UART; ports without them (ptys, sockets,
loop://) are never polled."""
MAX_KEEPIDLE = 32767
"""Linux's largest TCP_KEEPIDLE (MAX_TCP_KEEPIDLE); the YANG ``keepalive``
is a uint16, so larger values are clamped rather than refused."""


@dataclass(slots=True)
class Counters:
    """A channel's counters; each field is the YANG leaf of the same name
    under the channel's ``counters`` (underscores for dashes)."""

    serial_to_net_bytes: int = 0
    serial_to_net_frames: int = 0
    net_to_serial_bytes: int = 0
    dropped_bytes: int = 0
    ignored_bytes: int = 0
    sessions_accepted: int = 0
    sessions_refused: int = 0
    sessions_ended_by_commit: int = 0
    last_cleared: str | None = None

    def by_leaf(self) -> dict[str, int | str | None]:
        """The counters by YANG leaf name."""
        return {name.replace("_", "-"): getattr(self, name) for name in _COUNTER_NAMES}


_COUNTER_NAMES = tuple(f.name for f in fields(Counters))
SIGNATURE = attrgetter(
    "_running",
    "cfg",
    "last_error",
    "last_restart",
    "last_restart_reason",
    "port_status",
    "port_rx",
    "port_tx",
    "port_state",
    "line_owner",
    "modem",
    "counters",
    *(f"counters.{name}" for name in _COUNTER_NAMES),
)
"""Everything a channel without sessions reports from (its state and its
port's, ``oper_status`` included), as one tuple built in C: equal
signatures, equal states.  ``map(SIGNATURE, channels)`` reads 500 channels
without a Python call per channel (``RelayRuntime.read_states``).  A
channel with sessions is read every time: their byte counts move with
every chunk."""


@dataclass(slots=True)
class Resources:
    """What a channel holds while it runs; keys say what can be handed over."""

    link: Link | None = None
    listener: socket.socket | None = None
    secondary: socket.socket | None = None
    """The TCP listeners, bound and listening, non-blocking (``bind_tcp``);
    accepted on in loop callbacks (``Server.listen``)."""
    udp: Datagrams | None = None
    group: Datagrams | None = None
    """Peer mode with a multicast group and a host listen address: the
    receive-only socket bound to the group (see nf.runtime.udp)."""

    def items(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in (
                ("link", self.link),
                ("listener", self.listener),
                ("secondary", self.secondary),
                ("udp", self.udp),
                ("group", self.group),
            )
            if value is not None
        }


async def close_resource(resource: Any) -> None:
    if resource is None:
        return
    if hasattr(resource, "aclose"):
        with contextlib.suppress(Exception):
            await resource.aclose()
    else:
        with contextlib.suppress(Exception):
            resource.close()


def configured_state(port: SerialPortConfig) -> PortState:
    """The port state a channel starts with, and returns to when the RFC
    2217 session that changed it ends: the configuration, DTR and RTS on
    (as pyserial opens a port), no break."""
    return PortState(port.baud_rate, port.data_bits, port.parity, port.stop_bits, port.flow_control)


def _line_names(bits: int) -> str:
    """The modem lines set in ``bits``, as a YANG bits value."""
    return " ".join(name for name, bit in MODEM_LINES if bits & bit)


class ChannelRuntime:
    """A running channel: the owner of its serial link, and the hub that
    routes between the link and the sessions (or the peer's UDP side)
    through the arbiter and the framers.  All methods run on the event
    loop.  It is the ``LinkSink`` of its link (the ``serial_*`` methods).

    What differs between modes lives in small objects made here: ``server``
    (admits sessions: server mode, and the secondary port of a client),
    ``client`` (connects the primary session), ``peer`` (UDP instead of
    sessions).  They, and the sessions, use only the public methods below.
    ``clock`` is injectable so that timers can be tested without waiting
    (tests/channelpair.py).
    """

    __slots__ = (
        "_finished",
        "_holds",
        "_roles",
        "_running",
        "_scope",
        "_sleep_until",
        "_stopping",
        "_tg",
        "_timing",
        "_wake",
        "arbiter",
        "cfg",
        "client",
        "clock",
        "counters",
        "emit",
        "handed_over",
        "last_error",
        "last_restart",
        "last_restart_reason",
        "line_owner",
        "modem",
        "name",
        "peer",
        "port_cfg",
        "port_rx",
        "port_state",
        "port_status",
        "port_tx",
        "res",
        "serial_full",
        "server",
        "sessions",
        "stop_reason",
    )
    """A channel is made for every configured one, idle or not: no
    per-instance dict (a third of a kilobyte each at 10 000 channels)."""

    _next_session = 1

    def __init__(
        self,
        cfg: ChannelConfig,
        port: SerialPortConfig,
        resources: Resources,
        emit: Callable[[str, dict[str, str]], None],
        clock: Callable[[], float] = time.monotonic,
        *,
        counters: Counters | None = None,
        start_reason: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.port_cfg = port
        self.res = resources
        self.emit = emit
        self.clock = clock
        self.counters = counters if counters is not None else Counters()
        """A channel a commit restarts keeps its predecessor's counters
        (sessions-ended-by-commit counts what the restart ended)."""
        self.last_restart = rfc3339.now()
        self.last_restart_reason = start_reason
        """YANG last-restart and last-restart-reason: when and why this
        channel was (re)built; a live change (nf.liveness) leaves them."""
        self.stop_reason: str | None = None
        """Why a commit stops the channel: its sessions end with a
        session-event saying so, counted in sessions-ended-by-commit.  None
        (a shutdown) ends them without events."""
        self.sessions: dict[int, Session] = {}
        self._roles: dict[Role, Session] = {}
        self.last_error: str | None = None
        # the commit opened the port (or handed it over): it is up from the start
        self.port_status = "up" if resources.link is not None else "down"
        self._running = True
        self._stopping = False
        self.port_rx = 0
        self.port_tx = 0
        self.port_state = configured_state(port)
        """Effective line settings and control lines (RFC 2217 may change them)."""
        self.line_owner: int | None = None
        """The session whose RFC 2217 changes are in effect (None: the configured)."""
        self.modem: int | None = None
        """The port's modem lines (TIOCM_* bits) as last read; None: unknown."""
        self.arbiter: Arbiter = (
            create_arbiter(cfg.secondary.response_mode, (cfg.secondary.timeout_ms or 600) / 1000)
            if cfg.secondary is not None
            else RawArbiter()
        )
        allowed = AllowedPeers(cfg.allowed_peers)
        self.server = (
            Server(self, allowed, cfg.takeover)
            if cfg.mode == "server" or cfg.secondary is not None
            else None
        )
        self.client = (
            Client(self, cfg.destinations[0]) if cfg.mode == "client" and cfg.destinations else None
        )
        self.peer = (
            Peer(self, resources.udp, cfg.destinations, allowed) if cfg.mode == "peer" else None
        )
        self._scope = anyio.CancelScope()
        self._finished: anyio.Event | None = None
        """Made by the first ``stop`` that has to wait (see ``_run``)."""
        self._timing = False
        """The timer task exists: it runs only while there is a deadline."""
        self._wake: anyio.Event | None = None
        self._sleep_until: float | None = None
        """When the timer task wakes by itself (None: no deadline at all)."""
        self._tg: TaskGroup | None = None
        self._holds = 0
        """Why serial reading is paused: full session buffers, a UDP backlog."""
        self.serial_full = False
        """The tty's write buffer is full: sessions are not read, datagrams
        are dropped."""
        self.handed_over: set[str] = set()
        """Resources given to a successor channel: not closed on stop."""

    @property
    def oper_status(self) -> str:
        """YANG channel/state/oper-status, derived from what is live."""
        if not self._running or self.port_status != "up":
            return "down"  # stopped, or the serial port failed (last-error says why)
        if self.cfg.mode == "peer":
            return "up"
        if self.cfg.mode == "server":
            return "up" if self.sessions else "listening"
        return "up" if self.session_of(Role.PRIMARY) is not None else "connecting"

    # -- lifecycle ---------------------------------------------------------------
    async def run(self) -> None:
        """Run until stopped; a bug takes down this channel only, loudly."""
        try:
            await self._run()
        except Exception as exc:
            log.exception("channel %s failed", self.cfg.name)
            self.last_error = f"internal error: {type(exc).__name__}: {exc}"

    async def _run(self) -> None:
        """The channel's one task, while it is idle: its task group hosts
        only what has something to wait for (a port to reopen, a deadline,
        a connect, a UDP socket, a connection being accepted).  An idle
        server channel with its port open has no other task: its port and
        its listeners call back from the loop (``_port_up``,
        ``Server.listen``), and a deadline starts the timer task
        (``wake_for``).  Four tasks per idle channel, each with anyio's
        cancel scope and event, were two thirds of a data plane's memory
        at 10 000 channels, and their creation most of a boot's apply."""
        res = self.res
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    if res.link is not None:
                        self._port_up(res.link)
                    else:
                        tg.start_soon(self._reopen, None)
                    if self.server is not None:
                        if self.cfg.mode == "server" and res.listener is not None:
                            self.server.listen(res.listener, Role.PRIMARY)
                        if res.secondary is not None:
                            self.server.listen(res.secondary, Role.SECONDARY)
                    if self.client is not None:
                        tg.start_soon(self.client.run)
                    if self.peer is not None and res.udp is not None:
                        tg.start_soon(self.peer.receive, res.udp)
                        if res.group is not None:
                            tg.start_soon(self.peer.receive, res.group)
                    # until cancelled: a bare future (anyio.sleep_forever
                    # would add a timer handle per channel)
                    await asyncio.get_running_loop().create_future()
        finally:
            self._stopping = True
            self._close_everything()
            self._running = False
            if self._finished is not None:
                self._finished.set()

    def fail(self, exc: Exception) -> None:
        """What ``run`` does with a failing task, for a failure in a loop
        callback: this channel stops, loudly; the others run on."""
        log.error("channel %s failed: %s: %s", self.cfg.name, type(exc).__name__, exc)
        self.last_error = f"internal error: {type(exc).__name__}: {exc}"
        self.cancel()

    def spawn(self, func: Callable[[*_Args], Coroutine[Any, Any, object]], *args: *_Args) -> bool:
        """Run ``func(*args)`` as a task of the channel (cancelled when it
        stops); False when it is stopping or not started, and nothing runs."""
        if self._tg is None or self._stopping:
            return False
        self._tg.start_soon(func, *args)
        return True

    def _close_everything(self) -> None:
        """Stop: sessions closed (bounded flush), the link detached, and
        every resource not handed to a successor closed, all at once."""
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions.values()):
            self._leave(session)
            if self.stop_reason is not None:
                session.close_reason = self.stop_reason
                self.counters.sessions_ended_by_commit += 1
                self._session_event(session, "disconnected", self.stop_reason)
                self._send_frames(session, session.framer.flush())
            self._close_transport(session)
        if self.peer is not None:
            self.peer.close()
        link = self.res.link
        if link is not None:
            link.stop()
        for name, resource in self.res.items().items():
            if name in self.handed_over:
                continue
            if name == "link":
                self.counters.dropped_bytes += resource.discard()
                resource.close()
                self.emit("port-event", {"serial-port": self.port_cfg.name, "event": "closed"})
            else:  # a listener's socket, a UDP endpoint: closing needs no await
                with contextlib.suppress(Exception):
                    resource.close()

    def cancel(self) -> None:
        """Begin stopping (``stop`` waits for the end)."""
        self._scope.cancel()

    # -- live changes -----------------------------------------------------------------
    def reconfigure(self, cfg: ChannelConfig, port: SerialPortConfig) -> None:
        """A commit's change that nf.liveness calls live, applied in place:
        the sessions, listeners and the open serial port stay.  It cannot
        fail (a commit's apply must not): what can (line settings) was done
        in prepare (``Link.apply_line_settings``); the new ``port`` is kept
        for a reopen of the port after a loss.

        packing: each framer's pending bytes go out as a frame, then the new
        framer takes the stream from that frame boundary (nothing buffered
        is lost).  keepalive: set on the open sockets.  takeover,
        allowed-peer: decide the next connection; a session from an address
        no longer allowed is closed and counted.  secondary: see
        ``_rearbitrate``.  destination (peer): the next datagram goes to the
        new set.  inactivity-timeout: counted from each session's last
        activity, the timer woken to see it."""
        old, old_port = self.cfg, self.port_cfg
        self.cfg = cfg
        self.port_cfg = port
        if configured_state(port) != configured_state(old_port):
            # prepare gave the open port the new settings, over an RFC 2217
            # client's if one had set its own: the configuration now rules
            self.line_owner = None
            state = self.port_state
            self.port_state = replace(
                configured_state(port),
                dtr=state.dtr,
                rts=state.rts,
                break_on=state.break_on,
                modem=state.modem,
            )
        link = self.res.link
        if port.line_mode != old_port.line_mode and link is not None and link.warning:
            self._port_problem(link.warning)  # RS-485 asked of a driver without it
        if cfg.packing != old.packing:
            for session in self.sessions.values():
                self._send_frames(session, session.framer.flush())
                session.framer = self.new_framer()
            if self.peer is not None:
                self.peer.send(self.peer.framer.flush())
                self.peer.framer = self.new_framer()
        if cfg.keepalive != old.keepalive:
            for session in self.sessions.values():
                if session.transport is not None:
                    self._tune(session.transport)
        if self.server is not None:
            self.server.takeover = cfg.takeover
        if cfg.allowed_peers != old.allowed_peers:
            allowed = AllowedPeers(cfg.allowed_peers)
            if self.server is not None:
                self.server.allowed = allowed
            if self.peer is not None:
                self.peer.allowed = allowed
            for session in list(self.sessions.values()):
                if session.remote[0] not in allowed:
                    self.counters.sessions_ended_by_commit += 1
                    session.close("allowed-peer changed")
        if self.peer is not None:
            self.peer.destinations = cfg.destinations
        if cfg.secondary is not None and old.secondary is not None:
            self._rearbitrate(old.secondary.response_mode, cfg.secondary)
        next_deadline = self.next_deadline()
        if next_deadline is not None:
            self._wake_timer()  # a timer may now be due earlier, or later

    def _rearbitrate(self, before: str, secondary: SecondaryConfig) -> None:
        """A new slot timeout or response mode for the connected sessions.

        The same slotted mode keeps its arbiter (slot, owner, queue) and
        only takes the new T (``SlottedArbiter.set_timeout``).  Another
        mode gets a new arbiter, which the connected sessions join as
        they are; what a slotted arbiter still queued for the waiting
        session is counted in dropped-bytes (it was never written), and a
        session whose status changes gets its role-change event."""
        timeout = (secondary.timeout_ms or 600) / 1000
        arbiter = self.arbiter
        if secondary.response_mode == before:
            if isinstance(arbiter, SlottedArbiter):
                arbiter.set_timeout(timeout)
                self.wake_for(arbiter.deadline())
            return
        now = self.clock()
        actions: list[Action] = []
        statuses = {role: arbiter.status(role) for role in self._roles}
        for role in self._roles:
            if queued := arbiter.queued(role):
                actions.append(Drop(role, queued, Counter.DROPPED, DropReason.QUEUE_DISCARDED))
        self.arbiter = new = create_arbiter(secondary.response_mode, timeout)
        for role in (Role.PRIMARY, Role.SECONDARY):
            if role in self._roles:
                actions += new.connect(role, now)
        actions += [
            StatusChange(role, status)
            for role, was in statuses.items()
            if (status := new.status(role)) is not None and status != was
        ]
        self.apply(actions)

    async def stop(self) -> None:
        self._scope.cancel()
        if self._running:
            if self._finished is None:
                self._finished = anyio.Event()
            await self._finished.wait()

    # -- the serial port --------------------------------------------------------------
    def _port_up(self, link: Link) -> None:
        """The port is open (by the commit, or reopened): run it.  No task
        waits on it: a loss calls ``serial_lost``, which starts the reopen."""
        self.res.link = link
        self.port_status = "up"
        self.emit("port-event", {"serial-port": self.port_cfg.name, "event": "opened"})
        if link.warning is not None:  # up, but not quite as configured
            self._port_problem(link.warning)
        if self.line_owner is not None:  # reopened while a client's settings held
            self._apply_port_state(self.port_state)
        assert self._tg is not None
        link.start(self, self._tg)
        self.modem_update(link.modem_lines())
        if self.modem is not None:
            self._tg.start_soon(self._poll_modem, link)
        if self._holds:
            link.pause_reading()

    async def _reopen(self, lost: tuple[Link, str] | None) -> None:
        """The port was ``lost`` (the link and why), or could not be opened
        at the start (None): reopen it, with backoff (a fresh one: the
        delays start again after every success), then run it."""
        backoff = Backoff()
        if lost is not None:
            link, message = lost
            # the link has stopped itself; what it could not write is lost
            self.counters.dropped_bytes += link.discard()
            link.close()
            self.res.link = None
            self.modem_update(None)
            self.serial_resume_writing()
            self._port_failed(message)
            await anyio.sleep(backoff.next())
        while True:
            try:
                link = await anyio.to_thread.run_sync(open_link, self.port_cfg)
            except PortError as exc:
                self._port_failed(str(exc))
                await anyio.sleep(backoff.next())
                continue
            break
        self._port_up(link)

    async def _poll_modem(self, link: Link) -> None:
        """Read the modem lines of ``link`` every MODEM_POLL while it is the
        port (a reopened port gets a poller of its own)."""
        while True:
            await anyio.sleep(MODEM_POLL)
            if self.res.link is not link:
                return
            self.modem_update(link.modem_lines())

    def modem_update(self, bits: int | None) -> None:
        """The modem lines as read now: a change is a port-event
        (modem-change) and a NOTIFY-MODEMSTATE to each RFC 2217 session
        whose mask lets it through.  The first reading of a port, or a
        port without modem lines (None), only sets the state."""
        old = self.modem
        if bits == old:
            return
        self.modem = bits
        state = self._modem_byte(bits, old)
        self.port_state = replace(self.port_state, modem=state & 0xF0)
        if bits is None or old is None:
            return
        changed = bits ^ old
        self.emit(
            "port-event",
            {
                "serial-port": self.port_cfg.name,
                "event": "modem-change",
                "modem-lines": _line_names(bits),
                "changed": _line_names(changed),
            },
        )
        previous = self._modem_byte(old, None)
        for session in self.sessions.values():
            if session.telnet is not None:
                session.send_telnet(session.telnet.modem_changed(state, previous))

    @staticmethod
    def _modem_byte(bits: int | None, old: int | None) -> int:
        """The NOTIFY-MODEMSTATE byte of ``bits`` (deltas against ``old``)."""
        if bits is None:
            return 0

        def lines(b: int) -> tuple[bool, bool, bool, bool]:
            tiocm = (termios.TIOCM_CTS, termios.TIOCM_DSR, termios.TIOCM_RNG, termios.TIOCM_CAR)
            cts, dsr, ri, dcd = (bool(b & bit) for bit in tiocm)
            return cts, dsr, ri, dcd

        previous = None if old is None else modem_state(*lines(old), None)
        return modem_state(*lines(bits), previous)

    def modem_leaves(self) -> tuple[tuple[str, str], ...]:
        """serial-port/state/modem-lines: on, off, or unknown where the
        driver does not report them."""
        bits = self.modem
        if bits is None:
            return tuple((name, "unknown") for name, _ in MODEM_LINES)
        return tuple((name, "on" if bits & bit else "off") for name, bit in MODEM_LINES)

    def _port_failed(self, message: str) -> None:
        self.port_status = "error"
        self._port_problem(message)

    def _port_problem(self, message: str) -> None:
        """last-error, the log and a port-event error; oper-status is the caller's."""
        self.last_error = message
        log.warning("channel %s: %s", self.cfg.name, message)
        self.emit(
            "port-event", {"serial-port": self.port_cfg.name, "event": "error", "message": message}
        )

    # LinkSink
    def serial_received(self, data: bytes) -> None:
        self.port_rx += len(data)
        peer = self.peer
        if peer is not None:
            peer.serial_received(data)
            return
        fanout = self.arbiter.serial_fanout()
        if fanout is None:
            self.apply(self.arbiter.from_serial(data, self.clock()))
            return
        for role in fanout:  # what apply does with the ToNet actions from_serial would give
            self._to_net(role, data)

    def serial_sent(self, nbytes: int) -> None:
        self.port_tx += nbytes
        self.counters.net_to_serial_bytes += nbytes

    def serial_pause_writing(self) -> None:
        """The tty is full: stop reading what would be written to it."""
        if self.serial_full:
            return
        self.serial_full = True
        for session in self.sessions.values():
            if session.transport is not None:
                session.transport.pause_reading()

    def serial_resume_writing(self) -> None:
        if not self.serial_full:
            return
        self.serial_full = False
        for session in self.sessions.values():
            if session.transport is not None:
                session.transport.resume_reading()

    def serial_lost(self, message: str) -> None:
        link = self.res.link
        if link is not None:
            self.spawn(self._reopen, (link, message))

    def hold_serial(self) -> None:
        """A reason not to read the serial port (the data has nowhere to go):
        a session's socket buffer is full, or the peer's UDP backlog."""
        self._holds += 1
        if self._holds == 1 and self.res.link is not None:
            self.res.link.pause_reading()

    def release_serial(self) -> None:
        """That reason is gone; reading resumes when no other is left."""
        self._holds -= 1
        if not self._holds and self.res.link is not None:
            self.res.link.resume_reading()

    # -- RFC 2217 line control ---------------------------------------------------------
    def may_control(self, session: Session) -> bool:
        """May this RFC 2217 session change the port's state now?"""
        if not self.cfg.allow_line_control:
            return False
        return self.arbiter.status(session.role) is Status.ACTIVE

    def set_line(self, session: Session, state: PortState) -> PortState:
        """A client's change: applied to the open port, owned by ``session``
        until it ends (or another session changes the state); the state in
        effect after it (a setting the driver refused is the old one)."""
        self.line_owner = session.id
        self._apply_port_state(state)
        return self.port_state

    def _apply_port_state(self, state: PortState) -> None:
        """Make ``state`` the port's: the line settings and control lines
        that differ from the current ones go to the link.  A setting the
        driver refuses keeps the port as it was and is reported in
        last-error and a port-event, not fatal."""
        old = self.port_state
        self.port_state = state
        link = self.res.link
        if link is None:
            return  # applied when the port reopens
        line = (state.baud_rate, state.data_bits, state.parity, state.stop_bits, state.flow_control)
        if line != (old.baud_rate, old.data_bits, old.parity, old.stop_bits, old.flow_control):
            cfg = replace(
                self.port_cfg,
                baud_rate=state.baud_rate,
                data_bits=state.data_bits,
                parity=state.parity,
                stop_bits=state.stop_bits,
                flow_control=state.flow_control,
            )
            try:
                link.apply_line_settings(cfg)
            except PortError as exc:
                self.port_state = replace(
                    old, dtr=state.dtr, rts=state.rts, break_on=state.break_on
                )
                self._port_problem(str(exc))
        if (state.dtr, state.rts, state.break_on) != (old.dtr, old.rts, old.break_on):
            link.set_control_lines(state.dtr, state.rts, state.break_on)

    def _revert_line(self, session: Session) -> None:
        """The session that owned the port's state is gone: back to the
        configured settings."""
        if self.line_owner == session.id:
            self.line_owner = None
            modem = self.port_state.modem
            self._apply_port_state(replace(configured_state(self.port_cfg), modem=modem))

    def send_break(self, duration: float) -> str | None:
        """Begin a break of ``duration`` seconds (the send-break action); a
        task of the channel ends it, so the request that asked for it is
        not held up.  None, or why not."""
        link = self.res.link
        if link is None or self._tg is None:
            return f"serial port {self.port_cfg.name} is not open"
        state = self.port_state
        link.set_control_lines(state.dtr, state.rts, True)
        self._tg.start_soon(self._end_break, link, duration)
        return None

    async def _end_break(self, link: Link, duration: float) -> None:
        await anyio.sleep(duration)
        if self.res.link is link:  # as the port's state says (an RFC 2217 break may hold)
            state = self.port_state
            link.set_control_lines(state.dtr, state.rts, state.break_on)

    def purge(self, session: Session, receive: bool, transmit: bool) -> None:
        """PURGE-DATA: ``receive`` drops what was read from the port for this
        session and not sent (its pending frame), ``transmit`` what is still
        to be written to the port; counted in dropped-bytes."""
        dropped = 0
        if receive:
            dropped += sum(len(frame) for frame in session.framer.flush())
        link = self.res.link
        if link is not None:
            dropped += link.purge(receive, transmit)
        self.counters.dropped_bytes += dropped

    def write_serial(self, data: bytes) -> None:
        """Network bytes for the port; dropped (counted) while it is down."""
        link = self.res.link
        if link is None:
            self.counters.dropped_bytes += len(data)
        else:
            link.write(data)

    # -- the sans-I/O core ---------------------------------------------------------------
    def apply(self, actions: list[Action]) -> None:
        """Carry out arbiter actions, in order."""
        for action in actions:
            if type(action) is ToNet:
                self._to_net(action.role, action.data)
            elif type(action) is ToSerial:
                self.write_serial(action.data)
            elif isinstance(action, Drop):
                if action.counter.value == "ignored":
                    self.counters.ignored_bytes += action.nbytes
                else:
                    self.counters.dropped_bytes += action.nbytes
            elif isinstance(action, StatusChange):
                session = self._roles.get(action.role)
                if session is not None:
                    self._session_event(session, "role-change")
        self.wake_for(self.arbiter.deadline())

    def _to_net(self, role: Role, data: bytes) -> None:
        """Serial bytes for the session of ``role``, through its framer."""
        session = self._roles.get(role)
        if session is None:
            self.counters.dropped_bytes += len(data)
            return
        framer = session.framer
        if framer.passthrough:
            self._send_frame(session, data)
        else:
            self._send_frames(session, framer.feed(data, self.clock()))
            self.wake_for(framer.deadline())

    def wake_for(self, deadline: float | None) -> None:
        """Wake the timer task only for a deadline earlier than its own.

        A plain channel (no packing, no slot timer) then never wakes it, and
        a busy one does not pay a task switch per chunk: a deadline that moved
        later is found when the timer wakes at the earlier one.
        """
        if deadline is not None and (self._sleep_until is None or deadline < self._sleep_until):
            self._wake_timer()

    def _wake_timer(self) -> None:
        """Have the timer task look at the deadlines again, starting it if
        there is none (it ends when there is no deadline left)."""
        if not self._timing:
            self._timing = self.spawn(self._timer_loop)
        elif self._wake is not None:
            self._wake.set()

    def _send_frames(self, session: Session, frames: list[bytes]) -> None:
        for frame in frames:
            self._send_frame(session, frame)

    def _send_frame(self, session: Session, frame: bytes) -> None:
        """Hand a frame to the session's transport; a closing one drops it
        (counted)."""
        transport = session.transport
        if transport is None or transport.is_closing():
            self.counters.dropped_bytes += len(frame)
            return
        if session.telnet is None:
            transport.write(frame)
            session.tx_bytes += len(frame)
        else:  # RFC 2217: 0xFF doubled, in C (bytes.replace)
            wire = frame.replace(b"\xff", b"\xff\xff")
            transport.write(wire)
            session.tx_bytes += len(wire)
        counters = self.counters
        counters.serial_to_net_bytes += len(frame)
        counters.serial_to_net_frames += 1
        session.last_activity = self.clock()

    # -- timers ---------------------------------------------------------------------
    async def _timer_loop(self) -> None:
        """Arbiter slot timers, framer frame-delays, inactivity timeouts,
        for as long as there is one (``_wake_timer`` starts it again)."""
        try:
            while True:
                until = self.next_deadline()
                self._sleep_until = until
                if until is None:
                    return
                self._wake = wake = anyio.Event()
                with anyio.move_on_after(max(0.0, until - self.clock())):
                    await wake.wait()
                self.tick(self.clock())
        finally:
            self._timing = False
            self._wake = None
            self._sleep_until = None

    def next_deadline(self) -> float | None:
        """The earliest time ``tick`` has something to do (None: never)."""
        deadlines = [d for d in [self.arbiter.deadline()] if d is not None]
        deadlines += [d for s in self.sessions.values() if (d := s.framer.deadline()) is not None]
        idle = self._idle_deadline()
        if idle is not None:
            deadlines.append(idle)
        if self.peer is not None and (d := self.peer.deadline()) is not None:
            deadlines.append(d)
        return min(deadlines) if deadlines else None

    def tick(self, now: float) -> None:
        """Time passed: fire what is due at ``now`` (slot ends, frame
        delays, inactivity timeouts).  Early or late calls are harmless."""
        self.apply(self.arbiter.tick(now))
        if self.peer is not None:
            self.peer.flush_due(now)
        for session in list(self.sessions.values()):
            self._send_frames(session, session.framer.flush_due(now))
            if (
                self.cfg.inactivity_timeout
                and now - session.last_activity >= self.cfg.inactivity_timeout
            ):
                log.info("channel %s: session %d idle, closing", self.cfg.name, session.id)
                session.close("inactivity timeout")

    def new_framer(self) -> Framer:
        """A framer with the channel's packing (one per session, one for peer)."""
        p = self.cfg.packing
        delay = None if p.frame_delay_ms is None else p.frame_delay_ms / 1000
        return Framer(p.max_frame_size, delay, p.delimiter)

    def _idle_deadline(self) -> float | None:
        if not self.cfg.inactivity_timeout:
            return None
        idle = [s.last_activity for s in self.sessions.values()]
        return min(idle) + self.cfg.inactivity_timeout if idle else None

    # -- sessions -------------------------------------------------------------------
    def session_of(self, role: Role) -> Session | None:
        """The joined session that has ``role``, if any."""
        return self._roles.get(role)

    def _tune(self, transport: asyncio.Transport) -> None:
        """TCP_NODELAY, and keepalive as the YANG ``keepalive`` says: its
        value is the idle time before the first probe, 0 turns it off."""
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if self.cfg.keepalive else 0)
        if self.cfg.keepalive:
            idle = min(self.cfg.keepalive, MAX_KEEPIDLE)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            except OSError as exc:
                log.warning("channel %s: TCP_KEEPIDLE %d: %s", self.cfg.name, idle, exc)

    def join(self, session: Session) -> None:
        """A connected session: counted, known to the arbiter, announced."""
        transport = session.transport
        assert transport is not None
        if self._stopping or session.role in self._roles:
            transport.abort()  # the channel stopped while it connected
            return
        self._tune(transport)
        session.id = ChannelRuntime._next_session
        ChannelRuntime._next_session += 1
        session.connected_at = rfc3339.now()
        session.last_activity = now = self.clock()
        session.joined = True
        self.sessions[session.id] = session
        self._roles[session.role] = session
        if session.telnet is not None:
            session.send_telnet(session.telnet.start())
        self.counters.sessions_accepted += 1
        if self.serial_full:
            transport.pause_reading()
        actions = self.arbiter.connect(session.role, now)
        self._session_event(session, "connected")
        self.apply(actions)
        self.wake_for(self._idle_deadline())  # an inactivity timer may start now

    def _leave(self, session: Session) -> list[Action]:
        """Take the session out of the channel and the arbiter (at once: a
        successor of the same role may join right after); its actions."""
        if not session.joined:
            return []
        session.joined = False
        self.sessions.pop(session.id, None)
        if self._roles.get(session.role) is session:
            del self._roles[session.role]
        if session.holding:
            session.holding = False
            self.release_serial()
        if session.suspended:
            session.suspended = False
            self.release_serial()
        self._revert_line(session)
        if self.arbiter.is_connected(session.role):
            return self.arbiter.disconnect(session.role, self.clock())
        return []

    def gone(self, session: Session) -> None:
        """A session ends (closed by us or by the peer): it leaves, is
        announced, its last frame is flushed and its socket closed."""
        if not session.joined:
            return
        actions = self._leave(session)
        self._session_event(session, "disconnected", session.close_reason)
        self._send_frames(session, session.framer.flush())
        if session.close_reason == "taken over":
            # its successor is already here: a session that stopped reading
            # (the usual reason for a takeover) gets no grace period
            self._abort(session)
        else:
            self._close_transport(session)
        self.apply(actions)

    def _close_transport(self, session: Session) -> None:
        """Close, letting the kernel take what is buffered for at most
        CLOSE_TIMEOUT; what a peer that stopped reading never took is counted
        in dropped-bytes when the socket is aborted."""
        transport = session.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._abort, session)

    def _abort(self, session: Session) -> None:
        transport = session.transport
        if transport is not None and not session.closed.is_set():
            self.counters.dropped_bytes += transport.get_write_buffer_size()
            transport.abort()

    def _session_event(self, session: Session, event: str, reason: str | None = None) -> None:
        status = self.arbiter.status(session.role)
        payload = {
            "channel": self.cfg.name,
            "session-id": str(session.id),
            "event": event,
            "remote-address": session.remote[0],
            "remote-port": str(session.remote[1]),
            "role": session.role.value,
        }
        if status is not None and event != "disconnected":
            payload["status"] = status.value
        if reason:
            payload["reason"] = reason
        self.emit("session-event", payload)

    def session_rows(self) -> list[Session]:
        return sorted(self.sessions.values(), key=lambda s: s.id)
