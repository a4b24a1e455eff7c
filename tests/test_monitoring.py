"""ietf-netconf-monitoring (RFC 6022) through ncclient: /netconf-state and get-schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Running
from lxml import etree
from ncclient.operations import RPCError

from nf.config.codec import render
from nf.config.tree import Node

NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
YANG = Path(__file__).resolve().parent.parent / "yang"
STATE = ("subtree", f'<netconf-state xmlns="{NCM}"/>')


def _state(m) -> etree._Element:  # type: ignore[no-untyped-def]
    return etree.fromstring(m.get(filter=STATE).data_xml.encode())


def test_netconf_state(daemon: Running) -> None:
    ns = {"m": NCM}
    with daemon.connect() as m, daemon.connect() as other:
        m.lock("candidate")
        with pytest.raises(RPCError):
            m.dispatch(etree.fromstring('<foo xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'))
        state = _state(m)
        caps = [c.text for c in state.iterfind("m:netconf-state/m:capabilities/m:capability", ns)]
        assert set(m.server_capabilities) <= set(caps)
        stores = {
            d.findtext("m:name", namespaces=ns): d
            for d in state.iterfind("m:netconf-state/m:datastores/m:datastore", ns)
        }
        assert set(stores) == {"running", "candidate", "startup"}
        lock = stores["candidate"].find("m:locks/m:global-lock", ns)
        assert lock is not None and lock.findtext("m:locked-by-session", namespaces=ns) == str(
            m.session_id
        )
        assert lock.findtext("m:locked-time", namespaces=ns)
        assert stores["running"].find("m:locks", ns) is None
        schemas = {
            s.findtext("m:identifier", namespaces=ns): s.findtext("m:version", namespaces=ns)
            for s in state.iterfind("m:netconf-state/m:schemas/m:schema", ns)
        }
        assert schemas["nf-serial-over-ip"] == "2026-11-23"
        assert schemas["ietf-netconf-monitoring"] == "2010-10-04"
        sessions = {
            s.findtext("m:session-id", namespaces=ns): s
            for s in state.iterfind("m:netconf-state/m:sessions/m:session", ns)
        }
        assert {str(m.session_id), str(other.session_id)} <= set(sessions)
        mine = sessions[str(m.session_id)]
        assert mine.findtext("m:username", namespaces=ns) == "admin"
        assert mine.findtext("m:source-host", namespaces=ns) == "127.0.0.1"
        assert int(mine.findtext("m:in-rpcs", namespaces=ns) or 0) >= 2
        assert mine.findtext("m:out-rpc-errors", namespaces=ns) == "1"
        stats = state.find("m:netconf-state/m:statistics", ns)
        assert stats is not None and int(stats.findtext("m:in-sessions", namespaces=ns) or 0) >= 2
        # an unfiltered <get> (the whole-reply path, its locks read in the
        # same hop as the snapshot) shows the lock as well
        whole = etree.fromstring(m.get().data_xml.encode())
        held = whole.find("m:netconf-state/m:datastores/m:datastore/m:locks/m:global-lock", ns)
        assert held is not None
        assert held.findtext("m:locked-by-session", namespaces=ns) == str(m.session_id)


@pytest.mark.parametrize(
    "module", ["nf-serial-over-ip", "ietf-netconf-monitoring", "ietf-inet-types"]
)
def test_get_schema_returns_the_exact_text(daemon: Running, module: str) -> None:
    with daemon.connect() as m:
        reply = m.get_schema(module)
        assert reply.data == (YANG / f"{module}.yang").read_text()


def test_get_schema_errors(daemon: Running) -> None:
    with daemon.connect() as m:
        with pytest.raises(RPCError) as info:
            m.get_schema("no-such-module")
        assert info.value.tag == "invalid-value"
        with pytest.raises(RPCError) as info:
            m.get_schema("nf-serial-over-ip", version="1999-01-01")
        assert info.value.tag == "invalid-value"


def test_the_fixed_parts_of_netconf_state_are_built_once() -> None:
    """Capabilities and schemas are parsed once, not at every <get>; what
    changes (locks, sessions, statistics) is read each time."""
    from nf.northbound.monitoring import state_tree
    from nf.schema import default_schema

    schema = default_schema()
    caps = ["urn:ietf:params:netconf:base:1.1"]
    first = state_tree(schema, caps, {}, ["running"], [], {"in-rpcs": 1})
    second = state_tree(
        schema, caps, {"running": (3, "2026-01-01T00:00:00Z")}, ["running"], [], {"in-rpcs": 2}
    )
    top = (NCM, "netconf-state")
    one, two = first.get(top), second.get(top)
    assert isinstance(one, Node) and isinstance(two, Node)
    for fixed in ("schemas", "capabilities"):
        assert one.get((NCM, fixed)) is two.get((NCM, fixed))
    text = etree.tostring(render(second, schema)).decode()
    assert "<locked-by-session>3</locked-by-session>" in text
    assert "<in-rpcs>2</in-rpcs>" in text and "nf-serial-over-ip" in text
