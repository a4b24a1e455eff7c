"""Helpers for the ``nf sim`` tests: a simulator as a child process whose
first stdout line is its device path, and the pty's slave opened raw."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    path: str

    def stop(self, timeout: float = 10.0) -> tuple[int, str]:
        """SIGTERM, then the exit status and what it said on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err.decode(errors="replace")


@contextlib.contextmanager
def sim(*args: str, timeout: float = 20.0) -> Iterator[Sim]:
    """``nf sim ARGS`` running; its stderr is shown when it fails to start."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nf", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"nf sim {' '.join(args)} printed no path:\n{err.decode()}")
    running = Sim(proc, line)
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def open_raw(path: str) -> Iterator[int]:
    """The slave side, as the daemon would open it: raw, non-blocking."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield fd
    finally:
        os.close(fd)


def read_fd(fd: int, n: int, timeout: float = 5.0) -> bytes:
    """Up to ``n`` bytes from a non-blocking fd; fewer on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            with contextlib.suppress(BlockingIOError):
                data += os.read(fd, n - len(data))
    return data


def nf_sim(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``nf sim ARGS`` to completion (the checker)."""
    return subprocess.run(
        [sys.executable, "-m", "nf", "sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
