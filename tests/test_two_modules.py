"""Two top-level config containers (/serial-over-ip and /nacm) through the
whole core: parse/render, edit, validate, diff, startup save/load,
with-defaults, and over NETCONF copy-config and get-config."""

from __future__ import annotations

from pathlib import Path

from conftest import Running
from lxml import etree

from nf.app import load_initial
from nf.config.codec import parse, render
from nf.config.diff import diff
from nf.config.edit import edit_partial
from nf.config.tree import Node
from nf.config.validate import complete, validate
from nf.northbound.startup import StartupFile
from nf.schema import default_schema

SCHEMA = default_schema()
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NS = {"nc": NC, "s": SOIP, "n": NACM}

PORT = f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>p1</name><device>loop://</device></serial-port></serial-over-ip>'
RULES = (
    f'<nacm xmlns="{NACM}">'
    "<groups><group><name>ops</name><user-name>oper</user-name></group></groups>"
    "<rule-list><name>ops</name><group>ops</group><rule><name>w</name>"
    f"<path xmlns:x=\"{SOIP}\">/x:serial-over-ip/x:channel[x:name='a:b']</path>"
    "<access-operations>create update</access-operations><action>permit</action></rule>"
    "</rule-list></nacm>"
)


def config(*bodies: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}">{"".join(bodies)}</config>')


def test_parse_render_round_trip_keeps_the_meaning_of_path_prefixes() -> None:
    tree, errors = parse(config(PORT, RULES), SCHEMA)
    assert errors == []
    data = render(tree, SCHEMA)
    path = data.find(".//n:path", NS)
    assert path is not None
    # the sender's prefix "x" became the module's own prefix, declared on the leaf
    assert path.text == "/soip:serial-over-ip/soip:channel[soip:name='a:b']"
    assert path.nsmap["soip"] == SOIP
    again, errors = parse(data, SCHEMA)
    assert errors == [] and again == tree


def test_edit_validate_diff_across_both_containers() -> None:
    tree, errors = edit_partial(Node(), config(PORT, RULES), "merge", SCHEMA)
    assert errors == [] and validate(tree, SCHEMA) == []
    assert {c.path for c in diff(Node(), tree, SCHEMA)} == {
        "/soip:serial-over-ip/soip:serial-port[soip:name='p1']",
        "/nacm:nacm",
        "/nacm:nacm/nacm:rule-list[nacm:name='ops']",
    }
    # deleting one container leaves the other alone (shared, not copied)
    delete = f'<nacm xmlns="{NACM}" xmlns:nc="{NC}" nc:operation="delete"/>'
    without, errors = edit_partial(tree, config(delete), "merge", SCHEMA)
    assert errors == []
    assert without.get((NACM, "nacm")) is None
    assert without.get((SOIP, "serial-over-ip")) is tree.get((SOIP, "serial-over-ip"))
    assert [(c.op, c.path) for c in diff(tree, without, SCHEMA)] == [
        ("delete", "/nacm:nacm/nacm:rule-list[nacm:name='ops']"),
        ("delete", "/nacm:nacm"),
    ]
    # an error in /nacm is reported with its path
    bad, _ = edit_partial(
        tree, config(RULES.replace("create update", "create fly")), "merge", SCHEMA
    )
    (error,) = validate(bad, SCHEMA)
    assert error.tag == "invalid-value"
    assert error.path is not None and error.path.endswith("/nacm:access-operations")


def test_startup_save_and_load_keep_both(tmp_path: Path) -> None:
    tree, errors = parse(config(PORT, RULES), SCHEMA)
    assert errors == []
    startup = StartupFile(tmp_path / "startup.xml", SCHEMA)
    startup.save(tree)
    assert load_initial(startup.path, SCHEMA) == tree


def test_with_defaults_completes_nacm_too() -> None:
    tree, _ = parse(config(PORT), SCHEMA)
    full = complete(tree, SCHEMA)
    nacm = full.get((NACM, "nacm"))
    assert isinstance(nacm, Node)
    assert {q[1]: v for q, v in nacm.items()} == {
        "enable-nacm": "true",
        "read-default": "permit",
        "write-default": "deny",
        "exec-default": "permit",
        "enable-external-groups": "true",
    }


def test_netconf_copy_config_and_with_defaults_carry_nacm(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(target="running", config=etree.tostring(config(RULES)).decode())
        m.copy_config(source="running", target="startup")
        m.copy_config(source="running", target="candidate")
        for source in ("running", "candidate", "startup"):
            data = m.get_config(source).data_ele
            assert data.find("s:serial-over-ip/s:channel", NS) is not None, source
            assert data.findtext(".//n:rule/n:name", namespaces=NS) == "w", source
        full = m.get_config("running", with_defaults="report-all").data_ele
        assert full.findtext("n:nacm/n:write-default", namespaces=NS) == "deny"
        explicit = m.get_config("running").data_ele
        assert explicit.find("n:nacm/n:write-default", NS) is None
        state = m.get().data_ele
        assert state.findtext("n:nacm/n:denied-operations", namespaces=NS) == "0"


def test_ietf_netconf_acm_is_advertised_and_served(daemon: Running) -> None:
    with daemon.connect() as m:
        assert any("ietf-netconf-acm" in c for c in m.server_capabilities)
        text = m.get_schema("ietf-netconf-acm").data
        assert 'revision "2018-02-14"' in text and "nacm:default-deny-all;" in text
        library = m.get(
            ("subtree", '<modules-state xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>')
        )
        assert b"ietf-netconf-acm" in etree.tostring(library.data_ele)
