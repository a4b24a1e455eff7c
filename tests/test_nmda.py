"""NMDA (RFC 8526, RFC 8342) end to end: <get-data> and <edit-data> sent by
ncclient over real SSH to the daemon in this process, every successful
reply checked by yanglint (the envelope as an rpc-reply to the request, the
data it carries as what the datastore holds)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PASSWORD, Running, add_user
from lxml import etree
from ncclient.manager import Manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele
from test_nacm_e2e import OPER, OPS_GROUP, rule, rule_list, set_nacm

from nf.northbound.auth import Users

ROOT = Path(__file__).resolve().parent.parent
YANG = ROOT / "yang"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
OR = "urn:ietf:params:xml:ns:yang:ietf-origin"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
YL = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NS = {"nc": NC, "n": NMDA, "s": SOIP, "a": NACM, "yl": YL}
ORIGIN = f"{{{OR}}}origin"
WD_DEFAULT = "{urn:ietf:params:xml:ns:netconf:default:1.0}default"
MODULES = (
    "nf-serial-over-ip",
    "ietf-netconf-nmda",
    "ietf-origin",
    "ietf-datastores",
    "ietf-netconf-acm",
    "ietf-netconf-monitoring",
    "ietf-yang-library",
    "nc-notifications",
    "notifications",
    "ietf-netconf-notifications",
)
"""What the daemon implements: the schema yanglint checks replies with."""
YANGLINT = shutil.which("yanglint")


def get_data(datastore: str, *params: str) -> str:
    return (
        f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}" xmlns:or="{OR}">'
        f"<datastore>ds:{datastore}</datastore>{''.join(params)}</get-data>"
    )


def edit_data(datastore: str, config: str, *params: str) -> str:
    return (
        f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:{datastore}</datastore>'
        f"{''.join(params)}<config>{config}</config></edit-data>"
    )


def subtree(body: str) -> str:
    return f"<subtree-filter>{body}</subtree-filter>"


CHANNELS = f'<serial-over-ip xmlns="{SOIP}"><channel/></serial-over-ip>'


def yanglint(tmp: Path, content_type: str, *files: str, rpc: Path | None = None) -> None:
    """yanglint with the daemon's modules; fails the test on any error."""
    assert YANGLINT, "yanglint (libyang2-tools) is required"
    args = [YANGLINT, "-p", str(YANG), "-t", content_type]
    if rpc is not None:
        args += ["-R", str(rpc)]
    args += [str(YANG / f"{m}.yang") for m in MODULES]
    result = subprocess.run(
        [*args, *files], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout


def checked(m: Manager, request: str, tmp: Path, content_type: str) -> etree._Element:
    """Send ``request``; validate the reply with yanglint (``content_type``
    for its data: get for operational, getconfig for the others); return
    the reply's <data>."""
    reply = m.dispatch(to_ele(request))
    raw = reply.xml.encode() if isinstance(reply.xml, str) else reply.xml
    root = etree.fromstring(raw)
    message_id = root.get("message-id", "1")
    rpc = tmp / "rpc.xml"
    rpc.write_text(f'<rpc xmlns="{NC}" message-id="{message_id}">{request}</rpc>')
    whole = tmp / "reply.xml"
    whole.write_bytes(raw)
    yanglint(tmp, "nc-reply", str(whole), rpc=rpc)
    data = root.find("n:data", NS)
    assert data is not None, reply.xml
    if len(data):  # yanglint does not look inside anydata: the data on its own
        copied = copy.deepcopy(data)
        for elem in copied.iter():
            # RFC 6243's XML attribute is no YANG annotation: libyang 2.1
            # knows it in NETCONF envelopes only
            elem.attrib.pop(WD_DEFAULT, None)
        content = tmp / "data.xml"
        content.write_bytes(b"".join(etree.tostring(child) for child in copied))
        yanglint(tmp, content_type, str(content))
    return data


def error(m: Manager, request: str) -> RPCError:
    with pytest.raises(RPCError) as exc:
        m.dispatch(to_ele(request))
    return exc.value


def info(err: RPCError) -> dict[str, str]:
    found = err.info if isinstance(err.info, str) else ""
    ele = etree.fromstring(found.encode()) if found.startswith("<") else None
    if ele is None:
        return {}
    return {etree.QName(c).localname: c.text or "" for c in ele}


@pytest.fixture
def m(daemon: Running) -> Iterator[Manager]:
    with daemon.connect() as session:
        yield session


def canonical(elems: list[etree._Element]) -> list[bytes]:
    """Exclusive of where the elements sat (lxml's c14n of a subtree below
    another default namespace writes xmlns="" on its leaves)."""
    return [etree.tostring(etree.fromstring(etree.tostring(e)), method="c14n") for e in elems]


# -- reading --------------------------------------------------------------------


def test_conventional_datastores_read_as_get_config_does(m: Manager, tmp_path: Path) -> None:
    m.edit_config(
        target="candidate",
        config=f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
        "<description>in the candidate</description></channel></serial-over-ip></config>",
    )
    m.copy_config(source="running", target="startup")
    for name in ("running", "candidate", "startup", "intended"):
        data = checked(m, get_data(name), tmp_path, "getconfig")
        source = "running" if name == "intended" else name
        expected = m.get_config(source).data_ele
        assert canonical(list(data)) == canonical(list(expected)), name
    described = data.findtext("s:serial-over-ip/s:channel/s:description", namespaces=NS)
    assert described != "in the candidate"


def test_operational_holds_config_with_defaults_in_use_and_state(
    m: Manager, tmp_path: Path
) -> None:
    data = checked(m, get_data("operational"), tmp_path, "get")
    port = data.find("s:serial-over-ip/s:serial-port", NS)
    assert port is not None
    assert port.findtext("s:baud-rate", namespaces=NS) == "115200"  # a default in use
    assert port.find("s:state/s:oper-status", NS) is not None  # state
    assert data.find("a:nacm", NS) is not None  # other modules' state too
    assert data.find("yl:yang-library", NS) is not None
    assert not [e for e in data.iter() if ORIGIN in e.attrib]  # only with with-origin


def test_with_origin_marks_intended_and_default_nodes(m: Manager, tmp_path: Path) -> None:
    m.edit_config(
        target="running",
        config=f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><serial-port>'
        "<name>demo</name><baud-rate>9600</baud-rate></serial-port></serial-over-ip></config>",
    )
    data = checked(m, get_data("operational", "<with-origin/>"), tmp_path, "get")
    top = data.find("s:serial-over-ip", NS)
    assert top is not None and top.get(ORIGIN) == "or:intended"
    port = top.find("s:serial-port", NS)
    assert port is not None
    assert port.get(ORIGIN) is None  # inherited: intended
    rate = port.find("s:baud-rate", NS)
    bits = port.find("s:data-bits", NS)
    assert rate is not None and rate.get(ORIGIN) is None and rate.text == "9600"
    assert bits is not None and bits.get(ORIGIN) == "or:default"
    state = port.find("s:state", NS)
    assert state is not None and not [e for e in state.iter() if ORIGIN in e.attrib]
    assert all(
        e.get(ORIGIN) in (None, "or:intended", "or:default") for e in data.iter()
    )  # never or:system: the daemon chooses no configuration values yet


def test_origin_filters(m: Manager, tmp_path: Path) -> None:
    flt = subtree(f'<serial-over-ip xmlns="{SOIP}"><serial-port/></serial-over-ip>')
    wanted = "<origin-filter>or:default</origin-filter>"
    data = checked(m, get_data("operational", flt, wanted, "<with-origin/>"), tmp_path, "get")
    port = data.find("s:serial-over-ip/s:serial-port", NS)
    assert port is not None
    names = {etree.QName(c).localname for c in port}
    assert "baud-rate" in names and "name" in names  # defaults, and the key
    assert "device" not in names  # intended
    assert "state" in names  # state nodes are not filtered
    negated = "<negated-origin-filter>or:default</negated-origin-filter>"
    data = checked(m, get_data("operational", flt, negated), tmp_path, "get")
    port = data.find("s:serial-over-ip/s:serial-port", NS)
    assert port is not None
    names = {etree.QName(c).localname for c in port}
    assert "device" in names and "baud-rate" not in names
    assert not [e for e in data.iter() if ORIGIN in e.attrib]  # asked for no with-origin
    both = "<origin-filter>or:intended</origin-filter><origin-filter>or:default</origin-filter>"
    data = checked(m, get_data("operational", flt, both), tmp_path, "get")
    port = data.find("s:serial-over-ip/s:serial-port", NS)
    assert port is not None and port.find("s:device", NS) is not None
    assert port.find("s:baud-rate", NS) is not None


def test_subtree_and_xpath_filters(m: Manager, tmp_path: Path) -> None:
    data = checked(m, get_data("operational", subtree(CHANNELS)), tmp_path, "get")
    assert [etree.QName(c).localname for c in data] == ["serial-over-ip"]
    top = data[0]
    assert [etree.QName(c).localname for c in top] == ["channel"]
    assert top.find("s:channel/s:state/s:oper-status", NS) is not None
    xpath = (
        f'<xpath-filter xmlns:s="{SOIP}">'
        "/s:serial-over-ip/s:channel[s:name='demo']/s:mode</xpath-filter>"
    )
    data = checked(m, get_data("running", xpath), tmp_path, "getconfig")
    channel = data.find("s:serial-over-ip/s:channel", NS)
    assert channel is not None
    assert [etree.QName(c).localname for c in channel] == ["name", "mode"]
    # unqualified filter nodes under a default xmlns of get-data match by name
    unqualified = "<subtree-filter><serial-over-ip><serial-port/></serial-over-ip></subtree-filter>"
    data = checked(m, get_data("running", unqualified), tmp_path, "getconfig")
    assert data.find("s:serial-over-ip/s:serial-port/s:device", NS) is not None


def test_config_filter(m: Manager, tmp_path: Path) -> None:
    data = checked(
        m, get_data("operational", "<config-filter>true</config-filter>"), tmp_path, "get"
    )
    assert data.find(".//s:state", NS) is None
    assert data.find("s:serial-over-ip/s:serial-port/s:baud-rate", NS) is not None
    assert data.find("yl:yang-library", NS) is None  # state only
    data = checked(
        m,
        get_data("operational", subtree(CHANNELS), "<config-filter>false</config-filter>"),
        tmp_path,
        "get",
    )
    channel = data.find("s:serial-over-ip/s:channel", NS)
    assert channel is not None
    # containment and the key only, then the state
    assert [etree.QName(c).localname for c in channel] == ["name", "state"]
    data = checked(
        m, get_data("running", "<config-filter>false</config-filter>"), tmp_path, "getconfig"
    )
    assert len(data) == 0


def test_max_depth_counts_from_the_selected_nodes(m: Manager, tmp_path: Path) -> None:
    data = checked(m, get_data("running", "<max-depth>1</max-depth>"), tmp_path, "getconfig")
    top = data.find("s:serial-over-ip", NS)
    assert top is not None and len(top) == 0
    data = checked(
        m, get_data("operational", subtree(CHANNELS), "<max-depth>1</max-depth>"), tmp_path, "get"
    )
    channel = data.find("s:serial-over-ip/s:channel", NS)
    assert channel is not None
    assert [etree.QName(c).localname for c in channel] == ["name"]  # the key comes along
    data = checked(
        m, get_data("operational", subtree(CHANNELS), "<max-depth>2</max-depth>"), tmp_path, "get"
    )
    state = data.find("s:serial-over-ip/s:channel/s:state", NS)
    assert state is not None and len(state) == 0
    listen = data.find("s:serial-over-ip/s:channel/s:listen", NS)
    assert listen is not None and len(listen) == 0
    unbounded = checked(
        m, get_data("running", "<max-depth>unbounded</max-depth>"), tmp_path, "getconfig"
    )
    assert canonical(list(unbounded)) == canonical(list(m.get_config("running").data_ele))


def test_with_defaults_on_conventional_datastores(m: Manager, tmp_path: Path) -> None:
    tagged = "<with-defaults>report-all-tagged</with-defaults>"
    data = checked(m, get_data("running", tagged), tmp_path, "getconfig")
    rate = data.find("s:serial-over-ip/s:serial-port/s:baud-rate", NS)
    assert rate is not None and rate.get(WD_DEFAULT) == "true"
    expected = m.get_config("running", with_defaults="report-all-tagged").data_ele
    assert canonical(list(data)) == canonical(list(expected))


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_xml", "tag", "element"),
    [
        (get_data("conventional"), "invalid-value", "datastore"),
        (get_data("no-such-store"), "invalid-value", "datastore"),
        (
            f'<get-data xmlns="{NMDA}"><datastore>x:running</datastore></get-data>',
            "invalid-value",
            "datastore",
        ),
        (f'<get-data xmlns="{NMDA}"/>', "missing-element", "datastore"),
        (get_data("running", "<with-origin/>"), "invalid-value", "with-origin"),
        (
            get_data("running", "<origin-filter>or:default</origin-filter>"),
            "invalid-value",
            "origin-filter",
        ),
        (
            get_data("operational", "<origin-filter>ds:running</origin-filter>"),
            "invalid-value",
            "origin-filter",
        ),
        (get_data("running", "<max-depth>0</max-depth>"), "invalid-value", "max-depth"),
        (
            get_data("running", "<config-filter>yes</config-filter>"),
            "invalid-value",
            "config-filter",
        ),
        (
            get_data("operational", "<with-defaults>trim</with-defaults>"),
            "invalid-value",
            "with-defaults",
        ),
        (get_data("running", "<bogus/>"), "unknown-element", "bogus"),
        (
            get_data("running", subtree(CHANNELS), "<xpath-filter>/x</xpath-filter>"),
            "bad-element",
            "xpath-filter",
        ),
        (edit_data("operational", ""), "invalid-value", "datastore"),
        (edit_data("startup", ""), "invalid-value", "datastore"),
        (edit_data("intended", ""), "invalid-value", "datastore"),
    ],
)
def test_precise_errors(m: Manager, request_xml: str, tag: str, element: str) -> None:
    err = error(m, request_xml)
    assert err.tag == tag, err
    assert info(err).get("bad-element") == element, err.info


