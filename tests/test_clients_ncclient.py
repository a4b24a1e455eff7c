"""ncclient, used the way scripts use it, against the daemon: ``dispatch``
of base operations written without a namespace, and sessions that end
without the client seeing a reset connection."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import Running
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
RESET = "connection reset by peer"


def description_edit(text: str) -> str:
    return (
        f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><serial-port><name>demo</name>'
        f"<description>{text}</description></serial-port></serial-over-ip></config>"
    )


def demo_description(m: object, source: str) -> str | None:
    data = m.get_config(source).data  # type: ignore[attr-defined]
    return data.findtext(f"{{{SOIP}}}serial-over-ip/{{{SOIP}}}serial-port/{{{SOIP}}}description")


def test_dispatch_of_unqualified_base_operations(daemon: Running) -> None:
    with daemon.connect() as m, daemon.connect() as other:
        m.edit_config(target="candidate", config=description_edit("first"))
        m.dispatch(to_ele("<discard-changes/>"))
        assert demo_description(m, "candidate") != "first"

        m.dispatch(to_ele("<lock><target><candidate/></target></lock>"))
        with pytest.raises(RPCError) as denied:  # the lock is really held
            other.lock("candidate")
        assert denied.value.tag == "lock-denied"
        m.edit_config(target="candidate", config=description_edit("second"))
        m.dispatch(to_ele("<validate><source><candidate/></source></validate>"))
        m.dispatch(to_ele("<commit/>"))
        assert demo_description(other, "running") == "second"
        m.dispatch(to_ele("<unlock><target><candidate/></target></unlock>"))
        other.lock("candidate")
        other.unlock("candidate")

        reply = m.dispatch(to_ele("<get-config><source><running/></source></get-config>"))
        assert b"second" in reply.xml.encode()


def test_dispatch_of_unqualified_other_operation_is_refused(daemon: Running) -> None:
    with daemon.connect() as m:
        with pytest.raises(RPCError) as refused:
            m.dispatch(to_ele("<reboot-everything/>"))
        assert refused.value.tag == "unknown-namespace"
        assert refused.value.type == "protocol"
        with pytest.raises(RPCError) as module_op:  # a module's rpc needs its namespace
            m.dispatch(to_ele("<clear-counters/>"))
        assert module_op.value.tag == "unknown-namespace"
        m.get_config("running")  # the session goes on


def reset_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What ncclient (and the paramiko transport it logs through) said
    about a reset connection."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("ncclient") and RESET in r.getMessage().lower()
    ]


def test_close_session_never_resets_the_connection(
    daemon: Running, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="ncclient")
    caplog.set_level(logging.INFO, logger="nf")
    started = time.monotonic()
    for _ in range(20):
        m = daemon.connect()
        m.close_session()
        assert not m.connected
    # ncclient's transport thread logs a reset only once it has noticed; let it
    time.sleep(0.5)
    assert reset_records(caplog) == []
    # nor does the daemon log anything worse than INFO about them
    assert [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("nf") and r.levelno > logging.INFO
    ] == []
    out, err = capsys.readouterr()
    assert RESET not in (out + err).lower()
    # the client closes first, so the server's wait for it costs nothing
    assert time.monotonic() - started < 60


def test_killed_session_closes_cleanly(daemon: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ncclient")
    victim = daemon.connect()
    with daemon.connect() as killer:
        killer.kill_session(victim.session_id)
    deadline = time.monotonic() + 10
    while victim.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not victim.connected
    assert reset_records(caplog) == []
