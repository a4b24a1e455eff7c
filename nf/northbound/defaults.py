"""with-defaults retrieval modes (RFC 6243) on a rendered <data> element.

Our basic mode is ``explicit``: datastores keep what clients set, so a
plain get-config already is explicit.  The other modes start from the
datastore with every default applied (``complete``) and then, per RFC 6243
§3.2 and §3.4, treat a node whose value equals its schema default, whether a
client set it or the server did, as a default node: ``trim`` removes it,
``report-all-tagged`` marks it ``wd:default="true"``, ``report-all`` keeps
it as it is.
"""

from __future__ import annotations

from lxml import etree

from nf.config.codec import WD_DEFAULT, split_tag
from nf.schema import SchemaIndex, SchemaNode

WITH_DEFAULTS_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
MODES = frozenset({"explicit", "report-all", "trim", "report-all-tagged"})
CAPABILITY = (
    "urn:ietf:params:netconf:capability:with-defaults:1.0"
    "?basic-mode=explicit&also-supported=report-all,trim,report-all-tagged"
)


def mark_defaults(data: etree._Element, schema: SchemaIndex, mode: str) -> etree._Element:
    """Apply ``trim`` or ``report-all-tagged`` in place to a complete rendering."""
    if mode in ("trim", "report-all-tagged"):
        _walk(data, schema.root, mode)
    return data


def _walk(elem: etree._Element, snode: SchemaNode, mode: str) -> None:
    leaf_lists: dict[tuple[str, str], list[etree._Element]] = {}
    for child in list(elem):
        if not isinstance(child.tag, str):
            continue
        qname = split_tag(child.tag)
        sn = snode.children.get(qname)
        if sn is None:
            continue
        if sn.keyword == "leaf":
            if sn.config and sn.defaults and (child.text or "") == sn.defaults[0]:
                _default_node(elem, child, mode)
        elif sn.keyword == "leaf-list":
            leaf_lists.setdefault(qname, []).append(child)
        elif sn.keyword in ("container", "list"):
            _walk(child, sn, mode)
            if mode == "trim" and sn.keyword == "container" and not sn.presence and len(child) == 0:
                elem.remove(child)
    for qname, values in leaf_lists.items():
        sn = snode.children[qname]
        if (
            sn.config
            and sn.defaults
            and sorted(v.text or "" for v in values) == sorted(sn.defaults)
        ):
            for value in values:
                _default_node(elem, value, mode)


def _default_node(parent: etree._Element, node: etree._Element, mode: str) -> None:
    if mode == "trim":
        parent.remove(node)
    else:
        node.set(WD_DEFAULT, "true")
