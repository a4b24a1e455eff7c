"""Hypothesis strategies for nf-serial-over-ip configurations.

Configurations are generated as skeletons (``X``: an element name, a leaf
value or children, and an optional NETCONF operation), which render to XML
text or lxml elements in schema order.  Enumeration values and integer ranges
are read from the compiled schema (``nf.schema.default_schema()``), so the
strategies follow the YANG module when it changes.

Strategies:

``valid_configs()``
    Configurations that satisfy every rule of the module: unique names,
    each channel on its own serial port, every listen and secondary port
    number distinct (so the port-conflict musts hold), and each mode with
    the structure it requires.
``any_configs()``
    Configurations with the module's shape but possibly invalid content:
    out-of-range or malformed values, bad enums, wrong per-mode structure,
    dangling or shared serial ports, colliding ports.  Keys stay unique so
    that the XML parses into a tree without loss.
``near_valid_configs()``
    A valid configuration with zero to two mutations (a bad value, a
    dropped node, a port or serial port shared with another channel, a node
    the mode does not allow): about a third of them are invalid, each for
    few reasons, which is where validators tend to disagree.
``colliding_configs()``
    Many channels whose listen/secondary ports, addresses, enabled flags
    and modes collide, for the cross-channel must rules.
``configs_with_edits()``
    A valid configuration and an edit-config plan (``EditStep``s: merge a
    changed leaf or nested node, replace, create, delete, edits that change
    nothing, and optionally erroneous ones), each step carrying the entry it
    must leave behind and the diff op it must cause; ``expected_config``
    applies a plan to the skeleton, as an oracle for ``nf.config.edit``.

Pattern-restricted strings (device, names) never contain a carriage
return: libyang (yanglint 2.1) neither normalises a raw CR to LF as XML 1.0
§2.11 requires nor excludes CR from the XSD ``.``, so it accepts a device
"/\r" that the XSD pattern rejects; ``nf validate`` rejects it, correctly.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from lxml import etree

from nf.config.codec import NC_NS
from nf.schema import SchemaIndex, SchemaNode, default_schema

SCHEMA: SchemaIndex = default_schema()
NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
TOP: SchemaNode = SCHEMA.root.children[(NS, "serial-over-ip")]


def schema_node(*names: str) -> SchemaNode:
    """The schema node at ``serial-over-ip/<names...>``."""
    node = TOP
    for name in names:
        node = node.children[(NS, name)]
    return node


SERIAL_PORT: SchemaNode = schema_node("serial-port")
CHANNEL: SchemaNode = schema_node("channel")


def enum_values(*names: str) -> tuple[str, ...]:
    """The enum names of the leaf at ``names``, from the schema."""
    leaf_type = schema_node(*names).type
    assert leaf_type is not None and leaf_type.enums, names
    return leaf_type.enums


def int_range(*names: str) -> tuple[int, int]:
    """(min, max) of the integer leaf at ``names``, from pyang's type spec."""
    leaf_type = schema_node(*names).type
    assert leaf_type is not None
    spec: Any = leaf_type._spec  # RangeTypeSpec / IntTypeSpec: min and max
    return int(spec.min), int(spec.max)


# A strategy is a description, drawn from any number of times: the helpers
# below are cached, and the composites draw from module-level strategies, so
# that hypothesis does not build and validate new strategy objects (a regex,
# character intervals, a one_of) for every example it draws.


@functools.cache
def ints(*names: str) -> st.SearchStrategy[int]:
    """Every value in the schema range of the leaf, biased to its bounds."""
    lo, hi = int_range(*names)
    return st.one_of(st.sampled_from(sorted({lo, hi})), st.integers(lo, hi))


@functools.cache
def bad_ints(*names: str) -> st.SearchStrategy[int | str]:
    """Integers just outside the schema range, and non-integers."""
    lo, hi = int_range(*names)
    return st.one_of(
        st.integers(hi + 1, hi + 1000),
        st.integers(lo - 1000, lo - 1),
        st.sampled_from(["x", "", "1.5", "0x10", "1e3"]),
    )


@functools.cache
def maybe_bad_ints(*names: str) -> st.SearchStrategy[int | str]:
    return st.one_of(ints(*names), ints(*names), bad_ints(*names))


@functools.cache
def enums(*names: str) -> st.SearchStrategy[str]:
    return st.sampled_from(enum_values(*names))


@functools.cache
def maybe_bad_enums(*names: str) -> st.SearchStrategy[str]:
    return st.one_of(enums(*names), enums(*names), st.sampled_from(["bogus", "", "None", "TRUE"]))


MODES: tuple[str, ...] = enum_values("channel", "mode")
_MODES = st.sampled_from(MODES)
_MAX_DESTINATIONS = schema_node("channel", "destination").max_elements
CHANNEL_MAX_DESTINATIONS: int = 16 if _MAX_DESTINATIONS is None else _MAX_DESTINATIONS
BOOLEANS: tuple[str, ...] = ("true", "false")

# -- skeletons ------------------------------------------------------------------

Value = str | int


