"""The boundary between the control plane and the data plane.

The control plane (NETCONF, datastores, validation) decides what runs; the
data plane (the relay runtime, ``nf.runtime.relay``) runs it.  Everything
they say to each other is here, as frozen data of the standard library and
``nf.model``, so the same interface serves an in-process runtime (tests)
and a data plane in a process of its own (``nf.plane``), where these
values cross a socket.

A commit reaches the data plane in two phases, as FRRouting's northbound
does (VALIDATE, PREPARE, ABORT, APPLY):

1. ``prepare(delta, document)`` acquires every resource the changed
   entries need (bind listeners, open serial ports, join groups, new line
   settings of an open port) and may fail with ``PrepareError``; it has
   then released (or given back) whatever it acquired.
2. On success the control plane calls ``Transaction.apply()``, which
   cannot fail: it stops removed channels, changes in place those whose
   changes are all live (``nf.liveness``), and starts new or restarted
   ones with the prepared resources.  If it decides not to go ahead, it calls
   ``Transaction.abort()``, which releases exactly what was prepared.

``document`` is the running configuration as the control plane
serialises it (XML), as a patch of the document the data plane keeps
(``nf.runtime.document``: only the changed entries cross); the data plane
keeps it, opaque, with what it runs, and hands it back (``running()``) to
a control plane that restarts, which re-reads the configuration from the
data plane rather than applying its own: the data plane is the authority
on what runs.  A patch whose base is not the kept document is refused
with ``DocumentMismatch`` (the control plane then sends it whole).

The data plane renders nothing: ``snapshot()`` returns frozen operational
data and the control plane turns it into YANG (``nf.northbound.operational``).
Faults name a channel and the leaf at fault, not a YANG path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from nf.model import ChannelConfig, RelayConfig, SerialPortConfig
from nf.runtime.document import Document, DocumentPatch

EventSink = Callable[[str, dict[str, str]], None]
"""Receives the data plane's events: ("session-event" | "port-event",
payload whose keys are the leaves of the YANG notification of that name).
A data plane in a process of its own (``nf.plane.remote``) also sends
("drops", {"channel", "dropped-bytes", "increase"}) when a channel's
dropped-bytes rose, at most once a second per channel; it has no YANG
notification, so a sink that publishes events must pass over it."""


@dataclass(frozen=True)
class Fault:
    """Why the data plane refused a change: an rpc-error to be."""

    tag: str
    """RFC 6241 error-tag: in-use (an address taken) or resource-denied."""
    message: str
    channel: str
    """The channel whose resource could not be had."""
    leaf: str
    """Descendant of the channel at fault, steps joined by "/": e.g.
    "serial-port", "listen/port", "secondary/port", "multicast-group"."""


class DocumentMismatch(Exception):
    """A document patch's base is not the document kept: nothing was
    changed, and the document must be sent whole."""

    FAULT_TAG = "document-mismatch"
    """The Fault tag that carries it across the plane boundary."""


class PrepareError(Exception):
    """The data plane could not acquire a resource; nothing was changed."""

    def __init__(self, faults: list[Fault]) -> None:
        super().__init__("; ".join(f"{f.message} [{f.tag}]" for f in faults))
        self.faults = faults


@dataclass(frozen=True)
class Delta:
    """The entries a commit changes: name -> new configuration, or None
    for an entry deleted.  Entries not named are unchanged."""

    serial_ports: Mapping[str, SerialPortConfig | None] = field(default_factory=dict)
    channels: Mapping[str, ChannelConfig | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.serial_ports or self.channels)

    def applied_to(self, config: RelayConfig) -> RelayConfig:
        """``config`` with this delta applied.  A mapping the delta does not
        touch is shared, not copied (configurations are never changed in
        place): a copy of 10 000 entries costs a commit 0.3 ms."""
        ports = dict(config.serial_ports) if self.serial_ports else config.serial_ports
        channels = dict(config.channels) if self.channels else config.channels
        for name, port in self.serial_ports.items():
            if port is None:
                ports.pop(name, None)
            else:
                ports[name] = port
        for name, channel in self.channels.items():
            if channel is None:
                channels.pop(name, None)
            else:
                channels[name] = channel
        return RelayConfig(serial_ports=ports, channels=channels)

    def touched(self, old: RelayConfig, new: RelayConfig | None = None) -> set[str]:
        """The channels that applying this delta to ``old`` stops, restarts,
        starts or changes in place: those it names, and those on a serial
        port it names, whose relay configuration differs.  The models hold
        only what the relay uses, so a change of nothing else (a
        ``description``) compares equal and leaves the channel, its
        sessions and its port running untouched.  Which of them restart
        (and take their sessions with them) is ``nf.liveness.stopped``.

        ``new``: ``self.applied_to(old)``, if the caller has it (each
        prepare does): at 10 000 channels a copy of the mapping costs more
        than the rest of a one-leaf prepare."""
        if new is None:
            new = self.applied_to(old)
        names: set[str] = set(self.channels)
        if self.serial_ports:  # restart the channels on a changed port
            # one pass over the channels, not one per port: creating 10 000
            # ports with their channels was quadratic (27 s)
            for config in (old, new):
                names.update(
                    c.name for c in config.channels.values() if c.serial_port in self.serial_ports
                )
        return {name for name in names if _relay_changed(name, old, new)}

    @classmethod
    def between(cls, old: RelayConfig, new: RelayConfig) -> Delta:
        """Every entry that differs (a whole configuration against another)."""
        return cls(
            serial_ports={
                name: new.serial_ports.get(name)
                for name in old.serial_ports.keys() | new.serial_ports.keys()
                if old.serial_ports.get(name) != new.serial_ports.get(name)
            },
            channels={
                name: new.channels.get(name)
                for name in old.channels.keys() | new.channels.keys()
                if old.channels.get(name) != new.channels.get(name)
            },
        )


def _relay_changed(name: str, old: RelayConfig, new: RelayConfig) -> bool:
    """Does channel ``name`` (or its serial port) differ between the two?"""
    before, after = old.channels.get(name), new.channels.get(name)
    if before is None or after is None or before != after:
        return True
    return old.serial_ports.get(before.serial_port) != new.serial_ports.get(after.serial_port)


@dataclass(frozen=True)
class SessionState:
    """One relay session (channel/state/session)."""

    id: int
    remote_address: str
    remote_port: int
    role: str
    status: str | None
    connected_at: str
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class ChannelState:
    """A running channel (channel/state); a configured channel that is not
    running has none and is "down"."""

    name: str
    oper_status: str
    last_error: str | None
    sessions: tuple[SessionState, ...]
    counters: tuple[tuple[str, int | str], ...]
    """channel/state/counters leaves as (name, value), those with a value."""
    last_restart: str | None = None
    """When the channel was last (re)started (YANG date-and-time)."""
    last_restart_reason: str | None = None
    """Why: "started" (boot), "created", "enabled", or the restart leaves
    a commit changed ("configuration changed: listen/port")."""


@dataclass(frozen=True)
class PortState:
    """A serial port held by a running channel (serial-port/state)."""

    name: str
    oper_status: str
    last_error: str | None
    rx_bytes: int
    tx_bytes: int
    effective: tuple[tuple[str, int | str], ...] = ()
    """serial-port/state/effective leaves as (name, value): the line
    settings the open port runs with, and the RFC 2217 session that set
    them (set-by-session) if one did."""
    modem_lines: tuple[tuple[str, str], ...] = ()
    """serial-port/state/modem-lines leaves: on, off or unknown."""


@dataclass(frozen=True)
class Snapshot:
    """The data plane's operational state at one moment."""

    channels: tuple[ChannelState, ...] = ()
    ports: tuple[PortState, ...] = ()


