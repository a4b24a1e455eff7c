"""The primary/secondary arbitration of SPEC §3, mode by mode.

1. Raw and the common life-cycle rules.
2. Failover: every (state, event) pair against a table written from the
   SPEC sentences (not from the module's table), then the primary-return
   story end to end.
3. Slotted: slot opening, the T edges (exactly at T ends it, a float
   before does not), restarts, promotion of the queue, queue overflow and
   discard, late timers.
4. Hypothesis: random event sequences for each mode, checking after every
   step that each byte is accounted for exactly and in order, that data
   only ever flows from and to sessions that are ``active`` when it flows
   (replaying the returned ``StatusChange``s), and the slotted invariants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nf.protocol.arbitration import (
    DEFAULT_SLOT_TIMEOUT,
    FAILOVER_TRANSITIONS,
    QUEUE_LIMIT,
    Action,
    Arbiter,
    ArbitrationError,
    Counter,
    Drop,
    DropReason,
    FailoverArbiter,
    FailoverState,
    RawArbiter,
    ResponseMode,
    Role,
    SlottedArbiter,
    Status,
    StatusChange,
    ToNet,
    ToSerial,
    create_arbiter,
)

P, S = Role.PRIMARY, Role.SECONDARY
ACTIVE, BACKUP, WAITING = Status.ACTIVE, Status.BACKUP, Status.WAITING
T = DEFAULT_SLOT_TIMEOUT


def statuses(arb: Arbiter) -> tuple[Status | None, Status | None]:
    return arb.status(P), arb.status(S)


DROP_COUNTER = {
    DropReason.NO_SESSION: Counter.DROPPED,
    DropReason.QUEUE_DISCARDED: Counter.DROPPED,
    DropReason.BACKUP: Counter.IGNORED,
    DropReason.QUEUE_OVERFLOW: Counter.IGNORED,
}


def no_session(n: int) -> Drop:
    return Drop(None, n, Counter.DROPPED, DropReason.NO_SESSION)


# --------------------------------------------------------------------------
# 1. Common


def test_enum_values_are_the_yang_enums() -> None:
    from nf.schema import default_schema

    enums = {
        node.name: node.type.enums
        for node in default_schema().walk()
        if node.type is not None and node.name in ("role", "status", "response-mode")
    }
    assert tuple(Role) == enums["role"]
    assert tuple(Status) == enums["status"]
    assert set(ResponseMode) == set(enums["response-mode"])


def test_create_arbiter() -> None:
    assert isinstance(create_arbiter("raw"), RawArbiter)
    assert isinstance(create_arbiter(ResponseMode.FAILOVER), FailoverArbiter)
    slotted = create_arbiter("slotted", 0.05)
    assert isinstance(slotted, SlottedArbiter) and slotted.timeout == 0.05
    assert isinstance(create_arbiter("slotted"), SlottedArbiter)
    assert SlottedArbiter().timeout == 0.6
    with pytest.raises(ValueError):
        create_arbiter("priority")
    with pytest.raises(ValueError):
        SlottedArbiter(0)
    with pytest.raises(ValueError):
        SlottedArbiter(queue_limit=-1)


@pytest.mark.parametrize("make", [RawArbiter, FailoverArbiter, SlottedArbiter])
def test_life_cycle_errors_change_nothing(make: Callable[[], Arbiter]) -> None:
    arb = make()
    with pytest.raises(ArbitrationError):
        arb.disconnect(P, 0.0)
    with pytest.raises(ArbitrationError):
        arb.from_net(S, b"x", 0.0)
    with pytest.raises(ArbitrationError):
        arb.from_net(S, b"", 0.0)
    assert arb.connect(P, 0.0) == []
    with pytest.raises(ArbitrationError):
        arb.connect(P, 0.0)
    assert statuses(arb) == (ACTIVE, None)
    assert arb.is_connected(P) and not arb.is_connected(S)


@pytest.mark.parametrize("make", [RawArbiter, FailoverArbiter, SlottedArbiter])
def test_empty_data_is_no_event(make: Callable[[], Arbiter]) -> None:
    arb = make()
    assert arb.from_serial(b"", 1.0) == []
    arb.connect(P, 1.0)
    arb.connect(S, 1.0)
    assert arb.from_net(S, b"", 1.0) == []
    assert arb.from_serial(b"", 1.0) == []
    assert arb.deadline() is None  # a slotted slot is not opened by nothing


def test_serial_fanout_is_offered_only_where_it_is_all_from_serial_does() -> None:
    raw = RawArbiter()
    assert raw.serial_fanout() is None  # no session: the read is dropped, counted
    raw.connect(S, 0.0)
    raw.connect(P, 0.0)
    assert raw.serial_fanout() == (P, S)
    for arb in (FailoverArbiter(), SlottedArbiter(T)):
        arb.connect(P, 0.0)
        assert arb.serial_fanout() is None  # status and timers depend on the read


def test_raw_forwards_both_ways() -> None:
    arb = RawArbiter()
    assert arb.from_serial(b"lost", 0.0) == [no_session(4)]
    assert arb.connect(S, 0.0) == []
    assert arb.from_serial(b"ab", 0.1) == [ToNet(S, b"ab")]
    assert arb.connect(P, 0.2) == []
    assert statuses(arb) == (ACTIVE, ACTIVE)
    assert arb.from_net(S, b"s1", 0.3) == [ToSerial(b"s1", S)]
    assert arb.from_net(P, b"p1", 0.3) == [ToSerial(b"p1", P)]
    assert arb.from_net(S, b"s2", 0.3) == [ToSerial(b"s2", S)]
    data = b"reply"
    out = arb.from_serial(data, 0.4)
    assert out == [ToNet(P, data), ToNet(S, data)]
    assert all(isinstance(a, ToNet) and a.data is data for a in out)  # not copied
    assert arb.disconnect(P, 0.5) == []
    assert arb.from_serial(b"c", 0.6) == [ToNet(S, b"c")]
    assert arb.disconnect(S, 0.7) == []
    assert arb.from_serial(b"de", 0.8) == [no_session(2)]
    assert arb.tick(100.0) == [] and arb.deadline() is None
    assert arb.queued(P) == arb.queued(S) == 0


# --------------------------------------------------------------------------
# 2. Failover, exhaustively

PATHS: dict[FailoverState, list[tuple[str, Role]]] = {
    FailoverState.IDLE: [],
    FailoverState.PRIMARY_ONLY: [("connect", P)],
    FailoverState.SECONDARY_ONLY: [("connect", S)],
    FailoverState.PRIMARY_HOLDS: [("connect", P), ("connect", S)],
    FailoverState.SECONDARY_HOLDS: [("connect", S), ("connect", P)],
}

E = "error"
# (state, event, role) -> (statuses after, actions); data is b"xy".  Written
# from SPEC §3 failover sentences; the module's own table must agree.
Outcome = tuple[tuple[Status | None, Status | None], list[Action]]
FAILOVER_EXPECTED: dict[tuple[FailoverState, str, Role], Outcome | str] = {
    # no session
    (FailoverState.IDLE, "connect", P): ((ACTIVE, None), []),
    (FailoverState.IDLE, "connect", S): ((None, ACTIVE), []),
    (FailoverState.IDLE, "disconnect", P): E,
    (FailoverState.IDLE, "disconnect", S): E,
    (FailoverState.IDLE, "data", P): E,
    (FailoverState.IDLE, "data", S): E,
    # primary alone: active
    (FailoverState.PRIMARY_ONLY, "connect", P): E,
    (FailoverState.PRIMARY_ONLY, "connect", S): ((ACTIVE, BACKUP), []),
    (FailoverState.PRIMARY_ONLY, "disconnect", P): ((None, None), []),
    (FailoverState.PRIMARY_ONLY, "disconnect", S): E,
    (FailoverState.PRIMARY_ONLY, "data", P): ((ACTIVE, None), [ToSerial(b"xy", P)]),
    (FailoverState.PRIMARY_ONLY, "data", S): E,
    # secondary alone: active
    (FailoverState.SECONDARY_ONLY, "connect", P): ((WAITING, ACTIVE), []),
    (FailoverState.SECONDARY_ONLY, "connect", S): E,
    (FailoverState.SECONDARY_ONLY, "disconnect", P): E,
    (FailoverState.SECONDARY_ONLY, "disconnect", S): ((None, None), []),
    (FailoverState.SECONDARY_ONLY, "data", P): E,
    (FailoverState.SECONDARY_ONLY, "data", S): ((None, ACTIVE), [ToSerial(b"xy", S)]),
    # primary holds the port, secondary is backup
    (FailoverState.PRIMARY_HOLDS, "connect", P): E,
    (FailoverState.PRIMARY_HOLDS, "connect", S): E,
    (FailoverState.PRIMARY_HOLDS, "disconnect", P): (
        (None, ACTIVE),
        [StatusChange(S, ACTIVE)],
    ),
    (FailoverState.PRIMARY_HOLDS, "disconnect", S): ((ACTIVE, None), []),
    (FailoverState.PRIMARY_HOLDS, "data", P): ((ACTIVE, BACKUP), [ToSerial(b"xy", P)]),
    (FailoverState.PRIMARY_HOLDS, "data", S): (
        (ACTIVE, BACKUP),
        [Drop(S, 2, Counter.IGNORED, DropReason.BACKUP)],
    ),
    # secondary holds the port, the returned primary waits for its first byte
    (FailoverState.SECONDARY_HOLDS, "connect", P): E,
    (FailoverState.SECONDARY_HOLDS, "connect", S): E,
    (FailoverState.SECONDARY_HOLDS, "disconnect", P): ((None, ACTIVE), []),
    (FailoverState.SECONDARY_HOLDS, "disconnect", S): (
        (ACTIVE, None),
        [StatusChange(P, ACTIVE)],
    ),
    (FailoverState.SECONDARY_HOLDS, "data", P): (
        (ACTIVE, BACKUP),
        [StatusChange(P, ACTIVE), StatusChange(S, BACKUP), ToSerial(b"xy", P)],
    ),
    (FailoverState.SECONDARY_HOLDS, "data", S): ((WAITING, ACTIVE), [ToSerial(b"xy", S)]),
}

# Where serial data goes in each state.
FAILOVER_SERIAL: dict[FailoverState, list[Action]] = {
    FailoverState.IDLE: [no_session(2)],
    FailoverState.PRIMARY_ONLY: [ToNet(P, b"zz")],
    FailoverState.SECONDARY_ONLY: [ToNet(S, b"zz")],
    FailoverState.PRIMARY_HOLDS: [ToNet(P, b"zz")],
    FailoverState.SECONDARY_HOLDS: [ToNet(S, b"zz")],
}


def reach(state: FailoverState) -> FailoverArbiter:
    arb = FailoverArbiter()
    for _event, role in PATHS[state]:
        arb.connect(role, 0.0)
    assert arb.state is state
    return arb


def apply(arb: Arbiter, event: str, role: Role, now: float = 1.0) -> list[Action]:
    if event == "connect":
        return arb.connect(role, now)
    if event == "disconnect":
        return arb.disconnect(role, now)
    return arb.from_net(role, b"xy", now)


def test_failover_expected_table_is_complete() -> None:
    assert set(FAILOVER_EXPECTED) == {
        (state, event, role)
        for state in FailoverState
        for event in ("connect", "disconnect", "data")
        for role in Role
    }
    # The module's table allows exactly the pairs the expectations allow.
    allowed = {
        (state, event.value, role)
        for state, row in FAILOVER_TRANSITIONS.items()
        for event, role in row
    }
    assert allowed == {key for key, value in FAILOVER_EXPECTED.items() if value != E}


def _case_order(key: tuple[FailoverState, str, Role]) -> tuple[str, str, str]:
    return key[0].name, key[1], key[2].value


FAILOVER_CASES: list[tuple[FailoverState, str, Role]] = sorted(FAILOVER_EXPECTED, key=_case_order)


@pytest.mark.parametrize(("state", "event", "role"), FAILOVER_CASES)
def test_failover_transition(state: FailoverState, event: str, role: Role) -> None:
    arb = reach(state)
    expected = FAILOVER_EXPECTED[(state, event, role)]
    if expected == E:
        with pytest.raises(ArbitrationError):
            apply(arb, event, role)
        assert arb.state is state
        return
    actions = apply(arb, event, role)
    assert (statuses(arb), actions) == expected
    assert arb.tick(1e9) == [] and arb.deadline() is None


@pytest.mark.parametrize("state", list(FailoverState))
def test_failover_serial_routing(state: FailoverState) -> None:
    arb = reach(state)
    assert arb.from_serial(b"zz", 1.0) == FAILOVER_SERIAL[state]
    assert arb.state is state


def test_failover_primary_returns() -> None:
    arb = FailoverArbiter()
    arb.connect(P, 0.0)
    arb.connect(S, 0.0)
    assert arb.from_net(S, b"ignored", 0.1) == [Drop(S, 7, Counter.IGNORED, DropReason.BACKUP)]
    assert arb.disconnect(P, 1.0) == [StatusChange(S, ACTIVE)]
    assert arb.from_net(S, b"s", 1.1) == [ToSerial(b"s", S)]
    assert arb.from_serial(b"r", 1.2) == [ToNet(S, b"r")]
    # The primary comes back: the secondary stays active until it talks.
    assert arb.connect(P, 2.0) == []
    assert statuses(arb) == (WAITING, ACTIVE)
    assert arb.from_net(P, b"", 2.1) == []  # zero bytes are not data
    assert arb.from_net(S, b"s2", 2.2) == [ToSerial(b"s2", S)]
    assert arb.from_serial(b"r2", 2.3) == [ToNet(S, b"r2")]
    assert arb.tick(50.0) == []  # no timer: waiting does not expire
    assert arb.from_net(P, b"p", 60.0) == [
        StatusChange(P, ACTIVE),
        StatusChange(S, BACKUP),
        ToSerial(b"p", P),
    ]
    assert arb.from_net(S, b"s3", 60.1) == [Drop(S, 2, Counter.IGNORED, DropReason.BACKUP)]
    assert arb.from_serial(b"r3", 60.2) == [ToNet(P, b"r3")]
    assert arb.disconnect(S, 61.0) == []
    assert arb.disconnect(P, 62.0) == []
    assert arb.from_serial(b"r4", 63.0) == [no_session(2)]


# --------------------------------------------------------------------------
# 3. Slotted


def two(now: float = 0.0, **kwargs: int) -> SlottedArbiter:
    arb = SlottedArbiter(T, **kwargs)
    arb.connect(P, now)
    arb.connect(S, now)
    return arb


def test_slotted_set_timeout_keeps_the_slot_and_moves_its_end() -> None:
    """A commit's new secondary/timeout on a live channel: the open slot
    keeps its owner and its queue; it ends T' after its last byte."""
    arb = two()
    assert arb.from_net(P, b"req", 0.0) == [StatusChange(S, WAITING), ToSerial(b"req", P)]
    assert arb.from_net(S, b"q", 0.1) == []
    arb.set_timeout(T / 2)
    assert (arb.timeout, arb.owner, arb.queued(S)) == (T / 2, P, 1)
    assert arb.deadline() == T / 2
    assert arb.tick(T / 2)[-1] == ToSerial(b"q", S)
    assert arb.deadline() == T  # the queue's slot runs under the new T
    with pytest.raises(ValueError):
        arb.set_timeout(0)
    idle = SlottedArbiter(T)
    idle.set_timeout(2 * T)
    assert (idle.timeout, idle.deadline()) == (2 * T, None)


