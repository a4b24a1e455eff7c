"""diff(old, new): changed list entries in the order the runtime applies them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nf.config.codec import load_document, parse_xml
from nf.config.diff import Change, diff
from nf.config.edit import edit, edit_partial
from nf.config.tree import ListNode, Node
from nf.schema import SchemaIndex, default_schema, load

NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SCHEMA = default_schema()
TOP = (NS, "serial-over-ip")


def port(name: str, extra: str = "") -> str:
    return f"<serial-port><name>{name}</name><device>/dev/{name}</device>{extra}</serial-port>"


def channel(name: str, port_name: str, listen: int, extra: str = "") -> str:
    return (
        f"<channel><name>{name}</name><serial-port>{port_name}</serial-port><mode>server</mode>"
        f"<listen><port>{listen}</port></listen>{extra}</channel>"
    )


def tree(*parts: str, schema: SchemaIndex = SCHEMA, ns: str = NS) -> Node:
    body = "".join(parts)
    result, errors = load_document(
        f'<config xmlns="{NC}"><serial-over-ip xmlns="{ns}">{body}</serial-over-ip></config>'
        if parts
        else f'<config xmlns="{NC}"/>',
        schema,
    )
    assert errors == []
    return result


BASE = tree(port("p1"), port("p2"), channel("c1", "p1", 4001), channel("c2", "p2", 4002))


def summary(changes: list[Change]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.op, c.kind, c.key) for c in changes]


def entries(tree_: Node, kind: str) -> ListNode:
    top = tree_.get(TOP)
    assert isinstance(top, Node)
    found = top.get((NS, kind))
    assert isinstance(found, ListNode)
    return found


class Exploding(Node):
    """A node that fails when compared: diff must skip shared subtrees by identity."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        raise AssertionError("a shared subtree was compared")


# -- no change -----------------------------------------------------------------
def test_diff_of_a_tree_with_itself_is_empty() -> None:
    assert diff(BASE, BASE, SCHEMA) == []


def test_diff_of_equal_trees_is_empty() -> None:
    copy = tree(port("p1"), port("p2"), channel("c1", "p1", 4001), channel("c2", "p2", 4002))
    assert copy is not BASE
    assert diff(BASE, copy, SCHEMA) == []


def test_diff_of_empty_trees_is_empty() -> None:
    assert diff(Node(), Node(), SCHEMA) == []


def test_entry_order_alone_is_no_change() -> None:
    reordered = tree(port("p2"), port("p1"), channel("c2", "p2", 4002), channel("c1", "p1", 4001))
    assert diff(BASE, reordered, SCHEMA) == []


# -- order -----------------------------------------------------------------------
def test_creates_serial_ports_before_channels() -> None:
    assert summary(diff(Node(), BASE, SCHEMA)) == [
        ("create", "serial-port", ("p1",)),
        ("create", "serial-port", ("p2",)),
        ("create", "channel", ("c1",)),
        ("create", "channel", ("c2",)),
    ]


def test_deletes_channels_before_serial_ports() -> None:
    assert summary(diff(BASE, Node(), SCHEMA)) == [
        ("delete", "channel", ("c1",)),
        ("delete", "channel", ("c2",)),
        ("delete", "serial-port", ("p1",)),
        ("delete", "serial-port", ("p2",)),
    ]


def test_deletes_come_first() -> None:
    new = tree(
        port("p1", "<baud-rate>9600</baud-rate>"),
        port("p3"),
        channel("c2", "p3", 4002),
        channel("c3", "p1", 4001),
    )
    assert summary(diff(BASE, new, SCHEMA)) == [
        ("delete", "channel", ("c1",)),
        ("delete", "serial-port", ("p2",)),
        ("modify", "serial-port", ("p1",)),
        ("create", "serial-port", ("p3",)),
        ("modify", "channel", ("c2",)),
        ("create", "channel", ("c3",)),
    ]


