"""The relay runtime: channels on the event loop, changed atomically.

``prepare`` acquires every resource the commit's new or changed channels
need: serial ports opened, TCP listeners bound, UDP sockets bound and
multicast groups joined.  A resource that an outgoing channel of the same
commit already holds under the same key (a listener on the same address
and port, the same serial device) is handed over instead of being
acquired twice, so a restarted channel keeps its listener and its open
port (new line settings applied to it), and a port freed by a deleted
channel can be reused in the same commit.  Any failure closes exactly
what this prepare acquired, gives ports their line settings back and
raises PrepareError: the runtime, every channel and every session are as
before.

``apply`` cannot fail: it stops the outgoing channels (deletes first) and
starts the incoming ones with their prepared resources.  Channels the
commit does not change are never touched.  (FRRouting's northbound
PREPARE/ABORT/APPLY is the model.)

A running channel whose changes are all live (``nf.liveness``) is not
restarted: ``apply`` hands it the new configuration
(``ChannelRuntime.reconfigure``) and its sessions stay.  What of such a
change can fail, new line settings of its open serial port, is done in
prepare (``Link.apply_line_settings``) and undone by ``abort``, so a
refused baud rate fails the whole commit with every port as it was.  A
channel that must restart ends its sessions with a session-event giving
the restart leaves that changed, keeps its counters, and records when and
why in last-restart and last-restart-reason.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, ne, or_
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup, TaskStatus

from nf import rfc3339
from nf.liveness import PORT_LEAVES, Apply, changed, restart_reasons
from nf.model import ChannelConfig, RelayConfig, SerialPortConfig
from nf.runtime.channel import SIGNATURE, ChannelRuntime, Counters, Resources, close_resource
from nf.runtime.document import Document, DocumentPatch
from nf.runtime.serial import Link, PortError, open_link
from nf.runtime.transaction import (
    ChannelState,
    Delta,
    DocumentMismatch,
    EventSink,
    Fault,
    PortState,
    PrepareError,
    SessionState,
    Snapshot,
    Transaction,
)
from nf.runtime.udp import JoinError, bind_group, bind_peer, needs_group_socket

log = logging.getLogger(__name__)

ResourceKey = tuple[str, ...]
SNAPSHOT_SLICE = 0.0001
"""Seconds of reading channel state between two yields to the event loop
(see RelayRuntime.read_states): a snapshot holds up the relays for
about this long at a time (plus one chunk).  A relay's round trip waits
for at most the rest of one slice at each of its two hops
(``yield_to_relays``; before, two slices of 0.2 ms at each).  Shorter
slices cost more yields: at 50 us, a read of 1000 channels took 2.9 ms
instead of about 2, in the control plane's <get> path."""
SNAPSHOT_CHUNK = 32
"""Channels whose signatures are compared in one go (about 15 us), and at
most as many read afresh (5 us each) before the time is looked at."""


async def yield_to_relays() -> None:
    """Let the relay callbacks whose I/O came during a slice of long work
    run before its next slice.

    One ``sleep(0)`` is not enough: the task is queued to run again at
    once, and asyncio appends the callbacks of the I/O its next poll finds
    after it, so they wait for the next slice as well.  After the second,
    they have run: a relay waits for at most the rest of one slice.

    First ``sched_yield``: a ``sleep(0)`` never gives the CPU away, so to
    the kernel a read of 500 channels is 1-2 ms of one busy process, and
    whatever else is runnable on this CPU (the kworker that pushes a
    tty's received bytes to its line discipline, a process at the far end
    of a link) waits for it to end (CFS does not preempt it for a waking
    task within that time): a relay's byte then waited for the whole
    read, not one slice.  With nothing else runnable it costs one system
    call (about a microsecond)."""
    os.sched_yield()
    await anyio.sleep(0)
    await anyio.sleep(0)


START_SLICE = 50
"""Channels an apply starts between two yields to the event loop.  Each
started channel runs its first steps (open its port, say so in a
port-event) in the loop iteration after; 10 000 of them in one iteration
held every relay for seconds and emitted 10 000 events before the data
plane could send one, overflowing its backlog (9000 dropped at a boot)."""


QUIET_START = START_SLICE
"""An apply that starts more channels than this logs one line for them,
not a port-event line each (the events themselves are all sent)."""


class _Links(dict[str, "Link | None"]):
    """Serial ports opened for a prepare, by channel; ``failed``: why the
    first that could not be opened fails the commit (those before it are
    in the dict, to be closed)."""

    failed: PrepareError | None = None