def test_slotted_no_slot_serial_goes_to_every_session() -> None:
    arb = SlottedArbiter()
    assert arb.from_serial(b"a", 0.0) == [no_session(1)]
    arb.connect(S, 0.0)
    assert arb.from_serial(b"b", 0.0) == [ToNet(S, b"b")]
    arb.connect(P, 0.0)
    assert arb.from_serial(b"c", 0.0) == [ToNet(P, b"c"), ToNet(S, b"c")]
    assert statuses(arb) == (ACTIVE, ACTIVE)
    assert arb.deadline() is None  # serial data opens no slot
    assert arb.owner is None


def test_slotted_first_sender_opens_slot() -> None:
    arb = two()
    assert arb.from_net(S, b"req", 10.0) == [StatusChange(P, WAITING), ToSerial(b"req", S)]
    assert arb.owner is S and statuses(arb) == (WAITING, ACTIVE)
    assert arb.deadline() == 10.0 + T
    assert arb.from_serial(b"resp", 10.1) == [ToNet(S, b"resp")]  # owner only
    assert arb.from_net(S, b"more", 10.2) == [ToSerial(b"more", S)]


def test_slotted_slot_ends_exactly_at_t() -> None:
    arb = two()
    arb.from_net(P, b"q", 10.0)
    end = arb.deadline()
    assert end == 10.0 + T
    assert arb.tick(math.nextafter(end, 0.0)) == []
    assert arb.owner is P
    assert arb.tick(end) == [StatusChange(S, ACTIVE)]
    assert arb.owner is None and arb.deadline() is None
    assert statuses(arb) == (ACTIVE, ACTIVE)
    assert arb.tick(end + 1) == []


