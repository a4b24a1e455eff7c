"""Subtree (RFC 6241 §6) and XPath (§8.9) filters of ``nf.northbound.filters``.

The datastore is examples/full.xml rendered by the codec, plus operational
state added by hand under one serial port and two channels, so every filter
shape is shown to work on state as well as configuration.  Each test
compares the exact output XML (canonicalised, whitespace between elements
ignored) and checks that the input ``<data>`` was not modified.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from nf.config.codec import WD_NS, load_document, parse_xml, render
from nf.northbound.filters import FilterError, apply_filter
from nf.schema import default_schema

NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SCHEMA = default_schema()
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "full.xml"

PORT_STATE = "<state><oper-status>up</oper-status><rx-bytes>5</rx-bytes></state>"
SCADA_STATE = (
    "<state><oper-status>listening</oper-status>"
    "<session><id>1</id><remote-address>10.0.0.5</remote-address><role>primary</role>"
    "<status>active</status><rx-bytes>10</rx-bytes></session>"
    "<session><id>2</id><remote-address>10.0.0.6</remote-address><role>secondary</role>"
    "<status>waiting</status><rx-bytes>0</rx-bytes></session>"
    "<counters><serial-to-net-bytes>1200</serial-to-net-bytes>"
    "<sessions-accepted>2</sessions-accepted></counters></state>"
)
SPARE_STATE = "<state><oper-status>down</oper-status></state>"


def only(elem: etree._Element, path: str) -> etree._Element:
    """The one element at ``path`` (XPath with prefix ``n`` for the module)."""
    found = elem.xpath(path, namespaces={"n": NS})
    assert isinstance(found, list) and len(found) == 1 and isinstance(found[0], etree._Element)
    return found[0]


def _with_state() -> etree._Element:
    """full.xml rendered as ``<data>``, with state appended (state is last in schema order)."""
    tree, errors = load_document(EXAMPLE, SCHEMA)
    assert errors == []
    data = render(tree, SCHEMA)
    top = data[0]
    for tag, name, state in (
        ("serial-port", "ttyS1", PORT_STATE),
        ("channel", "scada-slotted", SCADA_STATE),
        ("channel", "spare", SPARE_STATE),
    ):
        only(top, f"n:{tag}[n:name='{name}']").append(
            etree.fromstring(state.replace("<state>", f'<state xmlns="{NS}">', 1))
        )
    return data


DATA = _with_state()

# Channel and serial-port entries of full.xml, as rendered, for expected outputs.
PORTS = {
    "ttyS1": "<name>ttyS1</name><description>PLC on the left cabinet</description>"
    "<device>/dev/ttyS1</device><baud-rate>9600</baud-rate><parity>even</parity>" + PORT_STATE,
    "ttyS2": "<name>ttyS2</name><device>/dev/ttyS2</device><baud-rate>19200</baud-rate>"
    "<line-mode>rs485</line-mode>",
    "ttyS3": "<name>ttyS3</name><device>/dev/ttyS3</device>",
    "usb0": "<name>usb0</name><device>/dev/ttyUSB0</device><flow-control>rts-cts</flow-control>",
    "loop": "<name>loop</name><device>loop://</device>",
}
SCADA = (
    "<name>scada-slotted</name><serial-port>ttyS1</serial-port><mode>server</mode>"
    "<listen><port>4001</port></listen><secondary><port>4002</port>"
    "<response-mode>slotted</response-mode><timeout>600</timeout></secondary>"
    "<packing><frame-delay>20</frame-delay></packing>" + SCADA_STATE
)
MODBUS = (
    "<name>modbus-failover</name><serial-port>ttyS2</serial-port><mode>server</mode>"
    "<listen><address>127.0.0.1</address><port>4003</port></listen>"
    "<secondary><port>4004</port><response-mode>failover</response-mode></secondary>"
    "<takeover>true</takeover><allowed-peer>127.0.0.0/8</allowed-peer>"
)
SPARE = (
    "<name>spare</name><enabled>false</enabled><serial-port>loop</serial-port>"
    "<mode>server</mode><listen><port>4001</port></listen>" + SPARE_STATE
)
TELEMETRY_DESTINATIONS = (
    "<destination><address>127.0.0.1</address><port>6000</port></destination>"
    "<destination><address>239.1.2.3</address><port>6000</port></destination>"
)


# -- helpers ------------------------------------------------------------------
def canon(xml: str | etree._Element) -> str:
    """Canonical XML, whitespace-only text dropped: equal trees give equal strings."""
    text = etree.tostring(xml, encoding="unicode") if isinstance(xml, etree._Element) else xml
    return str(etree.canonicalize(text, strip_text=True))


def expected(body: str = "") -> str:
    """The canonical ``<data>`` holding ``<serial-over-ip>body</serial-over-ip>``."""
    inner = f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>' if body else ""
    return canon(f'<data xmlns="{NC}">{inner}</data>')


def subtree(body: str, **attrs: str) -> etree._Element:
    """A ``<filter>`` as ncclient sends it: prefixed, unqualified ``type``."""
    attrs.setdefault("type", "subtree")
    text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return parse_xml(f'<nc:filter xmlns:nc="{NC}" {text}>{body}</nc:filter>')


def soip(body: str) -> str:
    """Filter content in the module namespace."""
    return f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>'


def xpath(select: str, *, qualified: bool = False) -> etree._Element:
    """An XPath ``<filter>`` with the ``soip`` prefix in scope."""
    if qualified:
        attrs = f'nc:type="xpath" nc:select="{select}"'
    else:
        attrs = f'type="xpath" select="{select}"'
    return parse_xml(f'<nc:filter xmlns:nc="{NC}" xmlns:soip="{NS}" {attrs}/>')


def run(filter_elem: etree._Element | None, data: etree._Element = DATA) -> str:
    """Apply the filter; check the input is unchanged; return the canonical output."""
    before = canon(data)
    result = apply_filter(data, filter_elem, SCHEMA)
    assert canon(data) == before
    assert result is not data
    assert result.tag == f"{{{NC}}}data"
    return canon(result)


def error_of(filter_elem: etree._Element) -> FilterError:
    with pytest.raises(FilterError) as caught:
        apply_filter(DATA, filter_elem, SCHEMA)
    return caught.value


# -- subtree: RFC 6241 §6.4 shapes ----------------------------------------------
def test_no_filter_returns_a_copy_of_everything() -> None:
    assert run(None) == canon(DATA)


def test_output_shares_no_nodes_with_the_input() -> None:
    data = copy.deepcopy(DATA)
    before = canon(data)
    for result in (
        apply_filter(data, None, SCHEMA),
        apply_filter(data, subtree(soip("<channel/>")), SCHEMA),
        apply_filter(data, xpath("//soip:channel"), SCHEMA),
    ):
        for elem in result.iter():
            elem.text = "changed"
    assert canon(data) == before


@pytest.mark.parametrize("body", ["", "\n   \n", "<!-- nothing -->"])
def test_empty_filter_selects_nothing(body: str) -> None:
    assert run(subtree(body)) == expected()


def test_selection_of_the_top_container_returns_everything() -> None:
    assert run(subtree(soip(""))) == canon(DATA)


def test_selection_of_a_list_returns_every_entry() -> None:
    # §6.4.3: <users><user/></users> gives the same as <users/>
    result = run(subtree(soip("<channel/>")))
    assert result.count("<channel>") == 5
    assert "<serial-port><name>" not in result


def test_one_list_entry_by_key_content_match() -> None:
    # §6.4.5: only a content match node: the whole entry, state included
    result = run(subtree(soip("<channel><name>spare</name></channel>")))
    assert result == expected(f"<channel>{SPARE}</channel>")


def test_two_entries_of_one_list_come_in_document_order() -> None:
    flt = soip(
        "<channel><name>spare</name></channel><channel><name>modbus-failover</name></channel>"
    )
    assert run(subtree(flt)) == expected(f"<channel>{MODBUS}</channel><channel>{SPARE}</channel>")


def test_specific_leaves_of_one_entry() -> None:
    # §6.4.6: content match + selection nodes: only those, in document order
    flt = soip("<channel><name>uplink-raw</name><keepalive/><mode/></channel>")
    assert run(subtree(flt)) == expected(
        "<channel><name>uplink-raw</name><mode>client</mode><keepalive>30</keepalive></channel>"
    )


def test_all_key_leaves_of_a_list() -> None:
    # §6.4.4
    names = ["scada-slotted", "modbus-failover", "uplink-raw", "telemetry-peer", "spare"]
    body = "".join(f"<channel><name>{n}</name></channel>" for n in names)
    assert run(subtree(soip("<channel><name/></channel>"))) == expected(body)


def test_content_match_on_a_non_key_leaf_selects_every_matching_entry() -> None:
    result = run(subtree(soip("<channel><mode>server</mode></channel>")))
    assert result == expected(
        f"<channel>{SCADA}</channel><channel>{MODBUS}</channel><channel>{SPARE}</channel>"
    )


def test_content_match_nodes_are_combined_with_and() -> None:
    flt = soip("<channel><mode>server</mode><enabled>false</enabled></channel>")
    assert run(subtree(flt)) == expected(f"<channel>{SPARE}</channel>")


def test_matching_content_match_nodes_are_output_with_the_selection() -> None:
    # §6.2.5: each matching content match node is included; the list key is
    # added; <enabled> exists only on "spare" (defaults are not rendered)
    flt = soip("<channel><mode>server</mode><enabled/></channel>")
    assert run(subtree(flt)) == expected(
        "<channel><name>scada-slotted</name><mode>server</mode></channel>"
        "<channel><name>modbus-failover</name><mode>server</mode></channel>"
        "<channel><name>spare</name><enabled>false</enabled><mode>server</mode></channel>"
    )


def test_content_match_that_matches_nothing_gives_empty_data() -> None:
    assert run(subtree(soip("<channel><name>nope</name></channel>"))) == expected()
    assert run(
        subtree(soip("<channel><mode>server</mode><takeover>false</takeover></channel>"))
    ) == (expected())


def test_multiple_subtrees_one_failing() -> None:
    # §6.4.7 adapted: the "uplink-raw" subtree's content match is false, so
    # none of that entry is output
    flt = soip(
        "<channel><name>scada-slotted</name><secondary/></channel>"
        "<channel><name>modbus-failover</name><secondary><port/></secondary></channel>"
        "<channel><name>uplink-raw</name><mode>server</mode>"
        "<secondary><response-mode/></secondary></channel>"
    )
    assert run(subtree(flt)) == expected(
        "<channel><name>scada-slotted</name><secondary><port>4002</port>"
        "<response-mode>slotted</response-mode><timeout>600</timeout></secondary></channel>"
        "<channel><name>modbus-failover</name><secondary><port>4004</port></secondary></channel>"
    )


def test_multiple_lists_under_the_top_container() -> None:
    flt = soip(
        "<serial-port><name>ttyS2</name><baud-rate/></serial-port>"
        "<channel><name>spare</name><serial-port/></channel>"
    )
    assert run(subtree(flt)) == expected(
        "<serial-port><name>ttyS2</name><baud-rate>19200</baud-rate></serial-port>"
        "<channel><name>spare</name><serial-port>loop</serial-port></channel>"
    )


def test_filters_for_the_same_entry_are_merged_without_duplicates() -> None:
    flt = soip(
        "<channel><name>spare</name><mode/></channel>"
        "<channel><name>spare</name><enabled/></channel>"
        "<channel><name>spare</name><mode/></channel>"
    )
    assert run(subtree(flt)) == expected(
        "<channel><name>spare</name><enabled>false</enabled><mode>server</mode></channel>"
    )


def test_a_selection_wins_over_a_containment_of_the_same_node() -> None:
    flt = soip("<serial-port/><serial-port><name>loop</name><device/></serial-port>")
    body = "".join(f"<serial-port>{p}</serial-port>" for p in PORTS.values())
    assert run(subtree(flt)) == expected(body)


def test_list_keys_are_added_to_containment_entries() -> None:
    # Entries where the selection finds nothing are left out (§6.3).
    assert run(subtree(soip("<serial-port><baud-rate/></serial-port>"))) == expected(
        "<serial-port><name>ttyS1</name><baud-rate>9600</baud-rate></serial-port>"
        "<serial-port><name>ttyS2</name><baud-rate>19200</baud-rate></serial-port>"
    )


def test_both_keys_of_a_two_key_list_are_added() -> None:
    flt = soip("<channel><name>telemetry-peer</name><destination><port/></destination></channel>")
    assert run(subtree(flt)) == expected(
        f"<channel><name>telemetry-peer</name>{TELEMETRY_DESTINATIONS}</channel>"
    )


def test_namespace_less_filter_matches_any_namespace() -> None:
    flt = "<serial-over-ip><channel><name>spare</name><mode/></channel></serial-over-ip>"
    assert run(subtree(flt)) == expected("<channel><name>spare</name><mode>server</mode></channel>")


def test_filter_content_inheriting_the_netconf_namespace_matches_any_namespace() -> None:
    # A client writing the whole rpc under xmlns="...netconf:base:1.0"
    flt = parse_xml(
        f'<filter xmlns="{NC}" type="subtree">'
        "<serial-over-ip><channel><name>spare</name><mode/></channel></serial-over-ip></filter>"
    )
    assert run(flt) == expected("<channel><name>spare</name><mode>server</mode></channel>")


def test_wrong_namespace_selects_nothing() -> None:
    assert run(subtree('<serial-over-ip xmlns="urn:example:other"/>')) == expected()
    inner = '<channel><name xmlns="urn:example:other">spare</name></channel>'
    assert run(subtree(soip(inner))) == expected()


def test_whitespace_only_text_is_a_selection_node() -> None:
    result = run(subtree(soip("<serial-port><name>  \n </name></serial-port>")))
    body = "".join(f"<serial-port><name>{n}</name></serial-port>" for n in PORTS)
    assert result == expected(body)


def test_content_match_ignores_surrounding_whitespace_and_compares_canonically() -> None:
    flt = soip("<channel><name>\n  spare\n</name></channel>")
    assert run(subtree(flt)) == expected(f"<channel>{SPARE}</channel>")
    # 04003 is the uint16 4003: the listen container holds only a content
    # match node, so all of <listen> is selected
    flt = soip("<channel><listen><port>04003</port></listen></channel>")
    assert run(subtree(flt)) == expected(
        "<channel><name>modbus-failover</name>"
        "<listen><address>127.0.0.1</address><port>4003</port></listen></channel>"
    )


def test_content_match_on_a_leaf_list_value() -> None:
    flt = soip("<channel><allowed-peer>127.0.0.0/8</allowed-peer><takeover/></channel>")
    assert run(subtree(flt)) == expected(
        "<channel><name>modbus-failover</name><takeover>true</takeover>"
        "<allowed-peer>127.0.0.0/8</allowed-peer></channel>"
    )


def test_content_match_never_matches_a_container() -> None:
    assert run(subtree(soip("<channel><listen>4001</listen></channel>"))) == expected()


def test_containment_node_on_a_leaf_selects_nothing() -> None:
    assert run(subtree(soip("<channel><mode><x/></mode></channel>"))) == expected()


def test_attribute_match_expression() -> None:
    # §6.2.2, with report-all-tagged data (RFC 6243): only defaulted leaves
    data = copy.deepcopy(DATA)
    entry = only(data, "//n:serial-port[n:name='ttyS3']")
    tagged = f'<baud-rate xmlns="{NS}" xmlns:wd="{WD_NS}" wd:default="true">115200</baud-rate>'
    entry.insert(2, etree.fromstring(tagged))
    flt = soip(f'<serial-port><baud-rate xmlns:wd="{WD_NS}" wd:default="true"/></serial-port>')
    assert run(subtree(flt), data) == expected(
        f"<serial-port><name>ttyS3</name>{tagged}</serial-port>"
    )


# -- subtree on state data ------------------------------------------------------
def test_state_container_of_one_entry() -> None:
    flt = soip("<channel><name>scada-slotted</name><state><counters/></state></channel>")
    assert run(subtree(flt)) == expected(
        "<channel><name>scada-slotted</name><state><counters>"
        "<serial-to-net-bytes>1200</serial-to-net-bytes><sessions-accepted>2</sessions-accepted>"
        "</counters></state></channel>"
    )


def test_content_match_inside_a_state_list() -> None:
    flt = soip(
        "<channel><state><session><status>waiting</status><remote-address/></session>"
        "</state></channel>"
    )
    assert run(subtree(flt)) == expected(
        "<channel><name>scada-slotted</name><state><session><id>2</id>"
        "<remote-address>10.0.0.6</remote-address><status>waiting</status>"
        "</session></state></channel>"
    )


def test_state_leaf_of_every_entry_that_has_it() -> None:
    flt = soip(
        "<serial-port><state><oper-status/></state></serial-port>"
        "<channel><state><oper-status/></state></channel>"
    )
    assert run(subtree(flt)) == expected(
        "<serial-port><name>ttyS1</name><state><oper-status>up</oper-status></state></serial-port>"
        "<channel><name>scada-slotted</name><state><oper-status>listening</oper-status></state>"
        "</channel>"
        "<channel><name>spare</name><state><oper-status>down</oper-status></state></channel>"
    )


# -- XPath ----------------------------------------------------------------------
def test_xpath_leaf_comes_with_its_ancestors_and_the_entry_key() -> None:
    result = run(xpath("/soip:serial-over-ip/soip:channel[soip:name='uplink-raw']/soip:mode"))
    assert result == expected("<channel><name>uplink-raw</name><mode>client</mode></channel>")


def test_a_repeated_select_is_scanned_once_and_a_long_one_is_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client polling with one XPath filter: its tokens are kept
    (filters.scan_select), so the next request scans nothing; one over
    CACHED_SELECT characters is scanned each time and not kept."""
    from pyang import xpath_lexer

    from nf.northbound import filters

    scanned: list[str] = []
    real = xpath_lexer.scan

    def counting(select: str) -> list[object]:
        scanned.append(select)
        return real(select)

    monkeypatch.setattr(xpath_lexer, "scan", counting)
    filters._scan_kept.cache_clear()
    select = "/soip:serial-over-ip/soip:channel[soip:name='uplink-raw']/soip:mode"
    first = run(xpath(select))
    assert scanned and len(scanned) == len(set(scanned))  # each string once
    scanned.clear()
    assert run(xpath(select)) == first and scanned == []
    padded = select + " " * filters.CACHED_SELECT
    assert run(xpath(padded)) == first
    kept = filters._scan_kept.cache_info().currsize
    scanned.clear()
    assert run(xpath(padded)) == first and padded in scanned
    assert filters._scan_kept.cache_info().currsize == kept