def test_a_bad_xpath_filter_is_an_invalid_value(m: Manager) -> None:
    err = error(m, get_data("running", "<xpath-filter>/s:[</xpath-filter>"))
    assert err.tag == "invalid-value"


# -- editing ------------------------------------------------------------------------


def test_edit_data_edits_running_and_the_candidate_like_edit_config(
    m: Manager, tmp_path: Path
) -> None:
    change = (
        f'<serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
        "<description>via edit-data</description></channel></serial-over-ip>"
    )
    reply = m.dispatch(to_ele(edit_data("candidate", change)))
    assert reply.ok
    described = "s:serial-over-ip/s:channel/s:description"
    candidate = checked(m, get_data("candidate"), tmp_path, "getconfig")
    assert candidate.findtext(described, namespaces=NS) == "via edit-data"
    running = checked(m, get_data("running"), tmp_path, "getconfig")
    assert running.findtext(described, namespaces=NS) != "via edit-data"
    m.dispatch(to_ele(edit_data("running", change)))
    running = checked(m, get_data("operational", "<with-origin/>"), tmp_path, "get")
    assert running.findtext(described, namespaces=NS) == "via edit-data"
    # operations as in edit-config: delete of a missing node is data-missing
    missing = (
        f'<serial-over-ip xmlns="{SOIP}" xmlns:nc="{NC}"><channel nc:operation="delete">'
        "<name>nope</name></channel></serial-over-ip>"
    )
    assert error(m, edit_data("running", missing)).tag == "data-missing"
    # all or nothing: an invalid value anywhere changes nothing
    bad = (
        f'<serial-over-ip xmlns="{SOIP}"><channel><name>demo</name><description>x</description>'
        "<keepalive>not-a-number</keepalive></channel></serial-over-ip>"
    )
    assert error(m, edit_data("running", bad)).tag in ("invalid-value", "bad-element")
    after = m.get_config("running").data_ele
    assert after.findtext(described, namespaces=NS) == "via edit-data"
    # default-operation replace, as in edit-config
    replace = f'<serial-over-ip xmlns="{SOIP}"/>'
    m.dispatch(
        to_ele(edit_data("candidate", replace, "<default-operation>replace</default-operation>"))
    )
    assert m.get_config("candidate").data_ele.find("s:serial-over-ip/s:channel", NS) is None


