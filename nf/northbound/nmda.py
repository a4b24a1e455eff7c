"""NMDA (RFC 8342) as NETCONF serves it (RFC 8526): the datastores that
<get-data> reads and <edit-data> writes, and what <get-data> does to a
rendered datastore beyond <get>/<get-config>.

The datastores.  running, candidate and startup are those of RFC 6241.
intended is running: nothing here transforms configuration on its way
to being applied (no templates, no inactive nodes), so RFC 8342 §5.1.4
makes it the same data.  operational is what the daemon runs: running's
configuration with every default in use (a node whose ``when`` holds
and that nobody set has its schema default in use, RFC 8342 §5.3) and
the state of the relay, NETCONF monitoring and NACM together.  The
relay applies a commit whole or not at all (every change is prepared
before any is applied), so the configuration in use is running's.

Origins (RFC 8342 §5.3.4), on configuration nodes of operational:
``or:intended`` for what running holds, ``or:default`` for a schema
default in use.  ``or:system`` for values the relay runs with that nobody
configured: the line settings an RFC 2217 client set for the time of its
session (``serial-port/state/effective`` with ``set-by-session``), which
operational shows in place of the configured ones (``system_values``).
An annotation is written only where it differs from the parent's (the
parent's origin is inherited, RFC 8342 §5.3.4); state nodes have none.

Everything here is pure and linear in the data it walks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from nf.config.codec import NC_NS, render, split_tag
from nf.config.errors import ConfigError
from nf.config.tree import LeafList, ListNode, Node
from nf.northbound.defaults import mark_defaults
from nf.northbound.filters import Evaluate, apply_filter, element_children
from nf.schema import MAIN_MODULE, SchemaIndex, SchemaNode

NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
ORIGIN_NS = "urn:ietf:params:xml:ns:yang:ietf-origin"
ORIGIN = f"{{{ORIGIN_NS}}}origin"
"""The origin metadata annotation (RFC 7952 XML encoding: an attribute)."""

OPERATIONAL = "operational"
WRITABLE = ("running", "candidate")
"""What <edit-data> can target (RFC 8526 §3.2: the writable datastores)."""

ORIGINS = frozenset({"origin", "intended", "dynamic", "system", "learned", "default", "unknown"})
"""The identities of ietf-origin; every one but ``origin`` derives from it directly."""
INTENDED = "intended"
SYSTEM = "system"
DEFAULT = "default"


def identity(elem: etree._Element, namespace: str, allowed: frozenset[str] | None) -> str | None:
    """The name of an identityref value in ``namespace`` (``ds:running``, with
    the prefix bound where the value is), or None when it is not one of
    ``allowed`` (any name if None) of that module."""
    text = (elem.text or "").strip()
    prefix, sep, name = text.rpartition(":")
    if not sep:
        return None
    bound = elem.nsmap.get(prefix)
    if bound != namespace or (allowed is not None and name not in allowed):
        return None
    return name


def _param_error(tag: str, message: str, element: str) -> ConfigError:
    return ConfigError(tag, message, type="protocol", info=(("bad-element", element),))


def datastore_of(elem: etree._Element, known: frozenset[str], verb: str) -> str:
    """The datastore a <datastore> parameter names, or NmdaError
    (invalid-value, RFC 8526: "not supported by the server")."""
    name = identity(elem, DS_NS, None)
    if name is None or name not in known:
        shown = (elem.text or "").strip()
        raise NmdaError(
            _param_error(
                "invalid-value",
                f'datastore "{shown}" cannot be {verb} here; '
                + ", ".join(f"ds:{n}" for n in sorted(known))
                + " can",
                "datastore",
            )
        )
    return name


class NmdaError(Exception):
    """A get-data/edit-data parameter that cannot be honoured."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


def bad_value(message: str, element: str) -> NmdaError:
    return NmdaError(_param_error("invalid-value", message, element))


@dataclass(frozen=True)
class OriginFilter:
    """origin-filter (``negated`` False) or negated-origin-filter."""

    origins: frozenset[str]
    negated: bool

    def matches(self, origin: str) -> bool:
        hit = origin in self.origins or "origin" in self.origins  # all derive from or:origin
        return hit != self.negated


