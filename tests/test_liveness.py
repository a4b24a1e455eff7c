"""The live/restart classification (nf/liveness.py) covers the whole model.

A leaf added to the YANG module without a class, or a field added to the
relay's model without a classified leaf carrying it, fails here: what a
commit does to live sessions is decided, never left to chance.
"""

from __future__ import annotations

import dataclasses

from planehelpers import serial_port, server_channel

from nf.liveness import CHANNEL_LEAVES, PORT_LEAVES, Apply, restart_reasons
from nf.model import ChannelConfig, PackingConfig, SecondaryConfig, SerialPortConfig
from nf.schema import MAIN_MODULE, default_schema
from nf.schema.index import SchemaNode

SCHEMA = default_schema()


def config_leaves(entry: SchemaNode) -> set[str]:
    """Paths of the config true leaves and leaf-lists below a list entry."""
    found: set[str] = set()

    def walk(node: SchemaNode, prefix: str) -> None:
        for child in node.children.values():
            if not child.config or child.keyword in ("action", "rpc", "notification"):
                continue  # state, or an operation's parameters (send-break)
            path = f"{prefix}{child.name}"
            if child.keyword in ("leaf", "leaf-list"):
                found.add(path)
            else:
                walk(child, f"{path}/")

    walk(entry, "")
    return found


def entry(name: str) -> SchemaNode:
    ns = SCHEMA.modules[MAIN_MODULE].namespace
    top = SCHEMA.root.child(ns, "serial-over-ip")
    assert top is not None
    node = top.child(ns, name)
    assert node is not None and node.keyword == "list"
    return node


def test_every_leaf_of_a_serial_port_is_classified() -> None:
    assert config_leaves(entry("serial-port")) == set(PORT_LEAVES)


def test_every_leaf_of_a_channel_is_classified() -> None:
    assert config_leaves(entry("channel")) == set(CHANNEL_LEAVES)


def model_fields(cls: type, prefix: str = "") -> set[str]:
    nested = {"secondary": SecondaryConfig, "packing": PackingConfig}
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        if f.name in nested:
            out |= model_fields(nested[f.name], f"{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


def test_every_field_of_the_model_is_carried_by_a_classified_leaf() -> None:
    assert {c.field for c in PORT_LEAVES.values() if c.field} == model_fields(SerialPortConfig)
    assert {c.field for c in CHANNEL_LEAVES.values() if c.field} == model_fields(ChannelConfig)


def test_the_issue_s_restart_and_live_leaves() -> None:
    """Issue 13 names these; the table must agree."""
    for path in ("mode", "serial-port", "listen/address", "listen/port", "secondary/port"):
        assert CHANNEL_LEAVES[path].apply is Apply.RESTART, path
    assert CHANNEL_LEAVES["multicast-group"].apply is Apply.RESTART
    assert PORT_LEAVES["device"].apply is Apply.RESTART
    for path in (
        "inactivity-timeout",
        "keepalive",
        "takeover",
        "allowed-peer",
        "packing/max-frame-size",
        "packing/frame-delay",
        "packing/delimiter",
        "secondary/timeout",
        "secondary/response-mode",
        "destination/address",
        "enabled",
    ):
        assert CHANNEL_LEAVES[path].apply is Apply.LIVE, path
    for path in ("baud-rate", "data-bits", "parity", "stop-bits", "flow-control", "line-mode"):
        assert PORT_LEAVES[path].apply is Apply.LIVE, path


PORT = serial_port("p", "/dev/ttyS1")
CHANNEL = server_channel("c", "p", 2000)


def test_restart_reasons() -> None:
    r = dataclasses.replace
    assert restart_reasons(CHANNEL, PORT, CHANNEL, PORT) == []
    live = r(CHANNEL, keepalive=5, takeover=True, packing=PackingConfig(10, 20, 13))
    assert restart_reasons(CHANNEL, PORT, live, r(PORT, baud_rate=9600, parity="even")) == []
    assert restart_reasons(CHANNEL, PORT, r(CHANNEL, listen_port=2001), PORT) == ["listen/port"]
    assert restart_reasons(CHANNEL, PORT, CHANNEL, r(PORT, device="/dev/ttyS2")) == [
        "serial-port/device"
    ]
    # a secondary port added: its listener is new
    dual = r(CHANNEL, secondary=SecondaryConfig(2002, "slotted", 600))
    assert restart_reasons(CHANNEL, PORT, dual, PORT) == ["secondary/port"]
    assert (
        restart_reasons(dual, PORT, r(dual, secondary=SecondaryConfig(2002, "raw", 50)), PORT) == []
    )
    # destinations: live for a peer, a reconnection for a client
    peer = r(CHANNEL, mode="peer", destinations=(("127.0.0.1", 9),))
    assert restart_reasons(peer, PORT, r(peer, destinations=(("127.0.0.2", 9),)), PORT) == []
    client = r(peer, mode="client")
    assert restart_reasons(client, PORT, r(client, destinations=(("127.0.0.2", 9),)), PORT) == [
        "destination/address",
        "destination/port",
    ]