def test_edit_data_respects_another_sessions_lock(daemon: Running, m: Manager) -> None:
    change = f'<serial-over-ip xmlns="{SOIP}"><channel><name>demo</name></channel></serial-over-ip>'
    config = f'<config xmlns="{NC}">{change}</config>'
    with daemon.connect() as other:
        other.lock("running")
        err = error(m, edit_data("running", change))
        with pytest.raises(RPCError) as refused:
            m.edit_config(target="running", config=config)
        assert err.tag == refused.value.tag == "in-use"


# -- access control ------------------------------------------------------------------


def test_nacm_read_and_write_rules_apply(daemon: Running, tmp_path: Path) -> None:
    add_user(Users(daemon.state_dir / "users.json"), OPER, PASSWORD)
    hide = rule(
        "hide-channels",
        "deny",
        ops="read",
        module="nf-serial-over-ip",
        path="/soip:serial-over-ip/soip:channel",
    )
    set_nacm(daemon, OPS_GROUP + rule_list(hide))
    with daemon.connect(username=OPER) as m:
        for name, kind in (("running", "getconfig"), ("operational", "get")):
            data = checked(m, get_data(name), tmp_path, kind)
            assert data.find("s:serial-over-ip/s:serial-port", NS) is not None
            assert data.find(".//s:channel", NS) is None
            assert data.find("a:nacm", NS) is None  # default-deny-all
        change = (
            f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>demo</name>'
            "<baud-rate>9600</baud-rate></serial-port></serial-over-ip>"
        )
        err = error(m, edit_data("running", change))  # write-default is deny
        assert err.tag == "access-denied"
    # the operations themselves are ietf-netconf-nmda's to permit or deny
    deny = rule("no-get-data", "deny", ops="exec", module="ietf-netconf-nmda", rpc_name="get-data")
    set_nacm(daemon, rule_list(deny))
    with daemon.connect(username=OPER) as m:
        err = error(m, get_data("running"))
        assert err.tag == "access-denied" and err.path == "/nc:rpc/ncds:get-data"


