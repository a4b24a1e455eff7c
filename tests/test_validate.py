"""validate() and complete(): every YANG rule, valid and invalid, with the
error-tag, error-app-tag and error-path a NETCONF client would see."""

from __future__ import annotations

from pathlib import Path

import pytest

from nf.config import ConfigError, complete, load_document, render, to_string, validate
from nf.config.tree import Node
from nf.schema import SchemaIndex, default_schema, load

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
HERE = Path(__file__).parent
P = "/soip:serial-over-ip"


@pytest.fixture(scope="module")
def schema() -> SchemaIndex:
    return default_schema()


@pytest.fixture(scope="module")
def test_schema() -> SchemaIndex:
    return load([HERE / "yang" / "nf-test.yang"])


def soip(body: str) -> str:
    return f'<serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip>'


PORTS = "".join(
    f"<serial-port><name>p{i}</name><device>/dev/ttyS{i}</device></serial-port>" for i in range(4)
)


def channel(name: str, port: str, body: str) -> str:
    return f"<channel><name>{name}</name><serial-port>{port}</serial-port>{body}</channel>"


def server(name: str, port: str, listen: str, extra: str = "") -> str:
    return channel(name, port, f"<mode>server</mode><listen>{listen}</listen>{extra}")


def errors_of(xml: str, schema: SchemaIndex) -> list[ConfigError]:
    tree, errors = load_document(xml, schema)
    return errors + validate(tree, schema)


def only(xml: str, schema: SchemaIndex) -> ConfigError:
    errors = errors_of(xml, schema)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# -- valid configurations ---------------------------------------------------


def test_example_config_is_valid(schema: SchemaIndex) -> None:
    tree, errors = load_document(Path("examples/full.xml"), schema)
    assert errors == []
    assert validate(tree, schema) == []


def test_empty_datastore_is_valid(schema: SchemaIndex) -> None:
    assert validate(Node(), schema) == []


# -- types, ranges, lengths, patterns, enumerations --------------------------


@pytest.mark.parametrize(
    ("leaf_xml", "path", "needle"),
    [
        ("<baud-rate>49</baud-rate>", "/soip:baud-rate", "range 50..4000000"),
        ("<baud-rate>fast</baud-rate>", "/soip:baud-rate", "not an integer"),
        ("<data-bits>9</data-bits>", "/soip:data-bits", "range 5..8"),
        ("<parity>evn</parity>", "/soip:parity", "expected one of none, even, odd, mark, space"),
        ("<stop-bits>3</stop-bits>", "/soip:stop-bits", "expected one of 1, 1.5, 2"),
        ("<device>dev/ttyS1</device>", "/soip:device", "does not match the pattern"),
    ],
)
def test_bad_serial_port_value_is_invalid_value(
    schema: SchemaIndex, leaf_xml: str, path: str, needle: str
) -> None:
    device = "" if "<device>" in leaf_xml else "<device>/dev/ttyS1</device>"
    error = only(soip(f"<serial-port><name>a</name>{device}{leaf_xml}</serial-port>"), schema)
    assert error.tag == "invalid-value"
    assert error.type == "application"
    assert error.path == f"{P}/soip:serial-port[soip:name='a']{path}"
    assert needle in error.message
    assert ("bad-element", path.split(":")[-1]) in error.info


def test_name_length_and_pattern(schema: SchemaIndex) -> None:
    error = only(
        soip(f"<serial-port><name>{'x' * 33}</name><device>loop://</device></serial-port>"), schema
    )
    assert error.tag == "invalid-value" and "length 1..32" in error.message
    error = only(
        soip("<serial-port><name>a b</name><device>loop://</device></serial-port>"), schema
    )
    assert "pattern" in error.message


def test_numbers_accept_sign_zeros_and_white_space_like_libyang(schema: SchemaIndex) -> None:
    xml = soip(
        "<serial-port><name>a</name><device>loop://</device>"
        "<baud-rate> +09600\n</baud-rate></serial-port>"
    )
    tree, errors = load_document(xml, schema)
    assert errors == [] and validate(tree, schema) == []
    assert "<baud-rate>9600</baud-rate>" in to_string(render(tree, schema), pretty=False)


def test_multicast_group_must_be_in_224_slash_4(schema: SchemaIndex) -> None:
    def peer(group: str) -> str:
        return soip(
            PORTS
            + channel(
                "u",
                "p0",
                "<mode>peer</mode><listen><port>5000</port></listen>"
                "<destination><address>239.1.1.1</address><port>5000</port></destination>"
                f"<multicast-group>{group}</multicast-group>",
            )
        )

    assert errors_of(peer("239.255.0.1"), schema) == []
    assert errors_of(peer("224.0.0.1"), schema) == []
    for bad in ("240.0.0.1", "223.255.255.255", "10.0.0.1"):
        error = only(peer(bad), schema)
        assert error.tag == "invalid-value"
        assert error.path == f"{P}/soip:channel[soip:name='u']/soip:multicast-group"


