"""Typed, frozen views (nf.model) of a validated configuration, for the relay runtime.

The runtime wants integers and named fields, not lexical strings in a
generic tree.  Every value is read from the tree *after* ``complete`` has
applied the module's defaults, so no default is written again here; the
YANG module stays the one place that defines them.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence

from lxml import etree

from nf.config.codec import leaf_value, split_tag
from nf.config.diff import Change
from nf.config.tree import LeafList, ListNode, Node
from nf.config.validate import Instance, complete
from nf.model import (
    ChannelConfig,
    PackingConfig,
    RelayConfig,
    SecondaryConfig,
    SerialPortConfig,
)
from nf.schema import MAIN_MODULE, SchemaIndex, SchemaNode


class _Reader(ABC):
    """Read leaves of one node by local name in the module's namespace."""

    @abstractmethod
    def opt(self, name: str) -> str | None: ...

    @abstractmethod
    def sub(self, name: str) -> _Reader | None: ...

    @abstractmethod
    def entries(self, name: str) -> list[_Reader]: ...

    @abstractmethod
    def values(self, name: str) -> tuple[str, ...]: ...

    def text(self, name: str) -> str:
        value = self.opt(name)
        if value is None:
            raise ValueError(f"{name} is missing: validate the tree first")
        return value

    def number(self, name: str) -> int | None:
        value = self.opt(name)
        return None if value is None else int(value)

    def flag(self, name: str) -> bool:
        return self.opt(name) == "true"


class _View(_Reader):
    """A node of a tree (``Node``)."""

    def __init__(self, node: Node | None, ns: str) -> None:
        self.node = node if node is not None else Node()
        self.ns = ns

    def opt(self, name: str) -> str | None:
        value = self.node.get((self.ns, name))
        return value if isinstance(value, str) else None

    def sub(self, name: str) -> _View | None:
        value = self.node.get((self.ns, name))
        return _View(value, self.ns) if isinstance(value, Node) else None

    def entries(self, name: str) -> list[_Reader]:
        value = self.node.get((self.ns, name))
        if not isinstance(value, ListNode):
            return []
        return [_View(entry, self.ns) for _key, entry in value.items()]

    def values(self, name: str) -> tuple[str, ...]:
        value = self.node.get((self.ns, name))
        return value.values if isinstance(value, LeafList) else ()


class _ElementView(_Reader):
    """A node of a validation's instance document, read in place: what
    ``_View`` reads of the tree ``parse_children`` makes of the element,
    without making it (a commit creating 10 000 channels read 20 000
    entries that way, a tenth of its time).  As parsing does, values are
    canonical (``leaf_value``), an empty non-presence container is none,
    the marker attributes of defaults are ignored, and nodes the schema
    does not know are skipped.  The document is a valid one: no key is
    missing or repeated."""

    def __init__(self, elem: etree._Element, sn: SchemaNode, schema: SchemaIndex, ns: str) -> None:
        self.elem = elem
        self.sn = sn
        self.schema = schema
        self.ns = ns
        self._by_tag: dict[str, list[etree._Element]] | None = None
        """The element's children by tag, in one pass on the first read
        (an entry is read about 25 times: one tag search each cost more)."""
        self._leaves: dict[str, str | None] = {}
        """Made in that pass: local name -> the value of each leaf child
        (None: an element with children, no leaf value), read as ``opt``
        reads it; most reads are of leaves, each a dictionary lookup."""

    def _group(self) -> dict[str, list[etree._Element]]:
        by_tag: dict[str, list[etree._Element]] = {}
        leaves = self._leaves
        leaf_tags = _child_tags(self.sn, self.ns)[1]
        for elem in self.elem.iterchildren(etree.Element):
            tag = elem.tag
            tagged = by_tag.get(tag)
            if tagged is None:
                by_tag[tag] = [elem]
                leaf = leaf_tags.get(tag)
                if leaf is not None:  # the first of its name, as _children finds it
                    leaves[leaf[0]] = None if len(elem) else leaf_value(leaf[1], elem, self.schema)
            else:
                tagged.append(elem)
        self._by_tag = by_tag
        return by_tag

    def _children(self, name: str, keyword: str) -> tuple[SchemaNode | None, list[etree._Element]]:
        found = _child_tags(self.sn, self.ns)[0].get(name)
        if found is None or found[0].keyword != keyword:
            return None, _NONE
        by_tag = self._by_tag if self._by_tag is not None else self._group()
        return found[0], by_tag.get(found[1], _NONE)

    def opt(self, name: str) -> str | None:
        if self._by_tag is None:
            self._group()
        return self._leaves.get(name)

    def sub(self, name: str) -> _ElementView | None:
        sn, found = self._children(name, "container")
        if sn is None or not found or not (sn.presence or _holds_data(found[0], sn)):
            return None
        return _ElementView(found[0], sn, self.schema, self.ns)

    def entries(self, name: str) -> list[_Reader]:
        sn, found = self._children(name, "list")
        if sn is None:
            return []
        return [_ElementView(elem, sn, self.schema, self.ns) for elem in found]

    def values(self, name: str) -> tuple[str, ...]:
        sn, found = self._children(name, "leaf-list")
        if sn is None:
            return ()
        return tuple(dict.fromkeys(leaf_value(sn, e, self.schema) for e in found if not len(e)))


_NONE: list[etree._Element] = []
"""No element (shared: never changed)."""


