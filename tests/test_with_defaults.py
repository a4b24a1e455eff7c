"""with-defaults (RFC 6243) through ncclient: explicit, report-all, trim,
report-all-tagged, on get and get-config."""

from __future__ import annotations

import pytest
from conftest import Running
from ncclient.operations import RPCError

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
WD = "urn:ietf:params:xml:ns:netconf:default:1.0"
CAP = "urn:ietf:params:netconf:capability:with-defaults:1.0"

# the demo channel sets listen/address explicitly; keepalive is set here to
# its default (60): RFC 6243 treats it like a server-set default in trim and
# report-all-tagged, and as set by the client in explicit mode
EDIT = (
    f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
    "<keepalive>60</keepalive></channel></serial-over-ip></config>"
)
FILTER = ("subtree", f'<serial-over-ip xmlns="{SOIP}"><channel/></serial-over-ip>')


def test_capability_advertised(daemon: Running) -> None:
    with daemon.connect() as m:
        caps = [c for c in m.server_capabilities if c.startswith(CAP)]
        assert caps == [
            f"{CAP}?basic-mode=explicit&also-supported=report-all,trim,report-all-tagged"
        ]


def test_each_mode_on_get_config_and_get(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(target="running", config=EDIT)
        explicit = m.get_config("running", filter=FILTER).data_xml
        assert "<keepalive>60</keepalive>" in explicit  # set by the client
        assert "<takeover>" not in explicit and "<enabled>" not in explicit

        report_all = m.get_config("running", filter=FILTER, with_defaults="report-all").data_xml
        for leaf in (
            "<takeover>false</takeover>",
            "<enabled>true</enabled>",
            "<keepalive>60</keepalive>",
            "<inactivity-timeout>0</inactivity-timeout>",
        ):
            assert leaf in report_all
        assert "default=" not in report_all

        trim = m.get_config("running", filter=FILTER, with_defaults="trim").data_xml
        assert "<keepalive>" not in trim and "<takeover>" not in trim
        assert "<port>8301</port>" in trim and "<address>127.0.0.1</address>" in trim

        tagged = m.get(filter=FILTER, with_defaults="report-all-tagged").data_xml
        assert 'default="true">false</' in tagged  # takeover, a server default
        assert 'default="true">60</' in tagged  # keepalive, set by the client to its default
        assert WD in tagged  # the attribute's namespace is declared
        assert 'default="true">8301<' not in tagged


def test_bad_mode_is_invalid_value(daemon: Running) -> None:
    from lxml import etree

    with daemon.connect() as m:
        rpc = etree.fromstring(
            f'<get-config xmlns="{NC}"><source><running/></source>'
            '<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">'
            "everything</with-defaults></get-config>"
        )
        with pytest.raises(RPCError) as info:
            m.dispatch(rpc)
        assert info.value.tag == "invalid-value"
        assert info.value.type == "application"
        assert info.value.message.startswith('with-defaults "everything" is not one of')