def test_moving_a_port_between_channels_frees_it_first() -> None:
    # c1 gives up p1 and c9 takes it: the delete of c1 runs before c9 starts
    new = tree(port("p1"), port("p2"), channel("c2", "p2", 4002), channel("c9", "p1", 4001))
    assert summary(diff(BASE, new, SCHEMA)) == [
        ("delete", "channel", ("c1",)),
        ("create", "channel", ("c9",)),
    ]


# -- modify ------------------------------------------------------------------------
def test_modify_of_one_leaf() -> None:
    new = tree(port("p1"), port("p2"), channel("c1", "p1", 4001), channel("c2", "p2", 4012))
    (change,) = diff(BASE, new, SCHEMA)
    assert (change.op, change.kind, change.key, change.name) == ("modify", "channel", ("c2",), "c2")
    assert change.path == "/soip:serial-over-ip/soip:channel[soip:name='c2']"
    assert change.old is entries(BASE, "channel").get(("c2",))
    assert change.new is entries(new, "channel").get(("c2",))


def test_leaf_set_to_its_default_is_a_modify() -> None:
    new = tree(
        port("p1", "<baud-rate>115200</baud-rate>"),
        port("p2"),
        channel("c1", "p1", 4001),
        channel("c2", "p2", 4002),
    )
    assert summary(diff(BASE, new, SCHEMA)) == [("modify", "serial-port", ("p1",))]


def test_modify_of_a_leaf_list() -> None:
    new = tree(
        port("p1"),
        port("p2"),
        channel("c1", "p1", 4001, "<allowed-peer>10.0.0.0/8</allowed-peer>"),
        channel("c2", "p2", 4002),
    )
    assert summary(diff(BASE, new, SCHEMA)) == [("modify", "channel", ("c1",))]


def test_unchanged_entries_are_absent() -> None:
    new = tree(
        port("p1"),
        port("p2", "<parity>odd</parity>"),
        *[
            channel("c1", "p1", 4001),
            channel("c2", "p2", 4002),
        ],
    )
    changes = diff(BASE, new, SCHEMA)
    assert summary(changes) == [("modify", "serial-port", ("p2",))]


def test_create_and_delete_carry_the_entries() -> None:
    new = tree(port("p1"), port("p2"), channel("c2", "p2", 4002), channel("c3", "p1", 4001))
    deleted, created = diff(BASE, new, SCHEMA)
    assert (deleted.op, deleted.old, deleted.new) == (
        "delete",
        entries(BASE, "channel").get(("c1",)),
        None,
    )
    assert (created.op, created.old, created.new) == (
        "create",
        None,
        entries(new, "channel").get(("c3",)),
    )
    assert created.path == "/soip:serial-over-ip/soip:channel[soip:name='c3']"


# -- shared subtrees -----------------------------------------------------------------
def test_shared_entry_is_not_compared() -> None:
    original = entries(BASE, "channel").get(("c1",))
    assert original is not None
    shared = Exploding(dict(original.items()))
    top = BASE.get(TOP)
    assert isinstance(top, Node)
    old_top = top.set((NS, "channel"), entries(BASE, "channel").set(("c1",), shared))
    old = BASE.set(TOP, old_top)
    new_ports = entries(BASE, "serial-port").set(("p9",), Node({(NS, "name"): "p9"}))
    new_channels = entries(old, "channel").set(("c9",), Node({(NS, "name"): "c9"}))
    new = old.set(
        TOP, old_top.set((NS, "serial-port"), new_ports).set((NS, "channel"), new_channels)
    )
    assert summary(diff(old, new, SCHEMA)) == [
        ("create", "serial-port", ("p9",)),
        ("create", "channel", ("c9",)),
    ]


def test_shared_top_container_is_not_compared() -> None:
    top = BASE.get(TOP)
    assert isinstance(top, Node)
    shared = Exploding(dict(top.items()))
    old = Node({TOP: shared})
    new = Node({TOP: shared})
    assert old is not new
    assert diff(old, new, SCHEMA) == []