@pytest.mark.parametrize("qualified", [False, True])
def test_xpath_type_and_select_unqualified_or_qualified(qualified: bool) -> None:
    flt = xpath("/soip:serial-over-ip/soip:serial-port[soip:name='loop']", qualified=qualified)
    assert run(flt) == expected(f"<serial-port>{PORTS['loop']}</serial-port>")


def test_xpath_predicates_on_leaf_values() -> None:
    select = "/soip:serial-over-ip/soip:channel[soip:mode='server'][soip:enabled='false']"
    assert run(xpath(select)) == expected(f"<channel>{SPARE}</channel>")
    select = "//soip:destination[soip:port &gt; 5500]/soip:address"
    assert run(xpath(select)) == expected(
        "<channel><name>telemetry-peer</name>"
        "<destination><address>127.0.0.1</address><port>6000</port></destination>"
        "<destination><address>239.1.2.3</address><port>6000</port></destination></channel>"
    )


def test_xpath_union_is_merged_in_document_order_without_duplicates() -> None:
    select = (
        "/soip:serial-over-ip/soip:channel[soip:name='spare']/soip:mode"
        " | /soip:serial-over-ip/soip:serial-port[soip:name='loop']/soip:device"
        " | //soip:channel[soip:name='spare']/soip:mode"
    )
    assert run(xpath(select)) == expected(
        "<serial-port><name>loop</name><device>loop://</device></serial-port>"
        "<channel><name>spare</name><mode>server</mode></channel>"
    )


