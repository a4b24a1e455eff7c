"""Notifications end to end (RFC 5277, RFC 6470): ncclient over real SSH
against a daemon on 127.0.0.1; the relay events come from a real relay
channel on a pyserial loop:// port and real TCP sockets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import PASSWORD, USER, DaemonFactory, Running
from lxml import etree
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele
from rawclient import RawClient, is_ok
from relayhelpers import NC, SOIP, config, connect, free_port, port_xml, read_sock, server_xml

from nf.config.codec import load_document
from nf.northbound.notifications import (
    CAPABILITIES,
    MANAGE_NS,
    NCN_NS,
    NOTIFICATION_NS,
)
from nf.rfc3339 import format_time
from nf.schema import default_schema

NCN = f"{{{NCN_NS}}}"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
WAIT = 5.0


def take(m: Any, timeout: float = WAIT) -> etree._Element:
    """The next notification's event element (the child after eventTime)."""
    n = m.take_notification(block=True, timeout=timeout)
    assert n is not None, "no notification within the time limit"
    root = etree.fromstring(n.notification_xml.encode())
    assert root.tag == f"{{{NOTIFICATION_NS}}}notification"
    assert root[0].tag == f"{{{NOTIFICATION_NS}}}eventTime"
    return root[1]


def take_until(m: Any, tag: str, timeout: float = WAIT) -> etree._Element:
    """Skip events until one with ``tag`` (e.g. the session-start of the session
    that made the change arrives before its config change)."""
    deadline = time.monotonic() + timeout
    while True:
        event = take(m, max(0.1, deadline - time.monotonic()))
        if event.tag == tag:
            return event


def no_more(m: Any, wait: float = 0.3) -> bool:
    return m.take_notification(block=True, timeout=wait) is None


def leaf(elem: etree._Element, path: str) -> str | None:
    return elem.findtext(path.replace("ncn:", NCN))


def test_capabilities_streams_and_schemas(daemon: Running) -> None:
    with daemon.connect() as m:
        for cap in CAPABILITIES:
            assert cap in m.server_capabilities
        assert any("module=ietf-netconf-notifications" in c for c in m.server_capabilities)
        streams = m.get(filter=("subtree", f'<netconf xmlns="{MANAGE_NS}"/>')).data_ele
        stream = streams.find(f".//{{{MANAGE_NS}}}stream")
        assert stream is not None
        assert stream.findtext(f"{{{MANAGE_NS}}}name") == "NETCONF"
        assert stream.findtext(f"{{{MANAGE_NS}}}replaySupport") == "true"
        for module in ("ietf-netconf-notifications", "nc-notifications", "notifications"):
            assert f"module {module}" in m.get_schema(module).data


