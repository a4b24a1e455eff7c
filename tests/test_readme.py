"""The README's "Getting started" examples, run as written.

Each indented code block of that section up to "A real serial port" runs
in a shell from the repository's root, in order, against a real ``nf run``
(and ``nf sim``), with only what makes the test hermetic substituted: the
README's fixed ports (8300, 8301, 8302) by free ones, its /tmp path and
state directory by the test's own, and PASSWORD by the password the daemon
was given.  A block that starts a long-running program ("in a third
terminal") runs in the background.  Then the daemon is restarted, and the
configuration the examples copied to startup must be what it boots.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from relayhelpers import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "readme-password"


def blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Getting started", 1)[1].split("### A real serial port", 1)[0]
    found: list[str] = []
    current: list[str] = []
    for line in section.splitlines():
        if line.startswith("    ") or (current and not line.strip()):
            current.append(line[4:])
        elif current:
            found.append("\n".join(current).strip() + "\n")
            current = []
    if current:
        found.append("\n".join(current).strip() + "\n")
    return found


def test_the_getting_started_blocks_are_the_expected_ones() -> None:
    """So that a block added to the section is run (or this test is updated)."""
    found = blocks()
    assert [b.split()[0] for b in found] == [
        ".venv/bin/python",
        ".venv/bin/python",
        ".venv/bin/nf",
        ".venv/bin/python",
        ".venv/bin/python",
    ], found


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {"8300": free_port(), "8301": free_port(), "8302": free_port()}
        self.state = tmp / "state"
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def substitute(self, text: str) -> str:
        for fixed, port in self.ports.items():
            text = text.replace(fixed, str(port))
        text = text.replace("/tmp/nf-sim0", str(self.tmp / "nf-sim0"))
        return text.replace(".nf-state", str(self.state)).replace("PASSWORD", PASSWORD)

    def background(self, command: str, name: str) -> tuple[subprocess.Popen[str], str]:
        """Start ``command``; return it and its first line of output."""
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env=dict(os.environ, NF_ADMIN_PASSWORD=PASSWORD),
            start_new_session=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, f"{name} exited ({proc.wait()}):\n{self.shown()}"
        return proc, first

    def run(self, block: str) -> str:
        done = subprocess.run(
            ["bash", "-c", self.substitute(block)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}\n{self.shown()}"
        return done.stdout

    def start_nf(self) -> tuple[subprocess.Popen[str], str]:
        nf = ".venv/bin/nf run --listen 127.0.0.1:8300 --demo-port 8301 --state-dir .nf-state"
        return self.background(self.substitute(nf), "nf")

    def stop(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, self.shown()

    def shown(self) -> str:
        return "\n".join(f"--- {p.name}:\n{p.read_text()}" for p in self.logs if p.exists())

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.mark.skipif(sys.platform != "linux", reason="ptys and the lab are Linux's")
def test_getting_started_works_as_written(lab: Lab) -> None:
    get_config, demo_echo, sim, configure, device_echo = blocks()
    nf, banner = lab.start_nf()
    assert "configuration:" in banner and "demo.xml" in banner, banner
    assert "<serial-over-ip" in lab.run(get_config)
    assert lab.run(demo_echo) == "b'hello demo\\n'\n"
    _sim, pty = lab.background(lab.substitute(sim), "sim")
    assert re.fullmatch(r"/dev/pts/\d+\n", pty), pty
    assert (lab.tmp / "nf-sim0").resolve() == Path(pty.strip())
    lab.run(configure)
    assert lab.run(device_echo) == "b'hello device\\n'\n"
    # restarted, it boots the configuration copied to startup
    lab.stop(nf)
    nf, banner = lab.start_nf()
    assert "startup.xml" in banner, banner
    deadline = time.monotonic() + 10
    while True:  # the channel's port may still be opening
        try:
            assert lab.run(device_echo) == "b'hello device\\n'\n"
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    lab.stop(nf)