@dataclass(frozen=True)
class X:
    """A skeleton element of the module's namespace.

    A leaf has a ``value`` (an int for integer leaves, so that it can be
    written canonically or not); other nodes have ``children``.  ``op`` is
    the NETCONF ``operation`` attribute, for edit-config content.
    """

    name: str
    value: Value | None = None
    children: tuple[X, ...] = ()
    op: str | None = None

    def child(self, name: str) -> X | None:
        return next((c for c in self.children if c.name == name), None)

    def leaf(self, name: str) -> Value | None:
        found = self.child(name)
        return None if found is None else found.value

    def all(self, name: str) -> list[X]:
        return [c for c in self.children if c.name == name]

    @property
    def key(self) -> str:
        """The ``name`` key of a serial-port or channel entry."""
        value = self.leaf("name")
        assert value is not None
        return str(value)


def leaf(name: str, value: Value) -> X:
    return X(name, value=value)


def node(name: str, *children: X | None, op: str | None = None) -> X:
    return X(name, children=tuple(c for c in children if c is not None), op=op)


def config(ports: Iterable[X], channels: Iterable[X]) -> X:
    return node("serial-over-ip", *ports, *channels)


IntFormat = Callable[[int], str]


def _order(sn: SchemaNode) -> dict[str, int]:
    """Local name -> position in XML order (list keys first, RFC 7950 §7.8.5)."""
    keys = [q[1] for q in sn.keys]
    rest = [q[1] for q in sn.children if q[1] not in keys]
    return {name: i for i, name in enumerate(keys + rest)}


def to_element(
    x: X, parent: etree._Element, sn: SchemaNode | None, int_format: IntFormat = str
) -> etree._Element:
    """Append ``x`` to ``parent``; children are sorted into schema order
    (stable, so list entries keep their order) when ``sn`` is known."""
    nsmap: Any = {None: NS} if etree.QName(parent).namespace != NS else None
    elem = etree.SubElement(parent, f"{{{NS}}}{x.name}", nsmap=nsmap)
    if x.op is not None:
        elem.set(f"{{{NC_NS}}}operation", x.op)
    if x.value is not None:
        elem.text = int_format(x.value) if isinstance(x.value, int) else x.value
        return elem
    children: Sequence[X] = x.children
    if sn is not None:
        order = _order(sn)
        children = sorted(children, key=lambda c: order.get(c.name, len(order)))
    for child in children:
        child_sn = sn.children.get((NS, child.name)) if sn is not None else None
        to_element(child, elem, child_sn, int_format)
    return elem


def document(cfg: X | None, int_format: IntFormat = str) -> etree._Element:
    """A NETCONF ``<data>`` holding ``cfg``, as ``nf.config.codec.render``
    writes it (an empty serial-over-ip is no data at all)."""
    nsmap: Any = {None: NC_NS}
    holder = etree.Element(f"{{{NC_NS}}}data", nsmap=nsmap)
    if cfg is not None and cfg.children:
        to_element(cfg, holder, TOP, int_format)
    return holder


def xml_text(cfg: X | None, int_format: IntFormat = str) -> str:
    return etree.tostring(document(cfg, int_format), encoding="unicode")


def standalone_text(cfg: X, int_format: IntFormat = str) -> str:
    """``cfg`` as a file with serial-over-ip as its root (for yanglint)."""
    holder = etree.Element("holder")
    elem = to_element(cfg, holder, TOP, int_format)
    return etree.tostring(elem, encoding="unicode")


def edit_config(actions: Iterable[X]) -> etree._Element:
    """A NETCONF ``<config>`` holding ``actions`` under serial-over-ip."""
    nsmap: Any = {None: NC_NS, "nc": NC_NS}
    holder = etree.Element(f"{{{NC_NS}}}config", nsmap=nsmap)
    to_element(node("serial-over-ip", *actions), holder, TOP)
    return holder


# -- values ---------------------------------------------------------------------

NAMES: st.SearchStrategy[str] = st.from_regex(r"[A-Za-z0-9._-]{1,32}", fullmatch=True)
BAD_NAMES: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["", "a b", "tty/0", "é", "x" * 33, "ttyS0\n"]),
    st.from_regex(r"[A-Za-z0-9._-]{33,40}", fullmatch=True),
)
MAYBE_BAD_NAMES: st.SearchStrategy[str] = st.one_of(NAMES, NAMES, NAMES, BAD_NAMES)

_TEXT_CHARS = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
    st.sampled_from(" \t\n\r<>&'\"é𝄞"),
)
DESCRIPTIONS: st.SearchStrategy[str] = st.text(_TEXT_CHARS, max_size=16)
_LONG_TEXTS = {
    n: st.text(st.sampled_from("ab 𝄞é"), min_size=n, max_size=n) for n in range(252, 259)
}
LONG_DESCRIPTIONS: st.SearchStrategy[str] = st.integers(252, 258).flatmap(_LONG_TEXTS.__getitem__)
ANY_DESCRIPTIONS: st.SearchStrategy[str] = st.one_of(DESCRIPTIONS, LONG_DESCRIPTIONS)