@pytest.mark.parametrize("source", ["owner", "serial"])
def test_slotted_traffic_restarts_t(source: str) -> None:
    arb = two()
    arb.from_net(P, b"q", 10.0)
    if source == "owner":
        assert arb.from_net(P, b"q2", 10.5) == [ToSerial(b"q2", P)]
    else:
        assert arb.from_serial(b"r", 10.5) == [ToNet(P, b"r")]
    assert arb.deadline() == 10.5 + T
    assert arb.tick(10.0 + T) == []
    assert arb.tick(10.5 + T) == [StatusChange(S, ACTIVE)]


def test_slotted_waiting_data_is_queued_and_does_not_restart_t() -> None:
    arb = two()
    arb.from_net(P, b"p1", 10.0)
    assert arb.from_net(S, b"s1", 10.1) == []
    assert arb.from_net(S, b"s2", 10.5) == []
    assert arb.queued(S) == 4 and arb.queued(P) == 0
    assert arb.deadline() == 10.0 + T
    # The slot ends; the queue is written at once and opens S's slot.
    assert arb.tick(10.0 + T) == [
        StatusChange(S, ACTIVE),
        StatusChange(P, WAITING),
        ToSerial(b"s1s2", S),
    ]
    assert arb.owner is S and arb.queued(S) == 0
    assert arb.deadline() == 10.0 + T + T
    assert arb.from_serial(b"r", 10.7) == [ToNet(S, b"r")]


