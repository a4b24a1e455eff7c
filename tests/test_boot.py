"""``nf run`` that cannot start: exit status 1 within 2 s, one line on stderr
naming the address or file and the cause; and an admin password that is
never lost.  Real ``nf run`` processes (test_startup's ``_start``)."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
from relayhelpers import address_not_here
from test_startup import SOIP, _start, _stop

from nf.app import DEMO_CONFIG
from nf.boot import open_state_dir
from nf.northbound.auth import Users

pytestmark = pytest.mark.timing  # tools/test.sh runs these alone, not beside other tests

LIMIT = 2.0
"""Seconds from the start of the process to its exit (the requirement)."""


def _fails(state: Path, *extra: str, password: str | None = "pw") -> str:
    """Run ``nf run`` expecting it not to start: its stderr, once it has
    exited with status 1 within LIMIT and printed nothing on stdout."""
    started = time.monotonic()
    proc, port = _start(state, *extra, password=password)
    elapsed = time.monotonic() - started
    assert proc.stdout is not None and proc.stderr is not None
    if port:  # it started after all: stop it, then fail showing its output
        _stop(proc)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert (port, proc.returncode) == (0, 1), f"exit {proc.returncode}\n{out}{err}"
    assert out == "", out
    assert elapsed < LIMIT, f"exited after {elapsed:.2f} s: {err}"
    assert "Traceback" not in err, err
    return err


def test_a_busy_netconf_port(tmp_path: Path) -> None:
    """Named with its address; no admin password generated that nobody saw."""
    state = tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _fails(state, "--listen", f"127.0.0.1:{port}", password=None)
    assert err == f"nf: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert not (state / "users.json").exists()


def test_a_subsystem_socket_it_cannot_make(tmp_path: Path) -> None:
    """--subsystem-socket in a directory that does not exist: named, with its cause."""
    where = tmp_path / "no-such-dir" / "netconf.sock"
    err = _fails(tmp_path / "state", "--subsystem-socket", str(where))
    assert err == f"nf: cannot listen on {where}: No such file or directory\n"


def test_a_listen_address_not_on_this_host(tmp_path: Path) -> None:
    address = address_not_here()
    err = _fails(tmp_path, "--listen", f"{address}:0")
    assert err == f"nf: cannot listen on {address}:0: Cannot assign requested address\n"


def test_a_busy_channel_port_refuses_the_boot(tmp_path: Path) -> None:
    """A data-plane socket the initial configuration needs: the same last
    line, with the channel, address and cause; before it only the daemon's
    log records (which say it first).  A relay channel that fails later
    (a commit) is refused atomically instead, and the daemon keeps running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "busy.xml"
        demo = DEMO_CONFIG.read_text()
        assert "<port>8301</port>" in demo
        config.write_text(demo.replace("<port>8301</port>", f"<port>{port}</port>"))
        err = _fails(tmp_path / "state", "--config", str(config))
    last = err.splitlines()[-1]
    assert last.startswith("nf: initial configuration refused: "), err
    assert last.endswith(
        f"channel demo: cannot bind TCP 127.0.0.1:{port}: Address already in use [in-use]"
    ), err
    log_record = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) nf")
    assert all(log_record.match(line) for line in err.splitlines()[:-1]), err


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (None, "No such file or directory"),
        ("<serial-over-ip", "not well-formed XML: "),
        (
            f'<serial-over-ip xmlns="{SOIP}"><serial-port><name>a</name>'
            "<baud-rate>1</baud-rate></serial-port></serial-over-ip>",
            "invalid configuration: /soip:serial-over-ip/soip:serial-port[soip:name='a']",
        ),
    ],
    ids=["missing", "not-xml", "invalid"],
)
def test_a_bad_config_file(tmp_path: Path, content: str | None, cause: str) -> None:
    config = tmp_path / "boot.xml"
    if content is not None:
        config.write_text(content)
    err = _fails(tmp_path / "state", "--config", str(config))
    assert err.startswith(f"nf: cannot boot: {config}: {cause}"), err
    assert len(err.splitlines()) == 1, err
    if content and "baud-rate" in content:  # two errors: the first, and where to see all
        assert err.endswith(f"(and 1 more: nf validate {config})\n"), err


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_a_state_dir_that_cannot_be_one(tmp_path: Path, where: str) -> None:
    """Permission bits do not stop root (the tests' user), so the state
    directory is made impossible instead: a regular file, or a path under
    one."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    state = blocker if where == "a-file" else blocker / "state"
    err = _fails(state)
    assert err == f"nf: state directory {state}: Not a directory\n"


def test_a_corrupt_users_file(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("{")
    err = _fails(tmp_path, password=None)
    assert err.startswith(f"nf: {tmp_path / 'users.json'}: not a users file: "), err
    assert len(err.splitlines()) == 1, err


def test_a_corrupt_host_key(tmp_path: Path) -> None:
    key = tmp_path / "ssh_host_ecdsa_key"
    key.write_text("garbage")
    key.chmod(0o600)
    err = _fails(tmp_path)
    assert err == f"nf: SSH host key {key}: not a valid EC private key file\n"


def test_a_host_key_others_may_read_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "ssh_host_ecdsa_key"
    key.write_text("-----BEGIN EC PRIVATE KEY-----\nnot-shown\n")
    key.chmod(0o640)
    err = _fails(tmp_path)
    assert err == (
        f"nf: SSH host key {key}: readable or writable by group or others (mode 0640); "
        f"refused: chmod 600 {key}\n"
    )
    assert "not-shown" not in err


def test_users_that_cannot_be_saved_once_the_daemon_runs(tmp_path: Path) -> None:
    """The last step of the boot (the confirmed-commit timer and the NETCONF
    server are running by then) fails and the process still exits: it
    used to wait for the timer task until SIGINT.  users.json is written
    through users.tmp; a directory there stops the write, even for root."""
    (tmp_path / "users.tmp").mkdir()
    err = _fails(tmp_path)
    assert err.splitlines()[-1] == f"nf: {tmp_path / 'users.tmp'}: Is a directory", err


def test_the_state_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_state_dir(Path("relative")) == tmp_path / "relative"
    assert (tmp_path / "relative").is_dir()


def test_the_generated_admin_password_is_never_lost(tmp_path: Path) -> None:
    """Stored only by a start that prints it; every later start says how
    to reset it and where the state directory is."""
    state = tmp_path / "state"
    _fails(state, "--config", str(tmp_path / "missing.xml"), password=None)
    assert not (state / "users.json").exists()

    proc, port = _start(state, password=None)
    try:
        assert proc.stdout is not None
        assert port, f"did not start: {proc.stderr.read() if proc.stderr else None}"
        assert proc.stdout.readline() == f"  state directory: {state}\n"
        line = proc.stdout.readline()
        assert line.startswith("  generated admin password (shown once, stored hashed): "), line
        password = line.split()[-1]
        assert Users(state / "users.json").check_password("admin", password)
        _stop(proc)
    finally:
        proc.kill()

    proc, port = _start(state, password=None)
    try:
        assert proc.stdout is not None
        assert port, f"did not start: {proc.stderr.read() if proc.stderr else None}"
        assert proc.stdout.readline() == f"  state directory: {state}\n"
        assert proc.stdout.readline() == (
            f"  admin password: as set before; to reset it: nf user passwd admin "
            f"--state-dir {state}\n"
        )
        _stop(proc)
    finally:
        proc.kill()
    assert Users(state / "users.json").check_password("admin", password)