def test_xpath_node_inside_a_selected_node_adds_nothing() -> None:
    select = "//soip:channel[soip:name='spare'] | //soip:channel[soip:name='spare']/soip:listen"
    assert run(xpath(select)) == expected(f"<channel>{SPARE}</channel>")


@pytest.mark.parametrize(
    "select", ["count(//soip:channel)", "true()", "'spare'", "string(//soip:name)", "1 = 1"]
)
def test_xpath_non_node_result_gives_empty_data(select: str) -> None:
    assert run(xpath(select)) == expected()


def test_xpath_text_and_attribute_results_stand_for_their_element() -> None:
    select = "//soip:channel[soip:name='spare']/soip:mode/text()"
    assert run(xpath(select)) == expected(
        "<channel><name>spare</name><mode>server</mode></channel>"
    )
    data = copy.deepcopy(DATA)
    only(data, "//n:channel[n:name='spare']/n:mode").set("x", "1")
    assert run(xpath("//*[@x]/@x"), data) == expected(
        '<channel><name>spare</name><mode x="1">server</mode></channel>'
    )


def test_xpath_root_selects_everything() -> None:
    assert run(xpath("/")) == canon(DATA)
    assert run(xpath("/soip:serial-over-ip")) == canon(DATA)


def test_xpath_relative_path_starts_at_the_root() -> None:
    flt = xpath("soip:serial-over-ip/soip:serial-port[soip:name='usb0']/soip:flow-control")
    assert run(flt) == expected(
        "<serial-port><name>usb0</name><flow-control>rts-cts</flow-control></serial-port>"
    )