def test_commit_and_running_edit_send_config_change(daemon: Running) -> None:
    with daemon.connect() as watcher, daemon.connect() as editor:
        watcher.create_subscription()
        editor.edit_config(
            target="candidate",
            config=config("<channel><name>demo</name><keepalive>30</keepalive></channel>"),
        )
        editor.commit()
        change = take_until(watcher, f"{NCN}netconf-config-change")
        assert leaf(change, "ncn:changed-by/ncn:username") == USER
        assert leaf(change, "ncn:changed-by/ncn:session-id") == editor.session_id
        assert leaf(change, "ncn:changed-by/ncn:source-host") == "127.0.0.1"
        assert leaf(change, "ncn:datastore") == "running"
        edits = change.findall(f"{NCN}edit")
        assert len(edits) == 1
        target = edits[0].findtext(f"{NCN}target") or ""
        assert target.endswith(":channel[soip:name='demo']")
        assert edits[0].findtext(f"{NCN}operation") == "replace"
        assert change.nsmap["soip"] == SOIP  # the target's prefix is declared

        # :interleave: the subscribed session still runs rpcs
        assert "<keepalive>30</keepalive>" in watcher.get_config("running").data_xml
        # edit-config on running, and copy-config to running, notify too
        editor.edit_config(
            target="running",
            config=config(
                f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>demo</name></channel>'
            ),
        )
        change = take_until(watcher, f"{NCN}netconf-config-change")
        assert [e.findtext(f"{NCN}operation") for e in change.findall(f"{NCN}edit")] == ["delete"]
        editor.edit_config(target="candidate", config=config(port_xml("p2", "loop://")))
        editor.copy_config(source="candidate", target="running")
        change = take_until(watcher, f"{NCN}netconf-config-change")
        assert [e.findtext(f"{NCN}operation") for e in change.findall(f"{NCN}edit")][-1] == "create"
        # an edit that changes nothing, and a refused one, send nothing
        with pytest.raises(RPCError):
            editor.edit_config(target="running", config=config("<channel><name>x</name></channel>"))
        assert no_more(watcher)
        state = watcher.get(
            filter=(
                "subtree",
                f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>',
            )
        ).data_ele
        counts = {
            s.findtext("{*}session-id"): int(s.findtext("{*}out-notifications") or 0)
            for s in state.iter("{*}session")
        }
        assert counts[watcher.session_id] >= 3
        assert counts[editor.session_id] == 0


def test_startup_changes_send_config_change(daemon: Running) -> None:
    with daemon.connect() as m:
        m.create_subscription()
        m.copy_config(source="running", target="startup")
        change = take_until(m, f"{NCN}netconf-config-change")
        assert leaf(change, "ncn:datastore") == "startup"
        assert leaf(change, "ncn:changed-by/ncn:session-id") == m.session_id
        ops = {e.findtext(f"{NCN}operation") for e in change.findall(f"{NCN}edit")}
        assert ops == {"create"}
        m.delete_config(target="startup")
        change = take_until(m, f"{NCN}netconf-config-change")
        assert leaf(change, "ncn:datastore") == "startup"
        ops = {e.findtext(f"{NCN}operation") for e in change.findall(f"{NCN}edit")}
        assert ops == {"delete"}


def test_session_start_and_end_with_reasons(daemon: Running) -> None:
    with daemon.connect() as watcher:
        watcher.create_subscription()
        with daemon.connect() as other:
            sid = other.session_id
        start = take(watcher)
        assert start.tag == f"{NCN}netconf-session-start"
        assert (leaf(start, "ncn:username"), leaf(start, "ncn:session-id")) == (USER, sid)
        assert leaf(start, "ncn:source-host") == "127.0.0.1"
        end = take(watcher)
        assert end.tag == f"{NCN}netconf-session-end"
        assert leaf(end, "ncn:session-id") == sid
        assert leaf(end, "ncn:termination-reason") == "closed"
        assert leaf(end, "ncn:killed-by") is None

        victim = daemon.connect()
        take_until(watcher, f"{NCN}netconf-session-start")
        watcher.kill_session(victim.session_id)
        end = take_until(watcher, f"{NCN}netconf-session-end")
        assert leaf(end, "ncn:session-id") == victim.session_id
        assert leaf(end, "ncn:termination-reason") == "killed"
        assert leaf(end, "ncn:killed-by") == watcher.session_id

        with RawClient(daemon.host, daemon.port, USER, PASSWORD).connect() as raw:
            raw.read_hello()
            raw.send(b"<not-a-hello/>]]>]]>")
            raw.wait_closed()
        end = take_until(watcher, f"{NCN}netconf-session-end")
        assert leaf(end, "ncn:termination-reason") == "bad-hello"