def _open_links(ports: list[tuple[str, SerialPortConfig]], boot: bool) -> _Links:
    """Open each channel's serial port, in turn (blocking: a worker thread)."""
    links = _Links()
    for name, port in ports:
        try:
            links[name] = open_link(port)
        except PortError as exc:
            if boot:
                # at boot a missing device (an unplugged USB adapter) must
                # not keep the daemon down: the channel starts without its
                # port and reopens it with backoff (SPEC §3); a commit
                # later on still fails atomically (SPEC §4)
                log.warning("boot: %s; the channel retries it", exc)
                links[name] = None
                continue
            fault = Fault("resource-denied", f"channel {name}: {exc}", name, "serial-port")
            links.failed = PrepareError([fault])
            break
    return links


LISTEN_BACKLOG = 65536
"""As anyio's listeners (the kernel caps it at somaxconn)."""


def bind_tcp(address: str, port: int) -> socket.socket:
    """A listening TCP socket on ``address``, an IP address (the YANG type
    is inet:ip-address: no name to look up), made on the loop: anyio's
    create_tcp_listener asked a worker thread for getaddrinfo first, a
    thread hop per channel that made a commit creating 2000 channels wait
    most of its prepare.  As anyio's: SO_REUSEADDR, an IPv6 socket IPv6
    only, non-blocking."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _keys(cfg: ChannelConfig, port: SerialPortConfig) -> dict[str, ResourceKey]:
    """What each resource of a channel is, for handing over between channels."""
    address = cfg.listen_address or "0.0.0.0"
    # the device alone: a restarted channel keeps its open port, and new
    # line settings are applied to it in prepare
    keys: dict[str, ResourceKey] = {"link": ("serial", port.device)}
    if cfg.mode == "server" and cfg.listen_port is not None:
        keys["listener"] = ("tcp", address, str(cfg.listen_port))
    if cfg.secondary is not None:
        keys["secondary"] = ("tcp", address, str(cfg.secondary.port))
    if cfg.mode == "peer" and cfg.listen_port is not None:
        keys["udp"] = ("udp", address, str(cfg.listen_port), cfg.multicast_group or "")
        if needs_group_socket(address, cfg.multicast_group):
            keys["group"] = ("udp-group", address, str(cfg.listen_port), cfg.multicast_group or "")
    return keys


def _bind_error(name: str, leaf: str, what: str, exc: OSError) -> PrepareError:
    """A socket the channel needs cannot be had: ``cannot bind WHAT: cause``,
    or for a multicast join the JoinError's own words, at the group's leaf."""
    tag = "in-use" if exc.errno == errno.EADDRINUSE else "resource-denied"
    if isinstance(exc, JoinError):
        leaf, message = "multicast-group", str(exc)
    else:
        message = f"cannot bind {what}: {exc.strerror or exc}"
    return PrepareError([Fault(tag, f"channel {name}: {message}", name, leaf)])


def _state(ch: ChannelRuntime) -> tuple[ChannelState, PortState]:
    """One channel's state and its port's, read at once."""
    sessions = []
    for s in ch.session_rows():
        status = ch.arbiter.status(s.role)
        sessions.append(
            SessionState(
                id=s.id,
                remote_address=s.remote[0],
                remote_port=s.remote[1],
                role=s.role.value,
                status=status.value if status else None,
                connected_at=s.connected_at,
                rx_bytes=s.rx_bytes,
                tx_bytes=s.tx_bytes,
            )
        )
    counters = tuple((k, v) for k, v in ch.counters.by_leaf().items() if v is not None)
    port = ch.cfg.serial_port
    return (
        ChannelState(
            ch.name,
            ch.oper_status,
            ch.last_error,
            tuple(sessions),
            counters,
            ch.last_restart,
            ch.last_restart_reason,
        ),
        PortState(
            port,
            ch.port_status,
            ch.last_error,
            ch.port_rx,
            ch.port_tx,
            _effective(ch),
            ch.modem_leaves(),
        ),
    )


def _effective(ch: ChannelRuntime) -> tuple[tuple[str, int | str], ...]:
    """serial-port/state/effective of the channel's port."""
    state = ch.port_state
    leaves: list[tuple[str, int | str]] = [
        ("baud-rate", state.baud_rate),
        ("data-bits", state.data_bits),
        ("parity", state.parity),
        ("stop-bits", state.stop_bits),
        ("flow-control", state.flow_control),
    ]
    if ch.line_owner is not None:
        leaves.append(("set-by-session", ch.line_owner))
    return tuple(leaves)


