"""What a commit may change on a running channel, and what rebuilds it.

Every configuration leaf of a ``serial-port`` and a ``channel`` entry of
the YANG module is classified here, in one table each, by its schema path
below the list entry:

``LIVE``
    Applied to the running channel in place: its sessions, its listener
    and its open serial port are kept (a TCP master in the middle of a
    poll is not cut off because an operator tuned a timeout).
``RESTART``
    The channel is rebuilt: its sessions end (``session-event``
    disconnected with the reason) and are counted in
    ``sessions-ended-by-commit``; ``last-restart`` and
    ``last-restart-reason`` say when and why.

The table is the one place that decides; the data plane asks
``restart_reasons`` and applies everything else live
(``nf.runtime.channel.ChannelRuntime.reconfigure``,
``nf.runtime.serial.Link.apply_line_settings``).  A test walks the compiled
schema and fails for a leaf that is missing here, so a leaf added to the
module later must be classified before it ships; another checks that every
field of the relay's model (``nf.model``) is covered by a classified leaf.

Standard library only: the data-plane process imports it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nf.model import ChannelConfig, RelayConfig, SerialPortConfig


class Apply(enum.StrEnum):
    LIVE = "live"
    RESTART = "restart"


@dataclass(frozen=True)
class LeafClass:
    """How a change of one leaf reaches a running channel."""

    apply: Apply
    field: str | None
    """The field of ``nf.model`` that carries the leaf, dotted for nested
    configurations ("packing.frame_delay_ms"); None for a leaf the relay
    does not use (``description``): it is not in the model, and a change of
    it leaves the channel untouched."""
    how: str
    """How it is applied live, or why it needs a restart."""
    restart_in: frozenset[str] = frozenset()
    """Channel modes in which a LIVE leaf restarts the channel all the same."""


LIVE, RESTART = Apply.LIVE, Apply.RESTART

PORT_LEAVES: Mapping[str, LeafClass] = {
    "name": LeafClass(RESTART, "name", "the key: a port of another name is another port"),
    "description": LeafClass(LIVE, None, "not used by the relay"),
    "device": LeafClass(RESTART, "device", "another device is opened, the old one closed"),
    "baud-rate": LeafClass(LIVE, "baud_rate", "tcsetattr on the open port"),
    "data-bits": LeafClass(LIVE, "data_bits", "tcsetattr on the open port"),
    "parity": LeafClass(LIVE, "parity", "tcsetattr on the open port"),
    "stop-bits": LeafClass(LIVE, "stop_bits", "tcsetattr on the open port"),
    "flow-control": LeafClass(LIVE, "flow_control", "tcsetattr on the open port"),
    "line-mode": LeafClass(LIVE, "line_mode", "TIOCSRS485 on the open port"),
}
"""serial-port leaves (config true) by path below the list entry."""

CHANNEL_LEAVES: Mapping[str, LeafClass] = {
    "name": LeafClass(RESTART, "name", "the key: a channel of another name is another channel"),
    "description": LeafClass(LIVE, None, "not used by the relay"),
    "enabled": LeafClass(
        LIVE,
        "enabled",
        "true starts the channel (nothing ran); false stops it and ends its sessions",
    ),
    "serial-port": LeafClass(RESTART, "serial_port", "the channel relays another port"),
    "mode": LeafClass(RESTART, "mode", "another kind of channel"),
    "listen/address": LeafClass(
        RESTART, "listen_address", "a new socket is bound in prepare, the old one closed"
    ),
    "listen/port": LeafClass(
        RESTART, "listen_port", "a new socket is bound in prepare, the old one closed"
    ),
    "secondary/port": LeafClass(
        RESTART, "secondary.port", "a new listener (also: secondary added or removed)"
    ),
    "secondary/response-mode": LeafClass(
        LIVE,
        "secondary.response_mode",
        "a new arbiter takes over the connected sessions; a slotted queue is counted",
    ),
    "secondary/timeout": LeafClass(
        LIVE, "secondary.timeout_ms", "the slotted arbiter's T, from the next byte on"
    ),
    "destination/address": LeafClass(
        LIVE,
        "destinations",
        "peer: the next datagram goes to the new set",
        restart_in=frozenset({"client"}),
    ),
    "destination/port": LeafClass(
        LIVE,
        "destinations",
        "peer: the next datagram goes to the new set",
        restart_in=frozenset({"client"}),
    ),
    "multicast-group": LeafClass(RESTART, "multicast_group", "another socket and membership"),
    "packing/max-frame-size": LeafClass(
        LIVE, "packing.max_frame_size", "the framer is swapped at a frame boundary"
    ),
    "packing/frame-delay": LeafClass(
        LIVE, "packing.frame_delay_ms", "the framer is swapped at a frame boundary"
    ),
    "packing/delimiter": LeafClass(
        LIVE, "packing.delimiter", "the framer is swapped at a frame boundary"
    ),
    "inactivity-timeout": LeafClass(
        LIVE, "inactivity_timeout", "counted from each session's last activity"
    ),
    "keepalive": LeafClass(LIVE, "keepalive", "SO_KEEPALIVE/TCP_KEEPIDLE on the open sockets"),
    "takeover": LeafClass(LIVE, "takeover", "decides the next connection"),
    "allowed-peer": LeafClass(
        LIVE,
        "allowed_peers",
        "sessions from addresses no longer allowed are closed and counted",
    ),
    "rfc2217": LeafClass(
        RESTART, "rfc2217", "the sessions speak another protocol (Telnet, or raw bytes)"
    ),
    "allow-line-control": LeafClass(
        LIVE, "allow_line_control", "decides the next RFC 2217 request of a client"
    ),
}
"""channel leaves (config true) by path below the list entry."""


def _value(config: object | None, field: str) -> object:
    for step in field.split("."):
        if config is None:
            return None
        config = getattr(config, step)
    return config


def changed(table: Mapping[str, LeafClass], old: object, new: object) -> list[str]:
    """The leaves of ``table`` whose model field differs between the two."""
    return [
        path
        for path, leaf in table.items()
        if leaf.field is not None and _value(old, leaf.field) != _value(new, leaf.field)
    ]


def restart_reasons(
    old: ChannelConfig,
    old_port: SerialPortConfig,
    new: ChannelConfig,
    new_port: SerialPortConfig,
) -> list[str]:
    """Why a running channel must be rebuilt to go from ``old`` to ``new``
    (both enabled): the restart leaves that changed, channel leaves by
    their path, serial-port leaves as "serial-port/device" and the like
    ("serial-port" alone is the channel's reference).  Empty: every change
    is applied in place."""
    reasons = [
        path
        for path in changed(CHANNEL_LEAVES, old, new)
        if CHANNEL_LEAVES[path].apply is RESTART or new.mode in CHANNEL_LEAVES[path].restart_in
    ]
    if old.serial_port == new.serial_port:  # else its leaves are another port's
        reasons += [
            f"serial-port/{path}"
            for path in changed(PORT_LEAVES, old_port, new_port)
            if PORT_LEAVES[path].apply is RESTART
        ]
    return reasons


def stopped(old: RelayConfig, new: RelayConfig, touched: Iterable[str]) -> set[str]:
    """Of the channels a commit touches (``Delta.touched``), those whose
    running sessions it ends: deleted, disabled or restarted.  The others
    keep their sessions (changed in place, or not running before)."""
    out = set()
    for name in touched:
        before, after = old.channels.get(name), new.channels.get(name)
        if before is None or not before.enabled:
            continue
        if (
            after is None
            or not after.enabled
            or restart_reasons(
                before,
                old.serial_ports[before.serial_port],
                after,
                new.serial_ports[after.serial_port],
            )
        ):
            out.add(name)
    return out