class Transaction(Protocol):
    async def apply(self) -> None:
        """Make the prepared changes live.  Must not fail."""

    async def abort(self) -> None:
        """Release every prepared resource; the runtime is as before."""


class Runtime(Protocol):
    async def prepare(
        self, delta: Delta, document: DocumentPatch, boot: bool = False
    ) -> Transaction:
        """Acquire what ``delta`` needs, or raise PrepareError having released it
        (DocumentMismatch, before anything, if ``document`` does not apply).

        ``boot``: the boot configuration (or the configuration a restarted
        data plane is given back); a serial device missing then is retried
        by its channel instead of failing (SPEC §3), while a commit naming
        one fails atomically (SPEC §4)."""

    async def running(self) -> tuple[RelayConfig, bytes] | None:
        """What runs and the document it came with; None before the first
        configuration was applied."""

    async def snapshot(self, channels: frozenset[str] | None = None) -> Snapshot:
        """Operational state of the running ``channels`` (None: of all) and
        of their serial ports.  Each channel is read whole at one moment;
        with many channels, channels are read up to a few milliseconds
        apart (RelayRuntime.snapshot_slices); the data-plane process
        applies no commit in between."""

    async def clear_counters(self, channel: str | None) -> None:
        """Reset the counters of one channel, or of everything."""

    async def send_break(self, port: str, duration_ms: int) -> str | None:
        """Begin a break of ``duration_ms`` on serial port ``port`` (it ends
        by itself); None, or why it could not (the port is not open)."""

    def add_event_sink(self, sink: EventSink) -> None:
        """Also send every event to ``sink`` (the daemon publishes them as
        notifications); sinks are called on the event loop and must not block."""


class _Done:
    async def apply(self) -> None:
        return None

    async def abort(self) -> None:
        return None


class NullRuntime:
    """Accepts every change, runs nothing and reports no state: for
    daemons under test that must not open sockets or serial ports."""

    def __init__(self) -> None:
        self.config = RelayConfig({}, {})
        self.document: Document | None = None
        self.cleared: list[str | None] = []
        self.sinks: list[EventSink] = []

    async def prepare(
        self, delta: Delta, document: DocumentPatch, boot: bool = False
    ) -> Transaction:
        del boot
        runtime = self
        kept = self.document or Document()
        why = kept.check(document)
        if why is not None:
            raise DocumentMismatch(why)

        class _Apply(_Done):
            async def apply(self) -> None:
                runtime.config = delta.applied_to(runtime.config)
                kept.apply(document)
                runtime.document = kept

        return _Apply()

    async def running(self) -> tuple[RelayConfig, bytes] | None:
        return None if self.document is None else (self.config, self.document.to_bytes())

    async def snapshot(self, channels: frozenset[str] | None = None) -> Snapshot:
        del channels
        return Snapshot()

    async def clear_counters(self, channel: str | None) -> None:
        self.cleared.append(channel)

    async def send_break(self, port: str, duration_ms: int) -> str | None:
        return f"serial port {port} is not open (nothing runs)"

    def add_event_sink(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def emit(self, kind: str, payload: dict[str, str]) -> None:
        """Produce an event as a channel would (tests)."""
        for sink in self.sinks:
            sink(kind, payload)