DEVICES: st.SearchStrategy[str] = st.one_of(
    st.integers(0, 99).map(lambda n: f"/dev/ttyS{n}"),
    st.integers(0, 9).map(lambda n: f"/dev/ttyUSB{n}"),
    st.sampled_from(
        [
            "loop://",
            "loop://?logging=debug",
            "socket://127.0.0.1:7000",
            "rfc2217://[::1]:2217",
            "spy+loop://",
            "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A1-if00-port0",
        ]
    ),
)
BAD_DEVICES: st.SearchStrategy[str] = st.sampled_from(
    ["", "ttyS0", "/", "Loop://", "1x://", "/dev/tty\nS0", "loop:/"]
)
ANY_DEVICES: st.SearchStrategy[str] = st.one_of(DEVICES, BAD_DEVICES)

IPV4: st.SearchStrategy[str] = st.ip_addresses(v=4).map(str)
IPV6: st.SearchStrategy[str] = st.ip_addresses(v=6).map(str)
IP_ADDRESSES: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["0.0.0.0", "::", "127.0.0.1", "::1", "192.0.2.1", "2001:db8::1"]),
    IPV4,
    IPV6,
)
BAD_IP_ADDRESSES: st.SearchStrategy[str] = st.sampled_from(
    ["", "localhost", "1.2.3.256", "1.2.3", "::g", "10.0.0.1/8", " 10.0.0.1"]
)


_IP_OBJECTS = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
_PREFIX_LENGTHS = {32: st.integers(0, 32), 128: st.integers(0, 128)}


@st.composite
def ip_prefixes(draw: st.DrawFn) -> str:
    """A prefix in canonical (host bits zero) form, IPv4 or IPv6."""
    address = draw(_IP_OBJECTS)
    length = draw(_PREFIX_LENGTHS[address.max_prefixlen])
    return str(ipaddress.ip_network(f"{address}/{length}", strict=False))


BAD_PREFIXES: st.SearchStrategy[str] = st.sampled_from(
    ["10.0.0.0", "10.0.0.0/33", "2001:db8::/129", "x/8", ""]
)
PEERS: st.SearchStrategy[list[str]] = st.lists(ip_prefixes(), max_size=3, unique=True)
ANY_PEERS: st.SearchStrategy[list[str]] = st.lists(
    st.one_of(ip_prefixes(), BAD_PREFIXES), max_size=3, unique=True
)

MULTICAST_GROUPS: st.SearchStrategy[str] = st.tuples(
    st.integers(224, 239), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)
).map(lambda t: ".".join(map(str, t)))
BAD_MULTICAST_GROUPS: st.SearchStrategy[str] = st.sampled_from(
    ["223.255.255.255", "240.0.0.1", "10.0.0.1", "ff02::1", "224.0.0.256", "224.1"]
)
ANY_MULTICAST_GROUPS: st.SearchStrategy[str] = st.one_of(MULTICAST_GROUPS, BAD_MULTICAST_GROUPS)


@functools.cache
@functools.cache
def lists_of(
    elements: st.SearchStrategy[Any], min_size: int = 0, max_size: int | None = None
) -> st.SearchStrategy[list[Any]]:
    """``st.lists(elements, min_size, max_size, unique=True)``, one per arguments."""
    return st.lists(elements, min_size=min_size, max_size=max_size, unique=True)


