"""``nf sim``: simulated serial devices on a pseudo-terminal, driven through
their slave side as the daemon would use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from simhelpers import open_raw, read_fd, sim


def test_echo_writes_back_what_it_reads_and_stops_on_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "ttyECHO"
    with sim("echo", "--link", str(link)) as dev:
        assert dev.path.startswith("/dev/pts/")
        assert os.readlink(link) == dev.path
        with open_raw(str(link)) as fd:
            payload = bytes(range(256)) * 8  # raw: no byte is translated or swallowed
            os.write(fd, payload)
            assert read_fd(fd, len(payload)) == payload
        # the port closed and opened again (a channel restarted): still echoing
        with open_raw(dev.path) as fd:
            os.write(fd, b"again\r\n")
            assert read_fd(fd, 7) == b"again\r\n"
        status, err = dev.stop()
    assert status == 0, err
    assert not link.exists() and not link.is_symlink()


def test_echo_refuses_a_link_over_a_real_file(tmp_path: Path) -> None:
    existing = tmp_path / "file"
    existing.write_text("keep me")
    out = subprocess.run(
        [sys.executable, "-m", "nf", "sim", "echo", "--link", str(existing)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 1
    assert "cannot create the device link" in out.stderr
    assert existing.read_text() == "keep me"