def test_slotted_late_tick_starts_new_slot_at_the_write() -> None:
    arb = two()
    arb.from_net(P, b"p", 10.0)
    arb.from_net(S, b"s", 10.1)
    actions = arb.tick(20.0)  # the runtime woke up late
    assert actions[-1] == ToSerial(b"s", S)
    assert arb.deadline() == 20.0 + T


def test_slotted_timer_is_settled_by_any_event() -> None:
    """A late tick never changes the order of events: each event first
    ends a slot that is already over at its time."""
    arb = two()
    arb.from_net(P, b"p", 10.0)
    # S talks after P's slot is over but before any tick: S opens its slot.
    assert arb.from_net(S, b"s", 11.0) == [
        StatusChange(S, ACTIVE),
        StatusChange(P, WAITING),
        ToSerial(b"s", S),
    ]
    # Serial data after S's slot is over goes to everybody.
    assert arb.from_serial(b"r", 12.0) == [StatusChange(P, ACTIVE), ToNet(P, b"r"), ToNet(S, b"r")]
    # A session connecting after a slot is over is active.
    arb.from_net(P, b"p", 13.0)
    arb.disconnect(S, 13.0)
    assert arb.connect(S, 14.0) == []
    assert statuses(arb) == (ACTIVE, ACTIVE) and arb.owner is None