@functools.cache
def opt(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[X | None]:
    """An optional leaf."""
    return st.one_of(st.none(), values.map(lambda v: leaf(name, v)))


# -- serial ports ---------------------------------------------------------------

LINE_SETTINGS: tuple[tuple[str, st.SearchStrategy[Any]], ...] = (
    ("baud-rate", st.one_of(ints("serial-port", "baud-rate"), st.sampled_from([9600, 115200]))),
    ("data-bits", ints("serial-port", "data-bits")),
    ("parity", enums("serial-port", "parity")),
    ("stop-bits", enums("serial-port", "stop-bits")),
    ("flow-control", enums("serial-port", "flow-control")),
    ("line-mode", enums("serial-port", "line-mode")),
)


@st.composite
def serial_ports(draw: st.DrawFn, name: str) -> X:
    """A valid serial-port entry."""
    return node(
        "serial-port",
        leaf("name", name),
        draw(opt("description", DESCRIPTIONS)),
        leaf("device", draw(DEVICES)),
        *(draw(opt(leaf_name, values)) for leaf_name, values in LINE_SETTINGS),
    )


_ANY_DEVICE = st.one_of(st.just(leaf("device", "/dev/ttyS0")), opt("device", ANY_DEVICES))


@st.composite
def any_serial_ports(draw: st.DrawFn, name: str) -> X:
    """A serial-port entry whose values may be invalid or missing."""
    return node(
        "serial-port",
        leaf("name", name),
        draw(opt("description", ANY_DESCRIPTIONS)),
        draw(_ANY_DEVICE),
        draw(opt("baud-rate", maybe_bad_ints("serial-port", "baud-rate"))),
        draw(opt("data-bits", maybe_bad_ints("serial-port", "data-bits"))),
        *(
            draw(opt(leaf_name, maybe_bad_enums("serial-port", leaf_name)))
            for leaf_name in ("parity", "stop-bits", "flow-control", "line-mode")
        ),
    )


# -- channels -------------------------------------------------------------------


def _packing(draw: st.DrawFn, bad: bool = False) -> X | None:
    def value(name: str) -> st.SearchStrategy[int | str]:
        return (
            maybe_bad_ints("channel", "packing", name) if bad else ints("channel", "packing", name)
        )

    leaves = [
        draw(opt(name, value(name))) for name in ("max-frame-size", "frame-delay", "delimiter")
    ]
    present = [x for x in leaves if x is not None]
    return node("packing", *present) if present else None  # empty packing is no packing


_BOOLEANS = st.sampled_from(BOOLEANS)
_ANY_BOOLEANS = st.sampled_from([*BOOLEANS, "1", "yes"])


def _common(draw: st.DrawFn, bad: bool = False) -> list[X | None]:
    """Leaves every mode may have: timeouts, takeover, allowed-peer."""

    def value(name: str) -> st.SearchStrategy[int | str]:
        return maybe_bad_ints("channel", name) if bad else ints("channel", name)

    peers = draw(ANY_PEERS if bad else PEERS)
    booleans = _ANY_BOOLEANS if bad else _BOOLEANS
    return [
        _packing(draw, bad),
        draw(opt("inactivity-timeout", value("inactivity-timeout"))),
        draw(opt("keepalive", value("keepalive"))),
        draw(opt("takeover", booleans)),
        *(leaf("allowed-peer", p) for p in peers),
    ]


@functools.cache
def _destination_lists(min_size: int, max_size: int) -> st.SearchStrategy[list[tuple[str, int]]]:
    return st.lists(
        st.tuples(IP_ADDRESSES, ints("channel", "destination", "port")),
        min_size=min_size,
        max_size=max_size,
        unique=True,
    )


def _destinations(draw: st.DrawFn, min_size: int, max_size: int) -> list[X]:
    pairs = draw(_destination_lists(min_size, max_size))
    return [node("destination", leaf("address", a), leaf("port", p)) for a, p in pairs]


def _secondary(draw: st.DrawFn, port: int | str | None, bad: bool = False) -> X:
    response = draw(
        opt(
            "response-mode",
            maybe_bad_enums("channel", "secondary", "response-mode")
            if bad
            else enums("channel", "secondary", "response-mode"),
        )
    )
    timeout: X | None = None
    if bad or response is None or response.value == "slotted":
        timeout = draw(
            opt(
                "timeout",
                maybe_bad_ints("channel", "secondary", "timeout")
                if bad
                else ints("channel", "secondary", "timeout"),
            )
        )
    return node("secondary", None if port is None else leaf("port", port), response, timeout)


@st.composite
def valid_channels(
    draw: st.DrawFn, name: str, serial_port: str, listen_port: int, secondary_port: int
) -> X:
    """A valid channel of a random mode; its listen and secondary port
    numbers are given (distinct from every other channel's)."""
    mode = draw(_MODES)
    address = draw(opt("address", IP_ADDRESSES))
    listen: X | None = None
    secondary: X | None = None
    destinations: list[X] = []
    multicast: X | None = None
    if mode in ("server", "client") and draw(st.booleans()):
        secondary = _secondary(draw, secondary_port)
    if mode == "server":
        listen = node("listen", address, leaf("port", listen_port))
    elif mode == "client":
        destinations = _destinations(draw, 1, 1)
        if secondary is not None and address is not None:
            # client listen holds only the address the secondary port binds
            port = draw(st.sampled_from([None, leaf("port", listen_port)]))
            listen = node("listen", address, port)
    else:
        listen = node("listen", address, leaf("port", listen_port))
        destinations = _destinations(
            draw, 1, draw(st.sampled_from([1, 3, CHANNEL_MAX_DESTINATIONS]))
        )
        multicast = draw(opt("multicast-group", MULTICAST_GROUPS))
    return node(
        "channel",
        leaf("name", name),
        draw(opt("description", DESCRIPTIONS)),
        draw(opt("enabled", _BOOLEANS)),
        leaf("serial-port", serial_port),
        leaf("mode", mode),
        listen,
        secondary,
        *destinations,
        multicast,
        *_common(draw),
    )


_LISTEN_PORTS = st.integers(*int_range("channel", "listen", "port"))


@st.composite
def valid_configs(draw: st.DrawFn, max_ports: int = 4) -> X:
    """A configuration that satisfies every rule of the module."""
    port_names = draw(lists_of(NAMES, max_size=max_ports))
    ports = [draw(serial_ports(name)) for name in port_names]
    count = draw(st.integers(0, len(port_names)))
    channel_names = draw(lists_of(NAMES, count, count))
    used = draw(st.permutations(port_names))[:count]
    numbers = draw(lists_of(_LISTEN_PORTS, 2 * count, 2 * count))
    channels = [
        draw(valid_channels(name, port, numbers[2 * i], numbers[2 * i + 1]))
        for i, (name, port) in enumerate(zip(channel_names, used, strict=True))
    ]
    return config(ports, channels)


SMALL_PORTS: st.SearchStrategy[int] = st.integers(4000, 4003)
COLLIDING_ADDRESSES: st.SearchStrategy[str] = st.sampled_from(
    ["0.0.0.0", "::", "127.0.0.1", "127.0.0.2", "::1"]
)


_ANY_MODES = st.one_of(st.none(), st.sampled_from(MODES), st.sampled_from(MODES), st.just("x"))
_ANY_PORTS = st.one_of(SMALL_PORTS, maybe_bad_ints("channel", "listen", "port"))
_MAYBE_ANY_PORTS = st.one_of(st.none(), _ANY_PORTS)
_ANY_ADDRESSES = st.one_of(COLLIDING_ADDRESSES, IP_ADDRESSES, BAD_IP_ADDRESSES)
_DESTINATION_COUNTS = st.sampled_from([1, 2, 17])
_ENABLED_OR_YES = st.sampled_from([*BOOLEANS, "yes"])


@st.composite
def any_channels(draw: st.DrawFn, name: str, serial_ports: Sequence[str]) -> X:
    """A channel of the module's shape with possibly invalid content."""
    mode = draw(_ANY_MODES)
    listen_leaves = [draw(opt("address", _ANY_ADDRESSES)), draw(opt("port", _ANY_PORTS))]
    listen = (
        node("listen", *listen_leaves)
        if any(x is not None for x in listen_leaves) and draw(st.integers(0, 3))
        else None
    )
    secondary = _secondary(draw, draw(_MAYBE_ANY_PORTS), bad=True) if draw(st.booleans()) else None
    destinations = _destinations(draw, 0, draw(_DESTINATION_COUNTS))
    refs = st.sampled_from([*serial_ports, "no-such-port"])
    return node(
        "channel",
        leaf("name", name),
        draw(opt("description", ANY_DESCRIPTIONS)),
        draw(opt("enabled", _ENABLED_OR_YES)),
        draw(st.one_of(refs.map(lambda p: leaf("serial-port", p)), st.none())),
        None if mode is None else leaf("mode", mode),
        listen,
        secondary,
        *destinations,
        draw(opt("multicast-group", ANY_MULTICAST_GROUPS)),
        *_common(draw, bad=True),
    )


@st.composite
def any_configs(draw: st.DrawFn, max_ports: int = 3, max_channels: int = 4) -> X:
    """A configuration of the module's shape that may break any rule."""
    port_names = draw(lists_of(MAYBE_BAD_NAMES, max_size=max_ports))
    ports = [draw(any_serial_ports(name)) for name in port_names]
    channel_names = draw(lists_of(MAYBE_BAD_NAMES, max_size=max_channels))
    channels = [draw(any_channels(name, port_names)) for name in channel_names]
    return config(ports, channels)


# -- near-valid configurations: one or two mutations of a valid one -----------------

BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": BAD_NAMES,
    "description": LONG_DESCRIPTIONS,
    "device": BAD_DEVICES,
    "baud-rate": bad_ints("serial-port", "baud-rate"),
    "data-bits": bad_ints("serial-port", "data-bits"),
    "enabled": st.sampled_from(["yes", "1", "TRUE", ""]),
    "takeover": st.sampled_from(["no", "0", "False"]),
    "serial-port": st.sampled_from(["no-such-port", ""]),
    "address": BAD_IP_ADDRESSES,
    "port": bad_ints("channel", "listen", "port"),
    "timeout": bad_ints("channel", "secondary", "timeout"),
    "multicast-group": BAD_MULTICAST_GROUPS,
    "max-frame-size": bad_ints("channel", "packing", "max-frame-size"),
    "frame-delay": bad_ints("channel", "packing", "frame-delay"),
    "delimiter": bad_ints("channel", "packing", "delimiter"),
    "inactivity-timeout": bad_ints("channel", "inactivity-timeout"),
    "keepalive": bad_ints("channel", "keepalive"),
    "allowed-peer": BAD_PREFIXES,
}
for _leaf, _path in (
    ("parity", ("serial-port", "parity")),
    ("stop-bits", ("serial-port", "stop-bits")),
    ("flow-control", ("serial-port", "flow-control")),
    ("line-mode", ("serial-port", "line-mode")),
    ("mode", ("channel", "mode")),
    ("response-mode", ("channel", "secondary", "response-mode")),
):
    _valid = enum_values(*_path)
    _variants = {"bogus", "", *(e.upper() for e in _valid), *(f" {e}" for e in _valid)}
    BAD_VALUES[_leaf] = st.sampled_from(sorted(_variants - set(_valid)))

