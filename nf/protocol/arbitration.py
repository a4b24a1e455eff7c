"""Arbitration of one serial port between a primary and a secondary session.

SPEC §3 "Secondary listen port" (the EDW-100 "Dual TCP" feature) lets two
TCP sessions share one serial port under a response mode:

``raw``
    Both sessions write to serial; serial data goes to every connected
    session.  The applications own concurrency.
``failover``
    The primary has exclusive access while connected; the secondary is a
    backup whose data is ignored.  See ``FAILOVER_TRANSITIONS``.
``slotted``
    Access is granted in slots of ``timeout`` T seconds; the other
    session's data is queued until the slot ends.  See ``SlottedArbiter``.

The machines are sans-I/O (see ``nf.protocol``): they are fed events with
the time passed in and return actions.  One rule decides every route, in
all three modes, so the modes differ only in how statuses evolve:

* serial data goes to exactly the connected sessions whose status is
  ``active``, or is dropped (``dropped-bytes``) when there is none;
* data from an ``active`` session goes to serial; from a ``backup`` session
  it is ignored (``ignored-bytes``); from a ``waiting`` session it is
  queued (slotted) or, for a returning failover primary, first makes it
  active.

Statuses are the YANG ``session/status`` values.  A ``StatusChange`` is
returned whenever the status of a session that stays connected changes;
the status a session gets when it connects is read with ``status(role)``
(the runtime reports it in the ``connected`` session-event), and a session
that disconnects has none.  Within one call the actions are listed in the
order they happened, and a status change comes before the data it lets
through, so a runtime that applies them in order never writes data of a
session it still shows without access, and ends at the current status.

Calls that break the session life cycle (connect twice, data or disconnect
from a session that is not connected) raise ``ArbitrationError``: the
runtime owns the sockets and such a call is a bug there, which must not be
papered over by silently guessing.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

__all__ = [
    "DEFAULT_SLOT_TIMEOUT",
    "FAILOVER_STATUS",
    "FAILOVER_TRANSITIONS",
    "QUEUE_LIMIT",
    "Action",
    "Arbiter",
    "ArbitrationError",
    "Counter",
    "Drop",
    "DropReason",
    "FailoverArbiter",
    "FailoverState",
    "RawArbiter",
    "ResponseMode",
    "Role",
    "SessionEvent",
    "SlottedArbiter",
    "Status",
    "StatusChange",
    "ToNet",
    "ToSerial",
    "create_arbiter",
]

DEFAULT_SLOT_TIMEOUT: Final = 0.6
"""Slot timeout T in seconds: the YANG default of ``secondary/timeout``."""

QUEUE_LIMIT: Final = 64 * 1024
"""Bytes the waiting session may queue during a slot (SPEC: 64 KiB)."""


class Role(enum.StrEnum):
    """Which session: the YANG ``session/role`` values."""

    PRIMARY = "primary"
    SECONDARY = "secondary"

    @property
    def other(self) -> Role:
        """The other session of the pair."""
        return _OTHER[self]


class Status(enum.StrEnum):
    """Access of a session to the serial port: the YANG ``session/status``."""

    ACTIVE = "active"
    BACKUP = "backup"
    WAITING = "waiting"


class ResponseMode(enum.StrEnum):
    """The YANG ``secondary/response-mode`` values."""

    SLOTTED = "slotted"
    RAW = "raw"
    FAILOVER = "failover"


class Counter(enum.StrEnum):
    """Which channel counter a ``Drop`` adds to: ``<value>-bytes``."""

    IGNORED = "ignored"
    DROPPED = "dropped"


class DropReason(enum.StrEnum):
    """Why bytes were not delivered; for logs and for the counter choice.

    Bytes a session sent that the rules refuse to deliver are *ignored*;
    bytes lost because nobody is there to take them are *dropped*.
    """

    NO_SESSION = "no-session"  # serial data with no session to receive it
    BACKUP = "backup"  # failover: data from the secondary in backup
    QUEUE_OVERFLOW = "queue-overflow"  # slotted: beyond the queue limit
    QUEUE_DISCARDED = "queue-discarded"  # slotted: queue of a session that left


_OTHER: Final[Mapping[Role, Role]] = {
    Role.PRIMARY: Role.SECONDARY,
    Role.SECONDARY: Role.PRIMARY,
}
_ROLES: Final = (Role.PRIMARY, Role.SECONDARY)


class ArbitrationError(RuntimeError):
    """An event that the session life cycle does not allow."""


# --------------------------------------------------------------------------
# Actions


@dataclass(frozen=True, slots=True)
class ToSerial:
    """Write ``data`` to the serial port; ``source`` is the session it came
    from (for per-session accounting and logs; the port sees only bytes)."""

    data: bytes
    source: Role


@dataclass(frozen=True, slots=True)
class ToNet:
    """Send ``data`` (serial bytes) to the session ``role``."""

    role: Role
    data: bytes


@dataclass(frozen=True, slots=True)
class Drop:
    """``nbytes`` bytes were not delivered; add them to the ``counter``
    (``ignored-bytes`` or ``dropped-bytes``).  ``role`` is the session that
    sent them, or ``None`` for serial data."""

    role: Role | None
    nbytes: int
    counter: Counter
    reason: DropReason


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The connected session ``role`` now has ``status`` (for the
    ``session-event`` role-change notification and the session state)."""

    role: Role
    status: Status


