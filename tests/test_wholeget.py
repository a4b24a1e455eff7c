"""Whole <get>/<get-config> replies from bytes kept per entry (nf/northbound/wholeget.py).

The contract: the bytes are, up to namespace declarations (compared in
canonical XML), what the general path renders, for configuration, state,
sessions and other modules' data; and a reply renders only the entries
whose configuration or state changed since the one before.
"""

from __future__ import annotations

from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from relayhelpers import config, port_xml, server_xml

from nf.config import load_document
from nf.config.codec import render
from nf.config.model import from_tree
from nf.config.tree import Node, merge
from nf.northbound.operational import processes_tree, state_tree
from nf.northbound.wholeget import WholeGet, splice
from nf.runtime.transaction import ChannelState, PortState, SessionState, Snapshot
from nf.schema import default_schema

SCHEMA = default_schema()
NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CONNECTED = "2026-01-01T00:00:00Z"
NACM_CONFIG = (
    f'<nacm xmlns="{NACM}"><enable-nacm>true</enable-nacm><groups><group><name>ops</name>'
    "<user-name>bob</user-name></group></groups></nacm>"
)


def tree_of(n: int, nacm: bool = False) -> Node:
    body = "".join(port_xml(f"p{i}", "loop://") for i in range(n)) + "".join(
        server_xml(f"c{i}", f"p{i}", 7000 + i) for i in range(n)
    )
    text = config(body)
    if nacm:
        text = text.replace("</config>", NACM_CONFIG + "</config>")
    tree, errors = load_document(text, SCHEMA)
    assert errors == []
    return tree


T = TypeVar("T")
_SAME: dict[object, object] = {}


def _same(state: T) -> T:
    """The first object equal to ``state``: as the runtime (and the control
    plane's StateCache) hands back the very object of an unchanged state."""
    return _SAME.setdefault(state, state)  # type: ignore[return-value]


def snapshot(n: int, busy: dict[int, int]) -> Snapshot:
    """Channels c0..c(n-1) running, except c1; ``busy``: channel -> bytes, with a session."""
    channels = []
    ports = []
    for i in range(n):
        if i == 1:
            continue  # configured, not running: "down"
        sessions = (
            (SessionState(3, "127.0.0.1", 5555, "primary", "active", CONNECTED, 1, 2),)
            if i in busy
            else ()
        )
        counters = (("serial-to-net-bytes", busy.get(i, 0)),)
        channels.append(_same(ChannelState(f"c{i}", "listening", None, sessions, counters)))
        ports.append(_same(PortState(f"p{i}", "up", None, busy.get(i, 0), 0)))
    return Snapshot(tuple(channels), tuple(ports))


def rest_state() -> Node:
    """State outside serial-over-ip, as the daemon adds to a <get>."""
    return processes_tree(SCHEMA, 2, 0, 1)


def slow(tree: Node, snap: Snapshot | None, rest: Node | None) -> bytes:
    """The general path of Handlers._data for the same request."""
    model = from_tree(tree, SCHEMA)
    state = state_tree(snap, model, SCHEMA) if snap is not None else None
    if rest is not None:
        state = merge(state or Node(), rest)
    whole = merge(tree, state) if state is not None else tree
    return etree.tostring(render(whole, SCHEMA), method="c14n")


def fast(whole: WholeGet, tree: Node, snap: Snapshot | None, rest: Node | None) -> bytes:
    data = whole.data(tree, rest, snap, from_tree(tree, SCHEMA))
    assert data is not None
    return etree.tostring(etree.fromstring(b"".join(data)), method="c14n")


def test_get_and_get_config_are_the_general_paths_bytes() -> None:
    whole = WholeGet(SCHEMA)
    for tree in (Node(), tree_of(1), tree_of(5, nacm=True)):
        snap = snapshot(5, {2: 40, 4: 7}) if len(tree) else Snapshot()
        assert fast(whole, tree, snap, rest_state()) == slow(tree, snap, rest_state())
        assert fast(whole, tree, None, None) == slow(tree, None, None)  # get-config


def test_only_what_changed_is_rendered_again() -> None:
    whole = WholeGet(SCHEMA)
    tree = tree_of(50)
    fast(whole, tree, snapshot(50, {}), None)
    assert whole.rendered_states == 100  # 50 ports and 50 channels
    fast(whole, tree, snapshot(50, {}), None)
    assert whole.rendered_states == 100  # nothing changed: nothing rendered
    got = fast(whole, tree, snapshot(50, {7: 99}), None)
    assert whole.rendered_states == 102  # channel c7 and its port
    assert got == slow(tree, snapshot(50, {7: 99}), None)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.integers(0, 5), st.integers(0, 3), max_size=3), max_size=4))
def test_a_sequence_of_gets_matches_the_general_path(polls: list[dict[int, int]]) -> None:
    whole = WholeGet(SCHEMA)
    tree = tree_of(6)
    for busy in polls:
        assert fast(whole, tree, snapshot(6, busy), None) == slow(tree, snapshot(6, busy), None)