IndexPath = tuple[int, ...]


def _paths(x: X, prefix: IndexPath = ()) -> list[tuple[IndexPath, X]]:
    """Every descendant of ``x`` with its child-index path."""
    found: list[tuple[IndexPath, X]] = []
    for i, child in enumerate(x.children):
        found.append(((*prefix, i), child))
        found.extend(_paths(child, (*prefix, i)))
    return found


def _update(x: X, path: IndexPath, new: X | None) -> X:
    """``x`` with the node at ``path`` replaced by ``new`` (None removes it)."""
    i, rest = path[0], path[1:]
    if rest:
        replacement: X | None = _update(x.children[i], rest, new)
    else:
        replacement = new
    children = [
        *x.children[:i],
        *([] if replacement is None else [replacement]),
        *x.children[i + 1 :],
    ]
    return X(x.name, x.value, tuple(children), x.op)


def _ports_of(channel: X) -> list[Value]:
    ports: list[Value] = []
    for name in ("listen", "secondary"):
        container = channel.child(name)
        port = None if container is None else container.leaf("port")
        if port is not None:
            ports.append(port)
    return ports


def _at(x: X, path: IndexPath) -> X:
    for i in path:
        x = x.children[i]
    return x


def _is_key(cfg: X, path: IndexPath) -> bool:
    """Whether the node at ``path`` is a list key (changing it could make
    two entries equal, which is a parse error rather than a test case)."""
    parent = _at(cfg, path[:-1])
    name = _at(cfg, path).name
    return (parent.name, name) in {
        ("serial-port", "name"),
        ("channel", "name"),
        ("destination", "address"),
        ("destination", "port"),
    }


