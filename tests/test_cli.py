"""The nf command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from relayhelpers import free_port
from test_startup import _connect, _start, _stop

from nf.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "full.xml"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def test_validate_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE)]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("wrapper", ["config", "data"])
def test_validate_accepts_netconf_wrappers(
    tmp_path: Path, wrapper: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = EXAMPLE.read_text()
    body = body.replace("<serial-over-ip", f'<{wrapper} xmlns="{NC}"><serial-over-ip', 1)
    path = tmp_path / "wrapped.xml"
    path.write_text(body + f"</{wrapper}>")
    assert main(["validate", "-q", str(path)]) == 0
    assert capsys.readouterr().out == ""


def test_validate_prints_every_error_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(
        f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>a</name><baud-rate>1</baud-rate>'
        "</serial-port></serial-over-ip>"
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "/soip:serial-over-ip/soip:serial-port[soip:name='a']/soip:baud-rate" in out
    assert "/soip:serial-over-ip/soip:serial-port[soip:name='a']/soip:device" in out
    assert "2 errors" in out


def test_validate_malformed_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.xml"
    path.write_text("<serial-over-ip")
    assert main(["validate", str(path)]) == 1
    assert "not well-formed" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "nope.xml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_entities_are_not_expanded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lol.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        f'<serial-over-ip xmlns="{SOIP}">'
        "<serial-port><name>&b;</name></serial-port></serial-over-ip>"
    )
    assert main(["validate", str(path)]) == 1
    assert "DTD" in capsys.readouterr().err


def test_tree_and_help_via_the_console_script() -> None:
    nf = Path(sys.executable).parent / "nf"
    out = subprocess.run([str(nf), "tree"], capture_output=True, text=True, timeout=60, check=True)
    assert "+--rw serial-over-ip" in out.stdout and "+---x clear-counters" in out.stdout
    # a reader that stops early: no traceback, status 0
    piped = subprocess.run(
        f"{nf} tree | head -1", shell=True, capture_output=True, text=True, timeout=60
    )
    assert (piped.stdout, piped.stderr) == ("module: nf-serial-over-ip\n", "")
    out = subprocess.run(
        [str(nf), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for command in ("run", "validate", "tree"):
        assert command in out.stdout


def test_run_serves_the_demo_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The README's run command: boots the embedded demo, prints how to
    connect and the generated admin password once, exits 0 on SIGTERM; the
    demo's channel echoes (on --demo-port, not the demo's own 8301)."""
    nf = Path(sys.executable).parent / "nf"
    demo = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NF_ADMIN_PASSWORD"}
    argv = [str(nf), "run", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*argv, "--demo-port", str(demo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        assert "NETCONF over SSH on 127.0.0.1:" in banner[0] and "demo.xml" in banner[0]
        assert banner[1] == f"  state directory: {tmp_path}\n"
        assert "generated admin password" in banner[2]
        password = banner[2].rsplit(" ", 1)[1].strip()
        stored = (tmp_path / "users.json").read_text()
        assert password not in stored and "scrypt$" in stored
        with socket.create_connection(("127.0.0.1", demo), timeout=5) as echo:
            echo.sendall(b"hello demo\n")
            assert echo.recv(100) == b"hello demo\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
    # the host key was kept for the next start
    assert (tmp_path / "ssh_host_ecdsa_key").exists()


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_login_does_not_leave_its_scrypt_memory_resident(tmp_path: Path) -> None:
    """A password login runs scrypt (16 MiB) in paramiko's thread; glibc
    would keep that block in the thread's arena for the daemon's life
    (nf.heap).  Measured on a real daemon process: RSS after three logins
    is within a few MiB of RSS before them."""
    proc, port = _start(tmp_path)
    try:
        before = _rss_mib(proc.pid)
        for _ in range(3):
            with _connect(port) as m:
                m.get_config("running")
        after = _rss_mib(proc.pid)
        assert after - before < 8, f"RSS {before:.1f} -> {after:.1f} MiB"
        _stop(proc)
    finally:
        proc.kill()
