"""Which serial ports and channels a retrieval filter can select, before
anything is read.

A ``<get>`` renders the datastore with its state and then applies the
filter, so a filter for one channel of 10 000 cost the snapshot, the state
tree and the rendering of all of them (1.2 s).  Most filters an operator
or a poller sends name the entries they want by key: a subtree filter
``<serial-over-ip><channel><name>c1</name>...`` or an XPath filter
``/soip:serial-over-ip/soip:channel[soip:name='c1']/...``.  For those,
``preselect`` tells which entries can be in the reply; the caller reads
and renders only those and applies the filter as always.

The answer is a superset of what the filter selects, never less: any
filter this module does not fully understand (a list node without its
key, a leaf of the top container, a predicate other than the key, an
axis, a union) gets None, which means "read everything".  The filter's
result on the narrowed data is then the same as on all of it, because a
filter that names an entry by its key selects from within that entry
only (``tests/test_selection.py`` checks both forms against the full
rendering).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree
from pyang import xpath_lexer

from nf.config.codec import NC_NS, split_tag
from nf.config.tree import ListNode, Node
from nf.model import RelayConfig
from nf.northbound.filters import MAX_SELECT, element_children, has_element_children, scan_select
from nf.schema import MAIN_MODULE, SchemaIndex

TOP = "serial-over-ip"
LISTS = ("serial-port", "channel")
"""The unit lists a selection narrows, both keyed by ``name``."""

_XML_SPACE = " \t\n\r"
_NC_TYPE = f"{{{NC_NS}}}type"
_NC_SELECT = f"{{{NC_NS}}}select"


@dataclass(frozen=True)
class Selection:
    """The entries a filter can select, by list: every other entry of
    these lists is left out of what is read."""

    serial_ports: frozenset[str]
    channels: frozenset[str]
    only_ours: bool = True
    """The filter selects nothing outside ``serial-over-ip``: the state of
    other top-level nodes (NETCONF monitoring, NACM counters) need not be
    read or rendered either."""

    def ports_in(self, config: RelayConfig) -> list[str]:
        """The selected serial ports that ``config`` has, in its order."""
        return _in_order(self.serial_ports, config.serial_ports)

    def channels_in(self, config: RelayConfig) -> list[str]:
        """The selected channels that ``config`` has, in its order."""
        return _in_order(self.channels, config.channels)

    def channels_of(self, config: RelayConfig) -> frozenset[str]:
        """The channels whose state the selection shows: those selected,
        and those on a selected serial port (a port's state is read with
        the channel that runs it).  The latter costs a pass over the
        channels, only when a serial port is selected."""
        if not self.serial_ports:
            return self.channels
        return self.channels | {
            c.name for c in config.channels.values() if c.serial_port in self.serial_ports
        }

    def restrict(self, tree: Node, schema: SchemaIndex) -> Node:
        """``tree`` with only the selected entries of the two lists, in
        time proportional to the selection."""
        ns = schema.modules[MAIN_MODULE].namespace
        top = tree.get((ns, TOP))
        if not isinstance(top, Node):
            return tree
        for name, wanted in (("serial-port", self.serial_ports), ("channel", self.channels)):
            entries = top.get((ns, name))
            if not isinstance(entries, ListNode):
                continue
            kept: dict[tuple[str, ...], Node] = {}
            if len(wanted) <= 1:
                for key in wanted:
                    entry = entries.get((key,))
                    if entry is not None:
                        kept[(key,)] = entry
            else:  # in the list's order, as a whole rendering has them
                kept = {k: e for k, e in entries.items() if k[0] in wanted}
            top = top.set((ns, name), ListNode(kept)) if kept else top.remove((ns, name))
        return tree.set((ns, TOP), top)


def _in_order(wanted: frozenset[str], present: Mapping[str, object]) -> list[str]:
    """``wanted`` names that ``present`` has, in ``present``'s order (the
    order a whole rendering has); without walking ``present`` for one."""
    if len(wanted) <= 1:
        return [n for n in wanted if n in present]
    return [n for n in present if n in wanted]


def preselect(filter_elem: etree._Element | None, schema: SchemaIndex) -> Selection | None:
    """The entries ``filter_elem`` can select, or None: any of them."""
    if filter_elem is None:
        return None
    ns = schema.modules[MAIN_MODULE].namespace
    kind = filter_elem.get("type", filter_elem.get(_NC_TYPE))
    if kind is None or kind == "subtree":
        return _subtree(filter_elem, ns)
    if kind == "xpath":
        select = filter_elem.get("select", filter_elem.get(_NC_SELECT))
        return _xpath(filter_elem, select, ns) if select is not None else None
    return None


def _subtree(filter_elem: etree._Element, ns: str) -> Selection | None:
    found: dict[str, set[str]] = {name: set() for name in LISTS}
    only_ours = True
    for node in element_children(filter_elem):
        if split_tag(node.tag)[1] != TOP:
            only_ours = False
            continue  # another module's node (a namespace-less one is looked at)
        inner = element_children(node)
        if not inner:
            return None  # a selection node: all of it
        for child in inner:
            child_ns, name = split_tag(child.tag)
            if name not in found or child_ns not in (ns, ""):
                return None  # a leaf or container of the top: not narrowed
            keys = [
                (leaf.text or "").strip(_XML_SPACE)
                for leaf in element_children(child)
                if split_tag(leaf.tag)[1] == "name"
                and not has_element_children(leaf)
                and (leaf.text or "").strip(_XML_SPACE)
            ]
            if not keys:
                return None  # every entry of the list
            found[name].add(keys[0])
    return Selection(frozenset(found["serial-port"]), frozenset(found["channel"]), only_ours)


def _xpath(filter_elem: etree._Element, select: str, ns: str) -> Selection | None:
    """Only ``/top/list[name='x']`` followed by plain child steps."""
    if len(select) > MAX_SELECT:
        return None  # refused by the filter, without a scan here
    try:
        tokens = [t for t in scan_select(select) if t.type != "_whitespace"]
    except xpath_lexer.XPathError:
        return None
    namespaces = {str(p): uri for p, uri in filter_elem.nsmap.items() if p}
    default = filter_elem.nsmap.get(None)

    def ours(token: object, local: str | None = None) -> str | None:
        """The local name of a name token in our namespace, or None."""
        if getattr(token, "type", None) != "name":
            return None
        value = str(getattr(token, "value", ""))
        prefix, _, name = value.rpartition(":")
        uri = namespaces.get(prefix) if prefix else default
        if uri != ns or (local is not None and name != local):
            return None
        return name

    shape = [t.type for t in tokens[:9]]
    if shape != ["SLASH", "name", "SLASH", "name", "LBRACKET", "name", "EQ", "literal", "RBRACKET"]:
        return None
    lst = ours(tokens[3])
    if ours(tokens[1], TOP) is None or lst not in LISTS or ours(tokens[5], "name") is None:
        return None
    rest = tokens[9:]
    for i, token in enumerate(rest):  # plain child steps: /name/name...
        if token.type != ("SLASH" if i % 2 == 0 else "name"):
            return None
    if len(rest) % 2:
        return None
    key = str(tokens[7].value)[1:-1]
    return Selection(
        frozenset([key]) if lst == "serial-port" else frozenset(),
        frozenset([key]) if lst == "channel" else frozenset(),
    )
