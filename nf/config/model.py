"""Typed, frozen views (nf.model) of a validated configuration, for the relay runtime.

The runtime wants integers and named fields, not lexical strings in a
generic tree.  Every value is read from the tree *after* ``complete`` has
applied the module's defaults, so no default is written again here; the
YANG module stays the one place that defines them.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from nf.schema import MAIN_MODULE, SchemaIndex


class _View:
    """Read leaves of one node by local name in the module's namespace."""

    def __init__(self, node: Node | None, ns: str) -> None:
        self.node = node if node is not None else Node()
        self.ns = ns

    def opt(self, name: str) -> str | None:
        value = self.node.get((self.ns, name))
        return value if isinstance(value, str) else None

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

    def sub(self, name: str) -> _View | None:
        value = self.node.get((self.ns, name))
        return _View(value, self.ns) if isinstance(value, Node) else None

    def entries(self, name: str) -> list[_View]:
        value = self.node.get((self.ns, name))
        if not isinstance(value, ListNode):
            return []
        return [_View(entry, self.ns) for _key, entry in value.items()]

    def values(self, name: str) -> tuple[str, ...]:
        value = self.node.get((self.ns, name))
        return value.values if isinstance(value, LeafList) else ()


def _port(v: _View) -> SerialPortConfig:
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


def _channel(v: _View, ns: str) -> ChannelConfig:
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
        entries = instance.complete_entries(top, top.children[(ns, kind)], keys)
        for key in keys:
            view = _View(entries[key], ns)
            if kind == "serial-port":
                ports[key[0]] = _port(view)
            else:
                channels[key[0]] = _channel(view, ns)
    return RelayConfig(serial_ports=ports, channels=channels)