def test_slotted_connect_during_slot_is_waiting() -> None:
    arb = SlottedArbiter()
    arb.connect(P, 0.0)
    assert arb.from_net(P, b"p", 1.0) == [ToSerial(b"p", P)]  # nobody to tell
    assert arb.connect(S, 1.1) == []
    assert statuses(arb) == (ACTIVE, WAITING)
    assert arb.from_serial(b"r", 1.2) == [ToNet(P, b"r")]


def test_slotted_owner_disconnect_promotes_queue_immediately() -> None:
    arb = two()
    arb.from_net(P, b"p", 10.0)
    arb.from_net(S, b"s1", 10.1)
    arb.from_net(S, b"s2", 10.2)
    assert arb.disconnect(P, 10.3) == [StatusChange(S, ACTIVE), ToSerial(b"s1s2", S)]
    assert arb.owner is S and arb.deadline() == 10.3 + T
    assert statuses(arb) == (None, ACTIVE)
    assert arb.from_serial(b"r", 10.4) == [ToNet(S, b"r")]


def test_slotted_owner_disconnect_without_queue_ends_slot() -> None:
    arb = two()
    arb.from_net(P, b"p", 10.0)
    assert arb.disconnect(P, 10.1) == [StatusChange(S, ACTIVE)]
    assert arb.owner is None and arb.deadline() is None
    assert arb.from_serial(b"r", 10.2) == [ToNet(S, b"r")]
    # alone: the owner leaves, nobody to tell
    arb.from_net(S, b"s", 10.3)
    assert arb.disconnect(S, 10.4) == []
    assert arb.owner is None and arb.from_serial(b"x", 10.5) == [no_session(1)]


def test_slotted_waiting_disconnect_discards_its_queue() -> None:
    arb = two()
    arb.from_net(P, b"p", 10.0)
    arb.from_net(S, b"abc", 10.1)
    assert arb.disconnect(S, 10.2) == [Drop(S, 3, Counter.DROPPED, DropReason.QUEUE_DISCARDED)]
    assert arb.owner is P and arb.deadline() == 10.0 + T  # the slot goes on
    assert arb.tick(10.0 + T) == []  # nobody left to tell
    assert arb.owner is None
    # Without a queue, leaving costs nothing.
    arb.connect(S, 11.0)
    arb.from_net(P, b"p", 11.0)
    assert arb.disconnect(S, 11.1) == []


