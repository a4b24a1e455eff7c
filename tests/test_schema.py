"""The schema index and the YANG XPath layer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from nf.schema import SchemaError, SchemaIndex, default_schema, load
from nf.schema.xpath import XPathExpr, XPathSyntaxError, _string_value, rewrite

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"


@pytest.fixture(scope="module")
def schema() -> SchemaIndex:
    return default_schema()


def test_index_reflects_the_module(schema: SchemaIndex) -> None:
    top = schema.root.child(SOIP, "serial-over-ip")
    assert top is not None and top.keyword == "container" and top.config
    channel = top.child(SOIP, "channel")
    assert channel is not None and channel.keys == ((SOIP, "name"),)
    assert channel.uniques == ((((SOIP, "serial-port"),),),)
    baud = top.children[(SOIP, "serial-port")].children[(SOIP, "baud-rate")]
    assert baud.defaults == ("115200",) and baud.units == "bits/second"
    state = channel.child(SOIP, "state")
    assert state is not None and not state.config
    timeout = channel.children[(SOIP, "secondary")].children[(SOIP, "timeout")]
    assert timeout.when is not None and timeout.defaults == ("600",)
    assert (SOIP, "clear-counters") in schema.rpcs
    assert {(SOIP, "session-event"), (SOIP, "port-event")} <= set(schema.notifications)
    info = schema.modules["nf-serial-over-ip"]
    assert info.revision == "2026-11-23" and info.prefix == "soip" and info.implemented


def test_module_description_carries_the_relay_behaviour(schema: SchemaIndex) -> None:
    """SPEC §3 lives in the descriptions of mode, response-mode and packing."""
    channel = schema.root.children[(SOIP, "serial-over-ip")].children[(SOIP, "channel")]
    assert "frame-delay" in channel.children[(SOIP, "packing")].description
    assert "dropped-bytes" in channel.children[(SOIP, "mode")].description
    module = schema.context.get_module("nf-serial-over-ip")
    mode_type = module.search_one("container").search_one("list", "channel")
    mode_type = mode_type.search_one("leaf", "mode").search_one("type")
    enums = {e.arg: e.search_one("description").arg for e in mode_type.search("enum")}
    assert "refused" in enums["server"] and "takeover" in enums["server"]
    assert "reconnect" in enums["client"] and "dropped" in enums["client"]
    assert "multicast" in enums["peer"] and "datagram" in enums["peer"]
    secondary = module.search_one("container").search_one("list", "channel")
    response = secondary.search_one("container", "secondary").search_one("leaf", "response-mode")
    modes = {
        e.arg: e.search_one("description").arg for e in response.search_one("type").search("enum")
    }
    assert "queued" in modes["slotted"] and "64 KiB" in modes["slotted"]
    assert "ignored" in modes["failover"] and "once data is received" in modes["failover"]
    assert "both sessions" in modes["raw"]


def test_broken_module_raises_schema_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yang"
    bad.write_text(
        'module bad { yang-version 1.1; namespace "urn:bad"; prefix b; leaf x { type nosuch; } }'
    )
    with pytest.raises(SchemaError, match="nosuch"):
        load([bad])


def test_rewrite_prefixes_current_and_absolute_paths() -> None:
    assert rewrite("../a/b = current()/c", "p") == "../p:a/p:b = $current/p:c"
    assert rewrite("/x:a/b", "p") == "/*/x:a/p:b"
    assert rewrite("count(/a) > 1 and not(//b)", "p") == "count(/*/p:a) > 1 and not(//p:b)"
    assert rewrite("a = 'x/y'", "p") == "p:a = 'x/y'"
    with pytest.raises(XPathSyntaxError, match="deref"):
        rewrite("deref(.)", "p")
    with pytest.raises(XPathSyntaxError):
        rewrite("/a#b", "p")


def test_re_match_function() -> None:
    doc = etree.fromstring('<d><a xmlns="urn:t">eth0</a></d>')
    expr = XPathExpr("re-match(a, 'eth[0-9]+')", "t", {"t": "urn:t"})
    assert expr.boolean(doc, doc)
    expr = XPathExpr("re-match(a, 'wlan.*')", "t", {"t": "urn:t"})
    assert not expr.boolean(doc, doc)


def _siblings(ports: list[tuple[str, str]]) -> etree._Element:
    holder = etree.Element("data")
    for name, port in ports:
        e = etree.SubElement(holder, "{urn:t}e")
        etree.SubElement(e, "{urn:t}name").text = name
        etree.SubElement(e, "{urn:t}port").text = port
    return holder


def test_sibling_scan_is_planned_and_equals_plain_xpath() -> None:
    source = "not(../e[port = current()/port][name != current()/name])"
    expr = XPathExpr(source, "t", {"t": "urn:t"})
    assert "$nfscan0" in expr._main and len(expr._scans) == 1
    holder = _siblings([("a", "1"), ("b", "2"), ("c", "1"), ("d", "3")])
    plain = etree.XPath(expr.text, namespaces={"t": "urn:t"})
    cache: dict = {}
    for e in holder:
        assert expr.boolean(e, e, cache) == bool(plain(e, current=e))
    assert [expr.boolean(e, e, cache) for e in holder] == [False, True, False, True]


def test_scan_inside_a_predicate_is_not_planned() -> None:
    expr = XPathExpr("count(x[../e[port = current()/port]]) = 0", "t", {"t": "urn:t"})
    assert expr._scans == ()


def test_leafref_values_cached_per_anchor() -> None:
    holder = _siblings([("a", "1"), ("b", "2")])
    expr = XPathExpr("../../e/name", "t", {"t": "urn:t"})
    cache: dict = {}
    leaf = holder[0][0]
    assert expr.string_values(leaf, leaf, cache) == {"a", "b"}
    assert any(key[1] == "values" for key in cache)


TEXTS = st.one_of(st.none(), st.sampled_from(["", "1", " 2 ", "x y"]))


@st.composite
def _elements(draw: st.DrawFn, depth: int = 2) -> etree._Element:
    """A random element: text, children with text and tails, and comments."""
    elem = etree.Element(draw(st.sampled_from(["{urn:t}a", "{urn:t}b", "c"])))
    elem.text = draw(TEXTS)
    for kind in draw(st.lists(st.sampled_from(["element", "comment"]), max_size=3 if depth else 0)):
        child = draw(_elements(depth - 1)) if kind == "element" else etree.Comment("note")
        child.tail = draw(TEXTS)
        elem.append(child)
    return elem


@settings(max_examples=300, deadline=None)
@given(_elements())
def test_string_value_of_an_element_is_all_its_descendant_text(elem: etree._Element) -> None:
    """The leaf shortcut of _string_value gives what the general join does."""
    assert _string_value(elem) == "".join(str(t) for t in elem.itertext())


@st.composite
def _channels(draw: st.DrawFn) -> etree._Element:
    """Sibling entries as the module's port-conflict musts read them."""
    holder = etree.Element("data")
    for i in range(draw(st.integers(0, 6))):
        entry = etree.SubElement(holder, "{urn:t}e")
        etree.SubElement(entry, "{urn:t}name").text = f"n{i}"
        etree.SubElement(entry, "{urn:t}enabled").text = draw(st.sampled_from(["true", "false"]))
        etree.SubElement(entry, "{urn:t}mode").text = draw(st.sampled_from(["server", "peer"]))
        if draw(st.booleans()):
            etree.SubElement(entry, "{urn:t}port").text = draw(st.sampled_from(["1", "2"]))
        if draw(st.booleans()):
            secondary = etree.SubElement(entry, "{urn:t}secondary")
            etree.SubElement(secondary, "{urn:t}port").text = draw(st.sampled_from(["1", "2"]))
    return holder


