"""``nf run --tls-listen``: the TLS listener is the supervisor's, handed down
to the control plane like the SSH one, so TLS clients are served again after
a kill -9 of the control plane on the same port; a key others may read stops
the boot with one line; the options are checked."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from ncclient import manager
from pki import Issued, Pki, entry
from relayhelpers import wait_for
from test_boot import _fails
from test_planes import RESTART_LIMIT, nf_run
from test_startup import NF

pytestmark = pytest.mark.timing  # a restart within bounds: run alone (tools/test.sh)


def transport_file(pki: Pki, client: Issued) -> Path:
    path = pki.directory / "transport.toml"
    path.write_text(pki.tls_table(entry(1, client.fingerprint(), "specified", "admin")))
    return path


def connect_tls(port: int, pki: Pki, client: Issued, timeout: float = 10):  # type: ignore[no-untyped-def]
    return manager.connect_tls(
        host="127.0.0.1",
        port=port,
        certfile=str(client.cert_path),
        keyfile=str(client.key_path),
        ca_certs=str(pki.server_ca.cert_path),
        protocol=ssl.PROTOCOL_TLS_CLIENT,
        timeout=timeout,
    )


def test_tls_is_served_across_a_control_plane_restart(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    nms = pki.client("nms")
    cfg = tmp_path / "empty.xml"
    cfg.write_text('<serial-over-ip xmlns="urn:nf:params:xml:ns:yang:nf-serial-over-ip"/>')
    with nf_run(
        tmp_path / "state",
        cfg,
        "--tls-listen",
        "127.0.0.1:0",
        "--transport-config",
        str(transport_file(pki, nms)),
    ) as daemon:
        line = wait_for(
            lambda: next((x for x in daemon.out if "NETCONF over TLS on" in x), None), timeout=5
        )
        port = int(line.rsplit(":", 1)[1])
        with connect_tls(port, pki, nms) as m:
            running = m.get_config("running").data_xml
        control = daemon.planes()["control"]
        os.kill(control, signal.SIGKILL)
        killed = time.monotonic()
        # at once: the connection waits in the supervisor's listen backlog
        with connect_tls(port, pki, nms, timeout=RESTART_LIMIT + 5) as m:
            assert m.get_config("running").data_xml == running
        back = time.monotonic() - killed
        print(f"TLS session served {back:.2f} s after kill -9 of the control plane")
        assert daemon.planes()["control"] != control
        assert back < RESTART_LIMIT, daemon.output()
        assert "BEGIN" not in daemon.output()


def test_a_tls_key_others_may_read_stops_the_boot(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    path = transport_file(pki, pki.client("nms"))
    pki.server.key_path.chmod(0o644)
    err = _fails(tmp_path / "state", "--tls-listen", "127.0.0.1:0", "--transport-config", str(path))
    key = pki.server.key_path
    assert err == (
        f"nf: {path}: private key {key} is readable or writable by group or others "
        f"(mode 0644); refused: chmod 600 {key}\n"
    )


def test_tls_listen_needs_the_transport_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [NF, "run", "--state-dir", str(tmp_path), "--tls-listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--tls-listen needs --transport-config FILE" in done.stderr
    bad = subprocess.run(
        [NF, "run", "--state-dir", str(tmp_path), "--tls-listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "--tls-listen wants HOST:PORT, got 'nowhere'" in bad.stderr