def test_slotted_queue_overflow_is_counted_exactly() -> None:
    arb = two()
    arb.from_net(P, b"p", 10.0)
    first = bytes(range(256)) * 160  # 40960
    second = bytes(reversed(range(256))) * 120  # 30720
    assert arb.from_net(S, first, 10.1) == []
    kept = QUEUE_LIMIT - len(first)
    assert arb.from_net(S, second, 10.2) == [
        Drop(S, len(second) - kept, Counter.IGNORED, DropReason.QUEUE_OVERFLOW)
    ]
    assert arb.queued(S) == QUEUE_LIMIT
    assert arb.from_net(S, b"xyz", 10.3) == [Drop(S, 3, Counter.IGNORED, DropReason.QUEUE_OVERFLOW)]
    out = arb.tick(10.0 + T)
    assert out[-1] == ToSerial(first + second[:kept], S)
    assert arb.queued(S) == 0
    # P now waits and gets a fresh queue.
    assert arb.from_net(P, b"again", 10.7) == []
    assert arb.queued(P) == 5


def test_slotted_queue_fills_to_the_byte() -> None:
    arb = two(queue_limit=4)
    arb.from_net(P, b"p", 0.0)
    assert arb.from_net(S, b"abc", 0.0) == []
    assert arb.from_net(S, b"de", 0.0) == [Drop(S, 1, Counter.IGNORED, DropReason.QUEUE_OVERFLOW)]
    assert arb.from_net(S, b"f", 0.0) == [Drop(S, 1, Counter.IGNORED, DropReason.QUEUE_OVERFLOW)]
    assert arb.disconnect(P, 0.1)[-1] == ToSerial(b"abcd", S)
    zero = two(queue_limit=0)
    zero.from_net(P, b"p", 0.0)
    assert zero.from_net(S, b"ab", 0.0) == [Drop(S, 2, Counter.IGNORED, DropReason.QUEUE_OVERFLOW)]


def test_slotted_ping_pong_of_two_masters() -> None:
    """Two SCADA masters poll one device; each gets only its own answers."""
    arb = two()
    now = 0.0
    got: dict[Role, bytes] = {P: b"", S: b""}
    wire = b""
    for i in range(5):
        for a in arb.from_net(P, b"P%d;" % i, now) + arb.from_net(S, b"S%d;" % i, now):
            if isinstance(a, ToSerial):
                wire += a.data
        # the device answers whatever is on the wire, once, after 0.1 s
        now += 0.1
        for a in arb.from_serial(b"A(" + wire + b")", now):
            assert isinstance(a, ToNet)
            got[a.role] += a.data
        wire = b""
        now += T  # silence ends the slot
        for a in arb.tick(now):
            if isinstance(a, ToSerial):
                wire += a.data
        now += 0.1
        for a in arb.from_serial(b"B(" + wire + b")", now):
            assert isinstance(a, ToNet)
            got[a.role] += a.data
        wire = b""
        now += T
        arb.tick(now)
    assert b"S" not in got[P]
    assert b"P" not in got[S]
    assert got[P].count(b"(P") == 5 and got[S].count(b"(S") == 5


# --------------------------------------------------------------------------
# 4. Properties over random event sequences


