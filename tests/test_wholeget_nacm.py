"""A NACM user who may read all of serial-over-ip gets <get>/<get-config>
from WholeGet's kept bytes (the rest pruned as always): for any policy,
the reply is the general path's (render, prune node by node), and a
policy that could hide anything of serial-over-ip takes the general path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from relayhelpers import config, port_xml, server_xml

from nf.config import load_document
from nf.northbound.datastores import Datastores
from nf.northbound.rpcs import Context, handle_message
from nf.northbound.wholeget import WholeGet
from nf.runtime.transaction import NullRuntime
from nf.schema import default_schema

SCHEMA = default_schema()
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
MODULES = ["*", "nf-serial-over-ip", "ietf-netconf-acm", "ietf-netconf-monitoring"]
PATHS = [None, "/soip:serial-over-ip/soip:channel", "/soip:serial-over-ip", "/nacm:nacm"]
OPS = ["*", "read", "create update delete", "exec"]


class NoSessions:
    def kill(self, session_id: int, by: int | None = None) -> bool:
        return False


@st.composite
def policies(draw: st.DrawFn) -> str:
    rules = []
    for i in range(draw(st.integers(0, 3))):
        module = draw(st.sampled_from(MODULES))
        path = draw(st.sampled_from(PATHS)) if module in ("*", "nf-serial-over-ip") else None
        target = f"<path>{path}</path>" if path else ""
        if path and "soip:" in path:
            target = f'<path xmlns:soip="urn:nf:params:xml:ns:yang:nf-serial-over-ip">{path}</path>'
        if path and "nacm:" in path:
            target = f'<path xmlns:nacm="{NACM}">{path}</path>'
        rules.append(
            f"<rule><name>r{i}</name><module-name>{module}</module-name>{target}"
            f"<access-operations>{draw(st.sampled_from(OPS))}</access-operations>"
            f"<action>{draw(st.sampled_from(['permit', 'deny']))}</action></rule>"
        )
    group = draw(st.sampled_from(["g", "*"]))
    member = draw(st.booleans())
    groups = "<groups><group><name>g</name><user-name>alice</user-name></group></groups>"
    read_default = draw(st.sampled_from(["permit", "deny"]))
    return (
        f'<nacm xmlns="{NACM}"><read-default>{read_default}</read-default>'
        f"{groups if member else ''}<rule-list><name>rl</name><group>{group}</group>"
        f"{''.join(rules)}</rule-list></nacm>"
    )


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


def reply(ctx: Context, body: str) -> bytes:
    message = f'<rpc xmlns="{NC}" message-id="1">{body}</rpc>'.encode()
    data = etree.fromstring(handle_message(ctx, 1, message, "alice").reply)
    return etree.tostring(data, method="c14n")


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(policy=policies())
def test_a_nacm_users_reply_is_the_general_paths(
    portal: BlockingPortal, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = port_xml("p0", "loop://") + port_xml("p1", "loop://") + server_xml("c0", "p0", 7000)
    tree, errors = load_document(config(body).replace("</config>", policy + "</config>"), SCHEMA)
    assert errors == []
    ctx = Context(SCHEMA, Datastores(SCHEMA, NullRuntime(), tree), portal, NoSessions())
    rpcs = [
        "<get-config><source><running/></source></get-config>",
        "<get/>",
    ]
    fast = [reply(ctx, r) for r in rpcs]
    took_fast = ctx.whole.readable(ctx.access(ctx.datastores.running, "alice"))
    with monkeypatch.context() as m:
        m.setattr(WholeGet, "readable", lambda self, access: access.unrestricted)
        general = [reply(ctx, r) for r in rpcs]
    assert fast == general
    if took_fast and b"<data" in fast[0]:  # (an exec rule may deny get-config itself)
        assert ctx.whole.configurations_rendered >= 1  # it took it: WholeGet made the lists


def test_a_user_who_reads_everything_takes_the_kept_bytes(portal: BlockingPortal) -> None:
    """No rule of alice's, read-default permit: her get-config is made
    from WholeGet's bytes, without /nacm (default-deny-all), and costs no
    rendering the second time."""
    body = port_xml("p0", "loop://") + server_xml("c0", "p0", 7000)
    text = config(body).replace("</config>", f'<nacm xmlns="{NACM}"/></config>')
    tree, errors = load_document(text, SCHEMA)
    assert errors == []
    ctx = Context(SCHEMA, Datastores(SCHEMA, NullRuntime(), tree), portal, NoSessions())
    assert ctx.whole.readable(ctx.access(ctx.datastores.running, "alice"))
    first = reply(ctx, "<get-config><source><running/></source></get-config>")
    assert ctx.whole.configurations_rendered == 1
    assert b"serial-over-ip" in first and NACM.encode() not in first
    rendered = ctx.whole.others_rendered
    assert reply(ctx, "<get-config><source><running/></source></get-config>") == first
    assert ctx.whole.others_rendered == rendered


def test_a_deny_rule_for_the_module_takes_the_general_path(portal: BlockingPortal) -> None:
    body = port_xml("p0", "loop://") + server_xml("c0", "p0", 7000)
    deny = (
        f'<nacm xmlns="{NACM}"><groups><group><name>g</name><user-name>alice</user-name>'
        "</group></groups><rule-list><name>rl</name><group>g</group><rule><name>r</name>"
        "<module-name>nf-serial-over-ip</module-name>"
        '<path xmlns:soip="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
        "/soip:serial-over-ip/soip:channel</path>"
        "<access-operations>read</access-operations><action>deny</action></rule>"
        "</rule-list></nacm>"
    )
    tree, errors = load_document(config(body).replace("</config>", deny + "</config>"), SCHEMA)
    assert errors == []
    ctx = Context(SCHEMA, Datastores(SCHEMA, NullRuntime(), tree), portal, NoSessions())
    assert not ctx.whole.readable(ctx.access(ctx.datastores.running, "alice"))
    got = reply(ctx, "<get-config><source><running/></source></get-config>")
    assert b"serial-port" in got and b"<channel>" not in got
    assert ctx.whole.configurations_rendered == 0


@pytest.mark.parametrize("user", ["admin", "alice"])
def test_a_prefix_a_value_uses_stays_declared(portal: BlockingPortal, user: str) -> None:
    """A NACM rule's path names nodes with prefixes (an instance-identifier):
    the reply declares them where the value is, on the general path
    (report-all, subtree filters) as on WholeGet's; moving the rendered
    <data> into the envelope, or a filter's copy of a subtree into its
    result, used to drop the declaration of nacm, the namespace the
    enclosing <nacm> declares as its default."""
    policy = (
        f'<nacm xmlns="{NACM}"><groups><group><name>g</name><user-name>alice</user-name>'
        "</group></groups><rule-list><name>rl</name><group>g</group><rule><name>r</name>"
        f'<module-name>*</module-name><path xmlns:nacm="{NACM}">/nacm:nacm</path>'
        "<access-operations>*</access-operations><action>permit</action></rule>"
        "</rule-list></nacm>"
    )
    tree, errors = load_document(config("").replace("</config>", policy + "</config>"), SCHEMA)
    assert errors == []
    ctx = Context(SCHEMA, Datastores(SCHEMA, NullRuntime(), tree), portal, NoSessions())
    for body in (
        "<get-config><source><running/></source></get-config>",
        "<get-config><source><running/></source><with-defaults "
        'xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">report-all'
        "</with-defaults></get-config>",
        f'<get-config><source><running/></source><filter><nacm xmlns="{NACM}"/></filter>'
        "</get-config>",
        f'<get-config><source><running/></source><filter><nacm xmlns="{NACM}"><rule-list>'
        "<rule><path/></rule></rule-list></nacm></filter></get-config>",
    ):
        message = f'<rpc xmlns="{NC}" message-id="1">{body}</rpc>'.encode()
        reply = etree.fromstring(handle_message(ctx, 1, message, user).reply)
        path = reply.find(f".//{{{NACM}}}path")
        assert path is not None and path.text == "/nacm:nacm"
        assert path.nsmap.get("nacm") == NACM, etree.tostring(reply)
