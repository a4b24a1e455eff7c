"""The plane's bookkeeping without I/O: the event backlog of the data plane,
its dropped-bytes watch, and the control plane's view of open sessions."""

from __future__ import annotations

import pytest
from planehelpers import serial_port, server_channel

from nf.model import RelayConfig
from nf.plane.core import DropsWatch, EventBacklog, OpenSessions
from nf.runtime.transaction import ChannelState, Delta, PortState, SessionState, Snapshot


def event(n: int) -> tuple[str, dict[str, str]]:
    return ("port-event", {"serial-port": f"p{n}", "event": "opened"})


def test_backlog_keeps_the_newest_and_counts_what_it_drops() -> None:
    backlog = EventBacklog(limit=3)
    assert [backlog.put(event(n)) for n in range(3)] == [False, False, False]
    # the first drop is reported once (to be logged), later ones only counted
    assert backlog.put(event(3)) is True
    assert backlog.put(event(4)) is False
    assert len(backlog) == 3
    assert backlog.dropped == 2
    assert backlog.take_unreported() == 2
    assert backlog.take_unreported() == 0
    assert [backlog.take() for _ in range(3)] == [event(2), event(3), event(4)]
    # after a report, the next drop is reported again
    for n in range(4):
        backlog.put(event(n))
    assert backlog.dropped == 3 and backlog.unreported == 1


def test_an_event_that_could_not_be_sent_is_first_again() -> None:
    backlog = EventBacklog(limit=2)
    backlog.put(event(0))
    backlog.put(event(1))
    taken = backlog.take()
    backlog.put_back(taken)
    assert [backlog.take(), backlog.take()] == [event(0), event(1)]
    # while it was out, the backlog filled up: putting it back drops it
    backlog.put(event(0))
    taken = backlog.take()
    backlog.put(event(1))
    backlog.put(event(2))
    backlog.put_back(taken)
    assert len(backlog) == 2 and backlog.dropped == 1
    assert [backlog.take(), backlog.take()] == [event(1), event(2)]


def test_drops_are_reported_when_a_counter_rose_since_the_last_look() -> None:
    watch = DropsWatch()
    a, b = object(), object()
    assert watch.look({"c1": (a, 0), "c2": (b, 0)}) == []
    rises = watch.look({"c1": (a, 10), "c2": (b, 0)})
    assert [(r.channel, r.total, r.increase) for r in rises] == [("c1", 10, 10)]
    assert rises[0].payload() == {"channel": "c1", "dropped-bytes": "10", "increase": "10"}
    assert watch.look({"c1": (a, 10), "c2": (b, 0)}) == []  # no rise: no event
    rises = watch.look({"c1": (a, 15), "c2": (b, 3)})
    assert [(r.channel, r.total, r.increase) for r in rises] == [("c1", 15, 5), ("c2", 3, 3)]


def test_a_cleared_or_restarted_counter_rises_from_zero() -> None:
    watch = DropsWatch()
    before, cleared = object(), object()
    watch.look({"c": (before, 100)})
    # cleared, then 7 dropped: below the 100 seen last, but a rise all the same
    rises = watch.look({"c": (cleared, 7)})
    assert [(r.total, r.increase) for r in rises] == [(7, 7)]
    assert watch.look({"c": (cleared, 7)}) == []
    # a channel that went away and came back counts from zero too
    watch.look({})
    assert [r.increase for r in watch.look({"c": (cleared, 7)})] == [7]


def session(channel: str, sid: int, event: str, **extra: str) -> dict[str, str]:
    payload = {
        "channel": channel,
        "session-id": str(sid),
        "event": event,
        "remote-address": "127.0.0.1",
        "remote-port": str(40000 + sid),
        "role": "primary",
    }
    payload.update(extra)
    return payload