# -- discovery --------------------------------------------------------------------------


def test_yang_library_and_get_schema_serve_the_nmda_modules(m: Manager) -> None:
    for module in ("ietf-netconf-nmda", "ietf-origin", "ietf-datastores"):
        assert m.get_schema(module).data == (YANG / f"{module}.yang").read_text()
    flt = f'<yang-library xmlns="{YL}"/>'
    lib = m.get(filter=("subtree", flt)).data_ele.find("yl:yang-library", NS)
    assert lib is not None
    implemented = {
        e.findtext("yl:name", namespaces=NS): [f.text for f in e.iterfind("yl:feature", NS)]
        for e in lib.iterfind("yl:module-set/yl:module", NS)
    }
    assert implemented["ietf-netconf-nmda"] == ["origin", "with-defaults"]
    assert {"ietf-origin", "ietf-datastores"} <= set(implemented)
    # xpath-filter is if-feature nc:xpath: ietf-netconf tells its features
    assert "xpath" in implemented["ietf-netconf"] and "url" not in implemented["ietf-netconf"]
    stores = [d.findtext("yl:name", namespaces=NS) for d in lib.iterfind("yl:datastore", NS)]
    assert "ds:operational" in stores and "ds:intended" in stores


def test_plain_get_and_get_config_are_unchanged(m: Manager) -> None:
    data = m.get_config("running").data_ele
    assert not [e for e in data.iter() if ORIGIN in e.attrib]
    assert data.find("s:serial-over-ip/s:serial-port/s:baud-rate", NS) is None  # explicit
    assert m.get().data_ele.find("s:serial-over-ip/s:serial-port/s:state", NS) is not None


def test_lock_unlock_and_validate_take_an_nmda_datastore(daemon: Running, m: Manager) -> None:
    def target(op: str, datastore: str, where: str = "target") -> str:
        return (
            f'<{op} xmlns="{NC}"><{where}><datastore xmlns="{NMDA}" xmlns:ds="{DS}">'
            f"ds:{datastore}</datastore></{where}></{op}>"
        )

    assert m.dispatch(to_ele(target("lock", "running"))).ok
    with daemon.connect() as other:
        with pytest.raises(RPCError) as held:
            other.lock("running")
        assert held.value.tag == "lock-denied"
    assert m.dispatch(to_ele(target("unlock", "running"))).ok
    for name in ("candidate", "intended"):
        assert m.dispatch(to_ele(target("validate", name, "source"))).ok
    for op, where in (("lock", "target"), ("validate", "source")):
        err = error(m, target(op, "operational", where))
        assert err.tag == "invalid-value"
        assert info(err).get("bad-element") == "datastore"