@functools.lru_cache(maxsize=1024)
def _child_tags(
    sn: SchemaNode, ns: str
) -> tuple[dict[str, tuple[SchemaNode, str]], dict[str, tuple[str, SchemaNode]]]:
    """The children of ``sn`` in namespace ``ns``: local name -> (schema
    node, tag), and for its leaves, tag -> (local name, schema node).  Made
    once per schema node, not at each of the 25 reads of each of 20 000
    entries (a commit creating 10 000 channels), where forming the tag was
    a third of the reading."""
    by_name = {
        name: (child, f"{{{child.namespace}}}{child.name}")
        for (child_ns, name), child in sn.children.items()
        if child_ns == ns
    }
    leaves = {tag: (name, sn) for name, (sn, tag) in by_name.items() if sn.keyword == "leaf"}
    return by_name, leaves


def _holds_data(elem: etree._Element, sn: SchemaNode) -> bool:
    """Whether parsing ``elem`` (an instance of container ``sn``) gives a
    node with children: a leaf, a list entry, or a container that does."""
    for child in elem.iterchildren(etree.Element):
        child_sn = sn.children.get(split_tag(child.tag))
        if child_sn is None or child_sn.keyword in ("input", "output", "action"):
            continue
        if child_sn.keyword != "container":
            return True
        if child_sn.presence or _holds_data(child, child_sn):
            return True
    return False


def _port(v: _Reader) -> SerialPortConfig:
    return SerialPortConfig(
        name=v.text("name"),
        device=v.text("device"),
        baud_rate=v.number("baud-rate") or 0,
        data_bits=v.number("data-bits") or 0,
        parity=v.text("parity"),
        stop_bits=v.text("stop-bits"),
        flow_control=v.text("flow-control"),
        line_mode=v.text("line-mode"),
    )


def _channel(v: _Reader, ns: str) -> ChannelConfig:
    listen = v.sub("listen")
    secondary = v.sub("secondary")
    packing = v.sub("packing") or _View(None, ns)
    return ChannelConfig(
        name=v.text("name"),
        enabled=v.flag("enabled"),
        serial_port=v.text("serial-port"),
        mode=v.text("mode"),
        listen_address=listen.opt("address") if listen else None,
        listen_port=listen.number("port") if listen else None,
        secondary=SecondaryConfig(
            port=secondary.number("port") or 0,
            response_mode=secondary.text("response-mode"),
            timeout_ms=secondary.number("timeout"),
        )
        if secondary
        else None,
        destinations=tuple(
            (d.text("address"), d.number("port") or 0) for d in v.entries("destination")
        ),
        multicast_group=v.opt("multicast-group"),
        packing=PackingConfig(
            max_frame_size=packing.number("max-frame-size"),
            frame_delay_ms=packing.number("frame-delay"),
            delimiter=packing.number("delimiter"),
        ),
        inactivity_timeout=v.number("inactivity-timeout") or 0,
        keepalive=v.number("keepalive") or 0,
        takeover=v.flag("takeover"),
        allowed_peers=v.values("allowed-peer"),
        rfc2217=v.flag("rfc2217"),
        allow_line_control=v.flag("allow-line-control"),
    )


def from_tree(tree: Node, schema: SchemaIndex) -> RelayConfig:
    """The typed configuration of a *valid* tree, defaults applied."""
    ns = schema.modules[MAIN_MODULE].namespace
    full = complete(tree, schema)
    top = _View(full, ns).sub("serial-over-ip") or _View(None, ns)
    ports = {p.name: p for p in map(_port, top.entries("serial-port"))}
    channels = {c.name: c for c in (_channel(v, ns) for v in top.entries("channel"))}
    return RelayConfig(serial_ports=ports, channels=channels)


def update(
    previous: RelayConfig, changes: Sequence[Change], instance: Instance, schema: SchemaIndex
) -> RelayConfig:
    """``previous`` with only the changed entries rebuilt.

    A one-channel commit should not pay for converting a thousand unchanged
    channels: entries that did not change keep their (frozen, equal) objects,
    and changed ones are read from the validation's instance document, whose
    defaults were computed on the whole new datastore.
    """
    ns = schema.modules[MAIN_MODULE].namespace
    kinds = {change.kind for change in changes}
    # a mapping no change touches is shared (never changed in place)
    ports = dict(previous.serial_ports) if "serial-port" in kinds else previous.serial_ports
    channels = dict(previous.channels) if "channel" in kinds else previous.channels
    wanted: dict[str, list[tuple[str, ...]]] = {"serial-port": [], "channel": []}
    for change in changes:
        if change.kind not in wanted or change.schema.namespace != ns:
            return from_tree(instance.complete_tree(), schema)  # not a per-entry change
        if change.op == "delete":
            (ports if change.kind == "serial-port" else channels).pop(change.name, None)
        else:
            wanted[change.kind].append(change.key)
    top = schema.root.children[(ns, "serial-over-ip")]
    for kind, keys in wanted.items():
        lst = top.children[(ns, kind)]
        elements = instance.entry_elements(lst)
        for key in keys:
            view = _ElementView(elements[key], lst, schema, ns)
            if kind == "serial-port":
                ports[key[0]] = _port(view)
            else:
                channels[key[0]] = _channel(view, ns)
    return RelayConfig(serial_ports=ports, channels=channels)
