"""The daemon in a child process, for tests that may freeze it.

The in-process ``make_daemon`` fixture shares the test's interpreter, so a
daemon thread stuck in one long C call (a regular expression holds the GIL
for the whole match) freezes the test too: its read timeouts, pytest-timeout
and the probing monitor session all stop with it.  In a child process the
test keeps its own clock, can measure how long a second client waits, and
can kill what does not stop on SIGTERM.

The child runs ``nf.app.serve`` like ``nf run`` does, but with the
NullRuntime: configurations a fuzzer makes up must not open sockets on
arbitrary addresses or connect anywhere.  Its log (INFO, with tracebacks)
goes to a file, so a test can look for unhandled exceptions and show the
log when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import add_user
from rawclient import BASE_10, BASE_11, RawClient

from nf.northbound.auth import USERS_FILE, Users

PASSWORD = "abuse-password"

_LAUNCH = """
import logging, sys
from pathlib import Path
import anyio
from nf.app import serve
from nf.boot import Listen
from nf.runtime.transaction import NullRuntime
logging.basicConfig(level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sys.exit(anyio.run(serve, Path(sys.argv[1]), Listen("127.0.0.1", 0).bind(), None, NullRuntime()))
"""


@dataclass
class ChildDaemon:
    proc: subprocess.Popen[str]
    port: int
    log_path: Path
    host: str = "127.0.0.1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        """The end of the daemon's log, for assertion messages."""
        text = self.log()
        return text[-chars:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def client(self, chunked: bool = True, timeout: float = 5.0) -> RawClient:
        """A logged-in raw session after the hello exchange (base:1.1 or 1.0 only)."""
        client = RawClient(self.host, self.port, "admin", PASSWORD, timeout=timeout).connect()
        try:
            client.hello((BASE_10, BASE_11) if chunked else (BASE_10,))
        except BaseException:
            client.close()
            raise
        assert client.chunked == chunked
        return client

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL after 5 s; True when SIGTERM was enough."""
        if self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return False


@contextlib.contextmanager
def child_daemon(tmp_path: Path) -> Iterator[ChildDaemon]:
    """Start the daemon on 127.0.0.1:ephemeral on the demo configuration,
    with the admin password in users.json (a quick_hash: every session of
    the fuzzer and of each race logs in)."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    add_user(Users(state / USERS_FILE), "admin", PASSWORD)
    log_path = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k != "NF_ADMIN_PASSWORD"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, str(state)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    port = 0
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "NETCONF over SSH on 127.0.0.1:" in line:
            port = int(line.split("127.0.0.1:")[1].split()[0])
            break
    if not port:
        proc.kill()
        proc.wait(timeout=5)
        raise AssertionError(f"daemon did not start:\n{log_path.read_text(errors='replace')}")
    daemon = ChildDaemon(proc, port, log_path)
    try:
        yield daemon
    finally:
        daemon.stop()
        proc.stdout.close()
