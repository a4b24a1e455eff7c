"""What an importer builds: serial ports and server channels with the line
of the source each came from, notes on what could not be carried over, and
the XML of our YANG module (pure: no file I/O)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from lxml import etree

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NAME_LENGTH = 32


@dataclass(frozen=True)
class Note:
    """Something of the source that is not in the output as it was meant:
    ``skipped`` dropped, else mapped to something close (``text`` says what)."""

    line: int
    text: str
    skipped: bool


@dataclass
class Serial:
    """Line settings; None leaves our default (115200 8N1, no flow control)."""

    baud_rate: int | None = None
    data_bits: int | None = None
    parity: str | None = None  # none|even|odd|mark|space
    stop_bits: str | None = None  # "1"|"2"
    flow_control: str | None = None  # none|rts-cts|xon-xoff
    line_mode: str | None = None  # rs485


@dataclass
class Port:
    name: str
    device: str
    serial: Serial
    line: int  # where the device is named
    connection_line: int  # where the connection that relays it starts


@dataclass
class Channel:
    name: str
    port: str
    listen_port: int
    line: int
    source: str
    address: str = "0.0.0.0"
    enabled: bool = True
    inactivity_timeout: int = 0
    takeover: bool = False
    allowed_peers: list[str] = field(default_factory=list)
    rfc2217: bool = False
    """ser2net's telnet accepter (or 3.x telnet state): Telnet sessions."""
    allow_line_control: bool = True


def safe_name(text: str, fallback: str) -> str:
    """A name our YANG accepts (letters, digits, . _ -; 1..32)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:NAME_LENGTH]
    return name or fallback


def host_prefix(host: str) -> str | None:
    """``192.0.2.7`` as ``192.0.2.7/32`` (an ip-prefix); None when not an address."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return f"{address}/{address.max_prefixlen}"


class Builder:
    """Collects ports, channels and notes, keeping the output valid: one
    serial port per device, one channel per port, unique names, no two
    enabled channels on the same TCP port."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.ports: dict[str, Port] = {}  # by device
        self.channels: list[Channel] = []
        self.notes: list[Note] = []

    def note(self, line: int, text: str, skipped: bool = True) -> None:
        self.notes.append(Note(line, text, skipped))

    def port_for(self, device: str, serial: Serial, line: int, connection_line: int) -> Port | None:
        """The port of ``device``, new; None (noted) when a channel has it already."""
        if device in self.ports:
            first = self.ports[device].connection_line
            self.note(
                connection_line,
                f"{device} is already relayed by the connection of line {first}; "
                "a serial port has one channel: connection skipped",
            )
            return None
        taken = {p.name for p in self.ports.values()}
        base = safe_name(device.rstrip("/").rsplit("/", 1)[-1], "port")
        name, n = base, 2
        while name in taken:
            suffix = f"-{n}"
            name, n = base[: NAME_LENGTH - len(suffix)] + suffix, n + 1
        port = Port(name, device, serial, line, connection_line)
        self.ports[device] = port
        return port

    def add(self, channel: Channel) -> bool:
        """Add ``channel`` unless its TCP port is taken (noted then)."""
        for other in self.channels:
            if (
                channel.enabled
                and other.enabled
                and other.listen_port == channel.listen_port
                and (
                    other.address == channel.address
                    or "0.0.0.0" in (other.address, channel.address)
                )
            ):
                self.note(
                    channel.line,
                    f"TCP port {channel.listen_port} is already used by the connection "
                    f"of line {other.line}: connection skipped",
                )
                return False
        taken = {c.name for c in self.channels}
        base, n = channel.name, 2
        while channel.name in taken:
            suffix = f"-{n}"
            channel.name, n = base[: NAME_LENGTH - len(suffix)] + suffix, n + 1
        self.channels.append(channel)
        return True

    def forget_port(self, port: Port) -> None:
        """A port whose channel could not be added."""
        self.ports.pop(port.device, None)


def _q(name: str) -> str:
    return f"{{{SOIP}}}{name}"


def _leaf(parent: etree._Element, name: str, value: object) -> None:
    etree.SubElement(parent, _q(name)).text = (
        str(value).lower() if isinstance(value, bool) else str(value)
    )


def to_xml(builder: Builder) -> str:
    """Our configuration: the serial-over-ip element, as nf validate and
    nf run --config take it; every node says where it came from."""
    root = etree.Element(_q("serial-over-ip"), nsmap={None: SOIP})  # type: ignore[dict-item]
    for port in builder.ports.values():
        node = etree.SubElement(root, _q("serial-port"))
        _leaf(node, "name", port.name)
        _leaf(node, "description", f"imported from {builder.source}:{port.line}")
        _leaf(node, "device", port.device)
        s = port.serial
        for leaf, value in (
            ("baud-rate", s.baud_rate),
            ("data-bits", s.data_bits),
            ("parity", s.parity),
            ("stop-bits", s.stop_bits),
            ("flow-control", s.flow_control),
            ("line-mode", s.line_mode),
        ):
            if value is not None:
                _leaf(node, leaf, value)
    for channel in builder.channels:
        node = etree.SubElement(root, _q("channel"))
        _leaf(node, "name", channel.name)
        _leaf(node, "description", f"imported from {builder.source}:{channel.line}")
        if not channel.enabled:
            _leaf(node, "enabled", False)
        _leaf(node, "serial-port", channel.port)
        _leaf(node, "mode", "server")
        listen = etree.SubElement(node, _q("listen"))
        _leaf(listen, "address", channel.address)
        _leaf(listen, "port", channel.listen_port)
        if channel.inactivity_timeout:
            _leaf(node, "inactivity-timeout", channel.inactivity_timeout)
        if channel.takeover:
            _leaf(node, "takeover", True)
        for prefix in channel.allowed_peers:
            _leaf(node, "allowed-peer", prefix)
        if channel.rfc2217:
            _leaf(node, "rfc2217", True)
            if not channel.allow_line_control:
                _leaf(node, "allow-line-control", False)
    etree.indent(root)
    return etree.tostring(root, encoding="unicode") + "\n"