def test_xpath_on_state_data() -> None:
    select = "//soip:session[soip:status='waiting']/soip:remote-address"
    assert run(xpath(select)) == expected(
        "<channel><name>scada-slotted</name><state><session><id>2</id>"
        "<remote-address>10.0.0.6</remote-address></session></state></channel>"
    )


def test_xpath_unprefixed_names_match_any_namespace() -> None:
    select = "/serial-over-ip/channel[name='spare']/mode"
    assert run(xpath(select)) == expected(
        "<channel><name>spare</name><mode>server</mode></channel>"
    )


def test_xpath_unprefixed_names_are_in_the_filter_default_namespace() -> None:
    # RFC 6241 §8.9.1: "including the default namespace"
    select = "/serial-over-ip/serial-port[name='loop']/device"
    flt = parse_xml(f'<filter xmlns="{NS}" type="xpath" select="{select}"/>')
    assert run(flt) == expected(
        "<serial-port><name>loop</name><device>loop://</device></serial-port>"
    )
    flt = parse_xml(f'<filter xmlns="urn:example:other" type="xpath" select="{select}"/>')
    assert run(flt) == expected()
    # the NETCONF base namespace, inherited from <rpc>, holds no data: any namespace
    flt = parse_xml(f'<filter xmlns="{NC}" type="xpath" select="{select}"/>')
    assert run(flt) == expected(
        "<serial-port><name>loop</name><device>loop://</device></serial-port>"
    )


