"""NETCONF over the host's sshd (nf.northbound.subsystem, nf.subsystem).

The test plays sshd: it starts the real ``nf-subsystem`` helper with a pipe
on its standard input and one on its standard output, as sshd starts a
subsystem, and speaks NETCONF on its ends of them; the daemon is real.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DaemonFactory, Running
from lxml import etree
from relayhelpers import config
from test_planes import _children, nf_run

from nf import subsystem as helper
from nf.boot import BootError, bind_unix
from nf.northbound.subsystem import PipeStream

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
EOM = b"]]>]]>"
HELLO = f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.0'
HELLO += "</capability></capabilities></hello>"
SSH_CONNECTION = "192.0.2.7 50123 127.0.0.1 830"


class Sshd:
    """The test's side of the pipes sshd would hold, and the helper it started."""

    def __init__(self, sock: Path) -> None:
        to_helper, self.write = os.pipe()
        self.read, from_helper = os.pipe()
        env = dict(os.environ, SSH_CONNECTION=SSH_CONNECTION)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nf.subsystem", str(sock)],
            stdin=to_helper,
            stdout=from_helper,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(to_helper)
        os.close(from_helper)
        self.buf = b""
        self.message_id = 0

    def send(self, text: str) -> None:
        os.write(self.write, text.encode() + EOM)

    def receive(self, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while EOM not in self.buf:
            assert time.monotonic() < deadline, f"no reply; helper: {self.stderr()}"
            data = os.read(self.read, 65536)
            assert data, f"end of file before a whole message; helper: {self.stderr()}"
            self.buf += data
        message, _, self.buf = self.buf.partition(EOM)
        return message

    def rpc(self, body: str) -> etree._Element:
        self.message_id += 1
        self.send(f'<rpc xmlns="{NC}" message-id="{self.message_id}">{body}</rpc>')
        reply = etree.fromstring(self.receive())
        assert reply.get("message-id") == str(self.message_id)
        return reply

    def at_eof(self, timeout: float = 5.0) -> bool:
        """Whether the daemon closed the session's output (what sshd reads)."""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.read, False)
        while time.monotonic() < deadline:
            try:
                if not os.read(self.read, 65536):
                    return True
            except BlockingIOError:
                time.sleep(0.02)
        return False

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        for fd in (self.write, self.read):
            with suppress(OSError):
                os.close(fd)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@contextmanager
def sshd(sock: Path) -> Iterator[Sshd]:
    side = Sshd(sock)
    try:
        yield side
    finally:
        side.close()


def session_id(hello: bytes) -> int:
    return int(etree.fromstring(hello).findtext(f"{{{NC}}}session-id") or "0")


def sessions_of(reply: etree._Element) -> dict[int, etree._Element]:
    return {
        int(s.findtext(f"{{{NCM}}}session-id") or 0): s for s in reply.iter(f"{{{NCM}}}session")
    }


def test_a_session_through_the_helper(make_daemon: DaemonFactory) -> None:
    """The session's user is the account the helper runs as, its source the
    client of $SSH_CONNECTION, its transport netconf-ssh; close-session
    ends it, and the helper exits 0 (sshd's exit status)."""
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    with sshd(daemon.subsystem) as side:
        side.send(HELLO)
        sid = session_id(side.receive())
        assert sid > 0
        data = side.rpc("<get-config><source><running/></source></get-config>")
        assert data.find(f"{{{NC}}}data") is not None
        state = side.rpc(
            f'<get><filter type="subtree"><netconf-state xmlns="{NCM}"><sessions/>'
            "</netconf-state></filter></get>"
        )
        mine = sessions_of(state)[sid]
        assert mine.findtext(f"{{{NCM}}}username") == pwd.getpwuid(os.getuid()).pw_name
        assert mine.findtext(f"{{{NCM}}}source-host") == "192.0.2.7"
        assert mine.findtext(f"{{{NCM}}}transport") == "netconf-ssh"
        assert side.rpc("<close-session/>").find(f"{{{NC}}}ok") is not None
        assert side.at_eof()
        assert side.proc.wait(timeout=5) == 0