Action = ToSerial | ToNet | Drop | StatusChange


def _status_changes(
    before: tuple[Status | None, Status | None],
    after: tuple[Status | None, Status | None],
) -> list[Action]:
    """Changes of sessions connected both before and after a transition."""
    return [
        StatusChange(role, new)
        for role, old, new in zip(_ROLES, before, after, strict=True)
        if old is not None and new is not None and old is not new
    ]


# --------------------------------------------------------------------------
# Common interface


class Arbiter(ABC):
    """One serial port shared by the primary and the secondary session.

    Every method takes ``now`` (monotonic seconds) and returns the actions
    to perform, in order.  ``tick`` must be called at or after
    ``deadline()`` when that is not ``None``; calling it early or late is
    harmless (see ``nf.protocol``).
    """

    __slots__ = ()

    mode: ClassVar[ResponseMode]

    @abstractmethod
    def status(self, role: Role) -> Status | None:
        """The status of ``role``, or ``None`` when it is not connected."""

    def is_connected(self, role: Role) -> bool:
        return self.status(role) is not None

    @abstractmethod
    def connect(self, role: Role, now: float) -> list[Action]:
        """A session of ``role`` was established."""

    @abstractmethod
    def disconnect(self, role: Role, now: float) -> list[Action]:
        """The session of ``role`` is gone (closed, reset, taken over)."""

    @abstractmethod
    def from_net(self, role: Role, data: bytes, now: float) -> list[Action]:
        """``data`` was received on the session of ``role``."""

    @abstractmethod
    def from_serial(self, data: bytes, now: float) -> list[Action]:
        """``data`` was read from the serial port."""

    def serial_fanout(self) -> tuple[Role, ...] | None:
        """The roles serial data goes to unchanged, when that is all
        ``from_serial`` would do: it would return exactly ``ToNet(role,
        data)`` for each, in this order, change no state and set no timer.
        ``None`` when ``from_serial`` must be asked.

        Why: relaying a bulk stream is a 4 KiB read at a time, and building
        and interpreting action objects per read was measured to cost a
        tenth of the serial -> network rate.  The answer still comes from
        the arbiter, so the rules stay in one place.
        """
        return None

    def tick(self, now: float) -> list[Action]:
        """Time passed; fire the timer if it is due."""
        return []

    def deadline(self) -> float | None:
        """When ``tick`` must be called next, or ``None`` for never."""
        return None

    def queued(self, role: Role) -> int:
        """Bytes from ``role`` held back, not yet written to serial."""
        return 0

    def _serial_drop(self, data: bytes) -> list[Action]:
        return [Drop(None, len(data), Counter.DROPPED, DropReason.NO_SESSION)]


def _not_connected(role: Role) -> ArbitrationError:
    return ArbitrationError(f"{role} session is not connected")


# --------------------------------------------------------------------------
# Raw


class RawArbiter(Arbiter):
    """Raw: no arbitration at all.  Every connected session is ``active``.

    Also the arbiter of a channel without a secondary port: with only the
    primary ever connected it forwards both ways and counts serial data
    that arrives with no session as dropped.
    """

    __slots__ = ("_connected",)

    mode: ClassVar[ResponseMode] = ResponseMode.RAW

    def __init__(self) -> None:
        # Kept in role order so that fan-out order is stable.
        self._connected: tuple[Role, ...] = ()

    def status(self, role: Role) -> Status | None:
        return Status.ACTIVE if role in self._connected else None

    def connect(self, role: Role, now: float) -> list[Action]:
        if role in self._connected:
            raise ArbitrationError(f"{role} session is already connected")
        self._connected = tuple(r for r in _ROLES if r is role or r in self._connected)
        return []

    def disconnect(self, role: Role, now: float) -> list[Action]:
        if role not in self._connected:
            raise _not_connected(role)
        self._connected = tuple(r for r in self._connected if r is not role)
        return []

    def from_net(self, role: Role, data: bytes, now: float) -> list[Action]:
        if role not in self._connected:
            raise _not_connected(role)
        return [ToSerial(data, role)] if data else []

    def from_serial(self, data: bytes, now: float) -> list[Action]:
        if not data:
            return []
        if not self._connected:
            return self._serial_drop(data)
        return [ToNet(role, data) for role in self._connected]

    def serial_fanout(self) -> tuple[Role, ...] | None:
        return self._connected or None