@dataclass
class Ledger:
    """What the test has put in and got out, checked against the arbiter
    after every step.  ``expected[r]`` is what ``r`` sent minus what was
    ignored or discarded: what serial must eventually see from ``r``."""

    arb: Arbiter
    expected: dict[Role, bytearray] = field(
        default_factory=lambda: {P: bytearray(), S: bytearray()}
    )
    to_serial: dict[Role, bytearray] = field(
        default_factory=lambda: {P: bytearray(), S: bytearray()}
    )
    sent: dict[Role, int] = field(default_factory=lambda: {P: 0, S: 0})
    counted: dict[Role, int] = field(default_factory=lambda: {P: 0, S: 0})
    serial_in: int = 0
    serial_out: int = 0
    serial_dropped: int = 0

    def step(self, kind: str, role: Role, data: bytes, now: float) -> None:
        arb = self.arb
        before = {r: arb.status(r) for r in Role}
        snapshot = (before, arb.deadline(), arb.queued(P), arb.queued(S))
        fanout = arb.serial_fanout()
        try:
            if kind == "connect":
                actions = arb.connect(role, now)
            elif kind == "disconnect":
                actions = arb.disconnect(role, now)
            elif kind == "net":
                actions = arb.from_net(role, data, now)
            elif kind == "serial":
                actions = arb.from_serial(data, now)
            else:
                actions = arb.tick(now)
        except ArbitrationError:
            # only life-cycle violations raise, and they change nothing
            assert kind in ("connect", "disconnect", "net")
            assert (kind == "connect") == (before[role] is not None)
            after = {r: arb.status(r) for r in Role}
            assert (after, arb.deadline(), arb.queued(P), arb.queued(S)) == snapshot
            return
        if kind == "serial" and data and fanout is not None:
            # the channel's shortcut: exactly these ToNet actions, nothing else changes
            assert actions == [ToNet(r, data) for r in fanout]
            after = {r: arb.status(r) for r in Role}
            assert (after, arb.deadline(), arb.queued(P), arb.queued(S)) == snapshot
        self.check(kind, role, data, now, snapshot[1], before, actions)

    def check(
        self,
        kind: str,
        role: Role,
        data: bytes,
        now: float,
        deadline_before: float | None,
        before: dict[Role, Status | None],
        actions: list[Action],
    ) -> None:
        arb = self.arb
        live = dict(before)  # statuses replayed through the actions
        tonet_roles: list[Role] = []
        refused = 0  # bytes of this read that were ignored at once
        serial_dropped = False
        for a in actions:
            if isinstance(a, StatusChange):
                assert live[a.role] is not None, "status change of an absent session"
                assert live[a.role] is not a.status, "a change that changes nothing"
                if isinstance(arb, FailoverArbiter):
                    check_failover_change(kind, role, data, a)
                live[a.role] = a.status
            elif isinstance(a, ToSerial):
                assert a.data, "empty write"
                # data flows only from a session that is active right then
                assert live[a.source] is ACTIVE
                if isinstance(arb, FailoverArbiter) and a.source is S:
                    assert live[P] is not ACTIVE, "failover: the backup wrote to serial"
                self.to_serial[a.source] += a.data
            elif isinstance(a, ToNet):
                assert kind == "serial" and a.data is data
                assert live[a.role] is ACTIVE, "serial data to a session without access"
                assert a.role not in tonet_roles
                tonet_roles.append(a.role)
            else:
                assert isinstance(a, Drop) and a.nbytes > 0
                assert a.counter is DROP_COUNTER[a.reason]
                if a.role is None:
                    assert kind == "serial" and a.reason is DropReason.NO_SESSION
                    assert a.nbytes == len(data) and not serial_dropped
                    serial_dropped = True
                    self.serial_dropped += a.nbytes
                    continue
                assert a.role is role
                self.counted[role] += a.nbytes
                if a.reason is DropReason.QUEUE_DISCARDED:
                    assert kind == "disconnect"
                    # the queue is the not yet delivered tail of the stream
                    del self.expected[role][len(self.expected[role]) - a.nbytes :]
                else:
                    assert kind == "net" and not refused
                    if a.reason is DropReason.BACKUP:
                        assert isinstance(arb, FailoverArbiter) and a.nbytes == len(data)
                    else:
                        assert isinstance(arb, SlottedArbiter)
                        assert arb.queued(role) == arb.queue_limit, "overflow of a free queue"
                    refused = a.nbytes  # the tail of this read
        if kind == "connect":
            assert live[role] is None
            live[role] = arb.status(role)
            assert live[role] is not None
            if isinstance(arb, FailoverArbiter) and live[role.other] is not None:
                # a joining primary waits for its first byte; a joining
                # secondary is the backup: the session already there keeps
                # the port
                assert live[role] is (WAITING if role is P else BACKUP)
                assert live[role.other] is ACTIVE
        elif kind == "disconnect":
            live[role] = None
        elif kind == "net":
            self.sent[role] += len(data)
            self.expected[role] += data[: len(data) - refused]
        elif kind == "serial":
            self.serial_in += len(data)
            if tonet_roles:
                self.serial_out += len(data)
            # serial data goes to exactly the sessions that have access
            assert set(tonet_roles) == ({r for r in Role if live[r] is ACTIVE} if data else set())
            assert serial_dropped == (bool(data) and not tonet_roles)
        # the replayed statuses are the statuses
        assert live == {r: arb.status(r) for r in Role}
        # every byte: delivered, counted or queued; in order, exactly
        for r in Role:
            assert self.sent[r] == len(self.to_serial[r]) + self.counted[r] + arb.queued(r)
            exp = self.expected[r]
            assert self.to_serial[r] == exp[: len(exp) - arb.queued(r)]
        assert self.serial_in == self.serial_out + self.serial_dropped
        if isinstance(arb, SlottedArbiter):
            moved = any(isinstance(a, ToSerial | ToNet) for a in actions)
            check_slotted(arb, now, deadline_before, moved)
        else:
            assert arb.deadline() is None
            assert arb.queued(P) == arb.queued(S) == 0