@st.composite
def _mutate(draw: st.DrawFn, cfg: X) -> X:
    kind = draw(st.sampled_from(["bad-value", "drop", "share", "graft"]))
    nodes = _paths(cfg)
    channels = [(p, x) for p, x in nodes if x.name == "channel" and len(p) == 1]
    if kind == "share" and len(channels) >= 2:
        (_, a), (path, b) = draw(st.permutations(channels))[:2]
        what = draw(st.sampled_from(["serial-port", "listen", "secondary"]))
        if what == "serial-port":
            value = a.leaf("serial-port")
            assert value is not None
            return _update(cfg, path, _set_leaf(b, "serial-port", value))
        ports = _ports_of(a)
        if ports:
            port = draw(st.sampled_from(ports))
            container = b.child(what) or node(what)
            new_container = _set_leaf(container, "port", port)
            if what == "listen" and draw(st.booleans()):
                address = (a.child("listen") or node("listen")).leaf("address")
                if address is not None:
                    new_container = _set_leaf(new_container, "address", address)
            return _update(cfg, path, _set_leaf(b, what, new_container))
    if kind == "graft" and channels:
        path, channel = draw(st.sampled_from(channels))
        extra = draw(
            st.sampled_from(
                [
                    node("destination", leaf("address", "198.51.100.7"), leaf("port", 9)),
                    node("secondary", leaf("port", 4001)),
                    node("listen", leaf("address", "::")),
                    node("listen", leaf("port", 4002)),
                    leaf("multicast-group", "239.1.2.3"),
                ]
            )
        )
        if extra.name != "destination" and channel.child(extra.name) is not None:
            return cfg
        if extra.name == "destination" and any(
            d.leaf("address") == "198.51.100.7" and d.leaf("port") == 9
            for d in channel.all("destination")
        ):
            return cfg
        return _update(cfg, path, X(channel.name, children=(*channel.children, extra)))
    if kind == "drop":
        droppable = [p for p, _ in nodes if len(p) >= 2 and not _is_key(cfg, p)]
        if droppable:
            return _update(cfg, draw(st.sampled_from(droppable)), None)
    leaves = [
        (p, x)
        for p, x in nodes
        if x.value is not None and x.name in BAD_VALUES and not _is_key(cfg, p)
    ]
    if leaves:
        where, target = draw(st.sampled_from(leaves))
        return _update(cfg, where, leaf(target.name, draw(BAD_VALUES[target.name])))
    return cfg


def _set_leaf(x: X, name: str, value: Value | X) -> X:
    """``x`` with child ``name`` set (a leaf value, or a whole child node)."""
    new = value if isinstance(value, X) else leaf(name, value)
    children = [c for c in x.children if c.name != name]
    return X(x.name, x.value, (*children, new), x.op)


_NON_PRESENCE = frozenset(
    q[1] for q, sn in CHANNEL.children.items() if sn.keyword == "container" and not sn.presence
)


def _prune(x: X) -> X:
    """Drop empty non-presence containers (XML parses them as absent)."""
    children = tuple(_prune(c) for c in x.children)
    kept = tuple(
        c for c in children if c.value is not None or c.children or c.name not in _NON_PRESENCE
    )
    return X(x.name, x.value, kept, x.op)


@st.composite
def near_valid_configs(draw: st.DrawFn) -> X:
    """A valid configuration with zero, one or two mutations: a bad value,
    a dropped node, a port or serial port shared with another channel, or
    a node the channel's mode does not allow."""
    cfg = draw(valid_configs())
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        cfg = _prune(draw(_mutate(cfg)))
    return cfg


_COLLIDING_ADDRESS_LEAVES = st.one_of(
    COLLIDING_ADDRESSES.map(lambda a: leaf("address", a)), st.none()
)
_COLLIDING_PORTS = st.sampled_from([4000, 4001, 4002, 4003, None])
_COLLIDING_ENABLED = st.sampled_from(
    [None, leaf("enabled", "true"), None, leaf("enabled", "false")]
)
_COLLIDING_NAMES = st.from_regex(r"[a-z][0-9]?", fullmatch=True)


@st.composite
def colliding_channels(draw: st.DrawFn, name: str, serial_port: str) -> X:
    """A channel drawn to collide with its siblings: ports 4000-4003, a few
    addresses, random enabled flag, mode and secondary (in any mode)."""
    mode = draw(_MODES)
    # rare cases last: hypothesis favours the first alternatives
    address = draw(_COLLIDING_ADDRESS_LEAVES)
    port = draw(_COLLIDING_PORTS)
    listen: X | None = None
    if draw(st.integers(0, 9)) and (address is not None or port is not None):
        listen = node("listen", address, None if port is None else leaf("port", port))
    secondary_port = draw(_COLLIDING_PORTS)
    secondary = (
        node("secondary", None if secondary_port is None else leaf("port", secondary_port))
        if draw(st.booleans())
        else None
    )
    destinations = _destinations(draw, 0 if mode == "server" else 1, 1)
    enabled = draw(_COLLIDING_ENABLED)
    return node(
        "channel",
        leaf("name", name),
        enabled,
        leaf("serial-port", serial_port),
        leaf("mode", mode),
        listen,
        secondary,
        *destinations,
    )


