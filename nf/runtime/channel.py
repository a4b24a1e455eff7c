"""One relay channel on the event loop: its serial port, sockets and sessions.

A channel is started with resources its commit already acquired (see
``relay.py``): the serial link, the TCP listeners, the UDP socket.  It runs
as one task group; stopping cancels it and closes the resources it still
owns (a resource handed to a successor channel in the same commit is not
closed).

The data path is the sans-I/O core: every serial read goes through the
arbiter (which decides which sessions may see it), then through a
per-session framer (packing); every network read goes through the arbiter
to the serial port.  Each direction is its own task, so a blocked serial
write never stalls the opposite direction.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup

from nf.config.model import ChannelConfig, SerialPortConfig
from nf.protocol.arbitration import (
    Action,
    Arbiter,
    Drop,
    RawArbiter,
    Role,
    StatusChange,
    ToNet,
    ToSerial,
    create_arbiter,
)
from nf.protocol.packing import Framer
from nf.runtime.serial import Link, PortError, open_link
from nf.runtime.udp import Datagrams

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
RECEIVE_SIZE = 65536
CONNECT_TIMEOUT = 10.0
"""Client mode: a connect attempt that gets no answer fails after this long."""
CLOSE_TIMEOUT = 0.5
"""How long a closing session may take to flush its last frame (and a
departing session's arbiter actions to run): a peer that stopped reading
must not hold up a takeover, a commit or the shutdown."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Counters:
    serial_to_net_bytes: int = 0
    serial_to_net_frames: int = 0
    net_to_serial_bytes: int = 0
    dropped_bytes: int = 0
    ignored_bytes: int = 0
    sessions_accepted: int = 0
    sessions_refused: int = 0
    last_cleared: str | None = None


@dataclass
class Session:
    id: int
    role: Role
    stream: SocketStream
    remote: tuple[str, int]
    connected_at: str
    framer: Framer
    rx_bytes: int = 0
    tx_bytes: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    send_lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    close_reason: str = "closed by peer"

    def close(self, reason: str) -> None:
        """End the session (its task cleans up)."""
        self.close_reason = reason
        self.scope.cancel()


@dataclass
class Resources:
    """What a channel holds while it runs; keys say what can be handed over."""

    link: Link | None = None
    listener: SocketListener | None = None
    secondary: SocketListener | None = None
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


class ChannelRuntime:
    """A running channel; all methods run on the event loop."""

    _next_session = 1

    def __init__(
        self,
        cfg: ChannelConfig,
        port: SerialPortConfig,
        resources: Resources,
        emit: Callable[[str, dict[str, str]], None],
    ) -> None:
        self.cfg = cfg
        self.port_cfg = port
        self.res = resources
        self.emit = emit
        self.counters = Counters()
        self.sessions: dict[int, Session] = {}
        self.last_error: str | None = None
        # the commit opened the port (or handed it over): it is up from the start
        self.port_status = "up" if resources.link is not None else "down"
        self._running = True
        self._allowed_nets = [ipaddress.ip_network(p, strict=False) for p in cfg.allowed_peers]
        self.port_rx = 0
        self.port_tx = 0
        self.arbiter: Arbiter = (
            create_arbiter(cfg.secondary.response_mode, (cfg.secondary.timeout_ms or 600) / 1000)
            if cfg.secondary is not None
            else RawArbiter()
        )
        self._peer_framer = self._framer() if cfg.mode == "peer" else None
        self._scope = anyio.CancelScope()
        self._finished = anyio.Event()
        self._wake = anyio.Event()
        self._sleep_until: float | None = None
        """When the timer task wakes by itself (None: no deadline at all)."""
        self._serial_lock = anyio.Lock(fast_acquire=True)
        self._tg: TaskGroup | None = None
        self._pending: dict[int, list[Action]] = {}
        """Arbiter actions of a session's connect, applied by its task."""
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
        return "up" if self._session_of(Role.PRIMARY) is not None else "connecting"

    # -- lifecycle ---------------------------------------------------------------
    async def run(self) -> None:
        """Run until stopped; a bug takes down this channel only, loudly."""
        try:
            await self._run()
        except Exception as exc:
            log.exception("channel %s failed", self.cfg.name)
            self.last_error = f"internal error: {type(exc).__name__}: {exc}"

    async def _run(self) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._serial_loop)
                    tg.start_soon(self._timer_loop)
                    if self.cfg.mode == "server" and self.res.listener is not None:
                        tg.start_soon(self._accept_loop, self.res.listener, Role.PRIMARY)
                    if self.cfg.mode == "client":
                        tg.start_soon(self._client_loop)
                    if self.res.secondary is not None:
                        tg.start_soon(self._accept_loop, self.res.secondary, Role.SECONDARY)
                    if self.cfg.mode == "peer" and self.res.udp is not None:
                        tg.start_soon(self._udp_loop, self.res.udp)
                        if self.res.group is not None:
                            tg.start_soon(self._udp_loop, self.res.group)
        finally:
            # shielded: when cancelled from outside (not by stop), every
            # resource is still closed, not just the first one
            with anyio.CancelScope(shield=True):
                for session in list(self.sessions.values()):
                    await close_resource(session.stream)
                self.sessions.clear()
                for name, resource in self.res.items().items():
                    if name not in self.handed_over:
                        await close_resource(resource)
            if "link" not in self.handed_over and self.res.link is not None:
                self.emit("port-event", {"serial-port": self.port_cfg.name, "event": "closed"})
            self._running = False
            self._finished.set()

    def cancel(self) -> None:
        """Begin stopping (``stop`` waits for the end)."""
        self._scope.cancel()

    async def stop(self) -> None:
        self._scope.cancel()
        await self._finished.wait()

    # -- serial -> network ---------------------------------------------------------
    async def _serial_loop(self) -> None:
        backoff = BACKOFF_START
        while True:
            if self.res.link is None:
                try:
                    self.res.link = await anyio.to_thread.run_sync(open_link, self.port_cfg)
                except PortError as exc:
                    self._port_failed(str(exc))
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
            self.port_status = "up"
            self.emit("port-event", {"serial-port": self.port_cfg.name, "event": "opened"})
            backoff = BACKOFF_START
            link = self.res.link
            try:
                while True:
                    data = await link.read()
                    self.port_rx += len(data)
                    if self._peer_framer is not None:
                        await self._peer_send(self._peer_framer.feed(data, time.monotonic()))
                        self._kick(self._peer_framer.deadline())
                    else:
                        await self._apply(self.arbiter.from_serial(data, time.monotonic()))
            except PortError as exc:
                link.close()
                self.res.link = None
                self._port_failed(str(exc))
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _port_failed(self, message: str) -> None:
        self.port_status = "error"
        self.last_error = message
        log.warning("channel %s: %s", self.cfg.name, message)
        self.emit(
            "port-event", {"serial-port": self.port_cfg.name, "event": "error", "message": message}
        )

    async def _apply(self, actions: list[Action]) -> None:
        """Carry out arbiter actions."""
        for action in actions:
            if isinstance(action, ToNet):
                session = self._session_of(action.role)
                if session is None:
                    self.counters.dropped_bytes += len(action.data)
                    continue
                frames = session.framer.feed(action.data, time.monotonic())
                self._kick(session.framer.deadline())
                await self._send_frames(session, frames)
            elif isinstance(action, ToSerial):
                await self._to_serial(action.data)
            elif isinstance(action, Drop):
                if action.counter.value == "ignored":
                    self.counters.ignored_bytes += action.nbytes
                else:
                    self.counters.dropped_bytes += action.nbytes
            elif isinstance(action, StatusChange):
                session = self._session_of(action.role)
                if session is not None:
                    self._session_event(session, "role-change")
        self._kick(self.arbiter.deadline())

    def _kick(self, deadline: float | None) -> None:
        """Wake the timer task only for a deadline earlier than its own.

        A plain channel (no packing, no slot timer) then never wakes it, and
        a busy one does not pay a task switch per chunk: a deadline that moved
        later is found when the timer wakes at the earlier one.
        """
        if deadline is not None and (self._sleep_until is None or deadline < self._sleep_until):
            self._wake.set()

    async def _send_frames(self, session: Session, frames: list[bytes]) -> None:
        """Send frames in order; what a broken or cancelled send did not
        deliver is counted in dropped-bytes."""
        if not frames:
            return
        sent = 0
        try:
            async with session.send_lock:
                for frame in frames:
                    try:
                        await session.stream.send(frame)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        session.close("send failed")
                        return
                    sent += 1
                    session.tx_bytes += len(frame)
                    session.last_activity = time.monotonic()
                    self.counters.serial_to_net_bytes += len(frame)
                    self.counters.serial_to_net_frames += 1
        finally:
            self.counters.dropped_bytes += sum(map(len, frames[sent:]))

    async def _to_serial(self, data: bytes) -> None:
        link = self.res.link
        if link is None:
            self.counters.dropped_bytes += len(data)
            return
        async with self._serial_lock:
            try:
                await link.write(data)
            except PortError as exc:
                self.counters.dropped_bytes += len(data)
                self._port_failed(str(exc))
                return
        self.port_tx += len(data)
        self.counters.net_to_serial_bytes += len(data)

    async def _timer_loop(self) -> None:
        """Arbiter slot timers and framer frame-delays."""
        while True:
            self._wake = anyio.Event()
            deadlines = [d for d in [self.arbiter.deadline()] if d is not None]
            deadlines += [
                d for s in self.sessions.values() if (d := s.framer.deadline()) is not None
            ]
            idle = self._idle_deadline()
            if idle is not None:
                deadlines.append(idle)
            if self._peer_framer is not None and (d := self._peer_framer.deadline()) is not None:
                deadlines.append(d)
            until = min(deadlines) if deadlines else None
            self._sleep_until = until
            timeout = None if until is None else max(0.0, until - time.monotonic())
            with anyio.move_on_after(timeout):
                await self._wake.wait()
            now = time.monotonic()
            await self._apply(self.arbiter.tick(now))
            if self._peer_framer is not None:
                await self._peer_send(self._peer_framer.flush_due(now))
            for session in list(self.sessions.values()):
                await self._send_frames(session, session.framer.flush_due(now))
                if (
                    self.cfg.inactivity_timeout
                    and now - session.last_activity >= self.cfg.inactivity_timeout
                    and not session.scope.cancel_called
                ):
                    log.info("channel %s: session %d idle, closing", self.cfg.name, session.id)
                    session.close("inactivity timeout")

    def _framer(self) -> Framer:
        p = self.cfg.packing
        delay = None if p.frame_delay_ms is None else p.frame_delay_ms / 1000
        return Framer(p.max_frame_size, delay, p.delimiter)

    def _idle_deadline(self) -> float | None:
        if not self.cfg.inactivity_timeout:
            return None
        idle = [s.last_activity for s in self.sessions.values() if not s.scope.cancel_called]
        return min(idle) + self.cfg.inactivity_timeout if idle else None

    # -- sessions -------------------------------------------------------------------
    def _session_of(self, role: Role) -> Session | None:
        for session in self.sessions.values():
            if session.role is role:
                return session
        return None

    def _allowed(self, address: str) -> bool:
        if not self._allowed_nets:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 peer of a dual-stack (::) socket
        return any(ip in net for net in self._allowed_nets)

    def _tune(self, stream: SocketStream) -> None:
        sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.cfg.keepalive:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.cfg.keepalive)

    async def _accept_loop(self, listener: SocketListener, role: Role) -> None:
        while True:
            stream = await listener.accept()
            remote = stream.extra(SocketAttribute.remote_address)
            address, port = str(remote[0]), int(remote[1])
            if not self._allowed(address):
                self.counters.sessions_refused += 1
                log.info("channel %s: refused %s (allowed-peer)", self.cfg.name, address)
                await close_resource(stream)
                continue
            existing = self._session_of(role)
            if existing is not None:
                if not self.cfg.takeover:
                    self.counters.sessions_refused += 1
                    log.info("channel %s: refused %s (busy)", self.cfg.name, address)
                    await close_resource(stream)
                    continue
                existing.close("taken over")
                await self._gone(existing)
            # registered here, before the next accept, so that two quick
            # connections can never both become the session of one role
            session = self._register(stream, role, (address, port))
            assert self._tg is not None
            self._tg.start_soon(self._serve, session)

    async def _client_loop(self) -> None:
        host, port = self.cfg.destinations[0]
        delay = 0.0
        while True:
            if delay:
                await anyio.sleep(delay)
            try:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    stream = await anyio.connect_tcp(host, port)
            except OSError as exc:  # TimeoutError included
                reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or exc
                self.last_error = f"connect to {host}:{port}: {reason}"
                delay = min(delay * 2, BACKOFF_MAX) if delay else BACKOFF_START
                continue
            await self._serve(self._register(stream, Role.PRIMARY, (host, port)))
            delay = BACKOFF_START  # after a disconnect: 1 s, then doubling

    def _register(self, stream: SocketStream, role: Role, remote: tuple[str, int]) -> Session:
        """A new session of ``role``: counted, known to the arbiter, announced."""
        self._tune(stream)
        session = Session(
            id=ChannelRuntime._next_session,
            role=role,
            stream=stream,
            remote=remote,
            connected_at=now_iso(),
            framer=self._framer(),
        )
        ChannelRuntime._next_session += 1
        self.sessions[session.id] = session
        self.counters.sessions_accepted += 1
        self._pending[session.id] = self.arbiter.connect(role, time.monotonic())
        self._session_event(session, "connected")
        self._kick(self._idle_deadline())  # an inactivity timer may start now
        return session

    async def _serve(self, session: Session) -> None:
        """Relay the session's network -> serial direction until it ends."""
        stream, role = session.stream, session.role
        try:
            with session.scope:
                await self._apply(self._pending.pop(session.id, []))
                while True:
                    try:
                        data = await stream.receive(RECEIVE_SIZE)
                    except (
                        anyio.EndOfStream,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                    ):
                        break
                    session.rx_bytes += len(data)
                    session.last_activity = time.monotonic()
                    await self._apply(self.arbiter.from_net(role, data, session.last_activity))
        finally:
            await self._gone(session)

    async def _gone(self, session: Session) -> None:
        """Remove a session: at once for the arbiter (a successor of the same
        role may connect while this one is still closing), then flush its
        last frame and close it, each bounded by CLOSE_TIMEOUT."""
        if self.sessions.pop(session.id, None) is None:
            return
        actions = self._pending.pop(session.id, [])
        if self.arbiter.is_connected(session.role):
            actions += self.arbiter.disconnect(session.role, time.monotonic())
        self._session_event(session, "disconnected", session.close_reason)
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await self._send_frames(session, session.framer.flush())
        with anyio.CancelScope(shield=True):
            await close_resource(session.stream)
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await self._apply(actions)

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

    # -- UDP peer ----------------------------------------------------------------------
    async def _udp_loop(self, udp: Datagrams) -> None:
        while True:
            data, address = await udp.receive()
            if not self._allowed(address):
                self.counters.dropped_bytes += len(data)
                continue
            await self._to_serial(data)

    async def _peer_send(self, frames: list[bytes]) -> None:
        """Peer mode has no sessions: each frame goes to every destination,
        and every datagram sent counts (as each TCP write of a session does)."""
        udp = self.res.udp
        if udp is None or not frames:
            return
        for frame in frames:
            for host, port in self.cfg.destinations:
                try:
                    await udp.sendto(frame, host, port)
                except OSError as exc:
                    self.counters.dropped_bytes += len(frame)
                    self.last_error = f"send to {host}:{port}: {exc.strerror or exc}"
                    continue
                self.counters.serial_to_net_bytes += len(frame)
                self.counters.serial_to_net_frames += 1

    def session_rows(self) -> list[Session]:
        return sorted(self.sessions.values(), key=lambda s: s.id)
