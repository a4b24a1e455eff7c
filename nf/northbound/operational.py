"""Operational state as YANG: the data plane's frozen snapshot rendered.

The data plane reports plain values (``nf.runtime.transaction.Snapshot``);
this is the one place that knows where they go in the module's tree.  The
configuration decides which serial ports and channels appear: a configured
entry the data plane does not run (disabled, or not started yet) is "down".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nf.config.errors import ConfigError
from nf.config.tree import Key, ListNode, Node
from nf.model import RelayConfig
from nf.northbound.selection import Selection
from nf.runtime.transaction import Fault, Snapshot
from nf.schema import MAIN_MODULE, SchemaIndex


def channel_path(name: str) -> str:
    return f"/soip:serial-over-ip/soip:channel[soip:name='{name}']"


def fault_error(fault: Fault) -> ConfigError:
    """The rpc-error of a change the data plane refused, at the leaf at fault."""
    leaf = "/".join(f"soip:{step}" for step in fault.leaf.split("/"))
    return ConfigError(fault.tag, fault.message, path=f"{channel_path(fault.channel)}/{leaf}")


def state_tree(
    snapshot: Snapshot, config: RelayConfig, schema: SchemaIndex, selection: Selection | None = None
) -> Node:
    """config false data of the module for the running ``config`` (of the
    ``selection``'s entries only, if given)."""
    ns = schema.modules[MAIN_MODULE].namespace

    def q(name: str) -> tuple[str, str]:
        return (ns, name)

    def leaves(values: Mapping[str, object]) -> Node:
        return Node({q(k): str(v) for k, v in values.items() if v is not None})

    port_states = {p.name: p for p in snapshot.ports}
    ports: dict[Key, Node] = {}
    port_names = config.serial_ports if selection is None else selection.ports_in(config)
    for name in port_names:
        port = port_states.get(name)
        state = leaves(
            {
                "oper-status": port.oper_status if port else "down",
                "last-error": port.last_error if port else None,
                "rx-bytes": port.rx_bytes if port else 0,
                "tx-bytes": port.tx_bytes if port else 0,
            }
        )
        if port is not None and port.effective:
            state = state.set(q("effective"), leaves(dict(port.effective)))
        if port is not None and port.modem_lines:
            state = state.set(q("modem-lines"), leaves(dict(port.modem_lines)))
        ports[(name,)] = Node({q("name"): name, q("state"): state})
    channel_states = {c.name: c for c in snapshot.channels}
    channels: dict[Key, Node] = {}
    channel_names = config.channels if selection is None else selection.channels_in(config)
    for name in channel_names:
        ch = channel_states.get(name)
        values: dict[str, object] = {
            "oper-status": ch.oper_status if ch else "down",
            "last-restart": ch.last_restart if ch else None,
            "last-restart-reason": ch.last_restart_reason if ch else None,
            "last-error": ch.last_error if ch else None,
        }
        state_children: dict[tuple[str, str], Any] = dict(leaves(values).items())
        if ch is not None:
            rows: dict[Key, Node] = {}
            for s in ch.sessions:
                rows[(str(s.id),)] = leaves(
                    {
                        "id": s.id,
                        "remote-address": s.remote_address,
                        "remote-port": s.remote_port,
                        "role": s.role,
                        "status": s.status,
                        "connected-at": s.connected_at,
                        "rx-bytes": s.rx_bytes,
                        "tx-bytes": s.tx_bytes,
                    }
                )
            if rows:
                state_children[q("session")] = ListNode(rows)
            state_children[q("counters")] = leaves(dict(ch.counters))
        channels[(name,)] = Node({q("name"): name, q("state"): Node(state_children)})
    top: dict[tuple[str, str], Any] = {}
    if ports:
        top[q("serial-port")] = ListNode(ports)
    if channels:
        top[q("channel")] = ListNode(channels)
    return Node({q("serial-over-ip"): Node(top)}) if top else Node()


def processes_tree(
    schema: SchemaIndex, control_restarts: int, data_restarts: int, sessions_dropped: int
) -> Node:
    """/processes: restarts of the planes, as the supervisor and the
    control plane counted them."""
    ns = schema.modules[MAIN_MODULE].namespace
    values = {
        "control-plane-restarts": control_restarts,
        "data-plane-restarts": data_restarts,
        "relay-sessions-dropped": sessions_dropped,
    }
    return Node({(ns, "processes"): Node({(ns, k): str(v) for k, v in values.items()})})