# -- mandatory, keys --------------------------------------------------------


def test_missing_mandatory_leaf_is_missing_element(schema: SchemaIndex) -> None:
    error = only(soip("<serial-port><name>a</name></serial-port>"), schema)
    assert error.tag == "missing-element"
    assert error.path == f"{P}/soip:serial-port[soip:name='a']/soip:device"
    assert error.info == (("bad-element", "device"),)


def test_list_entry_without_key(schema: SchemaIndex) -> None:
    error = only(soip("<serial-port><device>loop://</device></serial-port>"), schema)
    assert error.tag == "missing-element"
    assert error.info == (("bad-element", "name"),)


def test_duplicate_list_key(schema: SchemaIndex) -> None:
    port = "<serial-port><name>a</name><device>loop://</device></serial-port>"
    error = only(soip(port + port), schema)
    assert error.path == f"{P}/soip:serial-port[soip:name='a']"


def test_mandatory_inside_presence_container(schema: SchemaIndex) -> None:
    xml = soip(PORTS + server("s", "p0", "<port>4000</port>", "<secondary/>"))
    error = only(xml, schema)
    assert error.tag == "missing-element"
    assert error.path == f"{P}/soip:channel[soip:name='s']/soip:secondary/soip:port"


# -- leafref ------------------------------------------------------------------


def test_leafref_to_missing_port_is_instance_required(schema: SchemaIndex) -> None:
    error = only(soip(PORTS + server("s", "nope", "<port>4000</port>")), schema)
    assert error.tag == "data-missing"
    assert error.app_tag == "instance-required"
    assert error.path == f"{P}/soip:channel[soip:name='s']/soip:serial-port"


def test_leafref_require_instance_false(test_schema: SchemaIndex) -> None:
    xml = (
        '<top xmlns="urn:nf:test"><tag>x</tag><item><id>1</id><weak>9</weak></item>'
        "<udp-port>1</udp-port></top>"
    )
    assert errors_of(xml, test_schema) == []


# -- unique ---------------------------------------------------------------------


def test_two_channels_on_one_serial_port_is_data_not_unique(schema: SchemaIndex) -> None:
    xml = soip(
        PORTS + server("a", "p0", "<port>4000</port>") + server("b", "p0", "<port>4001</port>")
    )
    error = only(xml, schema)
    assert error.tag == "operation-failed"
    assert error.app_tag == "data-not-unique"
    assert error.path == f"{P}/soip:channel[soip:name='b']"
    assert ("non-unique", f"{P}/soip:channel[soip:name='a']/soip:serial-port") in error.info
    assert ("non-unique", f"{P}/soip:channel[soip:name='b']/soip:serial-port") in error.info


def test_unique_over_two_leaves_and_missing_leaf(test_schema: SchemaIndex) -> None:
    def top(items: str) -> str:
        return f'<top xmlns="urn:nf:test"><tag>x</tag>{items}<udp-port>1</udp-port></top>'

    dup = "<item><id>1</id><a>x</a><b>y</b></item><item><id>2</id><a>x</a><b>y</b></item>"
    assert [e.app_tag for e in errors_of(top(dup), test_schema)] == ["data-not-unique"]
    differ = "<item><id>1</id><a>x</a><b>y</b></item><item><id>2</id><a>x</a><b>z</b></item>"
    assert errors_of(top(differ), test_schema) == []
    # RFC 7950 §7.8.3: entries lacking one of the leaves are not compared
    partial = "<item><id>1</id><a>x</a></item><item><id>2</id><a>x</a></item>"
    assert errors_of(top(partial), test_schema) == []


