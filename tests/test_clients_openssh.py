"""OpenSSH's own client, ``ssh -s netconf``, against the daemon.

What ssh reports is what scripts see: a session closed by close-session
(or kill-session) must end with exit status 0, which needs the server to
send exit-status 0 and EOF and close the channel before the connection.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

import paramiko
import pytest
from conftest import Running
from rawclient import BASE_10, EOM, hello_xml, rpc_xml

TIMEOUT = 30.0


@pytest.fixture
def ssh_key(daemon: Running, tmp_path: Path) -> Path:
    """A private key file for ssh -i, authorized for the daemon's admin."""
    key = paramiko.ECDSAKey.generate(bits=256)
    path = tmp_path / "id_ecdsa"
    key.write_private_key_file(str(path))
    path.chmod(0o600)
    daemon.daemon.users.add_key(daemon.username, f"{key.get_name()} {key.get_base64()} test")
    return path


def ssh_command(daemon: Running, key: Path) -> list[str]:
    binary = shutil.which("ssh")
    assert binary is not None, "OpenSSH client missing: run tools/bootstrap.sh --test"
    command = [
        binary,
        "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR",
        "-i", str(key),
        "-p", str(daemon.port),
        f"{daemon.username}@{daemon.host}",
        "-s", "netconf",
    ]  # fmt: skip
    return command


def ssh(daemon: Running, key: Path, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ssh_command(daemon, key), input=stdin, capture_output=True, timeout=TIMEOUT, check=False
    )


def read_until(stream: IO[bytes], marker: bytes, timeout: float = TIMEOUT) -> bytes:
    """Read a pipe until ``marker`` arrives; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} within {timeout} s: {data!r}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"end of output before {marker!r}: {data!r}"
            data += chunk
    return data


def test_close_session_ends_ssh_with_status_0(daemon: Running, ssh_key: Path) -> None:
    started = time.monotonic()
    done = ssh(
        daemon,
        ssh_key,
        hello_xml([BASE_10]) + EOM + rpc_xml("<close-session/>", "bye") + EOM,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b'message-id="bye"' in done.stdout
    assert b"<ok/>" in done.stdout.split(b'message-id="bye"')[1]
    assert done.stderr == b""
    # the client closes at once, so the server's wait for it costs nothing
    assert time.monotonic() - started < 10


@pytest.mark.timing  # ssh must close its side within the server's wait (CLOSE_LINGER, 1 s)
def test_kill_session_ends_ssh_with_status_0(daemon: Running, ssh_key: Path) -> None:
    """The victim's ssh keeps its stdin open; the server closes the channel
    (after at most its short wait for the client) and ssh exits 0."""
    proc = subprocess.Popen(
        ssh_command(daemon, ssh_key),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(hello_xml([BASE_10]) + EOM)
        proc.stdin.flush()
        hello = read_until(proc.stdout, EOM)
        found = re.search(rb"<session-id>(\d+)</session-id>", hello)
        assert found is not None, hello
        with daemon.connect() as m:
            m.kill_session(found.group(1).decode())
        returncode = proc.wait(timeout=TIMEOUT)
        assert returncode == 0, proc.communicate()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