def test_the_client_going_away_ends_the_session(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None and daemon.daemon.server is not None
    server = daemon.daemon.server
    with sshd(daemon.subsystem) as side:
        side.send(HELLO)
        sid = session_id(side.receive())
        assert sid in server.session_ids()
        os.close(side.write)  # sshd: the client closed the channel
        assert side.proc.wait(timeout=5) == 0
        deadline = time.monotonic() + 5
        while sid in server.session_ids() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sid not in server.session_ids()


def test_kill_session_ends_the_helper(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    with sshd(daemon.subsystem) as side:
        side.send(HELLO)
        sid = session_id(side.receive())
        with daemon.connect() as other:
            other.kill_session(str(sid))
        assert side.at_eof()
        assert side.proc.wait(timeout=5) == 0


def test_a_connection_without_the_helpers_message_is_refused(
    make_daemon: DaemonFactory,
) -> None:
    """Bytes without descriptors, or too few of them: the connection is
    told why and closed, and the next helper's session works."""
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    for message, fds in ((b"hello\n", []), (helper.GREETING + b"\n", [0])):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(5)
            raw.connect(str(daemon.subsystem))
            if fds:
                raw.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(4))])
            else:
                raw.sendall(message)
            said = b""
            while data := raw.recv(1024):
                said += data
            assert said.startswith(b"refused: ")  # and closed by the daemon
    with sshd(daemon.subsystem) as side:
        side.send(HELLO)
        assert session_id(side.receive()) > 0