# --------------------------------------------------------------------------
# Failover: an explicit transition table


class FailoverState(enum.Enum):
    """Joint state of the two sessions under failover."""

    IDLE = "no session"
    PRIMARY_ONLY = "primary active, no secondary"
    SECONDARY_ONLY = "secondary active, no primary"
    PRIMARY_HOLDS = "primary active, secondary in backup"
    SECONDARY_HOLDS = "secondary active, returned primary waiting for its first byte"


class SessionEvent(enum.Enum):
    """What happened to a session: the columns of ``FAILOVER_TRANSITIONS``."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    DATA = "data"  # at least one byte received from the session


_F = FailoverState
_P, _S = Role.PRIMARY, Role.SECONDARY
_CONNECT, _DISCONNECT, _DATA = SessionEvent.CONNECT, SessionEvent.DISCONNECT, SessionEvent.DATA

_Row = Mapping[tuple[SessionEvent, Role], FailoverState]

FAILOVER_TRANSITIONS: Final[Mapping[FailoverState, _Row]] = {
    _F.IDLE: {
        (_CONNECT, _P): _F.PRIMARY_ONLY,
        (_CONNECT, _S): _F.SECONDARY_ONLY,
    },
    _F.PRIMARY_ONLY: {
        (_CONNECT, _S): _F.PRIMARY_HOLDS,
        (_DISCONNECT, _P): _F.IDLE,
        (_DATA, _P): _F.PRIMARY_ONLY,
    },
    _F.SECONDARY_ONLY: {
        # Whether it is back after a drop or connects for the first time,
        # a primary joining an active secondary must earn the port by
        # sending: the secondary may be mid-exchange with the device.
        (_CONNECT, _P): _F.SECONDARY_HOLDS,
        (_DISCONNECT, _S): _F.IDLE,
        (_DATA, _S): _F.SECONDARY_ONLY,
    },
    _F.PRIMARY_HOLDS: {
        (_DISCONNECT, _P): _F.SECONDARY_ONLY,  # the backup takes over
        (_DISCONNECT, _S): _F.PRIMARY_ONLY,
        (_DATA, _P): _F.PRIMARY_HOLDS,
        (_DATA, _S): _F.PRIMARY_HOLDS,  # ignored: backup
    },
    _F.SECONDARY_HOLDS: {
        (_DATA, _P): _F.PRIMARY_HOLDS,  # first byte: primary takes it back
        (_DATA, _S): _F.SECONDARY_HOLDS,
        (_DISCONNECT, _P): _F.SECONDARY_ONLY,
        (_DISCONNECT, _S): _F.PRIMARY_ONLY,  # the waiting primary is alone
    },
}
"""Failover: state -> (event, role) -> next state.  A pair that is missing
is not allowed by the session life cycle and raises ``ArbitrationError``."""

FAILOVER_STATUS: Final[Mapping[FailoverState, tuple[Status | None, Status | None]]] = {
    _F.IDLE: (None, None),
    _F.PRIMARY_ONLY: (Status.ACTIVE, None),
    _F.SECONDARY_ONLY: (None, Status.ACTIVE),
    _F.PRIMARY_HOLDS: (Status.ACTIVE, Status.BACKUP),
    # The returned primary is "waiting": not a backup (its data is not
    # ignored, its first byte takes the port back), but not active either
    # (serial data keeps going to the secondary until then).
    _F.SECONDARY_HOLDS: (Status.WAITING, Status.ACTIVE),
}
"""Failover: state -> (primary status, secondary status)."""

_FAILOVER_SERIAL_TO: Final[Mapping[FailoverState, tuple[Role, ...]]] = {
    state: tuple(r for r, s in zip(_ROLES, pair, strict=True) if s is Status.ACTIVE)
    for state, pair in FAILOVER_STATUS.items()
}
_INDEX: Final[Mapping[Role, int]] = {Role.PRIMARY: 0, Role.SECONDARY: 1}


class FailoverArbiter(Arbiter):
    """Failover, driven entirely by ``FAILOVER_TRANSITIONS`` and
    ``FAILOVER_STATUS``; routes follow from the statuses (module doc)."""

    __slots__ = ("_state",)

    mode: ClassVar[ResponseMode] = ResponseMode.FAILOVER

    def __init__(self) -> None:
        self._state = FailoverState.IDLE

    @property
    def state(self) -> FailoverState:
        return self._state

    def status(self, role: Role) -> Status | None:
        return FAILOVER_STATUS[self._state][_INDEX[role]]

    def _fire(self, event: SessionEvent, role: Role) -> list[Action]:
        old = self._state
        new = FAILOVER_TRANSITIONS[old].get((event, role))
        if new is None:
            raise ArbitrationError(f"failover: {event.value} of {role} in state {old.value!r}")
        if new is old:
            return []
        self._state = new
        return _status_changes(FAILOVER_STATUS[old], FAILOVER_STATUS[new])

    def connect(self, role: Role, now: float) -> list[Action]:
        return self._fire(_CONNECT, role)

    def disconnect(self, role: Role, now: float) -> list[Action]:
        return self._fire(_DISCONNECT, role)

    def from_net(self, role: Role, data: bytes, now: float) -> list[Action]:
        if not data:
            # Zero bytes are not "data received": no takeover.
            if self.status(role) is None:
                raise _not_connected(role)
            return []
        actions = self._fire(_DATA, role)
        if FAILOVER_STATUS[self._state][_INDEX[role]] is Status.ACTIVE:
            actions.append(ToSerial(data, role))
        else:
            actions.append(Drop(role, len(data), Counter.IGNORED, DropReason.BACKUP))
        return actions

    def from_serial(self, data: bytes, now: float) -> list[Action]:
        if not data:
            return []
        targets = _FAILOVER_SERIAL_TO[self._state]
        if not targets:
            return self._serial_drop(data)
        return [ToNet(role, data) for role in targets]


# --------------------------------------------------------------------------
# Slotted


class SlottedArbiter(Arbiter):
    """Slotted: request/response arbitration between two masters.

    State: the slot owner (``None`` when no slot is open), the slot
    deadline, and the queue of the other session.

    ======================  ==============================================
    event                   effect
    ======================  ==============================================
    net data, no slot       opens the sender's slot: data -> serial, T starts
    net data, owner         data -> serial, T restarts
    net data, other         queued; beyond ``queue_limit`` ignored-bytes
    serial data, slot       -> owner only, T restarts
    serial data, no slot    -> every connected session (dropped if none)
    T passes (now >= dl)    slot ends; a queue is written at once and opens
                            its session's slot (T starts at that write)
    owner disconnects       slot ends, as above, immediately
    other disconnects       its queue is discarded (dropped-bytes)
    ======================  ==============================================

    Statuses: with no slot every connected session is ``active``; during a
    slot the owner is ``active`` and the other ``waiting``.  Only the
    non-owner ever queues, so there is at most one queue, and it is empty
    whenever no slot is open.

    Decisions where SPEC §3 is silent:

    * The slot ends when ``now >= last byte + T`` (exactly at T).
    * Queued data of the waiting session does not restart T: only owner and
      serial bytes do.
    * The queue keeps the first ``queue_limit`` bytes and ignores the rest
      byte-exactly, so what is kept does not depend on how TCP split the
      stream into reads.
    * Zero-length data is no traffic: it opens no slot and restarts no T.
    """

    __slots__ = ("_connected", "_deadline", "_owner", "_queue", "_queue_limit", "_timeout")

    mode: ClassVar[ResponseMode] = ResponseMode.SLOTTED

    def __init__(
        self, timeout: float = DEFAULT_SLOT_TIMEOUT, *, queue_limit: int = QUEUE_LIMIT
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"slot timeout must be positive, not {timeout!r}")
        if queue_limit < 0:
            raise ValueError(f"queue limit must not be negative, not {queue_limit!r}")
        self._timeout = float(timeout)
        self._queue_limit = queue_limit
        self._connected: tuple[Role, ...] = ()
        self._owner: Role | None = None
        self._deadline = 0.0
        self._queue = bytearray()

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def queue_limit(self) -> int:
        return self._queue_limit

    def set_timeout(self, timeout: float) -> None:
        """A new T (a commit changed ``secondary/timeout`` on a live
        channel): an open slot keeps its owner and queue, and ends T after
        its last byte under the new T (at once, at the next tick, if that is
        past).  Nothing is written or dropped here."""
        if not timeout > 0:
            raise ValueError(f"slot timeout must be positive, not {timeout!r}")
        if self._owner is not None:
            self._deadline += timeout - self._timeout
        self._timeout = float(timeout)

    @property
    def owner(self) -> Role | None:
        """The session that holds the open slot, or ``None``."""
        return self._owner

    def status(self, role: Role) -> Status | None:
        if role not in self._connected:
            return None
        owner = self._owner
        return Status.ACTIVE if owner is None or owner is role else Status.WAITING

    def deadline(self) -> float | None:
        return self._deadline if self._owner is not None else None

    def queued(self, role: Role) -> int:
        owner = self._owner
        return len(self._queue) if owner is not None and role is _OTHER[owner] else 0

    # -- events ------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        if self._owner is not None and now >= self._deadline:
            return self._end_slot(now)
        return []

    def connect(self, role: Role, now: float) -> list[Action]:
        if role in self._connected:
            raise ArbitrationError(f"{role} session is already connected")
        actions = self.tick(now)
        self._connected = tuple(r for r in _ROLES if r is role or r in self._connected)
        return actions

    def disconnect(self, role: Role, now: float) -> list[Action]:
        if role not in self._connected:
            raise _not_connected(role)
        actions = self.tick(now)
        self._connected = tuple(r for r in self._connected if r is not role)
        owner = self._owner
        if owner is role:
            actions += self._end_slot(now)
        elif owner is not None and self._queue:
            # The waiting session left: nobody will ever want its request.
            actions.append(
                Drop(role, len(self._queue), Counter.DROPPED, DropReason.QUEUE_DISCARDED)
            )
            self._queue.clear()
        return actions

    def from_net(self, role: Role, data: bytes, now: float) -> list[Action]:
        if role not in self._connected:
            raise _not_connected(role)
        actions = self.tick(now)
        owner = self._owner
        if not data:
            return actions
        if owner is role:  # the hot path: the owner talks to its device
            self._deadline = now + self._timeout
            actions.append(ToSerial(data, role))
        elif owner is None:
            self._owner = role
            self._deadline = now + self._timeout
            if _OTHER[role] in self._connected:
                actions.append(StatusChange(_OTHER[role], Status.WAITING))
            actions.append(ToSerial(data, role))
        else:
            queue = self._queue
            room = self._queue_limit - len(queue)
            if len(data) <= room:
                queue += data
            else:
                if room > 0:
                    queue += memoryview(data)[:room]
                actions.append(
                    Drop(role, len(data) - room, Counter.IGNORED, DropReason.QUEUE_OVERFLOW)
                )
        return actions

    def from_serial(self, data: bytes, now: float) -> list[Action]:
        actions = self.tick(now)
        owner = self._owner
        if not data:
            return actions
        if owner is not None:
            self._deadline = now + self._timeout
            actions.append(ToNet(owner, data))
        elif self._connected:
            actions += [ToNet(role, data) for role in self._connected]
        else:
            actions += self._serial_drop(data)
        return actions

    # -- transitions -------------------------------------------------------

    def _end_slot(self, now: float) -> list[Action]:
        """End the owner's slot (timeout, or the owner has just been removed
        from ``_connected``).  A queue opens the other session's slot at
        once: it was sent first, and the device is now free."""
        old = self._owner
        assert old is not None
        other = _OTHER[old]
        old_stays = old in self._connected
        if self._queue:
            data = bytes(self._queue)
            self._queue.clear()
            self._owner = other
            self._deadline = now + self._timeout
            actions: list[Action] = [StatusChange(other, Status.ACTIVE)]
            if old_stays:
                actions.append(StatusChange(old, Status.WAITING))
            actions.append(ToSerial(data, other))
            return actions
        self._owner = None
        if other in self._connected:
            return [StatusChange(other, Status.ACTIVE)]
        return []


# --------------------------------------------------------------------------


def create_arbiter(mode: ResponseMode | str, timeout: float = DEFAULT_SLOT_TIMEOUT) -> Arbiter:
    """The arbiter of a response mode (YANG enum name); ``timeout`` is the
    slot timeout T in seconds and only matters for slotted."""
    match ResponseMode(mode):
        case ResponseMode.RAW:
            return RawArbiter()
        case ResponseMode.FAILOVER:
            return FailoverArbiter()
        case ResponseMode.SLOTTED:
            return SlottedArbiter(timeout)
