"""edit-config semantics (RFC 6241 §7.2) of ``nf.config.edit``.

Each test applies one ``<config>`` to a small datastore and checks the
resulting tree and, for failures, the exact rpc-error facts (tag, type,
path, error-info).  Every edit also checks that the input tree is left
exactly as it was: trees are shared with the running datastore.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from nf.config.codec import load_document, parse_xml, render, to_string
from nf.config.edit import edit, edit_partial
from nf.config.errors import ConfigError, EditError
from nf.config.tree import Child, LeafList, ListNode, Node
from nf.config.validate import validate
from nf.schema import SchemaIndex, default_schema, load

NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SCHEMA = default_schema()

TOP = (NS, "serial-over-ip")
SOIP = "/soip:serial-over-ip"
P1 = f"{SOIP}/soip:serial-port[soip:name='p1']"
C1 = f"{SOIP}/soip:channel[soip:name='c1']"

PORTS = """
  <serial-port><name>p1</name><device>/dev/ttyS1</device><baud-rate>9600</baud-rate></serial-port>
  <serial-port><name>p2</name><device>/dev/ttyS2</device></serial-port>
"""
C1_XML = """
  <channel>
    <name>c1</name><serial-port>p1</serial-port><mode>server</mode>
    <listen><port>4001</port></listen>
    <allowed-peer>10.0.0.0/8</allowed-peer><allowed-peer>192.168.1.0/24</allowed-peer>
  </channel>