def test_the_daemon_stopping_ends_the_helper(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    with sshd(daemon.subsystem) as side:
        side.send(HELLO)
        side.receive()
        daemon.daemon.close()
        assert side.at_eof()
        assert side.proc.wait(timeout=5) == 0


def test_the_helper_without_a_daemon_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(helper, "RETRY_SECONDS", 0.0)
    assert helper.main([str(tmp_path / "none.sock")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nf-subsystem: cannot connect to {tmp_path / 'none.sock'}: ")
    assert err.count("\n") == 1
    assert helper.main([]) == 2


def test_a_client_that_reads_nothing_times_out() -> None:
    """A send waits for the client at most the stream's timeout."""
    reading, _writer = os.pipe()
    _reader, writing = os.pipe()
    stream = PipeStream(reading, writing)
    stream.settimeout(0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        stream.sendall(b"x" * (1 << 20))  # more than a pipe holds
    assert 0.15 < time.monotonic() - started < 2
    stream.close()


def test_wake_ends_a_waiting_read() -> None:
    reading, writer = os.pipe()
    _reader, writing = os.pipe()
    stream = PipeStream(reading, writing)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    old = signal.signal(signal.SIGALRM, lambda *_: stream.wake())
    try:
        with pytest.raises(EOFError):
            stream.recv(10)
    finally:
        signal.signal(signal.SIGALRM, old)
        stream.close()
        os.close(writer)


def test_bind_unix_replaces_a_stale_socket_and_refuses_a_live_one(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    live = bind_unix(path)
    try:
        assert (path.stat().st_mode & 0o777) == 0o660
        with pytest.raises(BootError, match="a daemon listens there already"):
            bind_unix(path)
    finally:
        live.close()


@dataclass
class RealSshd:
    """A private sshd whose netconf subsystem is nf-subsystem to ``daemon``."""

    daemon: Running
    port: int
    user: str
    key: Path


@pytest.fixture
def real_sshd(make_daemon: DaemonFactory, tmp_path: Path) -> Iterator[RealSshd]:
    """sshd_config's ``Subsystem netconf .../nf-subsystem SOCKET``, the
    current account logging in with a key."""
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    script = Path(sys.executable).parent / "nf-subsystem"  # as installed
    assert script.exists(), "the nf-subsystem console script is not installed"
    for key in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / key)], check=True
        )
    (tmp_path / "authorized_keys").write_text((tmp_path / "client.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path / 'host'}\n"
        f"PidFile {tmp_path / 'sshd.pid'}\nAuthorizedKeysFile {tmp_path / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nUseDNS no\nLogLevel ERROR\n"
        f"Subsystem netconf {script} {daemon.subsystem}\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = tmp_path / "sshd.log"
    with log.open("wb") as err:
        sshd_proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(tmp_path / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert sshd_proc.poll() is None, f"sshd exited: {log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"sshd did not listen: {log.read_text()}"
                time.sleep(0.05)
        yield RealSshd(daemon, port, pwd.getpwuid(os.getuid()).pw_name, tmp_path / "client")
    finally:
        sshd_proc.terminate()
        sshd_proc.wait(timeout=5)


def test_ncclient_through_a_real_sshd(real_sshd: RealSshd) -> None:
    """ncclient logging in to sshd with a key: the session is the daemon's,
    as the account sshd logged in."""
    from ncclient import manager

    with manager.connect(
        host="127.0.0.1",
        port=real_sshd.port,
        username=real_sshd.user,
        key_filename=str(real_sshd.key),
        hostkey_verify=False,
        allow_agent=False,
        look_for_keys=False,
        timeout=15,
    ) as m:
        assert b"serial-over-ip" in etree.tostring(m.get_config("running").data)
        state = m.get(("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>'))
        mine = sessions_of(state.data)[int(m.session_id)]
        assert mine.findtext(f"{{{NCM}}}username") == real_sshd.user
        assert mine.findtext(f"{{{NCM}}}source-host") == "127.0.0.1"


@pytest.mark.timeout(60, method="thread")  # scrapli's SIGALRM cancels the signal method's
def test_scrapli_system_transport_through_a_real_sshd(real_sshd: RealSshd) -> None:
    """scrapli's system transport runs ``ssh -tt -s netconf``: sshd gives
    the subsystem a terminal, which nf-subsystem makes raw; a read goes
    through, and a write is NACM's to deny, as to any user but admin."""
    from scrapli_netconf.driver import NetconfDriver

    conn = NetconfDriver(
        host="127.0.0.1",
        port=real_sshd.port,
        auth_username=real_sshd.user,
        auth_private_key=str(real_sshd.key),
        auth_strict_key=False,
        transport="system",
        timeout_socket=20,
        timeout_transport=20,
        timeout_ops=20,
    )
    conn.open()
    try:
        soip = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
        reply = conn.get_config(source="running")
        assert not reply.failed, reply.result
        assert f'<serial-over-ip xmlns="{soip}">' in reply.result
        # the account is an ordinary NACM user: writing is denied by default
        config = (
            f'<config><serial-over-ip xmlns="{soip}"><serial-port><name>demo</name>'
            "<description>through sshd</description></serial-port></serial-over-ip></config>"
        )
        denied = conn.edit_config(config=config, target="candidate")
        assert denied.failed and "<error-tag>access-denied</error-tag>" in denied.result
    finally:
        conn.close()


def test_a_terminal_is_made_raw(make_daemon: DaemonFactory) -> None:
    """A client that asked sshd for a terminal (scrapli's ssh -tt): the
    helper puts it in raw mode, so the session's bytes are neither echoed
    nor rewritten (CR/LF) by the line discipline."""
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nf.subsystem", str(daemon.subsystem)],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    try:
        buf = b""
        deadline = time.monotonic() + 10
        while EOM not in buf:
            assert time.monotonic() < deadline, buf
            buf += os.read(master, 65536)
        hello, _, rest = buf.partition(EOM)
        assert hello.startswith(b"<?xml") and b"\r\n" not in hello
        os.write(master, HELLO.encode() + EOM)
        os.write(
            master,
            f'<rpc xmlns="{NC}" message-id="1"><get-config><source>'
            f"<running/></source></get-config></rpc>".encode()
            + EOM,
        )
        while EOM not in rest:
            assert time.monotonic() < deadline, rest
            rest += os.read(master, 65536)
        reply = rest.partition(EOM)[0]
        assert reply.startswith(b"<?xml"), reply[:200]  # not our hello echoed back
        assert etree.fromstring(reply).get("message-id") == "1"
    finally:
        os.close(master)
        proc.wait(timeout=10)


def test_nf_run_serves_the_socket_across_a_control_plane_restart(tmp_path: Path) -> None:
    """``nf run --subsystem-socket``: the supervisor binds the socket and
    hands it to each control plane, so a helper that connects while a
    control plane restarts waits and gets the new one; at the stop the
    socket file goes."""
    short = Path(tempfile.mkdtemp(prefix="nf-"))
    sock = short / "netconf.sock"
    cfg = tmp_path / "empty.xml"
    cfg.write_text(config(""))
    try:
        with nf_run(tmp_path / "state", cfg, "--subsystem-socket", str(sock)) as daemon:
            assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o660
            helper = Path(sys.executable).parent / "nf-subsystem"
            deadline = time.monotonic() + 5
            while f"Subsystem netconf {helper} {sock}" not in daemon.output():  # the banner
                assert time.monotonic() < deadline, daemon.output()
                time.sleep(0.02)
            with sshd(sock) as side:
                side.send(HELLO)
                assert session_id(side.receive()) > 0
                assert side.rpc("<get-config><source><running/></source></get-config>") is not None
            control = _children(daemon.proc.pid)["control"]
            os.kill(control, signal.SIGKILL)
            with sshd(sock) as side:  # while the control plane restarts, or after
                side.send(HELLO)
                assert session_id(side.receive(timeout=30)) > 0, daemon.output()
                assert _children(daemon.proc.pid)["control"] != control
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(timeout=15) == 0, daemon.output()
            assert not sock.exists()
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_an_account_named_as_the_recovery_user_is_refused(
    make_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host account called admin is not nf's admin: NACM's recovery
    session is never given to a name sshd logged in."""
    from nf.northbound import subsystem

    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    monkeypatch.setattr(subsystem, "peer_user", lambda conn: "admin")
    proc = subprocess.run(
        [sys.executable, "-m", "nf.subsystem", str(daemon.subsystem)],
        input=b"",
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert "admin is nf's own recovery user" in proc.stderr.decode()


def test_descriptors_that_are_files_are_refused(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    proc = subprocess.run(
        [sys.executable, "-m", "nf.subsystem", str(daemon.subsystem)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=20,
    )
    assert proc.returncode == 1
    assert "not a pipe, socket or terminal" in proc.stderr.decode()


def test_two_helpers_at_once_are_two_sessions(make_daemon: DaemonFactory) -> None:
    """Two sshd sessions at the same moment: each its own NETCONF session,
    their rpcs interleaved, neither waiting for the other."""
    daemon = make_daemon(subsystem=True)
    assert daemon.subsystem is not None
    with sshd(daemon.subsystem) as one, sshd(daemon.subsystem) as two:
        one.send(HELLO)
        two.send(HELLO)
        ids = {session_id(one.receive()), session_id(two.receive())}
        assert len(ids) == 2 and 0 not in ids
        for _ in range(3):
            one.message_id += 1
            two.message_id += 1
            get = "<get-config><source><running/></source></get-config>"
            one.send(f'<rpc xmlns="{NC}" message-id="{one.message_id}">{get}</rpc>')
            two.send(f'<rpc xmlns="{NC}" message-id="{two.message_id}">{get}</rpc>')
            for side in (two, one):
                reply = etree.fromstring(side.receive())
                assert reply.get("message-id") == str(side.message_id)
                assert reply.find(f"{{{NC}}}data") is not None
