"""What the server tolerates from real clients, tested without SSH.

scrapli-netconf sends a newline before the XML declaration of its hello and
of every rpc; ncclient's ``dispatch(to_ele('<commit/>'))`` sends a base
operation, and its parameters, in no namespace.  Both are accepted; an
unqualified element that is not a base operation is still refused, and
so is unqualified data inside ``<config>``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from lxml import etree

from nf.app import DEMO_CONFIG, load_initial
from nf.northbound.datastores import Datastores
from nf.northbound.rpcs import Context, Handled, handle_message, in_base_namespace
from nf.northbound.server import BASE_10, BASE_11, SessionEnd, client_capabilities
from nf.runtime.transaction import NullRuntime
from nf.schema import default_schema

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NC = f"{{{NC_NS}}}"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
DECL = b'<?xml version="1.0" encoding="utf-8"?>'


def hello(prefix: bytes = b"", caps: tuple[str, ...] = (BASE_11,)) -> bytes:
    body = "".join(f"<capability>{c}</capability>" for c in caps)
    return (
        prefix
        + DECL
        + f'\n    <hello xmlns="{NC_NS}">\n<capabilities>{body}</capabilities>\n</hello>'.encode()
    )


# -- hello -------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", [b"", b"\n", b"\r\n", b" \t\n\n  "], ids=repr)
def test_hello_after_whitespace_is_accepted(prefix: bytes) -> None:
    assert client_capabilities(hello(prefix)) == [BASE_11]
    assert client_capabilities(hello(prefix, (BASE_10,))) == [BASE_10]


@pytest.mark.parametrize("prefix", [b"x", b"\n<!-- -->\n", b"\x00"], ids=repr)
def test_hello_after_anything_else_is_refused(prefix: bytes) -> None:
    with pytest.raises(SessionEnd, match="not well-formed"):
        client_capabilities(hello(prefix))


# -- rpcs --------------------------------------------------------------------------------
class NoSessions:
    def kill(self, session_id: int, by: int | None = None) -> bool:
        return False


@pytest.fixture
def ctx() -> Iterator[Context]:
    """The RPC layer on real datastores (demo configuration) and a real
    event loop; no SSH."""
    schema = default_schema()
    datastores = Datastores(schema, NullRuntime(), load_initial(DEMO_CONFIG, schema))
    with start_blocking_portal() as portal:
        assert isinstance(portal, BlockingPortal)
        yield Context(schema, datastores, portal, NoSessions())


def handle(ctx: Context, message: str, session_id: int = 1) -> tuple[Handled, etree._Element]:
    handled = handle_message(ctx, session_id, message.encode(), "admin")
    return handled, etree.fromstring(handled.reply)


def rpc(body: str, prefix: str = "") -> str:
    return f'{prefix}<?xml version="1.0"?>\n<rpc xmlns="{NC_NS}" message-id="7">{body}</rpc>'


def ncclient_rpc(op: str) -> str:
    """What ncclient's ``dispatch(to_ele(op))`` puts on the wire."""
    return f'<nc:rpc xmlns:nc="{NC_NS}" message-id="7">{op}</nc:rpc>'


def error_of(reply: etree._Element) -> dict[str, str]:
    errors = reply.findall(f"{NC}rpc-error")
    assert len(errors) == 1, etree.tostring(reply)
    return {
        etree.QName(e).localname: (e.text or "")
        for e in errors[0].iter()
        if isinstance(e.tag, str) and not len(e)
    }


def is_ok(reply: etree._Element) -> bool:
    return reply.find(f"{NC}ok") is not None


@pytest.mark.parametrize("prefix", ["\n", "\r\n", "  \n\t"], ids=repr)
def test_rpc_after_whitespace_is_accepted(ctx: Context, prefix: str) -> None:
    handled, reply = handle(
        ctx, rpc("<get-config><source><running/></source></get-config>", prefix)
    )
    assert handled.outcome == "ok"
    assert reply.get("message-id") == "7"
    assert reply.find(f"{NC}data/{{{SOIP}}}serial-over-ip") is not None


def test_rpc_after_other_text_is_malformed(ctx: Context) -> None:
    handled, reply = handle(ctx, rpc("<get-config><source><running/></source></get-config>", "x"))
    assert handled.outcome == "bad"
    assert error_of(reply)["error-tag"] == "malformed-message"


@pytest.mark.parametrize(
    "op",
    [
        "<discard-changes/>",
        "<commit/>",
        "<validate><source><candidate/></source></validate>",
        "<lock><target><candidate/></target></lock>",
    ],
)
def test_unqualified_base_operation_is_accepted(ctx: Context, op: str) -> None:
    handled, reply = handle(ctx, ncclient_rpc(op))
    assert handled.outcome == "ok", handled.reply
    assert is_ok(reply)