_States = tuple[ChannelState, PortState]
_SESSIONS = attrgetter("sessions")
_NOT_READ: _States = cast(_States, None)
"""A place in ``StatesRead.states`` that the read fills in."""


@dataclass(slots=True)
class StatesRead:
    """One ``RelayRuntime.read_states``: the running channels and their
    states, in the same order (not to be changed, but for ``after``)."""

    channels: list[ChannelRuntime]
    states: list[_States]
    fresh: set[int] | None
    """The indices read afresh (the others are the last read's objects);
    None: all, the channels running are not those of the last read."""
    signatures: list[tuple[object, ...]]
    active: list[bool]
    """Whether each channel had sessions."""
    slices: int
    """How many slices the channels read afresh were read in."""
    after: StatesRead | None = field(default=None, repr=False)
    """The read that ``fresh`` is relative to (None when ``fresh`` is); let
    go by the next read, so that no chain of reads is kept alive."""


@dataclass
class _Plan:
    """What a commit does to each channel it touches."""

    stop: dict[str, str] = field(default_factory=dict)
    """Running channels to stop -> why (the session-event reason)."""
    start: dict[str, str] = field(default_factory=dict)
    """Channels to start -> last-restart-reason."""
    live: list[str] = field(default_factory=list)
    """Running channels changed in place (every change live)."""


class _Transaction:
    def __init__(
        self,
        runtime: RelayRuntime,
        new: RelayConfig,
        document: DocumentPatch,
        plan: _Plan,
        start: dict[str, Resources],
        acquired: list[Any],
        handed: dict[str, set[str]],
        settings: list[tuple[Link, SerialPortConfig]],
        whole: Callable[[], RelayConfig] | None = None,
    ) -> None:
        self.runtime = runtime
        self.new = new
        """The new configuration, or of it what the plan reads (``whole``)."""
        self.whole = whole
        """Makes the whole new configuration, at apply, when ``new`` is not it."""
        self.document = document
        self.plan = plan
        self.start = start
        self.acquired = acquired
        self.handed = handed
        self.settings = settings
        """Ports given new line settings in prepare, with those of before."""

    async def apply(self) -> None:
        rt = self.runtime
        # deletes first: they free ports for what follows.  All are cancelled
        # before any is awaited, so a thousand stop in parallel, not in turn.
        stopping = []
        counters: dict[str, Counters] = {}
        for name, why in self.plan.stop.items():
            channel = rt.channels.pop(name, None)
            if channel is not None:
                channel.handed_over = self.handed.get(name, set())
                channel.stop_reason = why
                channel.cancel()
                stopping.append(channel)
                counters[name] = channel.counters
        for channel in stopping:
            await channel.stop()
        rt.channels_stopped += len(stopping)
        rt.channels_started += len(self.start)
        rt._quiet_opens.clear()
        if len(self.start) > QUIET_START:
            # a line per port opened by a boot of 10 000 channels was a
            # tenth of the data plane's time, and a flood in the log
            log.info(
                "starting %d channels (each port's opened event at debug level)",
                len(self.start),
            )
            rt._quiet_opens.update(self.new.channels[name].serial_port for name in self.start)
        for name in self.plan.live:
            cfg = self.new.channels[name]
            rt.channels[name].reconfigure(cfg, self.new.serial_ports[cfg.serial_port])
        for started, (name, resources) in enumerate(self.start.items()):
            if started and started % START_SLICE == 0:
                await yield_to_relays()  # the last slice's first steps, and the relays
            cfg = self.new.channels[name]
            channel = ChannelRuntime(
                cfg,
                self.new.serial_ports[cfg.serial_port],
                resources,
                rt.emit,
                counters=counters.get(name),
                start_reason=self.plan.start[name],
            )
            rt.channels[name] = channel
            rt.tg.start_soon(channel.run, name=f"channel-{name}")
        rt.config = self.new if self.whole is None else self.whole()
        if rt.document is None:
            rt.document = Document()
        rt.document.apply(self.document)

    async def abort(self) -> None:
        await _restore(self.settings)
        for resource in self.acquired:
            await close_resource(resource)


async def _restore(settings: list[tuple[Link, SerialPortConfig]]) -> None:
    """Give ports the line settings they had before a prepare that failed or
    was aborted (the settings of before were taken: this does not fail)."""
    with anyio.CancelScope(shield=True):
        for link, before in reversed(settings):
            try:
                await anyio.to_thread.run_sync(link.apply_line_settings, before)
            except PortError as exc:
                log.error("cannot give %s its line settings back: %s", link.device, exc)


