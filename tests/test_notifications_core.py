"""The notification core (RFC 5277 subscriptions, replay log, RFC 6470
events) driven directly with a fake clock: no sockets, no threads."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from nf.config.codec import NC_NS, load_document, render
from nf.config.diff import diff
from nf.northbound.notifications import (
    MANAGE_NS,
    NCN_NS,
    NOTIFICATION_NS,
    Notifications,
    ReplayLog,
    SubscriptionError,
    Who,
    config_change,
    confirmed_commit,
    make_event,
    parse_request,
    relay_event,
    session_end,
    session_start,
)
from nf.rfc3339 import format_time, parse_time
from nf.schema import default_schema

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
YANG = Path(__file__).resolve().parent.parent / "yang"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def request_xml(*params: str) -> etree._Element:
    return etree.fromstring(
        f'<create-subscription xmlns="{NOTIFICATION_NS}">{"".join(params)}</create-subscription>'
    )


def start(ts: datetime) -> str:
    return f"<startTime>{format_time(ts)}</startTime>"


def stop(ts: datetime) -> str:
    return f"<stopTime>{format_time(ts)}</stopTime>"


def error_of(op: etree._Element, now: datetime = T0) -> tuple[str, str]:
    with pytest.raises(SubscriptionError) as info:
        parse_request(op, now, default_schema())
    return info.value.error.tag, dict(info.value.error.info)["bad-element"]


def drain(outbox) -> list[etree._Element]:  # type: ignore[no-untyped-def]
    out = []
    while (msg := outbox.take(0)) is not None:
        out.append(etree.fromstring(msg))
    return out


def event_names(messages: list[etree._Element]) -> list[str]:
    return [etree.QName(m[1]).localname for m in messages]


def who(sid: int = 1) -> Who:
    return Who("admin", sid, "127.0.0.1")


def test_times_are_rfc3339_and_round_trip() -> None:
    assert format_time(T0) == "2026-01-02T03:04:05.000000Z"
    assert parse_time("2026-01-02T03:04:05Z") == T0
    assert parse_time("2026-01-02T05:04:05.000+02:00") == T0
    with pytest.raises(ValueError):
        parse_time("2026-01-02T03:04:05")  # no offset
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_request_errors_follow_rfc5277() -> None:
    assert error_of(request_xml(stop(T0))) == ("missing-element", "startTime")
    assert error_of(request_xml(start(T0 + timedelta(seconds=1)))) == ("bad-element", "startTime")
    assert error_of(request_xml(start(T0), stop(T0 - timedelta(seconds=1)))) == (
        "bad-element",
        "stopTime",
    )
    assert error_of(request_xml("<stream>SNMP</stream>")) == ("invalid-value", "stream")
    assert error_of(request_xml("<startTime>soon</startTime>")) == ("invalid-value", "startTime")
    assert error_of(request_xml("<color>red</color>")) == ("unknown-element", "color")
    bad_filter = f'<filter xmlns="{NC_NS}" type="regex"/>'
    assert error_of(request_xml(bad_filter)) == ("bad-attribute", "filter")
    ok = parse_request(
        request_xml("<stream>NETCONF</stream>", start(T0), stop(T0)), T0, default_schema()
    )
    assert (ok.stream, ok.start, ok.stop) == ("NETCONF", T0, T0)


def test_replay_log_is_bounded_and_replays_from_the_oldest() -> None:
    log = ReplayLog(3, T0)
    for i in range(5):
        log.append(make_event(session_start(who(i)), T0 + timedelta(seconds=i)))
    assert log.oldest == T0 + timedelta(seconds=2)
    # a startTime before the oldest event starts from the oldest available
    assert [e.time for e in log.window(T0, None)] == [T0 + timedelta(seconds=s) for s in (2, 3, 4)]
    assert [e.time for e in log.window(T0, T0 + timedelta(seconds=3))] == [
        T0 + timedelta(seconds=s) for s in (2, 3)
    ]


def test_live_subscription_gets_events_in_order_with_event_time() -> None:
    clock = FakeClock()
    hub = Notifications(default_schema(), clock)
    hub.publish(session_start(who(1)))  # before the subscription: not sent
    outbox = hub.subscribe(7, parse_request(request_xml(), clock(), default_schema()))
    clock.advance(1)
    hub.publish(session_start(who(2)))
    clock.advance(1)
    hub.publish(session_end(who(2), "killed", killed_by=3))
    got = drain(outbox)
    assert event_names(got) == ["netconf-session-start", "netconf-session-end"]
    assert got[0][0].text == "2026-01-02T03:04:06.000000Z"
    assert got[0].tag == f"{{{NOTIFICATION_NS}}}notification"
    end = got[1][1]
    assert end.findtext(f"{{{NCN_NS}}}killed-by") == "3"
    assert end.findtext(f"{{{NCN_NS}}}termination-reason") == "killed"
    with pytest.raises(SubscriptionError) as info:
        hub.subscribe(7, parse_request(request_xml(), clock(), default_schema()))
    assert info.value.error.tag == "in-use"


def test_replay_then_replay_complete_then_live_then_notification_complete() -> None:
    clock = FakeClock()
    schema = default_schema()
    hub = Notifications(schema, clock)
    for sid in (1, 2, 3):
        hub.publish(session_start(who(sid)))
        clock.advance(10)
    # now = T0+30; replay from T0+5 (sessions 2, 3), stop at T0+40
    req = parse_request(
        request_xml(start(T0 + timedelta(seconds=5)), stop(T0 + timedelta(seconds=40))),
        clock(),
        schema,
    )
    outbox = hub.subscribe(9, req)
    hub.publish(session_start(who(4)))  # T0+30: live, before stopTime
    got = drain(outbox)
    assert event_names(got) == [
        "netconf-session-start",
        "netconf-session-start",
        "replayComplete",
        "netconf-session-start",
    ]
    assert [m[1].findtext(f"{{{NCN_NS}}}session-id") for m in got] == ["2", "3", None, "4"]
    assert got[2][1].tag == f"{{{MANAGE_NS}}}replayComplete"
    assert not outbox.finished
    clock.advance(11)  # past stopTime
    hub.publish(session_start(who(5)))  # after stopTime: not sent
    got = drain(outbox)
    assert event_names(got) == ["notificationComplete"]
    assert outbox.finished
    outbox.on_finish()
    assert not hub.subscribed(9)  # the session may subscribe again


def test_stop_time_in_the_past_completes_at_once() -> None:
    clock = FakeClock()
    schema = default_schema()
    hub = Notifications(schema, clock)
    hub.publish(session_start(who(1)))
    clock.advance(5)
    hub.publish(session_start(who(2)))
    clock.advance(5)
    req = parse_request(request_xml(start(T0), stop(T0 + timedelta(seconds=1))), clock(), schema)
    outbox = hub.subscribe(9, req)
    assert event_names(drain(outbox)) == [
        "netconf-session-start",
        "replayComplete",
        "notificationComplete",
    ]
    assert outbox.finished


def test_filters_select_events_subtree_and_xpath() -> None:
    clock = FakeClock()
    schema = default_schema()
    hub = Notifications(schema, clock)
    subtree = request_xml(
        f'<filter xmlns="{NC_NS}" type="subtree"><netconf-session-end xmlns="{NCN_NS}"/></filter>'
    )
    xpath = request_xml(
        f'<filter xmlns="{NC_NS}" xmlns:s="{SOIP}" type="xpath" '
        "select=\"/s:port-event[s:event='error']\"/>"
    )
    by_subtree = hub.subscribe(1, parse_request(subtree, clock(), schema))
    by_xpath = hub.subscribe(2, parse_request(xpath, clock(), schema))
    hub.publish(session_start(who(5)))
    hub.publish(session_end(who(5), "closed"))
    hub.publish(relay_event("port-event", {"serial-port": "p", "event": "opened"}, schema))
    hub.publish(
        relay_event("port-event", {"serial-port": "p", "event": "error", "message": "gone"}, schema)
    )
    assert event_names(drain(by_subtree)) == ["netconf-session-end"]
    got = drain(by_xpath)
    assert event_names(got) == ["port-event"]
    assert got[0][1].findtext(f"{{{SOIP}}}message") == "gone"


def test_full_outbox_ends_the_subscription_and_asks_to_close_the_session() -> None:
    clock = FakeClock()
    schema = default_schema()
    hub = Notifications(schema, clock, outbox_size=3)
    closed: list[int] = []
    hub.on_overflow = closed.append
    stuck = hub.subscribe(1, parse_request(request_xml(), clock(), schema))
    reader = hub.subscribe(2, parse_request(request_xml(), clock(), schema))
    for sid in range(3):
        hub.publish(session_start(who(sid + 10)))
        assert len(drain(reader)) == 1  # the reading subscriber keeps up
    assert closed == []
    hub.publish(session_start(who(20)))  # the 4th does not fit
    assert closed == [1]
    assert hub.overflows == 1
    assert stuck.finished and not hub.subscribed(1)
    assert len(drain(reader)) == 1
    hub.publish(session_start(who(21)))  # counted once, not again
    assert closed == [1]


def test_config_change_names_who_and_what() -> None:
    schema = default_schema()
    old, _ = load_document(
        f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>a</name><device>loop://</device>'
        "</serial-port><serial-port><name>b</name><device>loop://</device></serial-port>"
        "</serial-over-ip>",
        schema,
    )
    new, _ = load_document(
        f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>b</name><device>/dev/x</device>'
        "</serial-port><serial-port><name>c</name><device>loop://</device></serial-port>"
        "</serial-over-ip>",
        schema,
    )
    elem = config_change(who(4), diff(old, new, schema), schema)
    by = elem.find(f"{{{NCN_NS}}}changed-by")
    assert by is not None and by.findtext(f"{{{NCN_NS}}}username") == "admin"
    assert by.findtext(f"{{{NCN_NS}}}session-id") == "4"
    assert elem.findtext(f"{{{NCN_NS}}}datastore") == "running"
    edits = [
        (e.findtext(f"{{{NCN_NS}}}target"), e.findtext(f"{{{NCN_NS}}}operation"))
        for e in elem.iterfind(f"{{{NCN_NS}}}edit")
    ]
    assert edits == [
        ("/soip:serial-over-ip/soip:serial-port[soip:name='a']", "delete"),
        ("/soip:serial-over-ip/soip:serial-port[soip:name='b']", "replace"),
        ("/soip:serial-over-ip/soip:serial-port[soip:name='c']", "create"),
    ]
    assert elem.nsmap["soip"] == SOIP  # the instance-identifiers' prefix is declared
    server = config_change(None, [], schema).find(f"{{{NCN_NS}}}changed-by")
    assert server is not None and server.find(f"{{{NCN_NS}}}server") is not None


def test_relay_events_follow_the_module() -> None:
    schema = default_schema()
    elem = relay_event(
        "session-event",
        {"reason": "bye", "channel": "c", "event": "disconnected", "session-id": "1"},
        schema,
    )
    assert [etree.QName(c).localname for c in elem] == ["channel", "session-id", "event", "reason"]
    with pytest.raises(ValueError):
        relay_event("port-event", {"serial-port": "p", "colour": "red"}, schema)
    with pytest.raises(ValueError):
        session_end(who(), "bored")


def test_streams_state() -> None:
    hub = Notifications(default_schema(), FakeClock())
    assert len(hub.streams()) == 1


def test_events_fit_their_modules_for_yanglint(tmp_path: Path) -> None:
    """Every kind of event we send validates with yanglint -t notif against the
    vendored modules (the config change's instance-identifiers against the
    configuration that holds them, given as the operational datastore)."""
    yanglint = shutil.which("yanglint")
    assert yanglint, "yanglint is required: install the Debian package libyang2-tools"
    schema = default_schema()
    old, _ = load_document(f'<serial-over-ip xmlns="{SOIP}"/>', schema)
    new_xml = (
        f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>a</name><device>loop://</device>'
        "</serial-port></serial-over-ip>"
    )
    new, _ = load_document(new_xml, schema)
    (tmp_path / "running.xml").write_text(new_xml)
    port = {"serial-port": "a", "event": "error", "message": "gone"}
    session = {
        "channel": "c",
        "session-id": "1",
        "event": "role-change",
        "remote-address": "::1",
        "remote-port": "5000",
        "role": "secondary",
        "status": "waiting",
        "reason": "slot",
    }
    events = {
        "config-change": config_change(who(), diff(old, new, schema), schema),
        "config-change-server": config_change(None, [], schema),
        "session-start": session_start(who()),
        "session-end": session_end(who(), "killed", killed_by=2),
        "confirm-start": confirmed_commit("start", who(), 600),
        "confirm-timeout": confirmed_commit("timeout", who(), 600),
        "confirm-complete": confirmed_commit("complete", who()),
        "port-event": relay_event("port-event", port, schema),
        "session-event": relay_event("session-event", session, schema),
        "replay-complete": etree.Element(f"{{{MANAGE_NS}}}replayComplete"),
    }
    modules = [YANG / f"{m}.yang" for m in ("ietf-netconf-notifications", "nc-notifications")]
    for name, elem in events.items():
        path = tmp_path / f"{name}.xml"
        path.write_bytes(etree.tostring(elem))
        result = subprocess.run(
            [yanglint, "-t", "notif", "-p", str(YANG), "-O", str(tmp_path / "running.xml")]
            + [str(m) for m in (YANG / "nf-serial-over-ip.yang", *modules)]
            + [str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (name, result.returncode, result.stderr) == (name, 0, "")


def test_a_long_replay_does_not_count_against_the_outbox() -> None:
    clock = FakeClock()
    schema = default_schema()
    hub = Notifications(schema, clock, log_size=50, outbox_size=5)
    closed: list[int] = []
    hub.on_overflow = closed.append
    for sid in range(40):
        hub.publish(session_start(who(sid + 1)))
    outbox = hub.subscribe(1, parse_request(request_xml(start(T0)), clock(), schema))
    for sid in range(5):  # room for 5 live events behind 40 replayed and replayComplete
        hub.publish(session_end(who(sid + 1), "closed"))
    assert closed == []
    got = event_names(drain(outbox))
    assert got == ["netconf-session-start"] * 40 + ["replayComplete"] + ["netconf-session-end"] * 5


def test_streams_are_built_once_per_replay_log() -> None:
    """/netconf/streams is the same tree at every <get> (its bytes in a
    whole reply are reused while it is), with the log's creation time."""
    clock = FakeClock()
    hub = Notifications(default_schema(), clock)
    first = hub.streams()
    clock.advance(5)
    hub.publish(session_start(who(1)))
    assert hub.streams() is first
    text = etree.tostring(render(first, default_schema())).decode()
    assert format_time(hub.log.created) in text
