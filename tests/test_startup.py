"""The startup datastore (:startup): atomic save, boot from it, refusal of a bad one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Running, ncclient_connect
from ncclient import manager
from ncclient.operations import RPCError
from relayhelpers import free_port

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NF = str(Path(sys.executable).parent / "nf")
EDIT = (
    f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
    "<keepalive>17</keepalive></channel></serial-over-ip></config>"
)


def test_copy_running_to_startup_and_delete(daemon: Running) -> None:
    path = daemon.state_dir / "startup.xml"
    with daemon.connect() as m:
        assert "urn:ietf:params:netconf:capability:startup:1.0" in m.server_capabilities
        assert "<serial-over-ip" not in m.get_config("startup").data_xml  # none yet
        m.edit_config(target="running", config=EDIT)
        m.copy_config(source="running", target="startup")
        saved = path.read_text()
        assert "<keepalive>17</keepalive>" in saved and "<config" in saved
        assert path.stat().st_mode & 0o077 == 0
        assert not path.with_name("startup.xml.tmp").exists()
        assert "<keepalive>17</keepalive>" in m.get_config("startup").data_xml
        m.lock("startup")
        m.unlock("startup")
        m.delete_config("startup")
        assert not path.exists()
        with pytest.raises(RPCError) as info:
            m.delete_config("running")
        assert info.value.tag == "operation-not-supported"


def test_invalid_candidate_cannot_become_startup(daemon: Running) -> None:
    with daemon.connect() as m:
        bad = EDIT.replace("<keepalive>17</keepalive>", "<serial-port>nope</serial-port>")
        m.edit_config(target="candidate", config=bad, test_option="set")
        with pytest.raises(RPCError) as info:
            m.copy_config(source="candidate", target="startup")
        assert info.value.tag == "data-missing"
        assert not (daemon.state_dir / "startup.xml").exists()


def _start(
    state: Path, *extra: str, password: str | None = "pw"
) -> tuple[subprocess.Popen[str], int]:
    """``nf run`` on 127.0.0.1:ephemeral (a later ``--listen`` in ``extra``
    wins) with NF_ADMIN_PASSWORD=``password`` (None: unset); its port, or 0
    when it exited before its banner.  Should it boot the embedded demo, its
    channel listens on a free port, not on the demo's own 8301."""
    env = {k: v for k, v in os.environ.items() if k != "NF_ADMIN_PASSWORD"}
    if password is not None:
        env["NF_ADMIN_PASSWORD"] = password
    demo = ["--demo-port", str(free_port())]
    proc = subprocess.Popen(
        [NF, "run", "--listen", "127.0.0.1:0", "--state-dir", str(state), *demo, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "NETCONF over SSH on" not in line:
        proc.wait(timeout=10)
        return proc, 0
    port = int(line.split("127.0.0.1:")[1].split()[0])
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


def _connect(port: int) -> manager.Manager:
    return ncclient_connect("127.0.0.1", port, "admin", "pw")  # type: ignore[no-any-return]


def test_daemon_boots_from_startup_after_restart(tmp_path: Path) -> None:
    proc, port = _start(tmp_path)
    try:
        with _connect(port) as m:
            m.edit_config(target="running", config=EDIT)
            m.copy_config(source="running", target="startup")
    finally:
        _stop(proc)
    proc, port = _start(tmp_path)
    try:
        with _connect(port) as m:
            assert "<keepalive>17</keepalive>" in m.get_config("running").data_xml
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("<config", "not well-formed"),
        (f'<serial-over-ip xmlns="{SOIP}"><bogus/></serial-over-ip>', "unknown element"),
    ],
)
def test_bad_startup_stops_the_boot_unless_told(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "startup.xml").write_text(content)
    proc, port = _start(tmp_path)
    assert port == 0 and proc.returncode == 1
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "startup.xml" in err and needle in err and "--ignore-bad-startup" in err
    assert len(err.splitlines()) == 1, err
    proc, port = _start(tmp_path, "--ignore-bad-startup")
    try:
        assert port
        with _connect(port) as m:
            assert "<serial-over-ip" not in m.get_config("running").data_xml
    finally:
        _stop(proc)