def _plan(
    running: dict[str, ChannelRuntime], old: RelayConfig, new: RelayConfig, touched: set[str]
) -> _Plan:
    """Stop, restart, start or change in place each touched channel, as
    nf.liveness classifies what changed."""
    plan = _Plan()
    for name in sorted(touched):
        channel = running.get(name)
        cfg = new.channels.get(name)
        enabled = cfg is not None and cfg.enabled
        if channel is not None:
            if cfg is None:
                plan.stop[name] = "channel deleted"
            elif not cfg.enabled:
                plan.stop[name] = "channel disabled"
            else:
                port = new.serial_ports[cfg.serial_port]
                reasons = restart_reasons(channel.cfg, channel.port_cfg, cfg, port)
                if not reasons:
                    plan.live.append(name)
                    continue
                plan.stop[name] = "configuration changed: " + ", ".join(dict.fromkeys(reasons))
        if enabled:
            if name in plan.stop:
                plan.start[name] = plan.stop[name]
            elif name in old.channels:
                plan.start[name] = "enabled"
            else:
                plan.start[name] = "created"
    return plan


def _named(old: RelayConfig, delta: Delta) -> RelayConfig:
    """Of ``delta.applied_to(old)``, for a delta that changes no serial
    port, what a prepare and its apply read: the channels the delta names
    (those it touches, at most) and their serial ports.  The whole new
    configuration is made at apply (``_Transaction.whole``), which the
    control plane does not wait for: a copy of 10 000 channels made here
    was a sixth of the data plane's time in a one-leaf commit, all of it
    while the control plane waited for the prepare's answer."""
    channels = {name: cfg for name, cfg in delta.channels.items() if cfg is not None}
    ports = {
        cfg.serial_port: old.serial_ports[cfg.serial_port]
        for cfg in channels.values()
        if cfg.serial_port in old.serial_ports
    }
    return RelayConfig(serial_ports=ports, channels=channels)


