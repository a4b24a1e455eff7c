"""The bookkeeping of the two ends of the plane boundary, without I/O.

``EventBacklog`` (data plane): events waiting for a control plane, bounded.
``DropsWatch`` (data plane): which channels' dropped-bytes rose since the
last look.  ``OpenSessions`` (control plane): the relay sessions and serial
ports the event stream says are open, so that a data plane that died can
be reported as the session and port events it could not send.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from nf.runtime.transaction import Snapshot

EventItem = tuple[str, dict[str, str]]
"""(kind, payload) as nf.runtime.transaction.EventSink receives them."""

RESTART_REASON = "data plane restarted"


class EventBacklog:
    """Events not yet sent to a control plane: at most ``limit``.  When full,
    the oldest is dropped and counted (a control plane that comes back sees
    the recent past; a relay never waits for one)."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._events: deque[EventItem] = deque()
        self.dropped = 0
        """Events dropped since the start."""
        self.unreported = 0
        """Events dropped since ``take_unreported`` was last called."""

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: EventItem) -> bool:
        """Queue ``event``; True when this put dropped the first event since
        the last report (the moment to log that events are being lost)."""
        self._events.append(event)
        if len(self._events) <= self.limit:
            return False
        self._events.popleft()
        self.dropped += 1
        self.unreported += 1
        return self.unreported == 1

    def take(self) -> EventItem:
        """The oldest event, removed (to be sent)."""
        return self._events.popleft()

    def put_back(self, event: EventItem) -> None:
        """``event`` (just taken) could not be sent: it is the oldest again,
        unless the backlog filled up meanwhile, when it is dropped."""
        self._events.appendleft(event)
        if len(self._events) > self.limit:
            self._events.popleft()
            self.dropped += 1
            self.unreported += 1

    def take_unreported(self) -> int:
        """How many were dropped since the last call (to be logged)."""
        count, self.unreported = self.unreported, 0
        return count


@dataclass(frozen=True)
class Rise:
    """A channel's dropped-bytes rose: now ``total``, ``increase`` more than
    at the last look."""

    channel: str
    total: int
    increase: int

    def payload(self) -> dict[str, str]:
        return {
            "channel": self.channel,
            "dropped-bytes": str(self.total),
            "increase": str(self.increase),
        }


class DropsWatch:
    """Looks at every channel's dropped-bytes counter (once a second: so at
    most one drops event per channel per second) and says which rose.  A
    counter's ``epoch`` is any object that changes when the counter starts
    again from zero (cleared, or the channel restarted): the Counters
    instance itself; a rise is then counted from zero."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[object, int]] = {}

    def look(self, counters: Mapping[str, tuple[object, int]]) -> list[Rise]:
        """``counters``: channel -> (epoch, dropped bytes), of every channel
        running; the channels whose counter rose."""
        rises = []
        for name, (epoch, total) in counters.items():
            last = self._last.get(name)
            before = last[1] if last is not None and last[0] is epoch else 0
            if total > before:
                rises.append(Rise(name, total, total - before))
        self._last = dict(counters)
        return rises


@dataclass(frozen=True)
class Lost:
    """What a data-plane restart ended: the events to publish for it."""

    events: tuple[EventItem, ...]
    sessions: int
    ports: int


class OpenSessions:
    """The relay sessions and serial ports that are open, as the data plane's
    events (or a snapshot of it) tell."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], dict[str, str]] = {}
        """(channel, session-id) -> the payload of its connected event."""
        self._ports: set[str] = set()

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    @property
    def ports(self) -> frozenset[str]:
        return frozenset(self._ports)

    def observe(self, kind: str, payload: Mapping[str, str]) -> None:
        if kind == "session-event":
            key = (payload.get("channel", ""), payload.get("session-id", ""))
            event = payload.get("event")
            if event == "connected":
                self._sessions[key] = dict(payload)
            elif event == "disconnected":
                self._sessions.pop(key, None)
            elif event == "role-change" and key in self._sessions:
                self._sessions[key] = dict(payload, event="connected")
        elif kind == "port-event":
            port = payload.get("serial-port", "")
            if payload.get("event") == "opened":
                self._ports.add(port)
            else:  # closed, or error: failed to open, or lost
                self._ports.discard(port)

    def on_channels(self, channels: Collection[str]) -> frozenset[tuple[str, str]]:
        """The sessions open on ``channels`` now, as (channel, session-id)."""
        return frozenset(key for key in self._sessions if key[0] in channels)

    def forget(self, sessions: Iterable[tuple[str, str]]) -> None:
        """Those sessions ended without an event: their channel stopped (a
        commit stopped or restarted it; stopping is not a disconnect)."""
        for key in sessions:
            self._sessions.pop(key, None)

    def seed(self, snapshot: Snapshot) -> None:
        """Start from what a data plane reports (a control plane connecting to
        one that already runs)."""
        self._sessions = {
            (channel.name, str(session.id)): {
                "channel": channel.name,
                "session-id": str(session.id),
                "event": "connected",
                "remote-address": session.remote_address,
                "remote-port": str(session.remote_port),
                "role": session.role,
            }
            for channel in snapshot.channels
            for session in channel.sessions
        }
        self._ports = {port.name for port in snapshot.ports if port.oper_status == "up"}

    def restart(self, reason: str = RESTART_REASON) -> Lost:
        """The data plane died: every session and port it had is gone.  The
        events it would have sent, in order (sessions, then ports); nothing
        is open afterwards."""
        events: list[EventItem] = []
        for connected in self._sessions.values():
            events.append(("session-event", _disconnected(connected, reason)))
        events.extend(
            ("port-event", {"serial-port": port, "event": "closed"}) for port in sorted(self._ports)
        )
        lost = Lost(tuple(events), len(self._sessions), len(self._ports))
        self._sessions.clear()
        self._ports.clear()
        return lost


def _disconnected(connected: Mapping[str, str], reason: str) -> dict[str, str]:
    """The disconnected event of a session, in the order a channel emits it."""
    payload = {key: connected[key] for key in ("channel", "session-id") if key in connected}
    payload["event"] = "disconnected"
    for key in ("remote-address", "remote-port", "role"):
        if key in connected:
            payload[key] = connected[key]
    payload["reason"] = reason
    return payload