@dataclass(frozen=True)
class View:
    """What a <get-data> asks of a datastore beyond <get-config>/<get>."""

    operational: bool
    """Config with the defaults in use, and state (the caller reads both)."""
    mode: str = "explicit"
    """with-defaults, on the conventional datastores."""
    config_filter: bool | None = None
    with_origin: bool = False
    origins: OriginFilter | None = None
    max_depth: int | None = None

    def shape(
        self,
        schema: SchemaIndex,
        tree: Node,
        configured: Node,
        flt: etree._Element | None,
        costly_xpath: Evaluate | None,
    ) -> etree._Element:
        """``tree`` (what the datastore shows this user) as the <data> of a
        <get-data> reply; ``configured``: the datastore as stored, which
        tells intended from default.  The filters are ANDed (RFC 8526
        §3.1.1): config-filter and origin filters leave out nodes first,
        then the subtree or XPath filter selects and max-depth cuts what it
        selected.  Raises FilterError."""
        nsmap: dict[str | None, str] = {None: NC_NS}
        annotate = self.operational and (self.with_origin or self.origins is not None)
        if annotate:
            nsmap["or"] = ORIGIN_NS  # the annotation's values name identities with it
        data = render(tree, schema, etree.Element(f"{{{NC_NS}}}data", nsmap=nsmap))  # type: ignore[arg-type]
        if annotate:
            annotate_origins(data, configured, schema)
        else:
            mark_defaults(data, schema, self.mode)
        if self.operational:
            system_values(data, schema, annotate)
        if self.config_filter is not None:
            filter_config(data, schema, self.config_filter)
        if self.origins is not None:
            filter_origins(data, schema, self.origins)
            if not self.with_origin:
                strip_origins(data)
        if flt is not None or self.max_depth is not None:
            data = apply_filter(data, flt, schema, costly_xpath, self.max_depth)
        out = etree.Element(f"{{{NMDA_NS}}}data", nsmap=_reply_nsmap(self.with_origin))  # type: ignore[arg-type]
        out.extend(list(data))
        return out


def _reply_nsmap(with_origin: bool) -> dict[str | None, str]:
    nsmap: dict[str | None, str] = {None: NMDA_NS}
    if with_origin:
        nsmap["or"] = ORIGIN_NS
    return nsmap


def annotate_origins(data: etree._Element, configured: Node, schema: SchemaIndex) -> None:
    """Put ``or:origin`` on the configuration nodes of a rendering of
    operational (in place): intended where ``configured`` (running) has the
    node, default where only the defaults in use put it.  Written where it
    differs from the parent's; ``data`` must declare the ``or`` prefix,
    which the values name."""
    for child in element_children(data):
        snode = schema.root.children.get(split_tag(child.tag))
        if snode is not None and snode.config:
            _annotate(child, snode, configured.get(snode.qname), None)


def _annotate(
    elem: etree._Element, snode: SchemaNode, configured: object, inherited: str | None
) -> None:
    """``configured``: what running has at this element (a leaf value, a
    Node, a LeafList; None where running has nothing)."""
    if snode.keyword in ("leaf", "leaf-list"):
        here = configured is not None and (
            not isinstance(configured, LeafList) or (elem.text or "") in configured.values
        )
    else:
        here = configured is not None
    origin = INTENDED if here else DEFAULT
    if origin != inherited:
        elem.set(ORIGIN, f"or:{origin}")
    if snode.keyword in ("leaf", "leaf-list"):
        return
    node = configured if isinstance(configured, Node) else None
    for child in element_children(elem):
        qname = split_tag(child.tag)
        sn = snode.children.get(qname)
        if sn is None or not sn.config:
            continue
        below = node.get(qname) if node is not None else None
        if sn.keyword == "list":
            below = _entry(child, sn, below)
        _annotate(child, sn, below, origin)


LINE_LEAVES = ("baud-rate", "data-bits", "parity", "stop-bits", "flow-control")
"""The serial-port leaves an RFC 2217 client may set for its session."""