def test_xpath_prefixes_come_from_the_filter_element() -> None:
    flt = parse_xml(
        f'<rpc xmlns="{NC}" xmlns:x="{NS}"><get><filter type="xpath"'
        " select=\"/x:serial-over-ip/x:serial-port[x:name='ttyS3']\"/></get></rpc>"
    )[0][0]
    assert run(flt) == expected(f"<serial-port>{PORTS['ttyS3']}</serial-port>")


def test_xpath_without_select_is_missing_attribute() -> None:
    err = error_of(subtree("", type="xpath")).error
    assert (err.tag, err.type) == ("missing-attribute", "protocol")
    assert err.info == (("bad-attribute", "select"), ("bad-element", "filter"))


@pytest.mark.parametrize(
    "select",
    [
        "/soip:serial-over-ip[",
        "/nope:serial-over-ip",
        "//soip:channel[nosuch()]",
        "$v",
        "",
        "/a/",
        "/a#b",
    ],
)
def test_invalid_xpath_is_invalid_value(select: str) -> None:
    err = error_of(xpath(select)).error
    assert (err.tag, err.type) == ("invalid-value", "protocol")


def test_unknown_filter_type_is_bad_attribute() -> None:
    err = error_of(subtree("", type="regex")).error
    assert (err.tag, err.type) == ("bad-attribute", "protocol")
    assert err.info == (("bad-attribute", "type"), ("bad-element", "filter"))
    assert error_of(subtree("", type="regex")).errors == [err]
