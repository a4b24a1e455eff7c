"""ser2net configurations as ours: the 4.x YAML file (``ser2net.yaml``) and
the 3.x one-line format (``ser2net.conf``).

Both describe network ports relayed to serial devices, which are our server
channels and serial ports.  What ser2net has and we do not (Telnet and
RFC 2217, banners, traces, several users on one port, UDP accepters, SSL...)
is never dropped silently: each becomes a :class:`~nf.importers.model.Note`
with its line in the source.  YAML line numbers come from the composed node
tree (each node's start mark), not from the loaded Python objects, which
have none; composing also keeps ser2net 4's repeated ``connection:`` keys,
which a loader would collapse into the last one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from nf.importers.model import Builder, Channel, Serial, host_prefix, safe_name


class Unusable(ValueError):
    """The file is not a ser2net configuration we can read at all."""


PARITY = {"n": "none", "e": "even", "o": "odd", "m": "mark", "s": "space"}
_SPEED = re.compile(r"(\d+)([neoms])?([5-8])?([12])?", re.IGNORECASE)
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}
BAUD_RANGE = range(50, 4_000_001)

Noter = Callable[[int, str, bool], None]


def apply_speed(token: str, serial: Serial, line: int, note: Noter) -> bool:
    """``9600n81`` (speed, parity, data bits, stop bits; all but the speed
    optional) into ``serial``; False when ``token`` is not one."""
    match = _SPEED.fullmatch(token)
    if not match:
        return False
    baud, parity, data, stop = match.groups()
    if int(baud) in BAUD_RANGE:
        serial.baud_rate = int(baud)
    else:
        note(line, f"speed {baud}: outside 50..4000000; our default (115200) kept", True)
    if parity:
        serial.parity = PARITY[parity.lower()]
    if data:
        serial.data_bits = int(data)
    if stop:
        serial.stop_bits = stop
    return True


def _flag(value: str | None) -> bool | None:
    """``rtscts``, ``rtscts=true``: True; ``rtscts=false``: False; else None."""
    if value is None:
        return True
    value = value.lower()
    return True if value in _TRUE else False if value in _FALSE else None


def apply_serialdev_option(token: str, serial: Serial, line: int, note: Noter) -> None:
    """One option of a gensio ``serialdev`` connector (or a serialdev default)."""
    if apply_speed(token, serial, line, note):
        return
    key, eq, raw = token.partition("=")
    key = key.lower()
    value = raw if eq else None
    flag = _flag(value)
    if key == "rtscts" and flag is not None:
        if flag:
            if serial.flow_control == "xon-xoff":
                note(line, "rtscts with xonxoff: one flow control only; rts-cts kept", False)
            serial.flow_control = "rts-cts"
        elif serial.flow_control == "rts-cts":
            serial.flow_control = "none"
    elif key == "xonxoff" and flag is not None:
        if flag and serial.flow_control == "rts-cts":
            note(line, "xonxoff with rtscts: one flow control only; rts-cts kept", False)
        elif flag:
            serial.flow_control = "xon-xoff"
        elif serial.flow_control == "xon-xoff":
            serial.flow_control = "none"
    elif key == "local" and flag is not None:
        if not flag:
            note(line, "local=false: modem control lines (DCD) are not watched; ignored", True)
    elif key == "rs485":
        if (value or "").lower() != "off":
            serial.line_mode = "rs485"
            note(
                line,
                f"{token}: mapped to line-mode rs485 (RTS-controlled direction); "
                "its delays and flags are not carried over",
                False,
            )
    else:
        note(line, f"serialdev option {token}: not supported; ignored", True)


_OPTION_REASONS = {
    "banner": "no banner is sent to clients",
    "telnet-brk-on-sync": "a Telnet sync is not turned into a break",
    "signature": "the RFC 2217 signature is nf's",
    "chardelay": "data is sent as read (see packing/frame-delay)",
    "sendon": "see packing/delimiter for a one-byte delimiter",
}


def resolve_address(host: str | None) -> str | None:
    """ser2net's listen host as an ip-address: none is every address,
    ``localhost`` the IPv4 loopback; a host name is None (we listen on
    addresses only)."""
    if host is None or host in ("", "0.0.0.0"):
        return "0.0.0.0"
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


# -- ser2net 4.x YAML ------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Composes (no Python objects) and remembers each node's anchor:
    ser2net names a connection by its anchor (``connection: &con0``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_anchors: dict[int, str] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        node = super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if node is not None and anchor and not isinstance(event, AliasEvent):
            self.node_anchors[id(node)] = anchor
        return node


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _YamlImport:
    def __init__(self, source: str) -> None:
        self.b = Builder(source)
        self.defines: dict[str, str] = {}
        self.defaults = Serial()
        self.anchors: dict[int, str] = {}
        self.count = 0

    def note(self, line: int, text: str, skipped: bool = True) -> None:
        self.b.note(line, text, skipped)

    def text(self, node: Node) -> str | None:
        """A scalar's text with ser2net's ``*(name)`` substitutions; None
        (noted) for a mapping or a list where text was expected."""
        if not isinstance(node, ScalarNode):
            self.note(_line(node), "a value was expected here; ignored")
            return None

        def define(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "*":
                return "*("
            if name not in self.defines:
                self.note(_line(node), f"*({name}): no define of that name; left as is")
                return match.group(0)
            return self.defines[name]

        return re.sub(r"\*\(([^)]*)\)", define, str(node.value))

    def document(self, root: Node) -> None:
        if not isinstance(root, MappingNode):
            raise Unusable(f"line {_line(root)}: a ser2net file is a mapping of entries")
        for key, value in root.value:
            kind = str(key.value)
            if kind == "define":
                anchor = self.anchors.get(id(value))
                text = self.text(value)
                if anchor and text is not None:
                    self.defines[anchor] = text
            elif kind == "default":
                self.default(value)
            elif kind == "connection":
                self.connection(value)
            else:
                what = {
                    "admin": "admin interface",
                    "rotator": "rotator",
                    "led": "LED",
                    "include": "include",
                }.get(kind, "entry")
                self.note(_line(key), f"{kind}: {what} not supported; skipped")

    def fields(self, node: Node) -> list[tuple[str, Node, int]]:
        if isinstance(node, MappingNode):
            return [(str(k.value), v, _line(k)) for k, v in node.value]
        self.note(_line(node), "a mapping was expected here; skipped")
        return []

    def default(self, node: Node) -> None:
        values = {name: self.text(v) for name, v, _ in self.fields(node)}
        name, value, kind = values.get("name"), values.get("value"), values.get("class")
        line = _line(node)
        if kind not in (None, "serialdev") or not name or value is None:
            self.note(line, f"default {name} of class {kind}: not supported; skipped")
            return
        if name == "speed":
            if not apply_speed(value, self.defaults, line, self.b.note):
                self.note(line, f"default speed {value!r}: not a speed; skipped")
        elif name == "databits" and value in ("5", "6", "7", "8"):
            self.defaults.data_bits = int(value)
        elif name == "parity" and value.lower() in PARITY.values():
            self.defaults.parity = value.lower()
        elif name == "stopbits" and value in ("1", "2"):
            self.defaults.stop_bits = value
        elif name in ("rtscts", "xonxoff", "local", "rs485"):
            apply_serialdev_option(f"{name}={value}", self.defaults, line, self.b.note)
        else:
            self.note(line, f"default {name}: not supported; skipped")

    def connection(self, node: Node) -> None:
        self.count += 1
        line = _line(node)
        name = self.anchors.get(id(node)) or f"con{self.count}"
        accepter = connector = None
        channel_enabled, timeout = True, 0
        options: list[tuple[str, Node, int]] = []
        for key, value, at in self.fields(node):
            if key == "accepter":
                accepter = (self.text(value), at)
            elif key == "connector":
                connector = (self.text(value), at)
            elif key == "name":
                name = self.text(value) or name
            elif key == "enable":
                text = (self.text(value) or "").lower()
                if text not in _TRUE | _FALSE:
                    self.note(at, f"enable: {text!r} is not on or off; taken as on", False)
                channel_enabled = text not in _FALSE
            elif key == "timeout":
                text = self.text(value) or ""
                if text.isdigit() and int(text) < 2**32:
                    timeout = int(text)
                else:
                    self.note(at, f"timeout: {text!r} is not a number of seconds; ignored")
            elif key == "options":
                options = self.fields(value)
            else:
                self.note(at, f"connection field {key}: not supported; ignored")
        if accepter is None or accepter[0] is None or connector is None or connector[0] is None:
            self.note(line, f"connection {name}: no accepter or no connector; skipped")
            return
        listen = self.accepter(accepter[0], accepter[1])
        if listen is None:
            return
        target = self.connector(connector[0], connector[1])
        if target is None:
            return
        device, serial = target
        port = self.b.port_for(device, serial, connector[1], line)
        if port is None:
            return
        channel = Channel(
            safe_name(name, f"con{self.count}"),
            port.name,
            listen[1],
            line,
            self.b.source,
            address=listen[0],
            enabled=channel_enabled,
            inactivity_timeout=timeout,
        )
        channel.rfc2217 = listen[2] is not None
        channel.allow_line_control = listen[2] == "rfc2217"
        for key, value, at in options:
            self.option(channel, key, value, at)
        if not self.b.add(channel):
            self.b.forget_port(port)

    def accepter(self, text: str, line: int) -> tuple[str, int, str | None] | None:
        """Listen address, port, and the Telnet in front of TCP: None,
        "telnet" (no line control) or "rfc2217"."""
        tokens = [t.strip() for t in text.split(",") if t.strip()]
        telnet: str | None = None
        while tokens:
            gensio, _, params = tokens[0].partition("(")
            gensio = gensio.lower()
            if gensio == "telnet":
                telnet = "rfc2217" if "rfc2217" in params.lower() else "telnet"
                if telnet == "telnet":
                    self.note(
                        line,
                        f"{tokens[0]} accepter: mapped to rfc2217 with allow-line-control "
                        "false (Telnet; the COM-PORT-OPTION is offered, its changes refused)",
                        False,
                    )
                tokens.pop(0)
                continue
            if gensio != "tcp":
                why = (
                    "ser2net answers the last sender, a channel needs fixed destinations"
                    if gensio == "udp"
                    else "not supported"
                )
                self.note(line, f"{gensio} accepter: {why}; connection skipped")
                return None
            if params:
                self.note(line, f"tcp({params} accepter options: ignored")
            break
        rest = [t for t in tokens[1:] if t.lower() not in ("ipv4", "ipv6")]
        host, port_text = (None, rest[0]) if len(rest) == 1 else (rest[0], rest[-1])
        port = _port(port_text) if rest and len(rest) <= 2 else None
        if port is None:
            self.note(line, f"accepter {text!r}: no TCP port in it; connection skipped")
            return None
        address = resolve_address(host)
        if address is None:
            self.note(line, f"accepter host {host}: not an IP address; connection skipped")
            return None
        return address, port, telnet

    def connector(self, text: str, line: int) -> tuple[str, Serial] | None:
        tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
        gensio = tokens[0].split("(")[0].lower() if tokens else ""
        serial = Serial(**vars(self.defaults))
        if gensio == "serialdev" and len(tokens) >= 2:
            for option in tokens[2:]:
                apply_serialdev_option(option, serial, line, self.b.note)
            return tokens[1], serial
        remote = tokens[1:]
        if gensio == "telnet" and "rfc2217" in tokens[0].lower() and remote[:1] == ["tcp"]:
            scheme, remote = "rfc2217", remote[1:]
        elif gensio == "tcp":
            scheme = "socket"
        else:
            self.note(line, f"{gensio or 'empty'} connector: not supported; connection skipped")
            return None
        if len(remote) != 2 or _port(remote[1]) is None:
            self.note(line, f"connector {text!r}: no HOST,PORT in it; connection skipped")
            return None
        return f"{scheme}://{remote[0]}:{remote[1]}", Serial()

    def option(self, channel: Channel, key: str, node: Node, line: int) -> None:
        value = self.text(node)
        if value is None:
            return
        if key == "kickolduser":
            channel.takeover = _flag(value) is True
        elif key == "max-connections":
            if value != "1":
                self.note(
                    line,
                    f"max-connections {value}: a server channel has one session; limited to 1",
                    False,
                )
        elif key == "remaddr":
            for entry in (e.strip() for e in value.split(";")):
                self.remaddr(channel, entry, line)
        elif key == "chardelay" and _flag(value) is False:
            pass  # no char delay: we send as read, too
        else:
            why = _OPTION_REASONS.get(key, "not supported")
            self.note(line, f"option {key}: {why}; ignored")

    def remaddr(self, channel: Channel, entry: str, line: int) -> None:
        if not entry:
            return
        if entry.startswith("!"):
            self.note(line, f"remaddr {entry}: connect-back is not supported; ignored")
            return
        parts = [p for p in entry.split(",") if p.lower() not in ("ipv4", "ipv6", "tcp")]
        prefix = host_prefix(parts[0]) if parts else None
        if prefix is None:
            self.note(line, f"remaddr {entry}: not an IP address; ignored")
            return
        if len(parts) > 1 and parts[1] != "0":
            self.note(line, f"remaddr {entry}: the remote port is not checked", False)
        channel.allowed_peers.append(prefix)


def parse_yaml(text: str, source: str) -> Builder:
    """ser2net 4.x YAML (one or more documents)."""
    loader = _Loader(text)
    work = _YamlImport(source)
    try:
        while loader.check_node():
            root = loader.get_node()
            if root is None:
                continue
            work.anchors = loader.node_anchors
            work.document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise Unusable(f"{where}not YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise Unusable(f"not YAML: {exc}") from None
    finally:
        loader.dispose()
    return work.b


# -- ser2net 3.x ser2net.conf -------------------------------------------------------------
_DEFINITIONS = ("BANNER", "SIGNATURE", "OPENSTR", "CLOSESTR", "CLOSEON", "TRACEFILE", "LED")
_STATES = ("raw", "rawlp", "telnet", "off")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their numbers; a line ending in a backslash goes on."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        start, body = pending if pending else (number, "")
        if raw.endswith("\\"):
            pending = (start, body + raw[:-1])
            continue
        pending = None
        out.append((start, body + raw))
    if pending:
        out.append(pending)
    return out


class _ConfImport:
    def __init__(self, source: str) -> None:
        self.b = Builder(source)
        self.names: dict[str, str] = {}  # BANNER/OPENSTR... name -> kind

    def line(self, number: int, text: str) -> None:
        keyword, _, rest = text.partition(":")
        if keyword in _DEFINITIONS:
            self.names[rest.partition(":")[0]] = keyword.lower()
            return
        if keyword in ("CONTROLPORT", "ROTATOR", "DEFAULT"):
            self.b.note(number, f"{keyword}: not supported; skipped")
            return
        parts = text.split(":", 4)
        if len(parts) < 4:
            self.b.note(
                number, "not a ser2net.conf line (PORT:STATE:TIMEOUT:DEVICE:OPTIONS); skipped"
            )
            return
        spec, state, timeout, device = (p.strip() for p in parts[:4])
        options = parts[4].split() if len(parts) == 5 else []
        state = state.lower()
        if state not in _STATES:
            self.b.note(number, f"state {state!r}: not raw, rawlp, telnet or off; skipped")
            return
        address, port = self.listen(spec, number)
        if port is None or address is None:
            return
        if not device.startswith("/"):
            self.b.note(number, f"device {device}: only serial devices are supported; skipped")
            return
        if not timeout.isdigit():
            self.b.note(number, f"timeout {timeout!r}: not a number of seconds; skipped")
            return
        remctl = any(o.upper() == "REMCTL" for o in options)
        if state == "telnet" and not remctl:
            self.b.note(
                number,
                "telnet: mapped to rfc2217 with allow-line-control false (no remctl: "
                "the COM-PORT-OPTION is offered, its changes refused)",
                False,
            )
        elif state == "rawlp":
            self.b.note(number, "rawlp: mapped to raw (the device's output is relayed too)", False)
        serial = Serial()
        channel = Channel(
            f"port-{port}",
            "",
            port,
            number,
            self.b.source,
            address=address,
            enabled=state != "off",
            inactivity_timeout=int(timeout),
            rfc2217=state == "telnet",
            allow_line_control=remctl,
        )
        for option in options:
            self.option(option, serial, channel, number)
        made = self.b.port_for(device, serial, number, number)
        if made is None:
            return
        channel.port = made.name
        if not self.b.add(channel):
            self.b.forget_port(made)

    def listen(self, spec: str, number: int) -> tuple[str | None, int | None]:
        tokens = [t for t in spec.split(",") if t.lower() not in ("ipv4", "ipv6")]
        port = _port(tokens[-1]) if tokens and len(tokens) <= 2 else None
        if port is None:
            self.b.note(number, f"port {spec!r}: not [HOST,]PORT; skipped")
            return None, None
        host = tokens[0] if len(tokens) == 2 else None
        address = resolve_address(host)
        if address is None:
            self.b.note(number, f"host {host}: not an IP address; skipped")
        return address, port

    def option(self, option: str, serial: Serial, channel: Channel, number: int) -> None:
        word = option.upper()
        note = self.b.note
        if option.isdigit():
            apply_speed(option, serial, number, note)
        elif word in ("NONE", "EVEN", "ODD", "MARK", "SPACE"):
            serial.parity = word.lower()
        elif word in ("1STOPBIT", "2STOPBITS"):
            serial.stop_bits = word[0]
        elif re.fullmatch(r"[5-8]DATABITS", word):
            serial.data_bits = int(word[0])
        elif word in ("XONXOFF", "-XONXOFF", "RTSCTS", "-RTSCTS", "LOCAL", "-LOCAL"):
            on = not word.startswith("-")
            apply_serialdev_option(f"{word.lstrip('-').lower()}={on}", serial, number, note)
        elif word in ("KICKOLDUSER", "-KICKOLDUSER"):
            channel.takeover = not word.startswith("-")
        elif word in ("-CHARDELAY", "-REMCTL"):
            pass  # what we do anyway
        elif word == "REMCTL":
            if not channel.rfc2217:
                note(number, "remctl: RFC 2217 needs the telnet state; ignored", True)
        elif word.startswith("MAX-CONNECTIONS="):
            if option.partition("=")[2] != "1":
                note(number, f"{option}: a server channel has one session; limited to 1", False)
        elif word.startswith("RS485="):
            apply_serialdev_option(option.lower(), serial, number, note)
        elif option in self.names:
            note(number, f"{self.names[option]} {option}: not supported; ignored", True)
        else:
            note(number, f"option {option}: not supported; ignored", True)


def parse_conf(text: str, source: str) -> Builder:
    """ser2net 3.x ``ser2net.conf``: one connection a line."""
    work = _ConfImport(source)
    for number, line in _logical_lines(text):
        line = line.strip()
        if line and not line.startswith("#"):
            work.line(number, line)
    return work.b


def looks_like_yaml(text: str, name: str) -> bool:
    if name.endswith((".yaml", ".yml")):
        return True
    if name.endswith(".conf"):
        return False
    return bool(
        text.lstrip().startswith(("%YAML", "---"))
        or re.search(r"^\s*(connection|define|default)\s*:\s*(&|$)", text, re.MULTILINE)
    )
