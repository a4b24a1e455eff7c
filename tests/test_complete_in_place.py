"""Instance.complete_tree and complete_entries read the instance document
in place; they must give what reading a pruned copy gave (the implicit
containers that hold nothing removed, marker attributes stripped)."""

from __future__ import annotations

import copy
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from strategies import X, any_configs, document, valid_configs

from nf.app import DEMO_CONFIG
from nf.config.codec import WD_DEFAULT, load_document, parse, parse_children
from nf.config.tree import ListNode, Node
from nf.config.validate import Instance
from nf.schema import default_schema

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
