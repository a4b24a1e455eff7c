"""Instance.complete_tree and complete_entries read the instance document
in place; they must give what reading a pruned copy gave (the implicit
containers that hold nothing removed, marker attributes stripped).  And
the defaults are added to the instance as the plain per-name scan did."""

from __future__ import annotations

import copy
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from strategies import X, any_configs, document, valid_configs

from nf.app import DEMO_CONFIG
from nf.config.codec import WD_DEFAULT, load_document, parse, parse_children, render, split_tag
from nf.config.tree import ListNode, Node
from nf.config.validate import Instance, _active_cases, _case_allows, _named, when_holds
from nf.schema import SchemaNode, default_schema

SCHEMA = default_schema()
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
IMPLICIT = "{urn:nf:internal}implicit"
_IMPLICIT_BELOW = etree.XPath("descendant::*[@nfi:implicit]", namespaces={"nfi": "urn:nf:internal"})


def _pruned(elem: etree._Element) -> etree._Element:
    """How the instance was read before: a pruned copy."""
    out = copy.deepcopy(elem)
    out.tail = None
    for implicit in reversed(cast(list[etree._Element], _IMPLICIT_BELOW(out))):
        parent = implicit.getparent()
        if len(implicit) == 0 and parent is not None:
            parent.remove(implicit)
    etree.strip_attributes(out, IMPLICIT, WD_DEFAULT)
    return out


def _same_as_pruned(tree: Node) -> None:
    instance = Instance(tree, SCHEMA)
    holder = etree.Element("data")
    holder.extend(_pruned(c) for c in instance.holder)
    expected, _ = parse(holder, SCHEMA, allow_state=True)
    assert instance.complete_tree() == expected
    top = SCHEMA.root.children[(SOIP, "serial-over-ip")]
    for kind in ("serial-port", "channel"):
        lst = top.children[(SOIP, kind)]
        keys = list(instance.entry_elements(lst))
        got = instance.complete_entries(top, lst, [*keys, ("absent",)])
        assert list(got) == keys
        for key in keys:
            one = etree.Element("data")
            one.append(_pruned(instance.entry_elements(lst)[key]))
            listed = parse_children(one, top, "", SCHEMA, True, []).get(lst.qname)
            assert isinstance(listed, ListNode)
            assert got[key] == listed.get(key)
    # reading did not change the instance document
    assert instance.complete_tree() == expected


def test_the_demo_configuration() -> None:
    tree, errors = load_document(DEMO_CONFIG, SCHEMA)
    assert not errors
    _same_as_pruned(tree)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(valid_configs(), any_configs()))
def test_random_configurations(cfg: X) -> None:
    tree, _ = parse(document(cfg), SCHEMA)  # type: ignore[arg-type]
    _same_as_pruned(tree)


def _reference_defaults(elem: etree._Element, snode: SchemaNode) -> None:
    """Instance._add_defaults as it was: one scan of the children per name."""
    present = {split_tag(c.tag) for c in elem if isinstance(c.tag, str)}
    active = _active_cases(snode, present)
    for qname, sn in snode.children.items():
        if not sn.config and sn.keyword != "container":
            continue
        if not _case_allows(sn, active):
            continue
        tag = f"{{{qname[0]}}}{qname[1]}"
        if sn.keyword in ("container", "list"):
            for child in [c for c in elem if c.tag == tag]:
                _reference_defaults(child, sn)
            if (
                sn.keyword == "container"
                and not sn.presence
                and sn.config
                and qname not in present
                and when_holds(sn, elem)
            ):
                sub = etree.SubElement(elem, tag)
                sub.set(IMPLICIT, "true")
                _reference_defaults(sub, sn)
        elif sn.defaults and qname not in present and when_holds(sn, elem):
            for value in sn.defaults:
                sub = etree.SubElement(elem, tag)
                sub.text = value
                sub.set(WD_DEFAULT, "true")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(valid_configs(), any_configs()))
def test_defaults_are_added_as_before(cfg: X) -> None:
    tree, _ = parse(document(cfg), SCHEMA)  # type: ignore[arg-type]
    expected = render(tree, SCHEMA, etree.Element("data"))
    _reference_defaults(expected, SCHEMA.root)
    holder = Instance(tree, SCHEMA).holder
    assert _names_and_text(holder) == _names_and_text(expected)
    # and it serializes as it is (no prefix of a default leaf's marker
    # shadows one its tag uses): what a copy of it is made from
    assert _names_and_text(etree.fromstring(etree.tostring(holder))) == _names_and_text(expected)


def _names_and_text(holder: etree._Element) -> list[tuple[str, str, dict[str, str]]]:
    """Every element in order: its name, text and attributes (the prefixes
    and where namespaces are declared aside: a default leaf declares the
    marker's namespace itself)."""
    return [(e.tag, e.text or "", dict(e.attrib)) for e in holder.iter() if isinstance(e.tag, str)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["{a}x", "{a}y", "{b}x", "z", "comment"]), max_size=12))
def test_children_are_grouped_by_name_in_document_order(tags: list[str]) -> None:
    elem = etree.Element("e")
    for i, tag in enumerate(tags):
        elem.append(etree.Comment("c") if tag == "comment" else etree.Element(tag, n=str(i)))
    expected: dict[tuple[str, str], list[etree._Element]] = {}
    for child in elem:
        if isinstance(child.tag, str):
            expected.setdefault(split_tag(child.tag), []).append(child)
    assert _named(elem) == expected