def test_open_sessions_follow_the_events_and_a_restart_closes_them_all() -> None:
    open_ = OpenSessions()
    open_.observe("port-event", {"serial-port": "p1", "event": "opened"})
    open_.observe("port-event", {"serial-port": "p2", "event": "opened"})
    open_.observe("port-event", {"serial-port": "p2", "event": "error", "message": "gone"})
    open_.observe("session-event", session("c", 1, "connected", status="active"))
    open_.observe("session-event", session("c", 2, "connected"))
    open_.observe("session-event", session("c", 2, "disconnected", reason="closed by peer"))
    open_.observe("session-event", session("d", 3, "connected"))
    open_.observe("session-event", session("d", 3, "role-change", status="backup"))
    open_.observe("drops", {"channel": "c", "dropped-bytes": "1", "increase": "1"})
    assert open_.sessions == 2 and open_.ports == {"p1"}
    lost = open_.restart()
    assert (lost.sessions, lost.ports) == (2, 1)
    assert list(lost.events) == [
        ("session-event", session("c", 1, "disconnected", reason="data plane restarted")),
        ("session-event", session("d", 3, "disconnected", reason="data plane restarted")),
        ("port-event", {"serial-port": "p1", "event": "closed"}),
    ]
    # keys in the order a channel emits them
    assert list(lost.events[0][1]) == [
        "channel",
        "session-id",
        "event",
        "remote-address",
        "remote-port",
        "role",
        "reason",
    ]
    assert open_.sessions == 0 and open_.ports == frozenset()
    assert open_.restart().events == ()


def test_open_sessions_start_from_a_snapshot() -> None:
    open_ = OpenSessions()
    open_.observe("session-event", session("old", 9, "connected"))
    s = SessionState(4, "10.0.0.1", 5000, "secondary", "backup", "t", 0, 0)
    open_.seed(
        Snapshot(
            (ChannelState("c", "up", None, (s,), ()),),
            (PortState("p", "up", None, 0, 0), PortState("q", "error", "gone", 0, 0)),
        )
    )
    lost = open_.restart("why")
    assert list(lost.events) == [
        (
            "session-event",
            {
                "channel": "c",
                "session-id": "4",
                "event": "disconnected",
                "remote-address": "10.0.0.1",
                "remote-port": "5000",
                "role": "secondary",
                "reason": "why",
            },
        ),
        ("port-event", {"serial-port": "p", "event": "closed"}),
    ]


def test_sessions_of_a_stopped_channel_are_forgotten_without_an_event() -> None:
    open_ = OpenSessions()
    open_.observe("session-event", session("c", 1, "connected"))
    open_.observe("session-event", session("d", 2, "connected"))
    ending = open_.on_channels({"c", "x"})
    assert ending == {("c", "1")}
    open_.observe("session-event", session("c", 3, "connected"))  # on the restarted channel
    open_.forget(ending)
    assert [payload["session-id"] for _, payload in open_.restart().events] == ["2", "3"]


def test_a_delta_touches_the_channels_whose_relay_changes() -> None:
    old = RelayConfig(
        {"p": serial_port("p", "/dev/a"), "q": serial_port("q", "/dev/b")},
        {
            "c": server_channel("c", "p", 4001),
            "d": server_channel("d", "q", 4002),
            "e": server_channel("e", "q", 4003),
        },
    )
    # the same configuration again touches nothing; a new port setting
    # touches every channel on it; a deletion and a new channel are touched
    assert Delta({"p": old.serial_ports["p"]}, {"c": old.channels["c"]}).touched(old) == set()
    assert Delta({"q": serial_port("q", "/dev/c")}).touched(old) == {"d", "e"}
    assert Delta({}, {"c": None, "f": server_channel("f", "p", 4004)}).touched(old) == {"c", "f"}
    changed = server_channel("d", "q", 4005)
    assert Delta({}, {"d": changed}).touched(old) == {"d"}


def test_a_prepare_copies_the_configuration_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``touched`` takes the new configuration its caller already made: a
    one-channel prepare of 10 000 channels copied the channel mapping twice
    (``applied_to`` in prepare and again in ``touched``), in each plane."""
    old = RelayConfig(
        {"p": serial_port("p", "/dev/a")},
        {f"c{i}": server_channel(f"c{i}", "p", 4000 + i) for i in range(100)},
    )
    delta = Delta({}, {"c1": server_channel("c1", "p", 5001)})
    new = delta.applied_to(old)
    copies = 0
    applied_to = Delta.applied_to

    def counted(self: Delta, config: RelayConfig) -> RelayConfig:
        nonlocal copies
        copies += 1
        return applied_to(self, config)

    monkeypatch.setattr(Delta, "applied_to", counted)
    assert delta.touched(old, new) == delta.touched(old) == {"c1"}
    assert copies == 1  # the call without ``new`` only