# -- must -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "offender", "needle"),
    [
        (
            server("a", "p0", "<port>4000</port>")
            + server("b", "p1", "<address>127.0.0.1</address><port>4000</port>"),
            ["a", "b"],
            "listen/port is used by another enabled TCP server",
        ),
        (
            server("a", "p0", "<address>::</address><port>4000</port>")
            + server("b", "p1", "<address>127.0.0.1</address><port>4000</port>"),
            ["a", "b"],
            "listen/port is used by another enabled TCP server",
        ),
        (
            server("a", "p0", "<port>4000</port>")
            + channel(
                "c",
                "p1",
                "<mode>client</mode><secondary><port>4000</port></secondary>"
                "<destination><address>127.0.0.1</address><port>9</port></destination>",
            ),
            ["c"],
            "secondary/port is used as listen/port",
        ),
        (
            server("a", "p0", "<port>4000</port>", "<secondary><port>4100</port></secondary>")
            + server("b", "p1", "<port>4001</port>", "<secondary><port>4100</port></secondary>"),
            ["a", "b"],
            "secondary/port is used by another",
        ),
    ],
)
def test_tcp_port_conflicts_are_must_violations(
    schema: SchemaIndex, channels: str, offender: list[str], needle: str
) -> None:
    errors = errors_of(soip(PORTS + channels), schema)
    assert sorted(e.path or "" for e in errors) == [
        f"{P}/soip:channel[soip:name='{n}']" for n in offender
    ]
    for error in errors:
        assert error.tag == "operation-failed"
        assert error.app_tag == "must-violation"
        assert needle in error.message


@pytest.mark.parametrize(
    "channels",
    [
        # different specific addresses
        server("a", "p0", "<address>127.0.0.1</address><port>4000</port>")
        + server("b", "p1", "<address>127.0.0.2</address><port>4000</port>"),
        # one of them disabled
        server("a", "p0", "<port>4000</port>")
        + server("b", "p1", "<port>4000</port>", "<enabled>false</enabled>"),
        # TCP and UDP on the same number
        server("a", "p0", "<port>4000</port>")
        + channel(
            "u",
            "p1",
            "<mode>peer</mode><listen><port>4000</port></listen>"
            "<destination><address>127.0.0.1</address><port>1</port></destination>",
        ),
    ],
)
def test_allowed_port_sharing(schema: SchemaIndex, channels: str) -> None:
    assert errors_of(soip(PORTS + channels), schema) == []


def test_udp_port_conflict(schema: SchemaIndex) -> None:
    def peer(name: str, port: str, address: str) -> str:
        return channel(
            name,
            port,
            f"<mode>peer</mode><listen><address>{address}</address><port>5000</port></listen>"
            "<destination><address>127.0.0.1</address><port>1</port></destination>",
        )

    errors = errors_of(
        soip(PORTS + peer("u1", "p0", "0.0.0.0") + peer("u2", "p1", "127.0.0.9")), schema
    )
    assert [e.app_tag for e in errors] == ["must-violation", "must-violation"]
    assert "UDP" in errors[0].message


def test_secondary_port_must_differ_from_listen_port(schema: SchemaIndex) -> None:
    error = only(
        soip(
            PORTS
            + server("a", "p0", "<port>4000</port>", "<secondary><port>4000</port></secondary>")
        ),
        schema,
    )
    assert error.app_tag == "must-violation"
    assert error.path == f"{P}/soip:channel[soip:name='a']/soip:secondary/soip:port"
    assert error.message == "secondary/port must differ from listen/port"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<mode>client</mode>", "client mode needs exactly one destination"),
        (
            "<mode>client</mode><destination><address>127.0.0.1</address><port>1</port></destination>"
            "<destination><address>127.0.0.1</address><port>2</port></destination>",
            "client mode needs exactly one destination",
        ),
        (
            "<mode>peer</mode><listen><port>1</port></listen>",
            "peer mode needs at least one destination",
        ),
        ("<mode>server</mode>", "listen/port is required in server and peer modes"),
    ],
)
def test_destination_counts_and_listen_port_per_mode(
    schema: SchemaIndex, body: str, message: str
) -> None:
    error = only(soip(PORTS + channel("c", "p0", body)), schema)
    assert (error.tag, error.app_tag, error.message) == (
        "operation-failed",
        "must-violation",
        message,
    )


def test_custom_error_app_tag(test_schema: SchemaIndex) -> None:
    xml = (
        '<top xmlns="urn:nf:test"><tag>x</tag><item><id>1</id><limited>12</limited></item>'
        "<udp-port>1</udp-port></top>"
    )
    error = only(xml, test_schema)
    assert (error.app_tag, error.message) == ("too-big", "limited must stay below ten")
    assert error.path == "/t:top/t:item[t:id='1']/t:limited"