_CONFLICTS = [
    "enabled = 'false' or mode != 'server' or "
    "not(../e[port = current()/port][name != current()/name][mode = 'server'])",
    "enabled = 'false' or not(secondary) or "
    "not(../e[port = current()/secondary/port][name != current()/name])",
    "not(secondary) or enabled = 'false' and mode = 'peer' or "
    "count(../e[secondary/port = current()/secondary/port]) = 1 or mode = 'peer'",
    "(enabled = 'false' or mode = 'peer') and "
    "not(../e[port = current()/port][name != current()/name])",
]


@settings(max_examples=200, deadline=None)
@given(_channels(), st.sampled_from(_CONFLICTS))
def test_scans_and_or_shortcut_equal_plain_xpath(holder: etree._Element, source: str) -> None:
    """An or whose first operands hold is true without its scans being
    made; with them, a scan is answered from an index: either way, what
    the plain expression gives."""
    expr = XPathExpr(source, "t", {"t": "urn:t"})
    assert expr._scans
    plain = etree.XPath(expr.text, namespaces={"t": "urn:t"})
    cache: dict = {}
    for e in holder:
        assert expr.boolean(e, e, cache) == bool(plain(e, current=e))


def test_or_shortcut_is_planned_only_before_the_first_scan() -> None:
    expr = XPathExpr(_CONFLICTS[0], "t", {"t": "urn:t"})
    assert expr._prefix is not None and "nfscan" not in expr._prefix
    assert "t:mode != 'server'" in expr._prefix
    assert XPathExpr(_CONFLICTS[3], "t", {"t": "urn:t"})._prefix is None  # an and, not an or