def system_values(data: etree._Element, schema: SchemaIndex, annotate: bool) -> None:
    """On a rendering of operational (in place): a serial port whose line
    an RFC 2217 session set (``state/effective`` names the session) shows
    the settings it runs with, not the configured ones, and with
    ``annotate`` each that differs is ``or:system`` (RFC 8342 §5.3.4: the
    system made it so, not the configuration)."""
    ns = schema.modules[MAIN_MODULE].namespace
    top = data.find(f"{{{ns}}}serial-over-ip")
    if top is None:
        return
    for port in top.iterfind(f"{{{ns}}}serial-port"):
        effective = port.find(f"{{{ns}}}state/{{{ns}}}effective")
        if effective is None or effective.find(f"{{{ns}}}set-by-session") is None:
            continue
        for name in LINE_LEAVES:
            value = effective.findtext(f"{{{ns}}}{name}")
            leaf = port.find(f"{{{ns}}}{name}")
            if value is None or leaf is None or leaf.text == value:
                continue
            leaf.text = value
            if annotate:
                leaf.set(ORIGIN, f"or:{SYSTEM}")


def _entry(elem: etree._Element, snode: SchemaNode, entries: object) -> Node | None:
    """The entry of ``entries`` (a ListNode) that ``elem`` renders, by its keys."""
    if not isinstance(entries, ListNode):
        return None
    values: dict[tuple[str, str], str] = {}
    for child in element_children(elem):
        qname = split_tag(child.tag)
        if qname in snode.keys and qname not in values:
            values[qname] = child.text or ""
    return entries.get(tuple(values.get(k, "") for k in snode.keys))


def filter_config(data: etree._Element, schema: SchemaIndex, config: bool) -> None:
    """config-filter (in place): keep only ``config true`` nodes (``config``)
    or only ``config false`` ones, with the configuration nodes above them
    as containment (list entries with their keys)."""
    for child in element_children(data):
        snode = schema.root.children.get(split_tag(child.tag))
        if snode is None:
            continue
        if not _keep_config(child, snode, config):
            data.remove(child)


def _keep_config(elem: etree._Element, snode: SchemaNode, config: bool) -> bool:
    """Prune ``elem``'s subtree; whether ``elem`` itself stays."""
    if not snode.config:
        return not config  # state: whole or not at all
    if snode.keyword in ("leaf", "leaf-list"):
        return config
    kept = _prune_children(elem, snode, lambda child, sn: _keep_config(child, sn, config))
    return config or kept


def _prune_children(
    elem: etree._Element,
    snode: SchemaNode,
    keep: Callable[[etree._Element, SchemaNode], bool],
) -> bool:
    """Remove the children of ``elem`` that ``keep`` refuses (a list
    entry's keys stay, uncounted); whether any child was kept."""
    kept = False
    for child in element_children(elem):
        qname = split_tag(child.tag)
        sn = snode.children.get(qname)
        if sn is None or qname in snode.keys:
            continue
        if keep(child, sn):
            kept = True
        else:
            elem.remove(child)
    return kept


def filter_origins(data: etree._Element, schema: SchemaIndex, wanted: OriginFilter) -> None:
    """origin-filter/negated-origin-filter (in place) on an annotated
    rendering: a configuration node stays when its origin (inherited from
    its parent where not written) matches, or when a node below it stays
    (then as containment, a list entry with its keys); state nodes are not
    filtered (RFC 8526)."""
    for child in element_children(data):
        snode = schema.root.children.get(split_tag(child.tag))
        if snode is None or not snode.config:
            continue
        if not _keep_origin(child, snode, wanted, "unknown"):
            data.remove(child)


def _keep_origin(
    elem: etree._Element, snode: SchemaNode, wanted: OriginFilter, inherited: str
) -> bool:
    written = elem.get(ORIGIN)
    origin = written.rpartition(":")[2] if written else inherited
    matched = wanted.matches(origin)
    if snode.keyword in ("leaf", "leaf-list"):
        return matched
    kept = _prune_children(
        elem,
        snode,
        # state below is not filtered, and keeps this node as its containment
        lambda child, sn: not sn.config or _keep_origin(child, sn, wanted, origin),
    )
    return matched or kept


def strip_origins(data: etree._Element) -> None:
    """Remove the origin annotations (they served an origin filter only)."""
    for elem in data.iter(etree.Element):
        if ORIGIN in elem.attrib:
            del elem.attrib[ORIGIN]