"""


# -- helpers ------------------------------------------------------------------
def tree(body: str = PORTS + C1_XML) -> Node:
    """A datastore holding ``<serial-over-ip>body</serial-over-ip>``."""
    result, errors = load_document(f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>', SCHEMA)
    assert errors == []
    return result


BASE = tree()


def xml(tree_: Node, schema: SchemaIndex = SCHEMA) -> str:
    return to_string(render(tree_, schema))


def config(body: str, *, raw: bool = False) -> etree._Element:
    """A NETCONF <config>; ``body`` goes inside <serial-over-ip> unless raw."""
    inner = body if raw else f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>'
    return parse_xml(f'<nc:config xmlns:nc="{NC}">{inner}</nc:config>')


def ok(body: str, start: Node = BASE, default_operation: str = "merge", **kw: bool) -> Node:
    """Apply an edit that must succeed; the start tree must not change."""
    before = xml(start)
    result = edit(start, config(body, **kw), default_operation, SCHEMA)
    assert xml(start) == before
    return result


def fail(
    body: str, start: Node = BASE, default_operation: str = "merge", **kw: bool
) -> list[ConfigError]:
    """Apply an edit that must fail; the start tree must not change."""
    before = xml(start)
    with pytest.raises(EditError) as info:
        edit(start, config(body, **kw), default_operation, SCHEMA)
    assert xml(start) == before
    partial_tree, partial_errors = edit_partial(
        start, config(body, **kw), default_operation, SCHEMA
    )
    assert partial_errors == info.value.errors
    del partial_tree
    return info.value.errors


def facts(error: ConfigError) -> tuple[str, str, str | None, dict[str, str]]:
    return error.tag, error.type, error.path, dict(error.info)


def top(tree_: Node) -> Node:
    node = tree_.get(TOP)
    assert isinstance(node, Node)
    return node


def entry(tree_: Node, list_name: str, *key: str) -> Node | None:
    entries = top(tree_).get((NS, list_name))
    return entries.get(key) if isinstance(entries, ListNode) else None


def c1(tree_: Node) -> Node:
    found = entry(tree_, "channel", "c1")
    assert found is not None
    return found


def get(node: Child | None, *path: str) -> Child | None:
    """The child of ``node`` at a path of local names in the module namespace."""
    for name in path:
        if not isinstance(node, Node):
            return None
        node = node.get((NS, name))
    return node


def peers(tree_: Node) -> tuple[str, ...]:
    value = c1(tree_).get((NS, "allowed-peer"))
    return value.values if isinstance(value, LeafList) else ()


# -- merge --------------------------------------------------------------------
def test_merge_creates_leaf() -> None:
    result = ok("<serial-port><name>p2</name><description>spare</description></serial-port>")
    assert get(entry(result, "serial-port", "p2"), "description") == "spare"
    assert get(entry(result, "serial-port", "p2"), "device") == "/dev/ttyS2"


def test_merge_updates_leaf() -> None:
    result = ok("<serial-port><name>p1</name><baud-rate>19200</baud-rate></serial-port>")
    assert result == tree(PORTS.replace("9600", "19200") + C1_XML)


def test_merge_creates_container() -> None:
    result = ok(
        "<channel><name>c1</name><packing><frame-delay>20</frame-delay></packing></channel>"
    )
    assert get(c1(result), "packing", "frame-delay") == "20"
    assert get(c1(result), "listen", "port") == "4001"


def test_merge_updates_container_keeps_unmentioned_children() -> None:
    result = ok("<channel><name>c1</name><listen><address>127.0.0.1</address></listen></channel>")
    listen = get(c1(result), "listen")
    assert listen == Node({(NS, "port"): "4001", (NS, "address"): "127.0.0.1"})


def test_merge_creates_list_entry() -> None:
    result = ok("<serial-port><name>p3</name><device>loop://</device></serial-port>")
    assert entry(result, "serial-port", "p3") == Node(
        {(NS, "name"): "p3", (NS, "device"): "loop://"}
    )
    assert entry(result, "serial-port", "p1") is entry(BASE, "serial-port", "p1")


def test_merge_updates_list_entry_keeps_unmentioned_children() -> None:
    result = ok("<channel><name>c1</name><enabled>false</enabled></channel>")
    expected = C1_XML.replace("<mode>", "<enabled>false</enabled><mode>")
    assert result == tree(PORTS + expected)


def test_merge_into_empty_datastore_creates_top_container() -> None:
    result = ok("<serial-port><name>p1</name><device>/dev/ttyS1</device></serial-port>", Node())
    assert result == tree("<serial-port><name>p1</name><device>/dev/ttyS1</device></serial-port>")


def test_merge_creates_empty_presence_container() -> None:
    result = ok("<channel><name>c1</name><secondary/></channel>")
    assert get(c1(result), "secondary") == Node()


def test_merge_of_identical_data_shares_the_old_subtree() -> None:
    result = ok("<serial-port><name>p1</name><baud-rate>9600</baud-rate></serial-port>")
    assert result.get(TOP) is BASE.get(TOP)


# -- replace ------------------------------------------------------------------
def test_replace_list_entry_removes_unspecified_children() -> None:
    result = ok(
        '<channel nc:operation="replace" xmlns:nc="' + NC + '">'
        "<name>c1</name><serial-port>p2</serial-port><mode>server</mode>"
        "<listen><port>5000</port></listen></channel>"
    )
    assert c1(result) == c1(
        tree(
            "<channel><name>c1</name><serial-port>p2</serial-port><mode>server</mode>"
            "<listen><port>5000</port></listen></channel>"
        )
    )
    assert entry(result, "serial-port", "p1") is entry(BASE, "serial-port", "p1")


def test_replace_of_missing_list_entry_creates_it() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}" nc:operation="replace"><name>p3</name></serial-port>'
    )
    assert entry(result, "serial-port", "p3") == Node({(NS, "name"): "p3"})


def test_replace_container_removes_unspecified_children() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<listen nc:operation="replace"><address>::1</address></listen></channel>'
    )
    assert get(c1(result), "listen") == Node({(NS, "address"): "::1"})
    assert get(c1(result), "allowed-peer") == LeafList(("10.0.0.0/8", "192.168.1.0/24"))


def test_replace_with_empty_non_presence_container_removes_it() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><listen nc:operation="replace"/></channel>'
    )
    assert get(c1(result), "listen") is None


def test_replace_entry_replaces_leaf_list_values() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>'
        "<serial-port>p1</serial-port><mode>server</mode><listen><port>4001</port></listen>"
        "<allowed-peer>172.16.0.0/12</allowed-peer><allowed-peer>10.0.0.0/8</allowed-peer>"
        "</channel>"
    )
    assert set(peers(result)) == {"172.16.0.0/12", "10.0.0.0/8"}


def test_replace_entry_replaces_nested_list_entries() -> None:
    dest = "<destination><address>10.0.0.{0}</address><port>502</port></destination>"
    start = ok(f"<channel><name>c1</name>{dest.format(1)}{dest.format(2)}</channel>")
    result = ok(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>{dest.format(2)}'
        "</channel>",
        start,
    )
    dests = c1(result).get((NS, "destination"))
    assert isinstance(dests, ListNode)
    assert list(dests.keys()) == [("10.0.0.2", "502")]
    old_dests = get(c1(start), "destination")
    assert isinstance(old_dests, ListNode)
    assert dests.get(("10.0.0.2", "502")) is old_dests.get(("10.0.0.2", "502"))


def test_replace_with_reordered_leaf_list_values_is_no_change() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><allowed-peer nc:operation="replace">'
        "192.168.1.0/24</allowed-peer></channel>"
    )
    assert result == BASE  # replace of one leaf-list value keeps the others
    result = ok(
        C1_XML.replace("<channel>", f'<channel xmlns:nc="{NC}" nc:operation="replace">')
        .replace("10.0.0.0/8", "X")
        .replace("192.168.1.0/24", "10.0.0.0/8")
        .replace("X", "192.168.1.0/24")
    )
    assert result.get(TOP) is BASE.get(TOP)


def test_replace_with_same_content_is_no_change() -> None:
    result = ok(C1_XML.replace("<channel>", f'<channel xmlns:nc="{NC}" nc:operation="replace">'))
    assert result == BASE
    assert result.get(TOP) is BASE.get(TOP)


def test_nested_delete_inside_replace_applies_to_existing_data() -> None:
    # RFC 6241 §7.2: an operation attribute overrides the inherited one and
    # acts on the existing datastore, so deleting an existing child is fine
    result = ok(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>'
        "<serial-port>p1</serial-port><mode>server</mode>"
        '<listen nc:operation="delete"/></channel>'
    )
    assert c1(result) == Node(
        {(NS, "name"): "c1", (NS, "serial-port"): "p1", (NS, "mode"): "server"}
    )


def test_nested_delete_of_missing_node_inside_replace_is_data_missing() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>'
        '<packing nc:operation="delete"/></channel>'
    )
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", f"{C1}/soip:packing", {"bad-element": "packing"})
    ]


def test_nested_create_of_existing_node_inside_replace_is_data_exists() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>'
        '<listen nc:operation="create"><port>1</port></listen></channel>'
    )
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", f"{C1}/soip:listen", {"bad-element": "listen"})
    ]


def test_nested_merge_inside_replace_merges_with_existing_data() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>'
        '<listen nc:operation="merge"><address>::</address></listen></channel>'
    )
    assert c1(result) == Node(
        {
            (NS, "name"): "c1",
            (NS, "listen"): Node({(NS, "port"): "4001", (NS, "address"): "::"}),
        }
    )


# -- default-operation --------------------------------------------------------
def test_default_operation_replace_replaces_whole_datastore() -> None:
    body = "<serial-port><name>p9</name><device>loop://</device></serial-port>"
    result = ok(body, default_operation="replace")
    assert result == tree(body)


def test_default_operation_replace_with_empty_config_empties_datastore() -> None:
    result = ok("", default_operation="replace", raw=True)
    assert result == Node()


def test_default_operation_replace_keeps_children_with_own_operation() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}" nc:operation="merge"><name>p1</name>'
        "<parity>even</parity></serial-port>",
        default_operation="replace",
    )
    assert result == tree(
        PORTS.split("\n")[1].replace("</serial-port>", "<parity>even</parity></serial-port>")
    )


def test_default_operation_replace_with_delete_of_existing_entry() -> None:
    result = ok(
        f"<serial-port><name>p1</name><device>/dev/ttyS1</device></serial-port>"
        f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>c1</name></channel>',
        default_operation="replace",
    )
    assert result == tree("<serial-port><name>p1</name><device>/dev/ttyS1</device></serial-port>")


def test_default_operation_none_changes_nothing_without_operation() -> None:
    result = ok(
        "<serial-port><name>p1</name><baud-rate>300</baud-rate><parity>odd</parity></serial-port>"
        "<channel><name>c1</name><packing><delimiter>13</delimiter></packing>"
        "<allowed-peer>1.2.3.4/32</allowed-peer></channel>",
        default_operation="none",
    )
    assert result == BASE
    assert result.get(TOP) is BASE.get(TOP)


def test_default_operation_none_applies_explicit_operation() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}"><name>p1</name><baud-rate>300</baud-rate>'
        '<parity nc:operation="create">odd</parity></serial-port>',
        default_operation="none",
    )
    assert get(entry(result, "serial-port", "p1"), "parity") == "odd"
    assert get(entry(result, "serial-port", "p1"), "baud-rate") == "9600"


def test_default_operation_none_into_missing_list_entry_is_data_missing() -> None:
    path = f"{SOIP}/soip:channel[soip:name='nope']"
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>nope</name>'
        '<enabled nc:operation="merge">false</enabled></channel>',
        default_operation="none",
    )
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", path, {"bad-element": "channel"})
    ]


def test_default_operation_none_into_missing_presence_container_is_data_missing() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<secondary><port nc:operation="merge">4002</port></secondary></channel>',
        default_operation="none",
    )
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", f"{C1}/soip:secondary", {"bad-element": "secondary"})
    ]


def test_default_operation_none_creates_through_missing_non_presence_levels() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}" nc:operation="create"><name>p1</name>'
        "<device>loop://</device></serial-port>",
        Node(),
        default_operation="none",
    )
    assert result == tree("<serial-port><name>p1</name><device>loop://</device></serial-port>")


def test_invalid_default_operation() -> None:
    new, errors = edit_partial(BASE, config(""), "create", SCHEMA)
    assert new is BASE
    assert [facts(e) for e in errors] == [
        ("invalid-value", "protocol", None, {"bad-element": "default-operation"})
    ]


# -- create -------------------------------------------------------------------
def test_create_new_list_entry() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}" nc:operation="create"><name>p3</name>'
        "<device>loop://</device></serial-port>"
    )
    assert entry(result, "serial-port", "p3") == Node(
        {(NS, "name"): "p3", (NS, "device"): "loop://"}
    )


def test_create_existing_list_entry_is_data_exists() -> None:
    errors = fail(
        f'<serial-port xmlns:nc="{NC}" nc:operation="create"><name>p1</name>'
        "<device>loop://</device></serial-port>"
    )
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", P1, {"bad-element": "serial-port"})
    ]


def test_create_new_leaf() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}"><name>p1</name>'
        '<parity nc:operation="create">even</parity></serial-port>'
    )
    assert get(entry(result, "serial-port", "p1"), "parity") == "even"


def test_create_existing_leaf_is_data_exists() -> None:
    errors = fail(
        f'<serial-port xmlns:nc="{NC}"><name>p1</name>'
        '<baud-rate nc:operation="create">9600</baud-rate></serial-port>'
    )
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", f"{P1}/soip:baud-rate", {"bad-element": "baud-rate"})
    ]


def test_create_existing_container_is_data_exists() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<listen nc:operation="create"><address>::</address></listen></channel>'
    )
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", f"{C1}/soip:listen", {"bad-element": "listen"})
    ]


def test_create_existing_presence_container_is_data_exists() -> None:
    start = ok("<channel><name>c1</name><secondary/></channel>")
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>c1</name><secondary nc:operation="create"/></channel>',
        start,
    )
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", f"{C1}/soip:secondary", {"bad-element": "secondary"})
    ]


# -- delete and remove --------------------------------------------------------
def test_delete_existing_list_entry() -> None:
    result = ok(f'<serial-port xmlns:nc="{NC}" nc:operation="delete"><name>p2</name></serial-port>')
    assert result == tree(PORTS.split("\n")[1] + C1_XML)


def test_delete_existing_leaf() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}"><name>p1</name>'
        '<baud-rate nc:operation="delete"/></serial-port>'
    )
    assert result == tree(PORTS.replace("<baud-rate>9600</baud-rate>", "") + C1_XML)


def test_delete_existing_container() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><listen nc:operation="delete"/></channel>'
    )
    assert result == tree(PORTS + C1_XML.replace("<listen><port>4001</port></listen>", ""))


def test_delete_top_container_empties_datastore() -> None:
    result = ok(f'<serial-over-ip xmlns="{NS}" xmlns:nc="{NC}" nc:operation="delete"/>', raw=True)
    assert result == Node()


def test_delete_of_last_entries_leaves_no_empty_containers() -> None:
    start = tree(PORTS)
    result = ok(
        f'<serial-port xmlns:nc="{NC}" nc:operation="delete"><name>p1</name></serial-port>'
        f'<serial-port xmlns:nc="{NC}" nc:operation="delete"><name>p2</name></serial-port>',
        start,
    )
    assert result == Node()


def test_delete_missing_list_entry_is_data_missing() -> None:
    errors = fail(f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>c9</name></channel>')
    assert [facts(e) for e in errors] == [
        (
            "data-missing",
            "application",
            f"{SOIP}/soip:channel[soip:name='c9']",
            {"bad-element": "channel"},
        )
    ]


def test_delete_missing_leaf_is_data_missing() -> None:
    errors = fail(
        f'<serial-port xmlns:nc="{NC}"><name>p2</name><parity nc:operation="delete"/></serial-port>'
    )
    path = f"{SOIP}/soip:serial-port[soip:name='p2']/soip:parity"
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", path, {"bad-element": "parity"})
    ]


def test_delete_missing_container_is_data_missing() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>c1</name><packing nc:operation="delete"/></channel>'
    )
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", f"{C1}/soip:packing", {"bad-element": "packing"})
    ]


def test_delete_in_empty_datastore_is_data_missing() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>c1</name></channel>', Node()
    )
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", C1, {"bad-element": "channel"})
    ]


def test_remove_existing_list_entry() -> None:
    result = ok(f'<channel xmlns:nc="{NC}" nc:operation="remove"><name>c1</name></channel>')
    assert result == tree(PORTS)


def test_remove_missing_list_entry_is_no_error_and_no_change() -> None:
    result = ok(f'<channel xmlns:nc="{NC}" nc:operation="remove"><name>c9</name></channel>')
    assert result == BASE
    assert result.get(TOP) is BASE.get(TOP)


def test_remove_missing_leaf_is_no_error_and_no_change() -> None:
    result = ok(
        f'<serial-port xmlns:nc="{NC}"><name>p2</name><parity nc:operation="remove"/></serial-port>'
    )
    assert result == BASE


def test_remove_in_empty_datastore_leaves_it_empty() -> None:
    result = ok(f'<channel xmlns:nc="{NC}" nc:operation="remove"><name>c1</name></channel>', Node())
    assert result == Node()


def test_delete_ignores_the_content_of_the_deleted_node() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>c1</name>'
        "<mode>client</mode></channel>"
    )
    assert result == tree(PORTS)


# -- leaf-list ----------------------------------------------------------------
PEERS = (NS, "allowed-peer")
PEER_PATH = f"{C1}/soip:allowed-peer"


def test_leaf_list_merge_appends_value() -> None:
    result = ok("<channel><name>c1</name><allowed-peer>172.16.0.0/12</allowed-peer></channel>")
    assert peers(result) == ("10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12")


def test_leaf_list_merge_of_existing_value_is_no_change() -> None:
    result = ok("<channel><name>c1</name><allowed-peer>10.0.0.0/8</allowed-peer></channel>")
    assert result == BASE


def test_leaf_list_delete_existing_value() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="delete">10.0.0.0/8</allowed-peer></channel>'
    )
    assert peers(result) == ("192.168.1.0/24",)


def test_leaf_list_delete_of_every_value_removes_the_leaf_list() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="delete">10.0.0.0/8</allowed-peer>'
        '<allowed-peer nc:operation="delete">192.168.1.0/24</allowed-peer></channel>'
    )
    assert PEERS not in c1(result)


def test_leaf_list_delete_missing_value_is_data_missing() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="delete">1.2.3.0/24</allowed-peer></channel>'
    )
    assert [facts(e) for e in errors] == [
        (
            "data-missing",
            "application",
            f"{PEER_PATH}[.='1.2.3.0/24']",
            {"bad-element": "allowed-peer"},
        )
    ]


def test_leaf_list_remove_missing_value_is_no_change() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="remove">1.2.3.0/24</allowed-peer></channel>'
    )
    assert result == BASE


def test_leaf_list_remove_existing_value() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="remove">192.168.1.0/24</allowed-peer></channel>'
    )
    assert peers(result) == ("10.0.0.0/8",)


def test_leaf_list_create_existing_value_is_data_exists() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="create">10.0.0.0/8</allowed-peer></channel>'
    )
    assert [facts(e) for e in errors] == [
        (
            "data-exists",
            "application",
            f"{PEER_PATH}[.='10.0.0.0/8']",
            {"bad-element": "allowed-peer"},
        )
    ]


def test_leaf_list_create_new_value() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<allowed-peer nc:operation="create">::1/128</allowed-peer></channel>'
    )
    assert peers(result) == ("10.0.0.0/8", "192.168.1.0/24", "::1/128")


def test_leaf_list_value_given_twice_is_an_error() -> None:
    errors = fail(
        "<channel><name>c1</name><allowed-peer>::1/128</allowed-peer>"
        "<allowed-peer>::1/128</allowed-peer></channel>"
    )
    assert [facts(e) for e in errors] == [
        (
            "invalid-value",
            "application",
            f"{PEER_PATH}[.='::1/128']",
            {"bad-element": "allowed-peer"},
        )
    ]


# -- malformed edits ----------------------------------------------------------
def test_invalid_operation_value_is_bad_attribute() -> None:
    errors = fail(f'<channel xmlns:nc="{NC}" nc:operation="upsert"><name>c1</name></channel>')
    assert [facts(e) for e in errors] == [
        (
            "bad-attribute",
            "protocol",
            C1,
            {"bad-attribute": "operation", "bad-element": "channel"},
        )
    ]


def test_unqualified_operation_attribute_is_rejected() -> None:
    # RFC 6241 §7.2: the attribute is in the NETCONF namespace; silently
    # merging an unqualified operation="delete" would lie to the client
    errors = fail('<channel operation="delete"><name>c1</name></channel>')
    assert [facts(e) for e in errors] == [
        (
            "unknown-attribute",
            "protocol",
            C1,
            {"bad-attribute": "operation", "bad-element": "channel"},
        )
    ]


def test_unknown_attribute_in_netconf_namespace() -> None:
    errors = fail(f'<channel xmlns:nc="{NC}" nc:opration="merge"><name>c1</name></channel>')
    assert [facts(e) for e in errors] == [
        (
            "unknown-attribute",
            "protocol",
            C1,
            {"bad-attribute": "opration", "bad-element": "channel"},
        )
    ]


def test_unknown_element() -> None:
    errors = fail("<channel><name>c1</name><colour>red</colour></channel>")
    assert [facts(e) for e in errors] == [
        ("unknown-element", "application", C1, {"bad-element": "colour"})
    ]


def test_unknown_top_level_element() -> None:
    errors = fail(f'<serial-over-tcp xmlns="{NS}"/>', raw=True)
    assert [facts(e) for e in errors] == [
        ("unknown-element", "application", "/", {"bad-element": "serial-over-tcp"})
    ]


def test_unknown_namespace() -> None:
    errors = fail('<serial-over-ip xmlns="urn:example:nope"/>', raw=True)
    assert [facts(e) for e in errors] == [
        (
            "unknown-namespace",
            "protocol",
            "/",
            {"bad-element": "serial-over-ip", "bad-namespace": "urn:example:nope"},
        )
    ]


def test_unknown_namespace_below_a_known_node() -> None:
    errors = fail('<channel><name>c1</name><x:mode xmlns:x="urn:example:x">peer</x:mode></channel>')
    assert [facts(e) for e in errors] == [
        (
            "unknown-namespace",
            "protocol",
            C1,
            {"bad-element": "mode", "bad-namespace": "urn:example:x"},
        )
    ]


def test_element_without_namespace() -> None:
    errors = fail("<serial-over-ip/>", raw=True)
    assert [facts(e) for e in errors] == [
        (
            "unknown-namespace",
            "protocol",
            "/",
            {"bad-element": "serial-over-ip", "bad-namespace": ""},
        )
    ]


def test_state_container_in_config_is_an_error() -> None:
    errors = fail("<channel><name>c1</name><state><oper-status>up</oper-status></state></channel>")
    assert [facts(e) for e in errors] == [
        ("invalid-value", "application", f"{C1}/soip:state", {"bad-element": "state"})
    ]


def test_state_container_delete_is_an_error_too() -> None:
    errors = fail(
        f'<serial-port xmlns:nc="{NC}"><name>p1</name><state nc:operation="delete"/></serial-port>'
    )
    assert [facts(e) for e in errors] == [
        ("invalid-value", "application", f"{P1}/soip:state", {"bad-element": "state"})
    ]


def test_list_entry_without_key_is_missing_element() -> None:
    errors = fail("<channel><mode>server</mode></channel>")
    assert [facts(e) for e in errors] == [
        ("missing-element", "application", f"{SOIP}/soip:channel", {"bad-element": "name"})
    ]


def test_multi_key_entry_without_one_key_is_missing_element() -> None:
    errors = fail(
        "<channel><name>c1</name><destination><address>10.0.0.1</address></destination></channel>"
    )
    assert [facts(e) for e in errors] == [
        ("missing-element", "application", f"{C1}/soip:destination", {"bad-element": "port"})
    ]


def test_leaf_with_child_elements_is_invalid_value() -> None:
    errors = fail("<serial-port><name>p1</name><device><path>/dev/x</path></device></serial-port>")
    assert [facts(e) for e in errors] == [
        ("invalid-value", "application", f"{P1}/soip:device", {"bad-element": "device"})
    ]


def test_leaf_given_twice_is_an_error() -> None:
    errors = fail(
        "<serial-port><name>p1</name><baud-rate>1200</baud-rate>"
        "<baud-rate>2400</baud-rate></serial-port>"
    )
    assert [facts(e) for e in errors] == [
        ("bad-element", "protocol", f"{P1}/soip:baud-rate", {"bad-element": "baud-rate"})
    ]


def test_container_given_twice_is_an_error() -> None:
    errors = fail(
        "<channel><name>c1</name><listen><port>1</port></listen>"
        "<listen><port>2</port></listen></channel>"
    )
    assert [facts(e) for e in errors] == [
        ("bad-element", "protocol", f"{C1}/soip:listen", {"bad-element": "listen"})
    ]


def test_list_entry_given_twice_is_an_error() -> None:
    errors = fail(
        "<serial-port><name>p1</name><parity>odd</parity></serial-port>"
        "<serial-port><name>p1</name><parity>even</parity></serial-port>"
    )
    assert [facts(e) for e in errors] == [
        ("operation-failed", "application", P1, {"bad-element": "serial-port"})
    ]


def test_every_error_is_reported() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}" nc:operation="create"><name>c1</name></channel>'
        "<channel><colour/></channel>"
        f'<serial-port xmlns:nc="{NC}" nc:operation="delete"><name>p9</name></serial-port>'
    )
    assert [e.tag for e in errors] == ["data-exists", "missing-element", "data-missing"]


# -- nested operations --------------------------------------------------------
def test_delete_inside_merge() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><enabled>false</enabled>'
        '<listen nc:operation="delete"/></channel>'
    )
    assert get(c1(result), "listen") is None
    assert get(c1(result), "enabled") == "false"
    assert get(c1(result), "mode") == "server"


def test_create_inside_merge() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<packing nc:operation="create"><frame-delay>10</frame-delay></packing></channel>'
    )
    assert get(c1(result), "packing") == Node({(NS, "frame-delay"): "10"})


def test_create_inside_merge_of_existing_node_is_data_exists() -> None:
    errors = fail(
        f'<serial-port xmlns:nc="{NC}"><name>p2</name>'
        '<device nc:operation="create">/dev/ttyS9</device></serial-port>'
    )
    path = f"{SOIP}/soip:serial-port[soip:name='p2']/soip:device"
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", path, {"bad-element": "device"})
    ]


def test_delete_inside_create_of_new_entry_is_data_missing() -> None:
    errors = fail(
        f'<channel xmlns:nc="{NC}" nc:operation="create"><name>c2</name>'
        '<packing nc:operation="delete"/></channel>'
    )
    path = f"{SOIP}/soip:channel[soip:name='c2']/soip:packing"
    assert [facts(e) for e in errors] == [
        ("data-missing", "application", path, {"bad-element": "packing"})
    ]


def test_create_of_nested_list_entry_inside_merge() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name>'
        '<destination nc:operation="create"><address>10.0.0.9</address><port>502</port>'
        "</destination></channel>"
    )
    dests = c1(result).get((NS, "destination"))
    assert isinstance(dests, ListNode)
    assert list(dests.keys()) == [("10.0.0.9", "502")]


# -- keys ---------------------------------------------------------------------
def test_keys_present_after_replace_with_only_the_key() -> None:
    result = ok(f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name></channel>')
    assert c1(result) == Node({(NS, "name"): "c1"})


def test_keys_present_after_create_with_only_the_keys() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><destination nc:operation="create">'
        "<port>502</port><address>10.0.0.9</address></destination></channel>"
    )
    dests = c1(result).get((NS, "destination"))
    assert isinstance(dests, ListNode)
    assert dests.get(("10.0.0.9", "502")) == Node(
        {(NS, "port"): "502", (NS, "address"): "10.0.0.9"}
    )


def test_deleting_a_key_leaf_is_refused() -> None:
    errors = fail(f'<channel xmlns:nc="{NC}"><name nc:operation="delete">c1</name></channel>')
    assert [facts(e) for e in errors] == [
        (
            "bad-attribute",
            "protocol",
            f"{C1}/soip:name",
            {"bad-attribute": "operation", "bad-element": "name"},
        )
    ]


def test_removing_a_key_leaf_is_refused() -> None:
    errors = fail(f'<channel xmlns:nc="{NC}"><name nc:operation="remove">c1</name></channel>')
    assert [e.tag for e in errors] == ["bad-attribute"]


def test_every_entry_keeps_its_keys_after_edits() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name>'
        "<mode>peer</mode></channel>"
        f'<serial-port xmlns:nc="{NC}"><name>p1</name><baud-rate nc:operation="delete"/>'
        "</serial-port>"
        "<serial-port><name>p3</name></serial-port>"
    )
    for list_name in ("serial-port", "channel"):
        entries = top(result).get((NS, list_name))
        assert isinstance(entries, ListNode)
        for key, node in entries.items():
            assert node.get((NS, "name")) == key[0]


# -- immutability, empty containers, canonical values ------------------------
def test_original_tree_is_never_modified() -> None:
    start = tree()
    before = xml(start)
    snapshot = tree()
    for default_operation in ("merge", "replace", "none"):
        edit_partial(
            start,
            config(
                f'<channel xmlns:nc="{NC}" nc:operation="replace"><name>c1</name></channel>'
                f'<serial-port xmlns:nc="{NC}" nc:operation="delete"><name>p2</name></serial-port>'
                "<serial-port><name>p1</name><baud-rate>50</baud-rate></serial-port>"
            ),
            default_operation,
            SCHEMA,
        )
    assert xml(start) == before
    assert start == snapshot


def test_empty_non_presence_container_merge_is_no_change() -> None:
    result = ok("<channel><name>c1</name><packing/></channel>")
    assert result == BASE
    assert (NS, "packing") not in c1(result)


def test_empty_non_presence_container_create_leaves_no_container() -> None:
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><packing nc:operation="create"/></channel>'
    )
    assert result == BASE


def test_empty_top_container_merge_into_empty_datastore() -> None:
    assert ok("", Node()) == Node()


def test_numeric_values_are_canonical() -> None:
    result = ok("<serial-port><name>p1</name><baud-rate>+080</baud-rate></serial-port>")
    assert get(entry(result, "serial-port", "p1"), "baud-rate") == "80"


def test_numeric_keys_are_canonical_and_find_the_entry() -> None:
    start = ok(
        "<channel><name>c1</name><destination><address>10.0.0.9</address>"
        "<port>0502</port></destination></channel>"
    )
    dests = c1(start).get((NS, "destination"))
    assert isinstance(dests, ListNode)
    assert list(dests.keys()) == [("10.0.0.9", "502")]
    result = ok(
        f'<channel xmlns:nc="{NC}"><name>c1</name><destination nc:operation="delete">'
        "<address>10.0.0.9</address><port>+502</port></destination></channel>",
        start,
    )
    assert result == BASE


def test_numeric_values_with_white_space_are_canonical() -> None:
    result = ok("<channel><name>c1</name><keepalive>\n  030\n</keepalive></channel>")
    assert get(c1(result), "keepalive") == "30"


# -- edit does not validate --------------------------------------------------
def test_edit_returns_invalid_tree_and_validate_reports_it() -> None:
    result = ok(
        "<serial-port><name>p1</name><baud-rate>fast</baud-rate></serial-port>"
        "<channel><name>c2</name><serial-port>p9</serial-port><mode>server</mode>"
        "<listen><port>4002</port></listen></channel>"
    )
    assert get(entry(result, "serial-port", "p1"), "baud-rate") == "fast"
    assert validate(BASE, SCHEMA) == []
    problems = {(e.tag, e.path, e.app_tag) for e in validate(result, SCHEMA)}
    assert problems == {
        ("invalid-value", f"{P1}/soip:baud-rate", None),
        (
            "data-missing",
            f"{SOIP}/soip:channel[soip:name='c2']/soip:serial-port",
            "instance-required",
        ),
    }


# -- continue-on-error --------------------------------------------------------
def test_edit_partial_applies_good_entries_and_lists_errors() -> None:
    body = (
        f'<serial-port xmlns:nc="{NC}" nc:operation="create"><name>p1</name>'
        "<device>loop://</device></serial-port>"
        f'<serial-port xmlns:nc="{NC}" nc:operation="create"><name>p3</name>'
        "<device>loop://</device></serial-port>"
    )
    result, errors = edit_partial(BASE, config(body), "merge", SCHEMA)
    assert [facts(e) for e in errors] == [
        ("data-exists", "application", P1, {"bad-element": "serial-port"})
    ]
    assert entry(result, "serial-port", "p1") is entry(BASE, "serial-port", "p1")
    assert entry(result, "serial-port", "p3") == Node(
        {(NS, "name"): "p3", (NS, "device"): "loop://"}
    )
    with pytest.raises(EditError) as info:
        edit(BASE, config(body), "merge", SCHEMA)
    assert info.value.errors == errors


def test_edit_partial_keeps_bad_entry_under_replace() -> None:
    body = (
        f'<channel xmlns:nc="{NC}" nc:operation="bogus"><name>c1</name></channel>'
        "<serial-port><name>p2</name><device>/dev/ttyS2</device></serial-port>"
    )
    result, errors = edit_partial(BASE, config(body), "replace", SCHEMA)
    assert [e.tag for e in errors] == ["bad-attribute"]
    assert entry(result, "serial-port", "p1") is None
    assert entry(result, "serial-port", "p2") is entry(BASE, "serial-port", "p2")
    assert entry(result, "channel", "c1") is entry(BASE, "channel", "c1")


def test_edit_partial_applies_the_good_children_of_an_entry() -> None:
    body = "<channel><name>c1</name><colour/><enabled>false</enabled></channel>"
    result, errors = edit_partial(BASE, config(body), "merge", SCHEMA)
    assert [facts(e) for e in errors] == [
        ("unknown-element", "application", C1, {"bad-element": "colour"})
    ]
    assert get(c1(result), "enabled") == "false"


def test_default_schema_is_used_when_none_given() -> None:
    result = edit(BASE, config("<serial-port><name>p3</name></serial-port>"))
    assert entry(result, "serial-port", "p3") == Node({(NS, "name"): "p3"})


# -- choices (module with a choice, loaded through the same schema path) ----
CHOICE_MODULE = """
module edit-choice {
  yang-version 1.1;
  namespace "urn:test:edit-choice";
  prefix ec;
  container top {
    choice transport {
      case tcp {
        leaf tcp-port { type uint16; }
        leaf nodelay { type boolean; }
      }
      case udp {
        leaf udp-port { type uint16; }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def choice_schema(tmp_path_factory: pytest.TempPathFactory) -> SchemaIndex:
    path: Path = tmp_path_factory.mktemp("yang") / "edit-choice.yang"
    path.write_text(CHOICE_MODULE, encoding="utf-8")
    return load([path])


def test_creating_a_case_removes_the_other_cases(choice_schema: SchemaIndex) -> None:
    ns = "urn:test:edit-choice"
    start, errors = load_document(
        f'<top xmlns="{ns}"><tcp-port>1</tcp-port><nodelay>true</nodelay></top>', choice_schema
    )
    assert errors == []
    result = edit(
        start,
        parse_xml(f'<config xmlns="{NC}"><top xmlns="{ns}"><udp-port>2</udp-port></top></config>'),
        "merge",
        choice_schema,
    )
    assert result == Node({(ns, "top"): Node({(ns, "udp-port"): "2"})})
