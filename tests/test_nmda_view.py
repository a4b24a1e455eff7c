"""What <get-data> does to a rendered datastore (nf.northbound.nmda), pure:
origins, config and origin filters, max-depth, and what they cost."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from test_codec_documents import channels_config

from nf.config.codec import parse
from nf.config.tree import Node, merge
from nf.config.validate import complete
from nf.northbound import filters, nmda
from nf.northbound.filters import apply_filter
from nf.northbound.nmda import ORIGIN, OriginFilter, View
from nf.schema import default_schema

SCHEMA = default_schema()
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NS = {"s": SOIP, "a": NACM}


def config(channels: int, extra: str = "") -> Node:
    tree, errors = parse(
        etree.fromstring(f'<config xmlns="{NC}">{channels_config(channels)}{extra}</config>'),
        SCHEMA,
    )
    assert errors == []
    return tree


def shape(configured: Node, view: View, flt: etree._Element | None = None) -> etree._Element:
    return view.shape(SCHEMA, complete(configured, SCHEMA), configured, flt, None)


def test_origins_follow_what_running_holds() -> None:
    users = f'<nacm xmlns="{NACM}"><groups><group><name>g</name><user-name>u</user-name>'
    users += "</group></groups></nacm>"
    configured = config(2, users)
    data = shape(configured, View(True, with_origin=True))
    top = data.find("s:serial-over-ip", NS)
    assert top is not None and top.get(ORIGIN) == "or:intended"
    listen = data.find("s:serial-over-ip/s:channel/s:listen", NS)
    assert listen is not None and listen.get(ORIGIN) is None  # inherited
    address = listen.find("s:address", NS)
    assert address is not None and address.get(ORIGIN) == "or:default"
    user = data.find("a:nacm/a:groups/a:group/a:user-name", NS)
    assert user is not None and user.get(ORIGIN) is None  # a leaf-list value set: intended
    enable = data.find("a:nacm/a:enable-nacm", NS)
    assert enable is not None and enable.get(ORIGIN) == "or:default"


def test_line_settings_an_rfc2217_session_set_are_in_operational_as_system() -> None:
    """While an RFC 2217 client has set p0's line, operational shows the
    settings in effect, those that differ from running's as or:system;
    p1, whose line nobody set, shows running's."""
    configured = config(2)
    effective = (
        "<baud-rate>{}</baud-rate><data-bits>8</data-bits><parity>{}</parity>"
        "<stop-bits>1</stop-bits><flow-control>none</flow-control>"
    )
    state, errors = parse(
        etree.fromstring(
            f'<data xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">'
            "<serial-port><name>p0</name><state><effective>"
            + effective.format(9600, "even")
            + "<set-by-session>3</set-by-session></effective></state></serial-port>"
            "<serial-port><name>p1</name><state><effective>"
            + effective.format(115200, "none")
            + "</effective></state></serial-port></serial-over-ip></data>"
        ),
        SCHEMA,
        allow_state=True,
    )
    assert errors == []
    operational = merge(complete(configured, SCHEMA), state)
    for with_origin in (True, False):
        view = View(True, with_origin=with_origin)
        data = view.shape(SCHEMA, operational, configured, None, None)
        p0, p1 = data.findall("s:serial-over-ip/s:serial-port", NS)
        assert p0.findtext("s:baud-rate", namespaces=NS) == "9600"
        assert p0.findtext("s:parity", namespaces=NS) == "even"
        assert p1.findtext("s:baud-rate", namespaces=NS) == "115200"
        origins = {etree.QName(leaf).localname: leaf.get(ORIGIN) for leaf in p0}
        expected = "or:system" if with_origin else None
        assert origins["baud-rate"] == origins["parity"] == expected
        assert origins["stop-bits"] != "or:system" and origins["data-bits"] != "or:system"
        assert all(leaf.get(ORIGIN) != "or:system" for leaf in p1.iter())
    system = View(True, origins=OriginFilter(frozenset({"system"}), False))
    only = system.shape(SCHEMA, operational, configured, None, None)
    p0, p1 = only.findall("s:serial-over-ip/s:serial-port", NS)  # state has no origin: kept
    assert [etree.QName(c).localname for c in p0] == ["name", "baud-rate", "parity", "state"]
    assert [etree.QName(c).localname for c in p1] == ["name", "state"]


def test_an_origin_filter_keeps_containment_and_keys() -> None:
    data = shape(config(1), View(True, origins=OriginFilter(frozenset({"default"}), False)))
    channel = data.find("s:serial-over-ip/s:channel", NS)
    assert channel is not None
    names = [etree.QName(c).localname for c in channel]
    assert names[0] == "name" and "mode" not in names and "enabled" in names
    listen = channel.find("s:listen", NS)
    assert listen is not None and [etree.QName(c).localname for c in listen] == ["address"]
    assert not [e for e in data.iter() if ORIGIN in e.attrib]
    everything = shape(config(1), View(True, origins=OriginFilter(frozenset({"origin"}), False)))
    assert len(list(everything.iter())) == len(list(shape(config(1), View(True)).iter()))


def test_max_depth_without_a_filter_counts_from_the_top() -> None:
    data = shape(config(2), View(False, max_depth=2))
    top = data.find("s:serial-over-ip", NS)
    assert top is not None
    for entry in top:  # each entry at depth 2, with its key only
        assert [etree.QName(c).localname for c in entry] == ["name"]
    three = shape(config(2), View(False, max_depth=3))
    listen = three.find("s:serial-over-ip/s:channel/s:listen", NS)
    assert listen is not None and len(listen) == 0


def test_max_depth_of_a_selected_leaf_keeps_its_value() -> None:
    data = etree.fromstring(
        f'<data xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><channel><name>c</name>'
        "<mode>server</mode></channel></serial-over-ip></data>"
    )
    flt = etree.fromstring(
        f'<filter xmlns="{NC}" type="subtree"><serial-over-ip xmlns="{SOIP}"><channel><mode/>'
        "</channel></serial-over-ip></filter>"
    )
    out = apply_filter(data, flt, SCHEMA, max_depth=1)
    assert out.findtext("s:serial-over-ip/s:channel/s:mode", namespaces=NS) == "server"


@pytest.mark.parametrize(
    "view",
    [
        View(True, with_origin=True, max_depth=3),
        View(True, origins=OriginFilter(frozenset({"default"}), True), config_filter=True),
        View(True, config_filter=False),
        View(False, mode="report-all-tagged", max_depth=4),
    ],
)
def test_the_cost_grows_with_the_data_only(monkeypatch: pytest.MonkeyPatch, view: View) -> None:
    """Every step walks each element a fixed number of times: count the
    child listings (what every walk does per element) for n and 4n
    channels instead of timing them."""
    calls = {"n": 0}
    original = filters.element_children

    def counting(elem: Any) -> list[etree._Element]:
        calls["n"] += 1
        return original(elem)

    monkeypatch.setattr(nmda, "element_children", counting)
    monkeypatch.setattr(filters, "element_children", counting)
    counts = []
    for n in (250, 1000):
        calls["n"] = 0
        shape(config(n), view)
        counts.append(calls["n"])
    assert counts[1] <= 4.2 * counts[0] + 50, counts