def test_filters_subtree_and_xpath(daemon: Running) -> None:
    ends_only = ("subtree", f'<netconf-session-end xmlns="{NCN_NS}"/>')
    by_xpath = (
        "xpath",
        ({"n": NCN_NS}, "/n:netconf-session-start | /n:netconf-config-change"),
    )
    with daemon.connect() as subtree, daemon.connect() as xpath:
        subtree.create_subscription(filter=ends_only)
        xpath.create_subscription(filter=by_xpath)
        with daemon.connect():
            pass
        assert take(subtree).tag == f"{NCN}netconf-session-end"
        assert take(xpath).tag == f"{NCN}netconf-session-start"
        assert no_more(subtree) and no_more(xpath)


def test_replay_from_start_time_then_live(daemon: Running) -> None:
    before = format_time(datetime.now(UTC) - timedelta(seconds=1))
    with daemon.connect() as m:
        first = m.session_id
    with daemon.connect() as m:
        m.create_subscription(start_time=before)
        replayed = []
        while (event := take(m)).tag != f"{{{MANAGE_NS}}}replayComplete":
            replayed.append((etree.QName(event).localname, leaf(event, "ncn:session-id")))
        # the log has what happened before the subscription, in order,
        # from the boot configuration (changed by the server itself) on
        assert replayed[:3] == [
            ("netconf-config-change", None),
            ("netconf-session-start", first),
            ("netconf-session-end", first),
        ]
        assert ("netconf-session-start", m.session_id) in replayed
        with daemon.connect() as later:
            pass
        assert leaf(take(m), "ncn:session-id") == later.session_id  # then live events


def test_stop_time_ends_with_notification_complete(daemon: Running) -> None:
    with daemon.connect() as m:
        now = datetime.now(UTC)
        m.create_subscription(
            start_time=format_time(now - timedelta(seconds=5)),
            stop_time=format_time(now + timedelta(seconds=1)),
        )
        tags = []
        while (event := take(m, timeout=4)).tag != f"{{{MANAGE_NS}}}notificationComplete":
            tags.append(etree.QName(event).localname)
        assert "replayComplete" in tags
        # the subscription is over: the session may subscribe again
        m.create_subscription()
        with daemon.connect():
            pass
        assert take(m).tag == f"{NCN}netconf-session-start"


def test_subscription_errors(daemon: Running) -> None:
    with daemon.connect() as m:

        def error_of(body: str) -> tuple[str, str | None]:
            with pytest.raises(RPCError) as info:
                m.dispatch(
                    to_ele(
                        f'<create-subscription xmlns="{NOTIFICATION_NS}">{body}</create-'
                        "subscription>"
                    )
                )
            return info.value.tag, info.value.info and etree.fromstring(
                info.value.info.encode()
            ).findtext("{*}bad-element")

        future = format_time(datetime.now(UTC) + timedelta(hours=1))
        past = format_time(datetime.now(UTC) - timedelta(hours=1))
        assert error_of("<stream>SYSLOG</stream>") == ("invalid-value", "stream")
        assert error_of(f"<stopTime>{past}</stopTime>") == ("missing-element", "startTime")
        assert error_of(f"<startTime>{future}</startTime>") == ("bad-element", "startTime")
        y2k = format_time(datetime(2000, 1, 1, tzinfo=UTC))
        assert error_of(f"<startTime>{past}</startTime><stopTime>{y2k}</stopTime>") == (
            "bad-element",
            "stopTime",
        )
        m.create_subscription(stream_name="NETCONF")
        assert error_of("") == ("in-use", "create-subscription")


@pytest.fixture
def relay(make_daemon: DaemonFactory) -> Running:
    empty, _ = load_document(f'<serial-over-ip xmlns="{SOIP}"/>', default_schema())
    return make_daemon(relay=True, initial=empty)