# -- when -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "node"),
    [
        (
            "<mode>server</mode><listen><port>1</port></listen>"
            "<destination><address>127.0.0.1</address><port>1</port></destination>",
            "/soip:destination[soip:address='127.0.0.1'][soip:port='1']",
        ),
        (
            "<mode>peer</mode><listen><port>1</port></listen><secondary><port>2</port></secondary>"
            "<destination><address>127.0.0.1</address><port>1</port></destination>",
            "/soip:secondary",
        ),
        (
            "<mode>server</mode><listen><port>1</port></listen><multicast-group>239.0.0.1</multicast-group>",
            "/soip:multicast-group",
        ),
        (
            "<mode>server</mode><listen><port>1</port></listen>"
            "<secondary><port>2</port><response-mode>raw</response-mode><timeout>100</timeout></secondary>",
            "/soip:secondary/soip:timeout",
        ),
    ],
)
def test_mode_dependent_nodes_are_when_violations(
    schema: SchemaIndex, body: str, node: str
) -> None:
    error = only(soip(PORTS + channel("c", "p0", body)), schema)
    assert error.tag == "operation-failed"
    assert error.path == f"{P}/soip:channel[soip:name='c']{node}"
    assert "when condition" in error.message


# -- min/max-elements, choice ---------------------------------------------------------


def test_too_many_destinations(schema: SchemaIndex) -> None:
    dests = "".join(
        f"<destination><address>127.0.0.1</address><port>{p}</port></destination>"
        for p in range(1, 18)
    )
    error = only(
        soip(
            PORTS + channel("u", "p0", f"<mode>peer</mode><listen><port>1</port></listen>{dests}")
        ),
        schema,
    )
    assert (error.tag, error.app_tag) == ("operation-failed", "too-many-elements")
    assert error.path == f"{P}/soip:channel[soip:name='u']/soip:destination"


def test_min_and_max_elements(test_schema: SchemaIndex) -> None:
    few = '<top xmlns="urn:nf:test"><item><id>1</id></item><udp-port>1</udp-port></top>'
    error = only(few, test_schema)
    assert (error.app_tag, error.path) == ("too-few-elements", "/t:top/t:tag")
    many = '<top xmlns="urn:nf:test">' + "".join(f"<tag>{i}</tag>" for i in range(4))
    many += "<item><id>1</id></item><udp-port>1</udp-port></top>"
    assert only(many, test_schema).app_tag == "too-many-elements"
    no_items = '<top xmlns="urn:nf:test"><tag>x</tag><udp-port>1</udp-port></top>'
    error = only(no_items, test_schema)
    assert (error.app_tag, error.path) == ("too-few-elements", "/t:top/t:item")


def test_mandatory_choice_and_two_cases(test_schema: SchemaIndex) -> None:
    base = '<top xmlns="urn:nf:test"><tag>x</tag><item><id>1</id></item>{}</top>'
    error = only(base.format(""), test_schema)
    assert (error.tag, error.app_tag) == ("data-missing", "missing-choice")
    assert error.info == (("missing-choice", "transport"),)
    assert errors_of(base.format("<tcp-port>1</tcp-port>"), test_schema) == []
    error = only(base.format("<tcp-port>1</tcp-port><udp-port>2</udp-port>"), test_schema)
    assert "several cases" in error.message


def test_decimal64_and_empty(test_schema: SchemaIndex) -> None:
    base = (
        '<top xmlns="urn:nf:test"><tag>x</tag><item><id>1</id>{}</item><udp-port>1</udp-port></top>'
    )
    assert errors_of(base.format("<ratio>0.25</ratio><flag/>"), test_schema) == []
    assert only(base.format("<ratio>1.5</ratio>"), test_schema).tag == "invalid-value"
    assert only(base.format("<ratio>abc</ratio>"), test_schema).tag == "invalid-value"
    assert only(base.format("<flag>x</flag>"), test_schema).tag == "invalid-value"


# -- defaults -------------------------------------------------------------------------


def _leaf(tree: Node, *names: str, ns: str = SOIP) -> object:
    node: object = tree
    for name in names:
        assert isinstance(node, Node), names
        node = node.get((ns, name))
    return node


def test_defaults_applied_as_yang_says(schema: SchemaIndex) -> None:
    xml = soip(
        PORTS
        + server("s", "p0", "<port>4000</port>", "<secondary><port>4001</port></secondary>")
        + channel(
            "c",
            "p1",
            "<mode>client</mode><destination><address>127.0.0.1</address><port>1</port></destination>",
        )
    )
    tree, _ = load_document(xml, schema)
    full = complete(tree, schema)
    top = _leaf(full, "serial-over-ip")
    assert isinstance(top, Node)
    ports = top.get((SOIP, "serial-port"))
    chans = top.get((SOIP, "channel"))
    from nf.config.tree import ListNode

    assert isinstance(ports, ListNode) and isinstance(chans, ListNode)
    p0 = ports.get(("p0",))
    assert p0 is not None and p0.get((SOIP, "baud-rate")) == "115200"
    assert p0.get((SOIP, "stop-bits")) == "1"
    s = chans.get(("s",))
    assert s is not None
    assert _leaf(s, "enabled") == "true"
    assert _leaf(s, "listen", "address") == "0.0.0.0"  # default inside a non-presence container
    assert _leaf(s, "secondary", "response-mode") == "slotted"
    assert (
        _leaf(s, "secondary", "timeout") == "600"
    )  # when response-mode = slotted, via its default
    c = chans.get(("c",))
    assert c is not None
    assert c.get((SOIP, "listen")) is None  # when false in client mode without secondary
    assert c.get((SOIP, "packing")) is None  # no defaults inside: not materialised
    assert _leaf(c, "keepalive") == "60"
    # the input tree is untouched, and complete is idempotent
    assert _leaf(tree, "serial-over-ip", "channel") is not None
    assert complete(full, schema) == full