def test_shared_list_is_not_compared() -> None:
    top = BASE.get(TOP)
    assert isinstance(top, Node)
    channels = ListNode({("c1",): Exploding({(NS, "name"): "c1"})})
    old = Node({TOP: top.set((NS, "channel"), channels)})
    new = Node({TOP: top.set((NS, "channel"), channels).remove((NS, "serial-port"))})
    assert summary(diff(old, new, SCHEMA)) == [
        ("delete", "serial-port", ("p1",)),
        ("delete", "serial-port", ("p2",)),
    ]


# -- edit then diff ------------------------------------------------------------------
def edited(body: str, default_operation: str = "merge") -> Node:
    request = parse_xml(
        f'<config xmlns="{NC}" xmlns:nc="{NC}"><serial-over-ip xmlns="{NS}">{body}'
        "</serial-over-ip></config>"
    )
    return edit(BASE, request, default_operation, SCHEMA)


def test_edit_of_one_channel_changes_only_that_channel() -> None:
    new = edited("<channel><name>c1</name><enabled>false</enabled></channel>")
    assert summary(diff(BASE, new, SCHEMA)) == [("modify", "channel", ("c1",))]
    assert entries(new, "channel").get(("c2",)) is entries(BASE, "channel").get(("c2",))
    assert entries(new, "serial-port") is entries(BASE, "serial-port")


def test_no_op_edit_gives_no_change() -> None:
    new = edited(port("p1") + channel("c2", "p2", 4002))
    assert diff(BASE, new, SCHEMA) == []
    assert new.get(TOP) is BASE.get(TOP)


def test_replace_with_identical_entry_gives_no_change() -> None:
    new = edited(
        channel("c1", "p1", 4001).replace("<channel>", '<channel nc:operation="replace">', 1)
    )
    assert diff(BASE, new, SCHEMA) == []


def test_default_operation_replace_diff() -> None:
    new = edited(port("p1") + port("p3") + channel("c1", "p3", 4001), "replace")
    assert summary(diff(BASE, new, SCHEMA)) == [
        ("delete", "channel", ("c2",)),
        ("delete", "serial-port", ("p2",)),
        ("create", "serial-port", ("p3",)),
        ("modify", "channel", ("c1",)),
    ]


# -- other module shapes (loaded through the same schema path) -----------------------
OTHER = """
module diff-shapes {
  yang-version 1.1;
  namespace "urn:test:diff-shapes";
  prefix ds;
  container serial-over-ip {
    leaf log-level { type string; }
    container global { leaf hostname { type string; } }
    list serial-port { key name; leaf name { type string; } }
    list channel { key name; leaf name { type string; } leaf port { type string; } }
  }
  list top-list { key id; leaf id { type string; } leaf v { type string; } }
  leaf top-leaf { type string; }
}
"""
DS = "urn:test:diff-shapes"


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> SchemaIndex:
    path: Path = tmp_path_factory.mktemp("yang") / "diff-shapes.yang"
    path.write_text(OTHER, encoding="utf-8")
    return load([path])


def other_tree(schema: SchemaIndex, body: str, extra: str = "") -> Node:
    result, errors = load_document(
        f'<config xmlns="{NC}"><serial-over-ip xmlns="{DS}">{body}</serial-over-ip>'
        f"{extra}</config>",
        schema,
    )
    assert errors == []
    return result


def test_leaf_beside_the_lists_of_a_top_container_is_a_change(other: SchemaIndex) -> None:
    lists = "<serial-port><name>p1</name></serial-port><channel><name>c1</name></channel>"
    old = other_tree(other, lists + "<log-level>info</log-level>")
    new = other_tree(other, lists + "<log-level>debug</log-level>")
    (change,) = diff(old, new, other)
    assert (change.op, change.kind, change.key, change.name) == (
        "modify",
        "serial-over-ip",
        (),
        "serial-over-ip",
    )
    assert change.path == "/ds:serial-over-ip"
    assert change.old == Node({(DS, "log-level"): "info"})
    assert change.new == Node({(DS, "log-level"): "debug"})


