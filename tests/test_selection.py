"""Filters that name entries by key read only those entries (nf/northbound/selection.py).

The contract: ``preselect`` answers a superset of the entries a filter
selects, or None; a filter applied to the data narrowed to that selection
(configuration and state) gives exactly what it gives on all the data.
Checked over every filter shape here, recognised or not, and as a
work count: the state of how many channels a filtered <get> reads.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from relayhelpers import config, port_xml, server_xml

from nf.config import load_document
from nf.config.codec import render
from nf.config.model import from_tree
from nf.config.tree import Node, merge
from nf.northbound.filters import apply_filter
from nf.northbound.operational import state_tree
from nf.northbound.selection import Selection, preselect
from nf.runtime.transaction import ChannelState, PortState, SessionState, Snapshot
from nf.schema import default_schema

SCHEMA = default_schema()
NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NAMES = [f"c{i}" for i in range(6)]

TREE, _ERRORS = load_document(
    config(
        "".join(port_xml(f"p{i}", "loop://") for i in range(6))
        + "".join(server_xml(name, f"p{i}", 7000 + i) for i, name in enumerate(NAMES))
    ),
    SCHEMA,
)
MODEL = from_tree(TREE, SCHEMA)
CONNECTED = "2026-01-01T00:00:00Z"


def snapshot(channels: frozenset[str] | None = None) -> Snapshot:
    """State for the running channels asked for, as a data plane gives it."""
    names = [n for n in NAMES if channels is None or n in channels]
    return Snapshot(
        tuple(
            ChannelState(
                n,
                "listening",
                None,
                (
                    SessionState(
                        1, "127.0.0.1", 5000, "primary", "active", "2026-01-01T00:00:00Z", 1, 2
                    ),
                ),
                (("serial-to-net-bytes", 40 + int(n[1:])),),
            )
            for n in names
        ),
        tuple(PortState(f"p{n[1:]}", "up", None, 3, 4) for n in names),
    )


def filter_elem(text: str) -> etree._Element:
    return etree.fromstring(f'<filter xmlns="{NC}" xmlns:s="{NS}" {text}')


def subtree(body: str) -> etree._Element:
    return filter_elem(f'type="subtree">{body}</filter>')


def xpath(select: str) -> etree._Element:
    flt = filter_elem('type="xpath"/>')
    flt.set("select", select)
    return flt


def result(flt: etree._Element, selection: Selection | None) -> bytes:
    tree = TREE if selection is None else selection.restrict(TREE, SCHEMA)
    channels = None if selection is None else selection.channels_of(MODEL)
    state = state_tree(snapshot(channels), MODEL, SCHEMA, selection)
    data = render(merge(tree, state), SCHEMA)
    return etree.tostring(apply_filter(data, flt, SCHEMA), method="c14n")


def top(body: str) -> str:
    return f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>'


RECOGNISED = [
    (subtree(top("<channel><name>c1</name><state/></channel>")), set(), {"c1"}),
    (subtree(top("<channel><name> c2 </name></channel>")), set(), {"c2"}),
    (
        subtree(top("<channel><name>c1</name></channel><channel><name>c4</name></channel>")),
        set(),
        {"c1", "c4"},
    ),
    (subtree(top("<serial-port><name>p3</name><state/></serial-port>")), {"p3"}, set()),
    (subtree(top("<channel><name>nope</name></channel>")), set(), {"nope"}),
    (
        subtree(top("<channel><name>c1</name></channel>") + '<x xmlns="urn:other"/>'),
        set(),
        {"c1"},
    ),
    (xpath("/s:serial-over-ip/s:channel[s:name='c3']/s:state"), set(), {"c3"}),
    (xpath('/s:serial-over-ip/s:channel[ s:name = "c3" ]'), set(), {"c3"}),
    (xpath("/s:serial-over-ip/s:serial-port[s:name='p2']/s:state/s:rx-bytes"), {"p2"}, set()),
]

UNRECOGNISED = [
    subtree(top("")),
    subtree(top("<channel/>")),
    subtree(top("<channel><state/></channel>")),
    subtree(top("<channel><name>c1</name></channel><serial-port/>")),
    xpath("/s:serial-over-ip/s:channel"),
    xpath("/s:serial-over-ip/s:channel[s:mode='server']"),
    xpath("/s:serial-over-ip/s:channel[s:name='c1']/.."),
    xpath("/s:serial-over-ip/s:channel[s:name='c1'] | /s:serial-over-ip/s:channel[s:name='c2']"),
    xpath("//s:channel[s:name='c1']"),
    xpath("/s:serial-over-ip/s:channel[s:name='c1']//s:rx-bytes"),
    xpath("/s:serial-over-ip/s:channel[name='c1']"),  # unprefixed: no namespace
    xpath("/s:serial-over-ip/s:channel[s:name='c1'][1]"),
    xpath("/s:serial-over-ip/s:channel[s:name=/s:serial-over-ip/s:channel[1]/s:name]"),
    filter_elem('type="xpath"/>'),
]


@pytest.mark.parametrize(("flt", "ports", "channels"), RECOGNISED)
def test_a_filter_naming_entries_by_key_selects_them_and_the_reply_is_the_same(
    flt: etree._Element, ports: set[str], channels: set[str]
) -> None:
    selection = preselect(flt, SCHEMA)
    assert selection is not None
    assert (selection.serial_ports, selection.channels) == (ports, channels)
    other = any(etree.QName(n).localname != "serial-over-ip" for n in flt)
    assert selection.only_ours == (not other)
    assert result(flt, selection) == result(flt, None)


@pytest.mark.parametrize("flt", UNRECOGNISED)
def test_any_other_filter_reads_everything(flt: etree._Element) -> None:
    assert preselect(flt, SCHEMA) is None


def test_a_selected_serial_port_reads_the_state_of_the_channel_on_it() -> None:
    selection = Selection(frozenset({"p3"}), frozenset({"c1"}))
    assert selection.channels_of(MODEL) == {"c1", "c3"}
    state = state_tree(snapshot(selection.channels_of(MODEL)), MODEL, SCHEMA, selection)
    data = render(state, SCHEMA)
    assert data.xpath("//s:serial-port/s:name/text()", namespaces={"s": NS}) == ["p3"]
    assert data.xpath("//s:channel/s:name/text()", namespaces={"s": NS}) == ["c1"]


def test_entries_keep_the_lists_order() -> None:
    selection = Selection(frozenset(), frozenset({"c4", "c0", "c2"}))
    restricted = selection.restrict(TREE, SCHEMA)
    top_node = restricted.get((NS, "serial-over-ip"))
    assert isinstance(top_node, Node)
    channels = top_node.get((NS, "channel"))
    assert [k for k, _ in channels.items()] == [("c0",), ("c2",), ("c4",)]  # type: ignore[union-attr]
    assert top_node.get((NS, "serial-port")) is None


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(["subtree", "xpath"]),
    lst=st.sampled_from(["channel", "serial-port"]),
    keys=st.lists(st.sampled_from(["c0", "c3", "p1", "p5", "zz"]), min_size=1, max_size=3),
    tail=st.sampled_from(["", "state", "state/counters", "listen/port", "device", "name"]),
)
def test_narrowed_and_whole_give_the_same_reply(
    kind: str, lst: str, keys: list[str], tail: str
) -> None:
    """Whatever a key filter asks for, present or not, the narrowed reply is the whole one."""
    if kind == "subtree":
        inner = ""
        for part in reversed(tail.split("/") if tail else []):
            inner = f"<{part}>{inner}</{part}>" if inner else f"<{part}/>"
        body = "".join(f"<{lst}><name>{k}</name>{inner}</{lst}>" for k in keys)
        flt = subtree(top(body))
    else:
        steps = "".join(f"/s:{p}" for p in tail.split("/")) if tail else ""
        flt = xpath(f"/s:serial-over-ip/s:{lst}[s:name='{keys[0]}']{steps}")
    selection = preselect(flt, SCHEMA)
    assert selection is not None
    assert result(flt, selection) == result(flt, None)
