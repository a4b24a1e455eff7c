"""Notifications.publish serialises an event (and copies it for filters)
only when a subscriber or a replay needs it; the bytes are those the eager
path made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from nf.northbound import notifications
from nf.northbound.notifications import NOTIFICATION_NS, Notifications, Request, relay_event
from nf.rfc3339 import format_time
from nf.schema import default_schema

SCHEMA = default_schema()
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _eager(content: etree._Element, when: datetime) -> tuple[bytes, bytes]:
    """The message and the filter copy as make_event made them before."""
    envelope = etree.Element(f"{{{NOTIFICATION_NS}}}notification", nsmap={None: NOTIFICATION_NS})  # type: ignore[dict-item]
    etree.SubElement(envelope, f"{{{NOTIFICATION_NS}}}eventTime").text = format_time(when)
    envelope.append(content)
    message = etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)
    holder = etree.Element("data")
    holder.append(etree.fromstring(etree.tostring(content)))
    return message, etree.tostring(holder)


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["opened", "closed", "error", "modem-change"]),
    texts,
    st.integers(0, 10**6),
)
def test_the_bytes_are_those_of_the_eager_path(event: str, port: str, micros: int) -> None:
    when = T0 + timedelta(microseconds=micros)
    payload = {"serial-port": port, "event": event}
    expected = _eager(relay_event("port-event", payload, SCHEMA), when)
    made = notifications.make_event(relay_event("port-event", payload, SCHEMA), when)
    assert (made.message, etree.tostring(made.holder)) == expected
    assert made.message is made.message  # serialised once


def test_nothing_is_serialised_without_a_subscriber(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Notifications(SCHEMA, clock=lambda: T0)
    calls = 0
    real = etree.tostring

    def counting(*args: object, **kwargs: object) -> bytes:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type, no-any-return]

    monkeypatch.setattr(etree, "tostring", counting)
    for i in range(100):
        hub.publish(relay_event("port-event", {"serial-port": f"p{i}", "event": "opened"}, SCHEMA))
    assert calls == 0
    hub.subscribe(1, Request(start=T0))  # replays the 100 events
    assert calls == 101  # and <replayComplete>
    hub.publish(relay_event("port-event", {"serial-port": "q", "event": "opened"}, SCHEMA))
    assert calls == 102  # a subscription without a filter needs no copy


def test_every_kind_of_event_has_the_bytes_of_the_eager_path() -> None:
    """The envelope written around the content's bytes is the one lxml
    wrote with the content in it, whatever namespaces the content declares
    (a config change declares the prefixes of its targets)."""
    from nf.config import load_document
    from nf.config.diff import diff
    from nf.config.tree import Node

    tree, _ = load_document(
        b'<serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
        b"<serial-port><name>p&amp;1</name><device>loop://</device></serial-port>"
        b"</serial-over-ip>",
        SCHEMA,
    )
    who = notifications.Who("admin", 7, "::1")
    contents = [
        lambda: notifications.config_change(who, diff(Node(), tree, SCHEMA), SCHEMA),
        lambda: notifications.config_change(None, diff(tree, Node(), SCHEMA), SCHEMA, "startup"),
        lambda: notifications.session_start(who),
        lambda: notifications.session_end(who, "killed", 3),
        lambda: notifications.confirmed_commit("start", who, 600),
        lambda: notifications._marker("replayComplete", T0).content,
        lambda: relay_event("port-event", {"serial-port": "é<&>", "event": "error"}, SCHEMA),
    ]
    for make in contents:
        expected = _eager(make(), T0)
        made = notifications.make_event(make(), T0)
        assert (made.message, etree.tostring(made.holder)) == expected