def test_unqualified_lock_takes_the_lock(ctx: Context) -> None:
    """The unqualified parameters are read, not ignored: the named datastore
    is locked, and a second lock of it fails."""
    assert is_ok(handle(ctx, ncclient_rpc("<lock><target><candidate/></target></lock>"))[1])
    assert ctx.datastores.locks.holders == {"candidate": 1}
    _, reply = handle(ctx, ncclient_rpc("<lock><target><candidate/></target></lock>"), 2)
    assert error_of(reply)["error-tag"] == "lock-denied"
    assert is_ok(handle(ctx, ncclient_rpc("<unlock><target><candidate/></target></unlock>"))[1])
    assert ctx.datastores.locks.holders == {}


def test_unqualified_get_config_with_filter(ctx: Context) -> None:
    """A subtree filter's contents keep their own rules: an unqualified
    node in a filter matches in any namespace (RFC 6241 §6.2.1)."""
    op = (
        "<get-config><source><running/></source>"
        '<filter type="subtree"><serial-over-ip><channel/></serial-over-ip></filter></get-config>'
    )
    handled, reply = handle(ctx, ncclient_rpc(op))
    assert handled.outcome == "ok", handled.reply
    assert (
        reply.findtext(f"{NC}data/{{{SOIP}}}serial-over-ip/{{{SOIP}}}channel/{{{SOIP}}}name")
        == "demo"
    )
    assert reply.find(f"{NC}data/{{{SOIP}}}serial-over-ip/{{{SOIP}}}serial-port") is None


def test_unqualified_edit_config_keeps_its_data_namespaces(ctx: Context) -> None:
    edit = (
        "<edit-config><target><candidate/></target><config>"
        f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>demo</name>'
        "<description>unqualified op</description></serial-port></serial-over-ip>"
        "</config></edit-config>"
    )
    assert is_ok(handle(ctx, ncclient_rpc(edit))[1])
    got = handle(ctx, rpc("<get-config><source><candidate/></source></get-config>"))[1]
    assert b"unqualified op" in etree.tostring(got)
    # data in no namespace is not taken for base-namespace data, nor accepted
    bare = (
        "<edit-config><target><candidate/></target><config>"
        "<serial-over-ip><serial-port><name>demo</name></serial-port></serial-over-ip>"
        "</config></edit-config>"
    )
    handled, reply = handle(ctx, ncclient_rpc(bare))
    assert handled.outcome == "error"
    error = error_of(reply)
    assert error["error-tag"] == "unknown-namespace"
    assert error["bad-element"] == "serial-over-ip"


def test_unqualified_config_under_a_qualified_edit_config(ctx: Context) -> None:
    """Ansible's documented form: <config xmlns:xc="...base:1.0"> leaves
    <config> itself in no namespace under ncclient's qualified edit-config."""
    edit = (
        f'<nc:edit-config xmlns:nc="{NC_NS}"><nc:target><nc:candidate/></nc:target>'
        f'<config xmlns:xc="{NC_NS}"><serial-over-ip xmlns="{SOIP}"><serial-port>'
        "<name>demo</name><description>from ansible</description></serial-port>"
        "</serial-over-ip></config></nc:edit-config>"
    )
    assert is_ok(handle(ctx, f'<nc:rpc xmlns:nc="{NC_NS}" message-id="7">{edit}</nc:rpc>')[1])
    got = handle(ctx, rpc("<get-config><source><candidate/></source></get-config>"))[1]
    assert b"from ansible" in etree.tostring(got)
    # a parameter the operation does not have is still refused, qualified or not
    _, reply = handle(ctx, rpc("<get-config><source><running/></source><bogus/></get-config>"))
    assert error_of(reply)["error-tag"] == "unknown-element"


@pytest.mark.parametrize("name", ["frobnicate", "clear-counters", "get-schema", "rpc"])
def test_unqualified_other_operation_is_refused(ctx: Context, name: str) -> None:
    handled, reply = handle(ctx, ncclient_rpc(f"<{name}/>"))
    assert handled.outcome == "error"
    error = error_of(reply)
    assert error["error-tag"] == "unknown-namespace"
    assert error["error-type"] == "protocol"
    assert error["bad-element"] == name
    assert error["bad-namespace"] == ""
    assert "no namespace" in error["error-message"]


def test_in_base_namespace_stops_at_data() -> None:
    op = etree.fromstring(
        "<copy-config><target><candidate/></target><source><config>"
        f'<bare/><serial-over-ip xmlns="{SOIP}"/></config></source></copy-config>'
    )
    qualified = in_base_namespace(op)
    assert [e.tag for e in qualified.iter()] == [
        f"{NC}copy-config",
        f"{NC}target",
        f"{NC}candidate",
        f"{NC}source",
        f"{NC}config",
        "bare",
        f"{{{SOIP}}}serial-over-ip",
    ]
    assert op.tag == "copy-config"  # the message itself is left as it came