def test_port_and_session_events_from_the_relay(relay: Running) -> None:
    with relay.connect() as m:
        m.create_subscription(
            filter=[f'<port-event xmlns="{SOIP}"/>', f'<session-event xmlns="{SOIP}"/>']
        )
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("l", "loop://") + server_xml("c", "l", tcp))
        )
        opened = take(m)
        assert opened.tag == f"{{{SOIP}}}port-event"
        assert opened.findtext(f"{{{SOIP}}}serial-port") == "l"
        assert opened.findtext(f"{{{SOIP}}}event") == "opened"
        client = connect(tcp)
        connected = take(m)
        assert connected.tag == f"{{{SOIP}}}session-event"
        assert connected.findtext(f"{{{SOIP}}}channel") == "c"
        assert connected.findtext(f"{{{SOIP}}}event") == "connected"
        assert connected.findtext(f"{{{SOIP}}}remote-address") == "127.0.0.1"
        assert connected.findtext(f"{{{SOIP}}}remote-port") == str(client.getsockname()[1])
        assert connected.findtext(f"{{{SOIP}}}role") == "primary"
        client.close()
        gone = take(m)
        assert gone.findtext(f"{{{SOIP}}}event") == "disconnected"
        assert gone.findtext(f"{{{SOIP}}}session-id") == connected.findtext(f"{{{SOIP}}}session-id")


def test_a_subscriber_that_never_reads_blocks_nothing_and_is_closed(relay: Running) -> None:
    """A client subscribes and then never reads its SSH channel while events
    pour in.  Publishing never waits for it, the relay keeps echoing, another
    session keeps answering, and once its outbox is full its session is
    closed (the documented policy), which a later replay shows."""
    start = format_time(datetime.now(UTC))
    hub = relay.daemon.notifications
    assert hub is not None
    runtime: Any = relay.daemon.runtime
    with relay.connect() as m, relay.connect() as watcher:
        watcher.create_subscription(filter=("subtree", f'<netconf-session-end xmlns="{NCN_NS}"/>'))
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("l", "loop://") + server_xml("c", "l", tcp))
        )
        echo = connect(tcp)
        stuck = RawClient(relay.host, relay.port, USER, PASSWORD).connect()
        stuck.hello()
        assert is_ok(stuck.rpc(f'<create-subscription xmlns="{NOTIFICATION_NS}"/>'))
        stuck_id = str(stuck.session_id)
        # from here on the stuck client reads nothing

        def burst() -> None:
            for i in range(500):
                runtime.emit(
                    "port-event",
                    {"serial-port": "l", "event": "error", "message": f"flood {i} " + "x" * 200},
                )

        started = time.monotonic()
        worst = 0.0
        for _round in range(60):  # up to 30000 events, ~13 MB: past any SSH window
            t0 = time.monotonic()
            relay.portal.call(_sync, burst)
            worst = max(worst, time.monotonic() - t0)
            # the relay relays and another session answers, between bursts
            t0 = time.monotonic()
            echo.sendall(b"ping")
            assert read_sock(echo, 4, timeout=2) == b"ping"
            assert "<name>c</name>" in m.get_config("running").data_xml
            assert time.monotonic() - t0 < 2
            if hub.overflows:
                break
        assert hub.overflows == 1, "the stuck subscriber was never cut off"
        assert worst < 2.0, f"a burst of 500 events took {worst:.2f} s"
        assert time.monotonic() - started < 30
        echo.close()
        deadline = time.monotonic() + WAIT
        while stuck_id in [str(i) for i in relay.daemon.server.session_ids()]:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the stuck session was not closed"
            time.sleep(0.05)
        stuck.close()
        # a subscriber that reads hears of it at once
        end = take(watcher)
        assert leaf(end, "ncn:session-id") == stuck_id
        assert leaf(end, "ncn:termination-reason") == "other"
        assert relay.daemon.server.stats.dropped_sessions == 1  # type: ignore[union-attr]
    # the log tells a resubscribing client what happened to the stuck session
    with relay.connect() as m:
        m.create_subscription(
            start_time=start, filter=("subtree", f'<netconf-session-end xmlns="{NCN_NS}"/>')
        )
        end = take(m)
        while leaf(end, "ncn:session-id") != stuck_id:
            end = take(m)
        assert leaf(end, "ncn:termination-reason") == "other"