def test_container_beside_the_lists_is_a_change(other: SchemaIndex) -> None:
    old = other_tree(other, "<channel><name>c1</name></channel>")
    new = other_tree(
        other, "<global><hostname>h</hostname></global><channel><name>c1</name></channel>"
    )
    assert summary(diff(old, new, other)) == [("create", "serial-over-ip", ())]
    assert summary(diff(new, old, other)) == [("delete", "serial-over-ip", ())]


def test_top_container_settings_are_created_before_and_deleted_after_entries(
    other: SchemaIndex,
) -> None:
    full = other_tree(
        other,
        "<log-level>info</log-level><serial-port><name>p1</name></serial-port>"
        "<channel><name>c1</name></channel>",
    )
    assert summary(diff(Node(), full, other)) == [
        ("create", "serial-over-ip", ()),
        ("create", "serial-port", ("p1",)),
        ("create", "channel", ("c1",)),
    ]
    assert summary(diff(full, Node(), other)) == [
        ("delete", "channel", ("c1",)),
        ("delete", "serial-port", ("p1",)),
        ("delete", "serial-over-ip", ()),
    ]


def test_top_level_list_entries_are_units(other: SchemaIndex) -> None:
    old = other_tree(
        other,
        "",
        "<top-list xmlns='urn:test:diff-shapes'><id>a</id><v>1</v></top-list>"
        "<top-list xmlns='urn:test:diff-shapes'><id>b</id></top-list>",
    )
    new = other_tree(
        other,
        "",
        "<top-list xmlns='urn:test:diff-shapes'><id>a</id><v>2</v></top-list>"
        "<top-list xmlns='urn:test:diff-shapes'><id>c</id></top-list>",
    )
    changes = diff(old, new, other)
    assert summary(changes) == [
        ("delete", "top-list", ("b",)),
        ("modify", "top-list", ("a",)),
        ("create", "top-list", ("c",)),
    ]
    assert changes[1].path == "/ds:top-list[ds:id='a']"


def test_top_level_leaf_is_a_unit(other: SchemaIndex) -> None:
    old = other_tree(other, "", "<top-leaf xmlns='urn:test:diff-shapes'>x</top-leaf>")
    new = other_tree(other, "", "<top-leaf xmlns='urn:test:diff-shapes'>y</top-leaf>")
    assert summary(diff(old, new, other)) == [("modify", "top-leaf", ())]
    assert summary(diff(old, Node(), other)) == [("delete", "top-leaf", ())]
    (change,) = diff(Node(), new, other)
    assert (change.op, change.old, change.new, change.path) == (
        "create",
        None,
        None,
        "/ds:top-leaf",
    )


def test_system_ordered_leaf_list_order_is_not_a_change() -> None:
    """allowed-peer is ordered-by system: a reorder is no change (no restart)."""
    from nf.config.codec import load_document
    from nf.schema import default_schema

    schema = default_schema()

    def doc(peers: list[str]) -> str:
        allowed = "".join(f"<allowed-peer>{p}</allowed-peer>" for p in peers)
        return (
            '<serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
            "<serial-port><name>p</name><device>loop://</device></serial-port>"
            "<channel><name>c1</name><serial-port>p</serial-port><mode>server</mode>"
            f"<listen><port>4000</port></listen>{allowed}</channel></serial-over-ip>"
        )

    a, _ = load_document(doc(["10.0.0.0/8", "192.168.0.0/16"]), schema)
    b, _ = load_document(doc(["192.168.0.0/16", "10.0.0.0/8"]), schema)
    c, _ = load_document(doc(["10.0.0.0/8"]), schema)
    assert a == b
    assert diff(a, b, schema) == []
    assert [(ch.op, ch.key) for ch in diff(a, c, schema)] == [("modify", ("c1",))]


# -- a diff in time of the change ---------------------------------------------