class RelayRuntime:
    """Implements nf.runtime.transaction.Runtime with real channels."""

    def __init__(self) -> None:
        self.channels: dict[str, ChannelRuntime] = {}
        self.config = RelayConfig({}, {})
        self.document: Document | None = None
        """The control plane's document of ``config`` (see Runtime.running)."""
        self._last_read: StatesRead | None = None
        """The last ``read_states``: what the next one compares with."""
        self._tg: TaskGroup | None = None
        self.channels_started = 0
        self.channels_stopped = 0
        """Channels applies started and stopped, restarts counting in both
        (the data plane settles its garbage collector after an apply that
        changed them: nf.plane.dataplane)."""
        self.events: list[tuple[str, dict[str, str]]] = []
        self._max_events = 1000
        self._quiet_opens: set[str] = set()
        """Serial ports whose coming port-event opened is logged at debug
        level: those of a bulk start (see ``_Transaction.apply``)."""
        self._sinks: list[EventSink] = []

    @property
    def tg(self) -> TaskGroup:
        assert self._tg is not None, "RelayRuntime.run is not running"
        return self._tg

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the channels; start with ``tg.start(runtime.run)``."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            await anyio.sleep_forever()

    async def shutdown(self) -> None:
        """Close every session and port (SIGTERM)."""
        with anyio.CancelScope(shield=True):
            channels = list(self.channels.values())
            for channel in channels:  # all at once: each may take CLOSE_TIMEOUT
                channel.cancel()
            for channel in channels:
                await channel.stop()
            self.channels.clear()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def add_event_sink(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def emit(self, kind: str, payload: dict[str, str]) -> None:
        """session-event and port-event: logged, kept, and passed to the sinks
        (the daemon's notifications).  A failing sink must not hurt a channel."""
        level = logging.INFO
        if self._quiet_opens and payload.get("event") == "opened":
            port = payload.get("serial-port", "")
            if port in self._quiet_opens:
                self._quiet_opens.discard(port)
                level = logging.DEBUG
        if log.isEnabledFor(level):
            log.log(level, "%s %s", kind, " ".join(f"{k}={v}" for k, v in payload.items()))
        self.events.append((kind, payload))
        del self.events[: -self._max_events]
        for sink in self._sinks:
            try:
                sink(kind, payload)
            except Exception:
                log.exception("event sink failed on %s", kind)

    # -- Runtime -------------------------------------------------------------------
    async def prepare(
        self, delta: Delta, document: DocumentPatch, boot: bool = False
    ) -> Transaction:
        why = (self.document or Document()).check(document)
        if why is not None:
            raise DocumentMismatch(why)
        old = self.config
        whole: Callable[[], RelayConfig] | None = None
        if delta.serial_ports:  # every channel on those ports is looked at
            new = delta.applied_to(old)
        else:
            new = _named(old, delta)
            whole = functools.partial(delta.applied_to, old)
        plan = _plan(self.channels, old, new, delta.touched(old, new))
        if boot:  # the boot configuration, or a restarted data plane given it back
            plan.start = {n: why if n in plan.stop else "started" for n, why in plan.start.items()}
        offered: dict[ResourceKey, tuple[str, str, Any, SerialPortConfig]] = {}
        for name in plan.stop:
            channel = self.channels[name]
            keys = _keys(channel.cfg, channel.port_cfg)
            for res_name, resource in channel.res.items().items():
                if res_name in keys:
                    offered[keys[res_name]] = (name, res_name, resource, channel.port_cfg)
        acquired: list[Any] = []
        handed: dict[str, set[str]] = {}
        start: dict[str, Resources] = {}
        settings: list[tuple[Link, SerialPortConfig]] = []
        try:
            # the serial ports to open, all in one worker thread: a thread
            # hop each cost a commit creating 2000 channels a third of its
            # prepare
            opening: list[tuple[str, SerialPortConfig]] = []
            for name in plan.start:
                port = new.serial_ports[new.channels[name].serial_port]
                if _keys(new.channels[name], port)["link"] not in offered:
                    opening.append((name, port))
            links = (
                await anyio.to_thread.run_sync(_open_links, opening, boot) if opening else _Links()
            )
            acquired.extend(links.values())
            if isinstance(links.failed, PrepareError):
                raise links.failed
            for name in plan.start:
                cfg = new.channels[name]
                port = new.serial_ports[cfg.serial_port]
                resources = Resources()
                for res_name, key in _keys(cfg, port).items():
                    if key in offered:
                        owner, owner_res, resource, before = offered.pop(key)
                        handed.setdefault(owner, set()).add(owner_res)
                        if res_name == "link":
                            await self._line_settings(name, resource, before, port, settings)
                    elif res_name == "link":
                        resource = links[name]
                    else:
                        resource = await self._acquire(cfg, port, res_name, boot)
                        acquired.append(resource)
                    setattr(resources, res_name, resource)
                start[name] = resources
            for name in plan.live:
                channel = self.channels[name]
                cfg = new.channels[name]
                link = channel.res.link
                if link is not None:  # a port that is down gets them when reopened
                    port = new.serial_ports[cfg.serial_port]
                    await self._line_settings(name, link, channel.port_cfg, port, settings)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _restore(settings)
                for resource in acquired:
                    await close_resource(resource)
            raise
        return _Transaction(self, new, document, plan, start, acquired, handed, settings, whole)

    async def _line_settings(
        self,
        name: str,
        link: Link,
        before: SerialPortConfig,
        port: SerialPortConfig,
        settings: list[tuple[Link, SerialPortConfig]],
    ) -> None:
        """Give an open port new line settings (recorded in ``settings``
        with those of before, for an abort), or fail the commit."""
        if not any(
            PORT_LEAVES[leaf].apply is Apply.LIVE for leaf in changed(PORT_LEAVES, before, port)
        ):
            return
        try:
            await anyio.to_thread.run_sync(link.apply_line_settings, port)
        except PortError as exc:
            raise PrepareError(
                [Fault("resource-denied", f"channel {name}: {exc}", name, "serial-port")]
            ) from exc
        settings.append((link, before))

    async def _acquire(
        self, cfg: ChannelConfig, port: SerialPortConfig, what: str, boot: bool = False
    ) -> Any:
        name = cfg.name
        address = cfg.listen_address or "0.0.0.0"
        if what in ("listener", "secondary"):
            number = cfg.listen_port if what == "listener" else cfg.secondary.port  # type: ignore[union-attr]
            leaf = "listen/port" if what == "listener" else "secondary/port"
            try:
                sock = bind_tcp(address, number or 0)
            except OSError as exc:
                raise _bind_error(name, leaf, f"TCP {address}:{number}", exc) from exc
            # the raw socket: anyio's SocketListener around it was only a
            # box to take it out of again, a tenth of a 10 000-channel start
            return sock
        port_number = cfg.listen_port or 0
        if what == "group":
            group = cfg.multicast_group or ""
            try:
                return bind_group(address, port_number, group)
            except OSError as exc:
                raise _bind_error(
                    name, "multicast-group", f"UDP {group}:{port_number} on {address}", exc
                ) from exc
        try:
            return bind_peer(address, port_number, cfg.multicast_group)
        except OSError as exc:
            raise _bind_error(name, "listen/port", f"UDP {address}:{port_number}", exc) from exc

    async def running(self) -> tuple[RelayConfig, bytes] | None:
        return None if self.document is None else (self.config, self.document.to_bytes())

    async def snapshot(self, channels: frozenset[str] | None = None) -> Snapshot:
        """Frozen state of the running ``channels`` (None: every one) and
        their ports (see ``read_states``)."""
        if channels is not None:
            states = self.read_picked(channels)
        else:
            states = (await self.read_states()).states
        ports: dict[str, PortState] = {}
        for _, port in states:
            ports[port.name] = port
        return Snapshot(tuple(channel for channel, _ in states), tuple(ports.values()))

    def read_picked(self, channels: frozenset[str]) -> list[_States]:
        """The states of these running channels (a filtered <get>), read
        afresh; what ``read_states`` reuses is kept for the next whole read."""
        return [_state(self.channels[n]) for n in sorted(channels) if n in self.channels]

    async def read_states(
        self, budget: float = SNAPSHOT_SLICE, chunk: int = SNAPSHOT_CHUNK
    ) -> StatesRead:
        """The state of each running channel and of its port, in order.

        A channel whose signature (``channel.SIGNATURE``, built in C for a
        chunk of channels at once) is that of the last read, and that had
        no session then and has none now, is not read: its frozen states
        are the last read's (the very objects, so that the data plane
        reuses their encoding too).  So a read of 500 mostly idle channels
        costs the active ones, not 500 Python calls.  The channels are
        taken ``chunk`` at a time, in slices of about ``budget`` seconds,
        yielding to the event loop between slices: what holds up the
        relays is one slice, not the read (500 channels read afresh take
        5-10 ms; their signatures alone 0.3 ms).  Each channel is read whole
        in one go (its sessions and counters agree); channels of different
        slices are read up to a few milliseconds apart.  The channels are
        those running when it starts: the data plane serves one request at
        a time, so no commit is applied between slices there; an
        in-process caller that applies one meanwhile sees the channels it
        stopped as they were when they stopped."""
        running = list(self.channels.values())
        n = len(running)
        last = self._last_read
        same = last is not None and last.channels == running  # the same objects (no __eq__)
        states = list(last.states) if same and last is not None else [_NOT_READ] * n
        signatures: list[tuple[object, ...]] = []
        active: list[bool] = []
        fresh: set[int] | None = set() if same else None
        slices = 0
        i = 0
        clock = time.perf_counter
        while i < n:
            if slices:
                await yield_to_relays()
            slices += 1
            deadline = clock() + budget
            while i < n:
                j = min(n, i + chunk)
                part = running[i:j]
                sigs = list(map(SIGNATURE, part))
                busy = list(map(bool, map(_SESSIONS, part)))
                if fresh is not None and last is not None:
                    # changed, or with sessions now or at the last read: all in C
                    stale = map(or_, map(ne, sigs, last.signatures[i:j]), busy)
                    picked = list(compress(range(i, j), map(or_, stale, last.active[i:j])))
                    fresh.update(picked)
                else:
                    picked = list(range(i, j))
                for index in picked:
                    states[index] = _state(running[index])
                signatures += sigs
                active += busy
                i = j
                if clock() >= deadline:
                    break
        after = last if same else None
        if after is not None:
            after.after = None  # a chain of reads is not kept alive
        read = StatesRead(running, states, fresh, signatures, active, slices, after)
        self._last_read = read
        return read

    async def send_break(self, port: str, duration_ms: int) -> str | None:
        """The serial-port action send-break, on the channel that holds the port."""
        for channel in self.channels.values():
            if channel.port_cfg.name == port:
                return channel.send_break(duration_ms / 1000)
        return f"serial port {port} is not open: no enabled channel uses it"

    async def clear_counters(self, channel: str | None) -> None:
        for name, running in self.channels.items():
            if channel is None or name == channel:
                running.counters = Counters(last_cleared=rfc3339.now())
                if channel is None:
                    running.port_rx = running.port_tx = 0