def test_default_not_applied_when_when_is_false(schema: SchemaIndex) -> None:
    xml = soip(
        PORTS
        + server(
            "s",
            "p0",
            "<port>4000</port>",
            "<secondary><port>4001</port><response-mode>raw</response-mode></secondary>",
        )
    )
    tree, _ = load_document(xml, schema)
    from nf.config.tree import ListNode

    top = complete(tree, schema).get((SOIP, "serial-over-ip"))
    assert isinstance(top, Node)
    chans = top.get((SOIP, "channel"))
    assert isinstance(chans, ListNode)
    s = chans.get(("s",))
    assert s is not None
    assert _leaf(s, "secondary", "timeout") is None


def test_defaults_in_choices_and_nested_containers(test_schema: SchemaIndex) -> None:
    xml = '<top xmlns="urn:nf:test"><tag>x</tag><item><id>1</id></item><tcp-port>1</tcp-port></top>'
    tree, _ = load_document(xml, test_schema)
    full = complete(tree, test_schema)
    ns = "urn:nf:test"
    assert _leaf(full, "top", "tcp-nodelay", ns=ns) == "true"  # default of the active case
    assert _leaf(full, "top", "blue-level", ns=ns) == "5"  # default case of an empty choice
    assert _leaf(full, "top", "options", "retries", ns=ns) == "3"
    assert _leaf(full, "top", "options", "inner", "depth", ns=ns) == "2"
    assert _leaf(full, "top", "extra", ns=ns) is None  # presence container not created
    red = (
        '<top xmlns="urn:nf:test"><tag>x</tag><item><id>1</id></item>'
        "<udp-port>1</udp-port><red>r</red></top>"
    )
    tree, _ = load_document(red, test_schema)
    full = complete(tree, test_schema)
    assert _leaf(full, "top", "blue-level", ns=ns) is None  # other case chosen
    assert _leaf(full, "top", "tcp-nodelay", ns=ns) is None  # case not active


# -- structure --------------------------------------------------------------------------


def test_state_data_in_config_is_refused(schema: SchemaIndex) -> None:
    xml = soip(
        "<serial-port><name>a</name><device>loop://</device><state><rx-bytes>1</rx-bytes></state></serial-port>"
    )
    error = only(xml, schema)
    assert error.tag == "invalid-value"
    assert "config false" in error.message
    assert error.path == f"{P}/soip:serial-port[soip:name='a']/soip:state"


def test_unknown_element_and_namespace(schema: SchemaIndex) -> None:
    error = only(
        soip("<serial-port><name>a</name><device>loop://</device><speed>1</speed></serial-port>"),
        schema,
    )
    assert (error.tag, error.info) == ("unknown-element", (("bad-element", "speed"),))
    assert error.path == f"{P}/soip:serial-port[soip:name='a']"
    error = only(soip('<x xmlns="urn:other"/>'), schema)
    assert error.tag == "unknown-namespace"
    assert error.type == "protocol"
    assert ("bad-namespace", "urn:other") in error.info


def test_every_error_is_reported_not_only_the_first(schema: SchemaIndex) -> None:
    xml = soip(
        "<serial-port><name>a</name><device>x</device><baud-rate>1</baud-rate></serial-port>"
        + server("s", "zz", "<port>0</port>")
    )
    tags = sorted(e.tag for e in errors_of(xml, schema))
    assert tags == ["data-missing", "invalid-value", "invalid-value", "invalid-value"]


def test_error_path_quotes_keys_with_apostrophes(schema: SchemaIndex) -> None:
    from nf.config.tree import quote

    assert quote("a") == "'a'"
    assert quote("it's") == '"it\'s"'
    assert quote("a'b\"c") == "concat('a', \"'\", 'b\"c')"
