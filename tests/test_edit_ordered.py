"""``ordered-by user`` lists and leaf-lists (RFC 7950 §7.7.7, §7.8.5) in the
config core: their order is configuration, kept by parse and render, set by
edit-config (``yang:insert`` of RFC 7950 §7.8.6 / §7.7.9, and the request's
order when the list's parent is replaced), compared order-sensitively, and
reported by diff and netconf-config-change.  NACM rules are the case that
matters: the first matching rule decides.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from nf.config.codec import load_document, parse_xml, render, to_string
from nf.config.diff import diff
from nf.config.edit import edit, edit_partial
from nf.config.errors import ConfigError, EditError
from nf.config.tree import LeafList, ListNode, Node
from nf.northbound.nacm import Access, DataStep, policy_of
from nf.northbound.notifications import config_change
from nf.schema import SchemaIndex, default_schema, load

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
YANG = "urn:ietf:params:xml:ns:yang:1"
EO = "urn:test:edit-ordered"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"

MODULE = """
module edit-ordered {
  yang-version 1.1;
  namespace "urn:test:edit-ordered";
  prefix eo;
  container top {
    list rule {
      key "name";
      ordered-by user;
      leaf name { type string; }
      leaf action { type string; }
    }
    list pair {
      key "a b";
      ordered-by user;
      leaf a { type string; }
      leaf b { type uint8; }
    }
    leaf-list tag { type string; ordered-by user; }
    list plain {
      key "name";
      leaf name { type string; }
    }
    container box {
      list item {
        key "id";
        ordered-by user;
        leaf id { type string; }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> SchemaIndex:
    path: Path = tmp_path_factory.mktemp("yang") / "edit-ordered.yang"
    path.write_text(MODULE, encoding="utf-8")
    return load([path])


def rules(*names: str) -> str:
    return "".join(f"<rule><name>{n}</name></rule>" for n in names)


def doc(schema: SchemaIndex, body: str) -> Node:
    tree, errors = load_document(f'<top xmlns="{EO}">{body}</top>', schema)
    assert errors == []
    return tree


def config(body: str, top_attrs: str = "") -> etree._Element:
    return parse_xml(
        f'<config xmlns="{NC}"><top xmlns="{EO}" xmlns:nc="{NC}" xmlns:yang="{YANG}" '
        f'xmlns:eo="{EO}" {top_attrs}>{body}</top></config>'
    )


def apply(schema: SchemaIndex, start: Node, body: str, top_attrs: str = "") -> Node:
    """An edit that must succeed; the start tree must not change."""
    before = to_string(render(start, schema))
    result = edit(start, config(body, top_attrs), "merge", schema)
    assert to_string(render(start, schema)) == before
    return result


def refuse(schema: SchemaIndex, start: Node, body: str) -> ConfigError:
    """An edit that must fail with one error, changing nothing."""
    with pytest.raises(EditError) as info:
        edit(start, config(body), "merge", schema)
    partial, errors = edit_partial(start, config(body), "merge", schema)
    assert errors == info.value.errors
    assert partial == start  # the entry in error is neither created nor moved
    assert len(errors) == 1
    return errors[0]


def top(tree: Node) -> Node:
    node = tree.get((EO, "top"))
    assert isinstance(node, Node)
    return node


def order(tree: Node, name: str = "rule") -> list[str]:
    found = top(tree).get((EO, name))
    if name == "tag":
        assert isinstance(found, LeafList)
        return list(found.values)
    assert isinstance(found, ListNode)
    return [",".join(key) for key, _ in found.items()]


# -- the tree -------------------------------------------------------------------


def test_user_ordered_lists_compare_in_order_system_ordered_as_sets() -> None:
    a, b = Node({("x", "k"): "a"}), Node({("x", "k"): "b"})
    assert ListNode({("a",): a, ("b",): b}, True) != ListNode({("b",): b, ("a",): a}, True)
    assert ListNode({("a",): a, ("b",): b}) == ListNode({("b",): b, ("a",): a})
    assert LeafList(("a", "b"), True) != LeafList(("b", "a"), True)
    assert LeafList(("a", "b")) == LeafList(("b", "a"))


def test_parse_and_render_keep_the_order(schema: SchemaIndex) -> None:
    tree = doc(schema, rules("c", "a", "b") + "<tag>z</tag><tag>a</tag>")
    assert order(tree) == ["c", "a", "b"]
    assert order(tree, "tag") == ["z", "a"]
    names = render(tree, schema).xpath("//eo:rule/eo:name/text()", namespaces={"eo": EO})
    assert names == ["c", "a", "b"]


# -- edits without insert ----------------------------------------------------------


def test_merge_appends_new_entries_and_leaves_existing_ones_in_place(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b"))
    # RFC 7950 §7.8.6: without "insert" a new entry goes last; an existing
    # one named again in a merge is not moved
    assert order(apply(schema, start, rules("c", "b", "a"))) == ["a", "b", "c"]
    same = apply(schema, start, rules("b", "a"))
    assert same is start  # nothing changed: the old tree is kept, shared


def test_replace_of_the_parent_takes_the_order_of_the_request(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b", "c") + "<tag>x</tag><tag>y</tag>")
    result = apply(
        schema, start, rules("c", "a", "b") + "<tag>y</tag><tag>x</tag>", 'nc:operation="replace"'
    )
    assert order(result) == ["c", "a", "b"]
    assert order(result, "tag") == ["y", "x"]
    assert result != start
    # the same order again is no change at all
    assert apply(schema, start, rules("a", "b", "c") + "<tag>x</tag><tag>y</tag>") == start


def test_replace_of_an_entry_keeps_its_place(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b", "c"))
    body = '<rule nc:operation="replace"><name>a</name><action>deny</action></rule>'
    assert order(apply(schema, start, body)) == ["a", "b", "c"]


def test_default_operation_replace_takes_the_order_of_the_request(schema: SchemaIndex) -> None:
    start = doc(schema, "<box>" + "".join(f"<item><id>{i}</id></item>" for i in "abc") + "</box>")
    body = "<box>" + "".join(f"<item><id>{i}</id></item>" for i in "cb") + "</box>"
    result = edit(start, config(body), "replace", schema)
    box = top(result).get((EO, "box"))
    assert isinstance(box, Node)
    items = box.get((EO, "item"))
    assert isinstance(items, ListNode) and list(items.keys()) == [("c",), ("b",)]


# -- yang:insert ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('yang:insert="first"', ["d", "a", "b", "c"]),
        ('yang:insert="last"', ["a", "b", "c", "d"]),
        ('yang:insert="before" yang:key="[eo:name=\'b\']"', ["a", "d", "b", "c"]),
        ('yang:insert="after" yang:key="[eo:name=\'b\']"', ["a", "b", "d", "c"]),
        ('yang:insert="after" yang:key="[eo:name=\'c\']"', ["a", "b", "c", "d"]),
        # an unprefixed key name can only mean the list's own key
        ('yang:insert="before" yang:key="[name = \'a\']"', ["d", "a", "b", "c"]),
    ],
)
def test_insert_places_a_new_entry(schema: SchemaIndex, attrs: str, expected: list[str]) -> None:
    start = doc(schema, rules("a", "b", "c"))
    result = apply(schema, start, f"<rule {attrs}><name>d</name></rule>")
    assert order(result) == expected
    # create places the same way as merge
    created = apply(schema, start, f'<rule nc:operation="create" {attrs}><name>d</name></rule>')
    assert order(created) == expected


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('yang:insert="first"', ["c", "a", "b"]),
        ('yang:insert="last"', ["a", "b", "c"]),
        ('yang:insert="before" yang:key="[eo:name=\'b\']"', ["a", "c", "b"]),
        ('yang:insert="after" yang:key="[eo:name=\'a\']"', ["a", "c", "b"]),
    ],
)
def test_insert_moves_an_existing_entry(
    schema: SchemaIndex, attrs: str, expected: list[str]
) -> None:
    start = doc(schema, rules("a", "b", "c"))
    result = apply(schema, start, f"<rule {attrs}><name>c</name></rule>")
    assert order(result) == expected
    assert (result == start) == (expected == ["a", "b", "c"])


def test_insert_of_the_first_entry_into_an_empty_list(schema: SchemaIndex) -> None:
    start = doc(schema, "<plain><name>x</name></plain>")
    assert order(apply(schema, start, '<rule yang:insert="first"><name>a</name></rule>')) == ["a"]


def test_an_undeclared_module_prefix_in_key_is_the_module(schema: SchemaIndex) -> None:
    """ncclient (lxml) drops an xmlns:eo that only the key attribute uses."""
    start = doc(schema, rules("a", "b"))
    body = f'<rule xmlns:y="{YANG}" y:insert="before" y:key="[eo:name=\'b\']"><name>c</name></rule>'
    wrapped = f'<config xmlns="{NC}"><top xmlns="{EO}">{body}</top></config>'
    assert order(edit(start, parse_xml(wrapped), "merge", schema)) == ["a", "c", "b"]


def test_insert_with_a_two_leaf_key_canonicalises_the_values(schema: SchemaIndex) -> None:
    start = doc(schema, "<pair><a>x</a><b>1</b></pair><pair><a>x</a><b>2</b></pair>")
    body = "<pair yang:insert=\"before\" yang:key=\"[eo:a='x'][eo:b='02']\"><a>y</a><b>0</b></pair>"
    assert order(apply(schema, start, body), "pair") == ["x,1", "y,0", "x,2"]
    # key predicates in any order (each key once)
    body = "<pair yang:insert=\"after\" yang:key=\"[eo:b='1'] [eo:a='x']\"><a>y</a><b>0</b></pair>"
    assert order(apply(schema, start, body), "pair") == ["x,1", "y,0", "x,2"]


def test_insert_into_a_leaf_list_by_value(schema: SchemaIndex) -> None:
    start = doc(schema, "<tag>a</tag><tag>b</tag><tag>c</tag>")
    assert order(apply(schema, start, '<tag yang:insert="first">d</tag>'), "tag") == [
        "d",
        "a",
        "b",
        "c",
    ]
    moved = apply(schema, start, '<tag yang:insert="after" yang:value="a">c</tag>')
    assert order(moved, "tag") == ["a", "c", "b"]
    assert order(apply(schema, start, "<tag>d</tag>"), "tag") == ["a", "b", "c", "d"]


def test_inserts_apply_in_document_order(schema: SchemaIndex) -> None:
    """Each entry is placed after the ones before it in the request, so
    before/after may name an entry the same edit created."""
    start = doc(schema, rules("a"))
    body = (
        '<rule yang:insert="first"><name>x</name></rule>'
        '<rule yang:insert="after" yang:key="[eo:name=\'x\']"><name>y</name></rule>'
    )
    assert order(apply(schema, start, body)) == ["x", "y", "a"]
    # inside a replaced parent the list is rebuilt: "first" is first of the request
    replaced = apply(
        schema,
        start,
        rules("a", "b") + '<rule yang:insert="first"><name>c</name></rule>',
        'nc:operation="replace"',
    )
    assert order(replaced) == ["c", "a", "b"]


def test_insert_is_ignored_where_nothing_is_placed(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b"))
    body = '<rule nc:operation="delete" yang:insert="first"><name>b</name></rule>'
    assert order(apply(schema, start, body)) == ["a"]


# -- errors (RFC 7950 §7.8.6, §15.7; RFC 6241 Appendix A) ------------------------------


def test_before_or_after_without_key_is_missing_attribute(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b"))
    error = refuse(schema, start, '<rule yang:insert="before"><name>c</name></rule>')
    assert (error.tag, error.type) == ("missing-attribute", "protocol")
    assert dict(error.info) == {"bad-attribute": "key", "bad-element": "rule"}
    error = refuse(schema, doc(schema, "<tag>a</tag>"), '<tag yang:insert="after">b</tag>')
    assert (error.tag, dict(error.info)["bad-attribute"]) == ("missing-attribute", "value")


def test_key_naming_no_entry_is_bad_attribute_missing_instance(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b"))
    error = refuse(
        schema,
        start,
        '<rule yang:insert="after" yang:key="[eo:name=\'zz\']"><name>a</name></rule>',
    )
    assert (error.tag, error.app_tag, error.type) == (
        "bad-attribute",
        "missing-instance",
        "application",
    )
    assert dict(error.info) == {"bad-attribute": "key", "bad-element": "rule"}
    assert error.path == "/eo:top/eo:rule[eo:name='a']"
    error = refuse(
        schema, doc(schema, "<tag>a</tag>"), '<tag yang:insert="before" yang:value="q">b</tag>'
    )
    assert (error.tag, error.app_tag) == ("bad-attribute", "missing-instance")


@pytest.mark.parametrize(
    "attrs",
    [
        'yang:insert="middle"',
        'yang:insert="before" yang:key="name=a"',  # not a predicate
        'yang:insert="before" yang:key="[nc:name=\'a\']"',  # prefix of another namespace
        'yang:insert="before" yang:key="[zz:name=\'a\']"',  # bound nowhere, no module's
        'yang:insert="before" yang:key="[eo:action=\'a\']"',  # not the key
        "yang:insert=\"before\" yang:key=\"[eo:name='a'][eo:name='a']\"",  # key twice
        'yang:insert="before" yang:key="[eo:name=\'c\']"',  # the entry itself
        'yang:value="a"',  # value is for leaf-lists
    ],
)
def test_malformed_insert_attributes_are_bad_attribute(schema: SchemaIndex, attrs: str) -> None:
    start = doc(schema, rules("a", "b"))
    error = refuse(schema, start, f"<rule {attrs}><name>c</name></rule>")
    assert (error.tag, error.type, error.app_tag) == ("bad-attribute", "protocol", None)


def test_insert_on_a_system_ordered_list_is_bad_attribute(schema: SchemaIndex) -> None:
    start = doc(schema, "<plain><name>a</name></plain>")
    error = refuse(schema, start, '<plain yang:insert="first"><name>b</name></plain>')
    assert (error.tag, dict(error.info)) == (
        "bad-attribute",
        {"bad-attribute": "insert", "bad-element": "plain"},
    )
    assert "ordered-by user" in error.message


def test_a_failing_entry_is_not_moved(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b"))
    error = refuse(
        schema, start, '<rule nc:operation="create" yang:insert="first"><name>b</name></rule>'
    )
    assert error.tag == "data-exists"


# -- diff, notifications, NACM -----------------------------------------------------------


def test_diff_reports_a_reorder_as_a_modified_list(schema: SchemaIndex) -> None:
    start = doc(schema, rules("a", "b", "c"))
    moved = apply(schema, start, '<rule yang:insert="first"><name>c</name></rule>')
    changes = diff(start, moved, schema)
    assert [(c.op, c.path) for c in changes] == [("modify", "/eo:top/eo:rule")]
    event = config_change(None, changes, schema)
    ns = {"n": "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"}
    assert event.xpath("n:edit/n:target/text()", namespaces=ns) == ["/eo:top/eo:rule"]
    assert event.xpath("n:edit/n:operation/text()", namespaces=ns) == ["replace"]
    # an appended entry is a create only: the others kept their order
    appended = apply(schema, start, rules("d"))
    assert [(c.op, c.key) for c in diff(start, appended, schema)] == [("create", ("d",))]
    # a system-ordered list in another order is no change
    plain = doc(schema, "<plain><name>a</name></plain><plain><name>b</name></plain>")
    swapped = doc(schema, "<plain><name>b</name></plain><plain><name>a</name></plain>")
    assert plain == swapped and diff(plain, swapped, schema) == []


NACM_SCHEMA = default_schema()


def nacm_config(body: str) -> etree._Element:
    return parse_xml(
        f'<config xmlns="{NC}"><nacm xmlns="{NACM}" xmlns:nacm="{NACM}" xmlns:yang="{YANG}" '
        f'xmlns:nc="{NC}">{body}</nacm></config>'
    )


def nacm_rule(name: str, action: str, attrs: str = "") -> str:
    return (
        f"<rule {attrs}><name>{name}</name><path>/soip:serial-over-ip</path>"
        f"<action>{action}</action></rule>"
    )


def may_write(tree: Node) -> bool:
    nacm = tree.get((NACM, "nacm"))
    access = Access(policy_of(nacm if isinstance(nacm, Node) else None, NACM_SCHEMA), "oper")
    step = DataStep("nf-serial-over-ip", "soip", "serial-over-ip")
    return access.data((step,), "update")


def test_nacm_follows_the_edited_rule_order() -> None:
    groups = "<groups><group><name>ops</name><user-name>oper</user-name></group></groups>"

    def rule_list(rules_: str, attrs: str = "") -> str:
        return f"<rule-list {attrs}><name>ops</name><group>ops</group>{rules_}</rule-list>"

    start = edit(
        Node(),
        nacm_config(groups + rule_list(nacm_rule("allow", "permit") + nacm_rule("deny", "deny"))),
        "merge",
        NACM_SCHEMA,
    )
    assert may_write(start)
    moved = edit(
        start,
        nacm_config(
            rule_list(
                nacm_rule("deny", "deny", 'yang:insert="before" yang:key="[nacm:name=\'allow\']"')
            )
        ),
        "merge",
        NACM_SCHEMA,
    )
    assert not may_write(moved)
    # the rule-list entry changed (its rules' order), so diff reports it
    changes = diff(start, moved, NACM_SCHEMA)
    assert [(c.op, c.path) for c in changes] == [
        ("modify", "/nacm:nacm/nacm:rule-list[nacm:name='ops']")
    ]
    replaced = edit(
        moved,
        nacm_config(groups + rule_list(nacm_rule("allow", "permit") + nacm_rule("deny", "deny"))),
        "merge",
        NACM_SCHEMA,
    )
    assert not may_write(replaced)  # a merge does not move existing rules
    replaced = edit(
        moved,
        nacm_config(
            rule_list(
                nacm_rule("allow", "permit") + nacm_rule("deny", "deny"), 'nc:operation="replace"'
            )
        ),
        "merge",
        NACM_SCHEMA,
    )
    assert may_write(replaced)


# -- properties ------------------------------------------------------------------------

NAMES = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True)


@settings(max_examples=60, deadline=None)
@given(names=NAMES, new=NAMES)
def test_replace_gives_the_request_order_and_render_keeps_it(
    schema: SchemaIndex, names: list[str], new: list[str]
) -> None:
    start = doc(schema, rules(*names))
    result = apply(schema, start, rules(*new), 'nc:operation="replace"')
    assert order(result) == new
    assert (result == start) == (new == names)
    again, errors = load_document(to_string(render(result, schema)), schema)
    assert errors == [] and again == result and order(again) == new


@settings(max_examples=80, deadline=None)
@given(data=st.data(), names=NAMES)
def test_insert_agrees_with_a_list_model(
    schema: SchemaIndex, data: st.DataObject, names: list[str]
) -> None:
    start = doc(schema, rules(*names))
    target = data.draw(st.sampled_from("abcdefghij"), label="target")
    where = data.draw(st.sampled_from(["first", "last", "before", "after", None]), label="where")
    anchors = [n for n in names if n != target]
    if where in ("before", "after") and not anchors:
        where = "first"
    expected = list(names)
    attrs = ""
    if where is None:
        if target not in expected:
            expected.append(target)
    else:
        if target in expected:
            expected.remove(target)
        attrs = f'yang:insert="{where}"'
        if where == "first":
            expected.insert(0, target)
        elif where == "last":
            expected.append(target)
        else:
            anchor = data.draw(st.sampled_from(anchors), label="anchor")
            attrs += f" yang:key=\"[eo:name='{anchor}']\""
            at = expected.index(anchor)
            expected.insert(at if where == "before" else at + 1, target)
    result = apply(schema, start, f"<rule {attrs}><name>{target}</name></rule>")
    assert order(result) == expected
    changed = [c for c in diff(start, result, schema) if c.key == ()]
    appended = [n for n in names if n in expected] + [n for n in expected if n not in names]
    assert bool(changed) == (expected != appended)