def test_a_reading_subscriber_survives_a_burst(daemon: Running) -> None:
    """A burst smaller than the outbox reaches a reading subscriber whole and
    in order, however fast it is published (a big commit's port-events)."""
    runtime: Any = daemon.daemon.runtime
    count = 2000

    def burst() -> None:
        for i in range(count):
            runtime.emit("port-event", {"serial-port": f"p{i}", "event": "opened"})

    with daemon.connect() as m:
        m.create_subscription(filter=("subtree", f'<port-event xmlns="{SOIP}"/>'))
        daemon.portal.call(_sync, burst)
        got = [take(m).findtext(f"{{{SOIP}}}serial-port") for _ in range(count)]
        assert got == [f"p{i}" for i in range(count)]
        assert daemon.daemon.notifications is not None
        assert daemon.daemon.notifications.overflows == 0


async def _sync(func: Any) -> None:
    """Run ``func`` on the event loop, as a channel emitting events would."""
    func()


def test_confirmed_commit_events(daemon: Running) -> None:
    """netconf-confirmed-commit (RFC 6470 §2.4): start and extend carry the
    timeout, a confirming commit completes, cancel-commit and the owner's
    end cancel (naming that session), the timer's rollback is a timeout with
    no session and a netconf-config-change by the server."""
    ncc = f"{NCN}netconf-confirmed-commit"

    def stage(m: Any, name: str) -> None:
        m.edit_config(target="candidate", config=config(port_xml(name, "loop://")))

    with daemon.connect() as watcher:
        watcher.create_subscription()
        with daemon.connect() as owner:
            sid = owner.session_id
            stage(owner, "a")
            owner.commit(confirmed=True, timeout="60")
            event = take_until(watcher, ncc)
            assert (leaf(event, "ncn:confirm-event"), leaf(event, "ncn:timeout")) == ("start", "60")
            assert (leaf(event, "ncn:session-id"), leaf(event, "ncn:username")) == (sid, USER)
            stage(owner, "b")
            owner.commit(confirmed=True, timeout="30")
            event = take_until(watcher, ncc)
            assert leaf(event, "ncn:confirm-event") == "extend"
            assert leaf(event, "ncn:timeout") == "30"
            owner.commit()
            event = take_until(watcher, ncc)
            assert leaf(event, "ncn:confirm-event") == "complete"
            assert leaf(event, "ncn:timeout") is None

            stage(owner, "c")
            owner.commit(confirmed=True, timeout="60")
            assert leaf(take_until(watcher, ncc), "ncn:confirm-event") == "start"
            owner.cancel_commit()
            event = take_until(watcher, ncc)
            assert (leaf(event, "ncn:confirm-event"), leaf(event, "ncn:session-id")) == (
                "cancel",
                sid,
            )

            stage(owner, "d")
            owner.commit(confirmed=True, timeout="60")
            assert leaf(take_until(watcher, ncc), "ncn:confirm-event") == "start"
        # the owner's session ended: its confirmed commit is cancelled
        event = take_until(watcher, ncc)
        assert (leaf(event, "ncn:confirm-event"), leaf(event, "ncn:session-id")) == ("cancel", sid)
        assert leaf(event, "ncn:username") == USER

        with daemon.connect() as owner:
            stage(owner, "e")
            owner.commit(confirmed=True, timeout="1")
            assert leaf(take_until(watcher, ncc), "ncn:confirm-event") == "start"
            change = take_until(watcher, f"{NCN}netconf-config-change", timeout=WAIT + 1)
            assert change.find(f"{NCN}changed-by/{NCN}server") is not None, "the rollback"
            assert leaf(change, "ncn:edit/ncn:operation") == "delete"
            event = take_until(watcher, ncc)
            assert leaf(event, "ncn:confirm-event") == "timeout"
            assert leaf(event, "ncn:session-id") is None