def _detached(t: Node) -> Node:
    """The same tree with its lists copied afresh: no derivation to follow,
    so diff walks every entry (the reference)."""
    top = t.get(TOP)
    if not isinstance(top, Node):
        return t
    for qname, child in list(top.items()):
        if isinstance(child, ListNode):
            top = top.set(qname, ListNode(dict(child.items()), child.ordered))
    return t.set(TOP, top)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["merge", "delete", "describe"]),
            st.sampled_from(["port", "channel"]),
            st.integers(0, 6),
        ),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 3),
)
def test_a_diff_that_follows_the_change_equals_the_walk(
    steps: list[tuple[str, str, int]], per_edit: int
) -> None:
    """Over random edits (creations, deletions, modifications, several at a
    time), the diff of a derived tree is the diff of the walk, in order."""
    old = tree(
        *(port(f"p{i}") for i in range(4)),
        *(channel(f"c{i}", f"p{i}", 7000 + i) for i in range(4)),
    )
    new = old
    for start in range(0, len(steps), per_edit):
        body = ""
        for op, kind, i in steps[start : start + per_edit]:
            name = f"{kind[0]}{i}"
            tag = "serial-port" if kind == "port" else "channel"
            if op == "delete":
                body += f'<{tag} xmlns:nc="{NC}" nc:operation="remove"><name>{name}</name></{tag}>'
            elif kind == "port":
                body += port(name, f"<description>{op}{start}</description>")
            else:
                body += channel(name, "p0", 7100 + i, f"<description>{op}{start}</description>")
        config = parse_xml(
            f'<config xmlns="{NC}"><serial-over-ip xmlns="{NS}">{body}</serial-over-ip></config>'
        )
        stepped, errors = edit_partial(new, config, "merge", SCHEMA)
        if errors:
            continue
        assert diff(new, stepped, SCHEMA) == diff(_detached(new), _detached(stepped), SCHEMA)
        assert diff(old, stepped, SCHEMA) == diff(_detached(old), _detached(stepped), SCHEMA)
        new = stepped


def test_a_one_leaf_edit_of_a_big_list_is_diffed_by_its_key() -> None:
    """The derivation is what the fast path follows: a detached copy walks."""
    old = tree(*(port(f"p{i}") for i in range(300)))
    config = parse_xml(
        f'<config xmlns="{NC}"><serial-over-ip xmlns="{NS}">'
        f"{port('p7', '<description>x</description>')}</serial-over-ip></config>"
    )
    new, errors = edit_partial(old, config, "merge", SCHEMA)
    assert errors == []
    top = new.get(TOP)
    assert isinstance(top, Node)
    ports = top.get((NS, "serial-port"))
    assert isinstance(ports, ListNode)
    old_top = old.get(TOP)
    assert isinstance(old_top, Node)
    old_ports = old_top.get((NS, "serial-port"))
    assert isinstance(old_ports, ListNode)
    assert ports.changed_since(old_ports) == {("p7",)}
    (change,) = diff(old, new, SCHEMA)
    assert (change.op, change.key) == ("modify", ("p7",))


def test_changed_keys_counts_the_entries_an_edit_touched_and_only_for_derived_lists() -> None:
    """changed_keys tells the engine that diff and what follows cost the
    change: the number of entries edits set or removed, when every list
    derives from the old one's; None when one was built afresh (a replace
    of the whole configuration) or too many changed."""
    from nf.config.diff import changed_keys

    assert changed_keys(BASE, BASE, SCHEMA) == 0

    def merged(body: str) -> Node:
        config = parse_xml(
            f'<config xmlns="{NC}"><serial-over-ip xmlns="{NS}">{body}</serial-over-ip></config>'
        )
        new, errors = edit_partial(BASE, config, "merge", SCHEMA)
        assert errors == []
        return new

    one_leaf = merged(channel("c1", "p1", 4009))
    assert changed_keys(BASE, one_leaf, SCHEMA) == 1
    assert summary(diff(BASE, one_leaf, SCHEMA)) == [("modify", "channel", ("c1",))]
    assert changed_keys(BASE, merged(port("p3") + channel("c3", "p3", 4003)), SCHEMA) == 2
    afresh = tree(port("p1"), port("p2"), channel("c1", "p1", 4009), channel("c2", "p2", 4002))
    assert changed_keys(BASE, afresh, SCHEMA) is None
    many = merged("".join(port(f"q{i}") for i in range(70)))
    assert changed_keys(BASE, many, SCHEMA) is None