@st.composite
def colliding_configs(draw: st.DrawFn, min_channels: int = 2, max_channels: int = 8) -> X:
    names = draw(lists_of(_COLLIDING_NAMES, min_channels, max_channels))
    ports = [node("serial-port", leaf("name", f"p{i}"), leaf("device", "loop://")) for i in names]
    channels = [draw(colliding_channels(n, f"p{n}")) for n in names]
    return config(ports, channels)


# -- edit-config plans -----------------------------------------------------------

ERROR_ACTIONS: frozenset[str] = frozenset({"create-existing", "delete-missing", "bad-operation"})
ERROR_TAGS: dict[str, str] = {
    "create-existing": "data-exists",
    "delete-missing": "data-missing",
    "bad-operation": "bad-attribute",
}


@dataclass(frozen=True)
class EditStep:
    """One entry of an edit-config and what it must do to the datastore."""

    kind: str
    """serial-port or channel."""
    name: str
    action: str
    element: X
    """The entry element as it appears in the edit-config."""
    after: X | None
    """The entry as it must be after the edit (None: absent)."""
    expected_op: str | None
    """The diff op this step must produce (None: no change)."""


def _without(entry: X, victim: X) -> X:
    return X(entry.name, entry.value, tuple(c for c in entry.children if c is not victim), entry.op)


def _with(entry: X, *extra: X) -> X:
    return X(entry.name, entry.value, (*entry.children, *extra), entry.op)


def _changed_leaf(draw: st.DrawFn, entry: X) -> tuple[X, X]:
    """(edit element, entry after) for a leaf set to a value different from
    the configured one, or a configured leaf deleted.  Setting a default
    value explicitly is a change too."""
    choices: list[tuple[str, st.SearchStrategy[Any]]]
    if entry.name == "serial-port":
        choices = [
            ("description", DESCRIPTIONS),
            ("baud-rate", ints("serial-port", "baud-rate")),
            ("parity", enums("serial-port", "parity")),
        ]
    else:
        choices = [
            ("description", DESCRIPTIONS),
            ("enabled", st.sampled_from(BOOLEANS)),
            ("keepalive", ints("channel", "keepalive")),
        ]
    name, values = draw(st.sampled_from(choices))
    key = leaf("name", entry.key)
    current = entry.child(name)
    if current is not None and draw(st.integers(0, 3)) == 0:
        return node(entry.name, key, X(name, op="delete")), _without(entry, current)
    value: Any = draw(values)
    if current is not None and value == current.value:
        value = f"{value}+" if isinstance(value, str) else value + (1 if value < 60000 else -1)
    new = leaf(name, value)
    after = _with(entry if current is None else _without(entry, current), new)
    return node(entry.name, key, new), after


def _nested_change(draw: st.DrawFn, entry: X) -> tuple[X, X] | None:
    """(edit element, entry after) for an edit below a channel that changes it."""
    key = leaf("name", entry.key)
    secondary = entry.child("secondary")
    destinations = entry.all("destination")
    peers = entry.all("allowed-peer")
    packing = entry.child("packing")
    options = ["destination-add", "peer-add", "packing-replace"]
    options.append("secondary-delete" if secondary is not None else "secondary-create")
    if destinations:
        options.append("destination-delete")
    if peers:
        options.append("peer-delete")
    option = draw(st.sampled_from(options))
    if option == "secondary-delete":
        assert secondary is not None
        return node(entry.name, key, X("secondary", op="delete")), _without(entry, secondary)
    if option == "secondary-create":
        new = node("secondary", leaf("port", draw(ints("channel", "secondary", "port"))))
        return (
            node(entry.name, key, X(new.name, children=new.children, op="create")),
            _with(entry, new),
        )
    if option == "destination-add":
        taken = {(d.leaf("address"), d.leaf("port")) for d in destinations}
        address, port = draw(
            st.tuples(IP_ADDRESSES, ints("channel", "destination", "port")).filter(
                lambda pair: pair not in taken
            )
        )
        new = node("destination", leaf("address", address), leaf("port", port))
        return node(entry.name, key, new), _with(entry, new)
    if option == "destination-delete":
        victim = draw(st.sampled_from(destinations))
        element = X("destination", children=victim.children, op="delete")
        return node(entry.name, key, element), _without(entry, victim)
    if option == "peer-add":
        taken_peers = {p.value for p in peers}
        new = leaf("allowed-peer", draw(ip_prefixes().filter(lambda p: p not in taken_peers)))
        return node(entry.name, key, new), _with(entry, new)
    if option == "peer-delete":
        victim = draw(st.sampled_from(peers))
        element = X("allowed-peer", value=victim.value, op="delete")
        return node(entry.name, key, element), _without(entry, victim)
    # packing-replace: a packing different from the configured one
    size = draw(ints("channel", "packing", "max-frame-size"))
    new = node("packing", leaf("max-frame-size", size))
    if packing == new:
        new = node("packing", leaf("max-frame-size", size), leaf("delimiter", 13))
    element = X(new.name, children=new.children, op="replace")
    base = entry if packing is None else _without(entry, packing)
    return node(entry.name, key, element), _with(base, new)


