"""A first end-to-end check through real SSH with ncclient."""

from __future__ import annotations

from conftest import Running


def test_hello_get_config_and_commit(daemon: Running) -> None:
    with daemon.connect() as m:
        assert "urn:ietf:params:netconf:base:1.1" in m.server_capabilities
        assert any("module=nf-serial-over-ip&revision=" in c for c in m.server_capabilities)
        assert "<name>demo</name>" in m.get_config("running").data_xml
        m.edit_config(
            target="candidate",
            config='<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
            '<serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip">'
            "<channel><name>demo</name><keepalive>30</keepalive></channel>"
            "</serial-over-ip></config>",
        )
        m.commit()
        assert "<keepalive>30</keepalive>" in m.get_config("running").data_xml