def test_the_body_is_spliced_into_the_reply() -> None:
    head = b'<?xml version="1.0"?>\n<rpc-reply xmlns="x" message-id="1"/>'
    assert b"".join(splice(head, [b"<data>", b"</data>"])) == (
        b'<?xml version="1.0"?>\n<rpc-reply xmlns="x" message-id="1"><data></data></rpc-reply>'
    )
    assert b"".join(splice(b"<rpc-reply>\n</rpc-reply>", [b"<d/>"])) == (
        b"<rpc-reply>\n<d/></rpc-reply>"
    )


def test_a_snapshot_without_changes_makes_no_piece_again() -> None:
    """Guard of the fast path: a <get> that finds every state object as
    it was remakes no entry's piece of the reply (StateCache hands back the
    very snapshot when nothing changed; a new snapshot of the same objects
    is compared in C)."""
    whole = WholeGet(SCHEMA)
    tree = tree_of(50)
    snap = snapshot(50, {})
    fast(whole, tree, snap, None)
    assert whole.pieces_made == 100
    fast(whole, tree, snap, None)
    fast(whole, tree, snapshot(50, {}), None)
    assert whole.pieces_made == 100
    fast(whole, tree, snapshot(50, {7: 99}), None)
    assert whole.pieces_made == 102  # channel c7 and its port


@pytest.mark.parametrize("with_state", [True, False], ids=["get", "get-config"])
def test_entries_do_not_declare_the_namespace_again(with_state: bool) -> None:
    """serial-over-ip declares its namespace once; each of its entries
    repeating it made 8% of a 1000-channel <get> and a third of a
    get-config (encrypted and sent)."""
    whole = WholeGet(SCHEMA)
    tree = tree_of(20)
    snap = snapshot(20, {}) if with_state else None
    data = whole.data(tree, None, snap, from_tree(tree, SCHEMA))
    assert data is not None
    assert b"".join(data).count(f'xmlns="{NS}"'.encode()) == 1
    assert fast(whole, tree, snap, None) == slow(tree, snap, None)


def test_other_top_level_nodes_are_rendered_again_only_when_they_changed() -> None:
    """Outside serial-over-ip (NACM configuration, yang-library, the
    modules' state) a node equal to the one of the last reply is not
    rendered again; one that changed is, and the bytes stay the general
    path's."""
    whole = WholeGet(SCHEMA)
    tree = tree_of(2, nacm=True)
    snap = snapshot(2, {})
    assert fast(whole, tree, snap, rest_state()) == slow(tree, snap, rest_state())
    assert whole.others_rendered == 2  # nacm and processes
    assert fast(whole, tree, snap, rest_state()) == slow(tree, snap, rest_state())
    assert whole.others_rendered == 2
    changed = processes_tree(SCHEMA, 3, 0, 1)
    assert fast(whole, tree, snap, changed) == slow(tree, snap, changed)
    assert whole.others_rendered == 3


def test_the_same_configuration_is_not_walked_again() -> None:
    """A get-config of the running tree of the reply before takes its
    lists' bytes as kept, without walking the configuration."""
    whole = WholeGet(SCHEMA)
    tree, other = tree_of(5), tree_of(6)
    assert fast(whole, tree, None, None) == slow(tree, None, None)
    assert fast(whole, tree, None, None) == slow(tree, None, None)
    assert whole.configurations_rendered == 1
    assert fast(whole, other, None, None) == slow(other, None, None)
    assert whole.configurations_rendered == 2


def test_the_same_configuration_is_the_reply_kept() -> None:
    """A get-config of the very tree of the get-config before is the reply
    kept for it, made without looking at the tree again; a <get> between
    two, a changed tree, or a caller that changes the list it was handed
    do not alter what the next one is."""
    whole = WholeGet(SCHEMA)
    tree, other = tree_of(3, nacm=True), tree_of(4)
    made: list[Node] = []
    make = whole._data

    def counted(t: Node, *args: object) -> list[bytes] | None:
        made.append(t)
        return make(t, *args)  # type: ignore[arg-type]

    whole._data = counted  # type: ignore[method-assign]
    first = whole.data(tree, None, None, from_tree(tree, SCHEMA))
    assert first is not None
    first.append(b"<changed-by-the-caller/>")
    assert fast(whole, tree, None, None) == slow(tree, None, None)
    assert made == [tree]
    snap = snapshot(3, {1: 5})
    assert fast(whole, tree, snap, rest_state()) == slow(tree, snap, rest_state())
    assert fast(whole, tree, None, None) == slow(tree, None, None)
    assert fast(whole, other, None, None) == slow(other, None, None)
    assert fast(whole, tree, None, None) == slow(tree, None, None)
    assert made == [tree, tree, other, tree]