def _no_op(draw: st.DrawFn, entry: X) -> X:
    """An edit element that leaves ``entry`` as it is."""
    key = leaf("name", entry.key)
    options = ["merge-same", "replace-same"]
    if entry.child("description") is None:
        options.append("remove-absent")
    if entry.all("destination") or entry.all("allowed-peer"):
        options.append("merge-same-nested")
    option = draw(st.sampled_from(options))
    if option == "replace-same":
        return X(entry.name, children=entry.children, op="replace")
    if option == "remove-absent":
        return node(entry.name, key, X("description", op="remove"))
    if option == "merge-same-nested":
        nested = [*entry.all("destination"), *entry.all("allowed-peer")]
        return node(entry.name, key, draw(st.sampled_from(nested)))
    same = [c for c in entry.children if c.value is not None and c.name != "name"]
    return node(entry.name, key, draw(st.sampled_from(same)) if same else None)


_NEW_ENTRIES = st.tuples(st.sampled_from(["serial-port", "channel"]), NAMES)


@st.composite
def edit_steps(
    draw: st.DrawFn, cfg: X, with_errors: bool = False, max_steps: int = 4
) -> list[EditStep]:
    """Steps on distinct entries of ``cfg`` plus creates of fresh entries,
    in random order.  With ``with_errors``, some steps fail (create of an
    existing entry, delete of a missing one, an invalid operation)."""
    existing = [e for e in cfg.children if e.name in ("serial-port", "channel")]
    targets = draw(
        st.lists(st.sampled_from(existing), max_size=max_steps, unique_by=lambda e: (e.name, e.key))
        if existing
        else st.just([])
    )
    actions = ["change", "change", "delete", "no-op", "no-op", "replace-drop"]
    if with_errors:
        actions += ["create-existing", "bad-operation"]
    steps: list[EditStep] = []
    for entry in targets:
        action = draw(st.sampled_from(actions))
        if action == "change" and entry.name == "channel" and draw(st.booleans()):
            action = "nested-change"
        key = leaf("name", entry.key)
        after: X | None = entry
        expected: str | None = "modify"
        if action == "change":
            element, after = _changed_leaf(draw, entry)
        elif action == "nested-change":
            changed = _nested_change(draw, entry)
            assert changed is not None
            element, after = changed
        elif action == "replace-drop":
            droppable = [c for c in entry.children if c.name != "name"]
            victim = draw(st.sampled_from(droppable))
            after = _without(entry, victim)
            element = X(entry.name, children=after.children, op="replace")
        elif action == "delete":
            element, after, expected = node(entry.name, key, op="delete"), None, "delete"
        elif action == "no-op":
            element, expected = _no_op(draw, entry), None
        elif action == "create-existing":
            element, expected = X(entry.name, children=entry.children, op="create"), None
        else:  # bad-operation
            op = draw(st.sampled_from(["bogus", "Merge", ""]))
            element, expected = node(entry.name, key, op=op), None
        steps.append(EditStep(entry.name, entry.key, action, element, after, expected))
    taken = {(e.name, e.key) for e in existing}
    creates = draw(lists_of(_NEW_ENTRIES, max_size=2))
    for kind, name in creates:
        if (kind, name) in taken:
            continue
        taken.add((kind, name))
        if kind == "serial-port":
            new = node(kind, leaf("name", name), leaf("device", draw(DEVICES)))
        else:
            new = node(
                kind,
                leaf("name", name),
                leaf("serial-port", "p"),
                leaf("mode", "client"),
                node("destination", leaf("address", "192.0.2.1"), leaf("port", 80)),
            )
        element = X(new.name, children=new.children, op="create")
        steps.append(EditStep(kind, name, "create", element, new, "create"))
    if with_errors and draw(st.booleans()):
        kind = draw(st.sampled_from(["serial-port", "channel"]))
        name = draw(NAMES.filter(lambda n: (kind, n) not in taken))
        element = node(kind, leaf("name", name), op="delete")
        steps.append(EditStep(kind, name, "delete-missing", element, None, None))
    return list(draw(st.permutations(steps)))


def expected_config(cfg: X, steps: Sequence[EditStep]) -> X:
    """``cfg`` as an error-free edit of ``steps`` must leave it: edited
    entries in place, deleted ones gone, created ones appended in edit order."""
    by_entry = {(s.kind, s.name): s for s in steps}
    lists: dict[str, list[X]] = {"serial-port": [], "channel": []}
    for entry in cfg.children:
        step = by_entry.get((entry.name, entry.key))
        after = entry if step is None else step.after
        if after is not None:
            lists[entry.name].append(after)
    for step in steps:
        if step.action == "create" and step.after is not None:
            lists[step.kind].append(step.after)
    return config(lists["serial-port"], lists["channel"])


@st.composite
def configs_with_edits(draw: st.DrawFn, with_errors: bool = False) -> tuple[X, list[EditStep]]:
    cfg = draw(valid_configs())
    return cfg, draw(edit_steps(cfg, with_errors))
