"""systemd readiness (``Type=notify``, compose/nf.service): a real ``nf run``
with NOTIFY_SOCKET set to a real AF_UNIX datagram socket, as systemd sets
it.  READY=1 comes once NETCONF is served, not before; STOPPING=1 on
SIGTERM; STATUS= follows a restarted control plane and a failed boot; the
planes do not inherit the socket (only the main process may speak for the
service).  And nf.plane.notify's protocol on its own: abstract names,
no socket, an unreachable one."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ncclient_connect
from test_planes import _children
from test_startup import NF, SOIP

from nf.plane.notify import ENV, Notifier

EMPTY = f'<serial-over-ip xmlns="{SOIP}"/>'


def _fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines())


@contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket at a short path (sun_path holds 108 bytes: not
    under pytest's long tmp_path), as systemd's /run/systemd/notify."""
    folder = tempfile.mkdtemp(prefix="nf-notify-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder)


def receive(sock: socket.socket, timeout: float) -> dict[str, str]:
    sock.settimeout(timeout)
    return _fields(sock.recv(4096))


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def nf_service(tmp_path: Path, notify: str, config: str = EMPTY) -> Iterator[Service]:
    """``nf run`` as systemd starts it: NOTIFY_SOCKET in its environment."""
    cfg = tmp_path / "config.xml"
    cfg.write_text(config)
    log = tmp_path / "nf.log"
    env = dict(os.environ, NF_ADMIN_PASSWORD="pw", **{ENV: notify})
    argv = [NF, "run", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")]
    with log.open("wb") as out:
        proc = subprocess.Popen([*argv, "--config", str(cfg)], stdout=out, stderr=out, env=env)
    service = Service(proc, log)
    try:
        yield service
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ready_when_netconf_is_served_stopping_on_sigterm(tmp_path: Path) -> None:
    with notify_socket() as (sock, path), nf_service(tmp_path, path) as nf:
        first = receive(sock, 30)
        assert first.get("READY") == "1", nf.output()
        status = first["STATUS"]
        assert status.startswith("serving NETCONF on 127.0.0.1:"), status
        port = int(status.rsplit(":", 1)[1])
        # the control plane printed its banner (it then writes the ready
        # byte) before the supervisor said READY=1
        assert f"NETCONF over SSH on 127.0.0.1:{port}" in nf.output()
        # at READY=1 the control plane answers at once: the SSH banner,
        # which the supervisor's listener alone (bound before) never sends
        with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
            probe.settimeout(2)
            assert probe.recv(64).startswith(b"SSH-2.0-"), nf.output()
        with ncclient_connect("127.0.0.1", port, "admin", "pw") as m:
            assert "<data" in m.get_config("running").data_xml
        planes = _children(nf.proc.pid)
        assert set(planes) == {"control", "data"}, nf.output()
        for pid in planes.values():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not [e for e in environ if e.startswith(ENV.encode() + b"=")]
        nf.proc.send_signal(signal.SIGTERM)
        stopping = receive(sock, 10)
        assert stopping.get("STOPPING") == "1", stopping
        assert stopping["STATUS"] == "stopping on SIGTERM"
        assert nf.proc.wait(timeout=10) == 0, nf.output()


def test_a_restarted_control_plane_is_a_status_not_a_second_ready(tmp_path: Path) -> None:
    with notify_socket() as (sock, path), nf_service(tmp_path, path) as nf:
        assert receive(sock, 30).get("READY") == "1", nf.output()
        os.kill(_children(nf.proc.pid)["control"], signal.SIGKILL)
        died = receive(sock, 10)
        assert died == {"STATUS": "control plane killed by SIGKILL; restarting it"}, died
        back = receive(sock, 30)
        assert "READY" not in back, back
        assert back["STATUS"].endswith("(control plane restarts: 1)"), back
        port = int(back["STATUS"].split(":")[1].split()[0])
        with ncclient_connect("127.0.0.1", port, "admin", "pw") as m:
            assert "<data" in m.get_config("running").data_xml
        nf.proc.send_signal(signal.SIGTERM)
        assert receive(sock, 10).get("STOPPING") == "1"
        assert nf.proc.wait(timeout=10) == 0, nf.output()


def test_a_failed_boot_is_a_status_and_never_ready(tmp_path: Path) -> None:
    bad = f'<serial-over-ip xmlns="{SOIP}"><channel><name>c</name></channel></serial-over-ip>'
    with notify_socket() as (sock, path), nf_service(tmp_path, path, bad) as nf:
        assert nf.proc.wait(timeout=30) == 1, nf.output()
        said = receive(sock, 1)
        assert "READY" not in said
        last_line = nf.output().strip().splitlines()[-1]
        assert said["STATUS"] == last_line, nf.output()
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(4096)  # nothing more: no READY=1 after it either


def test_abstract_socket_names_and_several_fields() -> None:
    name = f"@nf-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        assert Notifier(name).notify(READY="1", STATUS="serving")
        assert receive(sock, 2) == {"READY": "1", "STATUS": "serving"}


def test_no_socket_sends_nothing_and_a_dead_one_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not Notifier(None).notify(READY="1")
    gone = str(tmp_path / "gone")
    with caplog.at_level(logging.WARNING, "nf.notify"):
        assert not Notifier(gone).notify(READY="1")
    assert gone in caplog.text


def test_the_socket_is_taken_out_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "/run/systemd/notify")
    assert Notifier.from_environment().address == "/run/systemd/notify"
    assert ENV not in os.environ
    assert Notifier.from_environment().address is None
    monkeypatch.setenv(ENV, "")
    assert Notifier.from_environment().address is None