def check_failover_change(kind: str, role: Role, data: bytes, change: StatusChange) -> None:
    """Who can take the port from whom, in failover."""
    if change == StatusChange(S, BACKUP) or (change == StatusChange(P, ACTIVE) and kind == "net"):
        # only bytes received on the primary preempt the secondary
        assert (kind, role) == ("net", P) and data
    elif change == StatusChange(S, ACTIVE):
        assert (kind, role) == ("disconnect", P)  # only the primary leaving
    else:
        # a primary alone again is active at once
        assert change == StatusChange(P, ACTIVE) and (kind, role) == ("disconnect", S)


def check_slotted(
    arb: SlottedArbiter, now: float, deadline_before: float | None, moved: bool
) -> None:
    owner = arb.owner
    deadline = arb.deadline()
    assert (deadline is None) == (owner is None)
    assert arb.queued(P) <= arb.queue_limit and arb.queued(S) <= arb.queue_limit
    if owner is None:
        assert arb.queued(P) == arb.queued(S) == 0
        assert all(arb.status(r) in (None, ACTIVE) for r in Role)
        return
    assert deadline is not None
    # a slot that is over at ``now`` never survives an event at ``now``
    assert deadline > now
    # T restarts exactly when bytes move (owner or serial bytes, or the
    # queue that opens a slot), and only then
    if moved:
        assert deadline == now + arb.timeout
    else:
        assert deadline == deadline_before
    other = owner.other
    assert arb.status(owner) is ACTIVE
    assert arb.status(other) in (None, WAITING)
    assert arb.queued(owner) == 0
    if arb.queued(other):
        assert arb.status(other) is WAITING


# Weighted so that sequences often reach "both connected, both talking,
# then one leaves or the slot ends": reads are mostly non-empty, time
# mostly stands still or creeps, and "at" ticks exactly at the deadline.
EVENT = st.tuples(
    st.sampled_from(
        ["connect"] * 2
        + ["disconnect"] * 2
        + ["net"] * 6
        + ["serial"] * 3
        + ["tick", "at", "at", "before"]
    ),
    st.sampled_from(list(Role)),
    st.one_of(st.binary(min_size=1, max_size=24), st.just(b"")),
    st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.01, T / 2, T, 2 * T, 10.0]),
)
Event = tuple[str, Role, bytes, float]
BOTH: list[Event] = [("connect", P, b"", 0.0), ("connect", S, b"", 0.0)]
# Starting points the random tail then explores: nothing, both sessions
# connected, and (slotted) a slot of one session with data of the other
# queued.
STARTS: dict[str, list[Event]] = {
    "empty": [],
    "both": BOTH,
    "queued": [*BOTH, ("net", P, b"req-p", 0.0), ("net", S, b"req-s", 0.01)],
}
EVENTS = st.tuples(st.sampled_from(sorted(STARTS)), st.lists(EVENT, min_size=4, max_size=60))
Events = tuple[str, list[Event]]


def run(arb: Arbiter, start: Events) -> None:
    prefix, events = start
    ledger = Ledger(arb)
    now = 1000.0
    for kind, role, data, dt in STARTS[prefix] + events:
        now += dt
        if kind in ("at", "before"):
            deadline = arb.deadline()
            if deadline is None:
                continue
            if kind == "before":
                # one float before the deadline: nothing may happen
                assert arb.tick(math.nextafter(deadline, 0.0)) == []
                continue
            # exactly at the deadline, unless time has already passed it
            now = max(now, deadline)
            ledger.step("tick", role, b"", now)
            assert arb.deadline() != deadline, "a tick at deadline() must end the slot"
            continue
        ledger.step(kind, role, data, now)


SETTINGS = settings(max_examples=400, deadline=None)


@SETTINGS
@given(EVENTS)
def test_property_raw(events: Events) -> None:
    run(RawArbiter(), events)


@SETTINGS
@given(EVENTS)
def test_property_failover(events: Events) -> None:
    run(FailoverArbiter(), events)


@settings(max_examples=1000, deadline=None)
@given(EVENTS, st.sampled_from([0, 5, 48, QUEUE_LIMIT]))
def test_property_slotted(events: Events, limit: int) -> None:
    run(SlottedArbiter(T, queue_limit=limit), events)
