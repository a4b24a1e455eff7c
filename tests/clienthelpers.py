"""Running third-party NETCONF clients (netconf-console2, yangcli, Ansible) as
subprocesses against the in-process daemon.

Each run is bounded in time, and whatever goes wrong (exit status, timeout,
a client that reports an error but still exits 0, as yangcli's batch mode
does) fails the test with the client's own stdout and stderr, so that the
failure shows what the client saw from the server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# Wall-clock bound of one client run; a client that hangs on a server that
# stopped answering fails the test instead of the suite's global timeout.
TIMEOUT = 60.0


@dataclass(frozen=True)
class Output:
    """What one client run printed, and how it ended."""

    argv: Sequence[str]
    returncode: int | None  # None: killed at the time limit
    stdout: str
    stderr: str

    def describe(self) -> str:
        """The whole run, for an assertion message."""
        status = "timed out" if self.returncode is None else f"exit status {self.returncode}"
        return (
            f"$ {' '.join(self.argv)}\n({status})\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> Output:
    """Run a client to its end (stdin closed), within ``timeout`` seconds."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            cwd=cwd,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        return Output(argv, None, _text(expired.stdout), _text(expired.stderr))
    return Output(argv, proc.returncode, proc.stdout, proc.stderr)


def run_ok(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> Output:
    """``run``, failing the test unless the client exits 0."""
    out = run(argv, env=env, cwd=cwd, timeout=timeout)
    assert out.returncode == 0, out.describe()
    return out


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def venv_tool(name: str) -> str:
    """A console script installed by the test extras beside this interpreter."""
    exe = Path(sys.executable).parent / name
    if not exe.exists():
        pytest.fail(
            f"{name} is required for the client tests (tools/bootstrap.sh --test installs it)",
            pytrace=False,
        )
    return str(exe)


def system_tool(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(
            f"{name} is required for the client tests (install the Debian package {package}; "
            "tools/bootstrap.sh --test does)",
            pytrace=False,
        )
    return exe


def ansible_env(tmp_path: Path) -> dict[str, str]:
    """Everything Ansible reads or writes stays under tmp_path: no ~/.ansible,
    no ansible.cfg or collections from the machine."""
    home = tmp_path / "ansible"
    (home / "tmp").mkdir(parents=True)
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        HOME=str(tmp_path),
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),  # "remote" is this machine too
        ANSIBLE_PERSISTENT_CONTROL_PATH_DIR=str(home / "pc"),
        ANSIBLE_COLLECTIONS_PATH=str(home / "collections"),  # only the pip-installed ones
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_PERSISTENT_CONNECT_TIMEOUT="20",
        ANSIBLE_PERSISTENT_COMMAND_TIMEOUT="20",
        ANSIBLE_NOCOLOR="1",
    )
    return env
