#!/usr/bin/env python3
"""Benchmark the NETCONF northbound over real SSH, against yuma123 netconfd.

Starts ``nf run`` as a subprocess on a loopback port and times, with a raw
NETCONF client of its own (paramiko, RFC 6242 chunked framing, no polling):

* get-config of running with 10 channels;
* edit-config of one channel's keepalive (toggled, so every commit changes
  something) in candidate, then commit, which includes the prepare/apply of
  whatever runtime ``nf run`` has;
* edit-config then commit creating 1000 channels (and their serial ports);
* get-config and get of the whole tree with 1000 channels;
* 50 sessions opened at once, each doing 10 get-config.

Baseline, in the same invocation: yuma123 ``netconfd`` (Debian package
``netconfd``: a pure datastore) behind a private OpenSSH ``sshd`` on another
loopback port, loaded with the same YANG module, timed with the same client
on the same operations.  Without netconfd/sshd installed the baseline is
skipped with a note.  Prints median, p99 and min per operation, the ratio
ours/netconfd of the medians, the target and PASS/FAIL.

    .venv/bin/python tools/bench_netconf.py [--quick] [--no-baseline] [--no-pin]

``--paired ROUNDS`` compares instead only the two small cases with
netconfd, both servers up at once and measured in alternating blocks
(``--per-round`` operations of each case on one server, then on the
other), and prints the median of the per-round ratios: drift of this
noisy machine then meets both alike.

``--scale 10,1000,10000`` measures instead how the cost grows with the
configuration (issue "Scale"): for each size N, ``nf run`` booted from N
loop:// channels: boot time, RSS of the supervisor and both planes, one-leaf
edit+commit, a filtered <get> of one channel's state (XPath and subtree),
a full <get> (up to 1000 channels); and on the smallest size, one commit
creating each larger N.  Ratios are against the smallest size, same run.

Servers run on CPU 1 and this client on CPU 0 (``taskset``), unless
``--no-pin``.  All traffic stays on 127.0.0.1.  Exit status 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

ROOT = Path(__file__).resolve().parent.parent
YANG_DIR = ROOT / "yang"
MODULE = "nf-serial-over-ip"
NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
HOST = "127.0.0.1"
PASSWORD = "bench-password"
SERVER_CPU = "1"
CLIENT_CPU = "0"
BASE_CHANNELS = 10
BIG_CHANNELS = 1000

RPC_ERROR = re.compile(rb"<(?:[\w.-]+:)?rpc-error[\s>]")
OK = re.compile(rb"<(?:[\w.-]+:)?ok\s*/>")


# -- configurations ----------------------------------------------------------------


def entries(n: int, prefix: str, port_base: int) -> str:
    """N loop:// serial ports and N TCP server channels on distinct loopback ports."""
    ports = "".join(
        f"<serial-port><name>{prefix}{i}</name><device>loop://</device></serial-port>"
        for i in range(n)
    )
    channels = "".join(
        f"<channel><name>{prefix}{i}</name><serial-port>{prefix}{i}</serial-port>"
        f"<mode>server</mode><listen><address>127.0.0.1</address>"
        f"<port>{port_base + i}</port></listen></channel>"
        for i in range(n)
    )
    return ports + channels


def document(n: int, port_base: int = 20000) -> str:
    """The base configuration as a file for ``nf run --config``."""
    return f'<serial-over-ip xmlns="{NS}">{entries(n, "c", port_base)}</serial-over-ip>\n'


def edit(body: str, default_operation: str | None = None) -> bytes:
    op = f"<default-operation>{default_operation}</default-operation>" if default_operation else ""
    return (
        f"<edit-config><target><candidate/></target>{op}"
        f'<config><serial-over-ip xmlns="{NS}">{body}</serial-over-ip></config></edit-config>'
    ).encode()


GET_CONFIG = b"<get-config><source><running/></source></get-config>"
GET = b"<get/>"
COMMIT = b"<commit/>"


def keepalive(value: int) -> bytes:
    return edit(f"<channel><name>c0</name><keepalive>{value}</keepalive></channel>")


CREATE_BIG = edit(entries(BIG_CHANNELS, "b", 21000))
RESET = edit(entries(BASE_CHANNELS, "c", 20000), "replace")


# -- a raw NETCONF client ----------------------------------------------------------


class NetconfError(Exception):
    pass


class RawSession:
    """NETCONF over SSH with nothing in between: one rpc, one blocking read of its reply."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str | None = None,
        pkey: paramiko.PKey | None = None,
        timeout: float = 60.0,
    ) -> None:
        sock = socket.create_connection((HOST, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = paramiko.Transport(sock)
        try:
            self.transport.start_client(timeout=timeout)  # host key: loopback, throwaway keys
            if pkey is not None:
                self.transport.auth_publickey(username, pkey)
            else:
                self.transport.auth_password(username, password or "")
            self.channel = self.transport.open_session(timeout=timeout)
            self.channel.settimeout(timeout)
            self.channel.invoke_subsystem("netconf")
            self.buf = bytearray()
            self.message_id = 0
            hello = (
                f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{NC_NS}"><capabilities>'
                f"<capability>{BASE_10}</capability><capability>{BASE_11}</capability>"
                "</capabilities></hello>"
            ).encode()
            self.channel.sendall(hello + EOM)
            server_hello = self._read_eom()
            self.chunked = BASE_11.encode() in server_hello
        except BaseException:
            self.transport.close()
            raise

    def _fill(self) -> None:
        data = self.channel.recv(1 << 20)
        if not data:
            raise NetconfError("server closed the session")
        self.buf += data

    def _read_eom(self) -> bytes:
        start = 0
        while (idx := self.buf.find(EOM, start)) == -1:
            start = max(0, len(self.buf) - len(EOM) + 1)
            self._fill()
        msg = bytes(self.buf[:idx])
        del self.buf[: idx + len(EOM)]
        return msg

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        pos = 0
        while True:
            while len(self.buf) < pos + 4:
                self._fill()
            if self.buf[pos : pos + 2] != b"\n#":
                raise NetconfError(f"bad chunk header {bytes(self.buf[pos : pos + 12])!r}")
            if self.buf[pos + 2 : pos + 4] == b"#\n":
                del self.buf[: pos + 4]
                return b"".join(parts)
            while (nl := self.buf.find(b"\n", pos + 2)) == -1:
                self._fill()
            size = int(self.buf[pos + 2 : nl])
            while len(self.buf) < nl + 1 + size:
                self._fill()
            # one copy out of the buffer (a slice of a bytearray is a
            # second one: 1 MB of a <get> copied twice held the GIL from
            # paramiko's reader thread for a millisecond)
            with memoryview(self.buf) as view:
                parts.append(bytes(view[nl + 1 : nl + 1 + size]))
            pos = nl + 1 + size

    def send(self, body: bytes) -> None:
        self.message_id += 1
        msg = b'<rpc xmlns="%s" message-id="%d">%s</rpc>' % (
            NC_NS.encode(),
            self.message_id,
            body,
        )
        self.channel.sendall(b"\n#%d\n%s\n##\n" % (len(msg), msg) if self.chunked else msg + EOM)

    def receive(self) -> bytes:
        return self._read_chunked() if self.chunked else self._read_eom()

    def rpc(self, body: bytes) -> bytes:
        """Send one rpc and return its reply; raise NetconfError on <rpc-error>."""
        self.send(body)
        return check(self.receive())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send(b"<close-session/>")
            self.receive()
        self.transport.close()


def check(reply: bytes, want_ok: bool = False) -> bytes:
    if RPC_ERROR.search(reply):
        raise NetconfError(reply[:600].decode(errors="replace"))
    if want_ok and not OK.search(reply):
        raise NetconfError(f"expected <ok/>: {reply[:300]!r}")
    return reply


def timed(session: RawSession, body: bytes, want_ok: bool = False) -> tuple[float, bytes]:
    """Seconds from the first byte sent to the last byte of the reply; checked after."""
    t0 = time.perf_counter()
    session.send(body)
    reply = session.receive()
    elapsed = time.perf_counter() - t0
    check(reply, want_ok)
    return elapsed, reply


# -- servers under test ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")


def pinned(cmd: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", SERVER_CPU, *cmd] if pin and shutil.which("taskset") else cmd


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Server:
    name: str
    port: int
    username: str
    password: str | None = None
    pkey: paramiko.PKey | None = None
    pid: int | None = None  # of the server process, to attach a profiler (py-spy record -p)
    boot: float = 0.0  # seconds from start to the banner (ours)
    roots: tuple[int, ...] = ()
    """The processes that are the server with all they start (ours: the
    supervisor; netconfd: netconfd and the sshd in front of it), whose CPU
    time is the server's (``cpu``)."""

    def connect(self) -> RawSession:
        return RawSession(self.port, self.username, self.password, self.pkey)


@contextlib.contextmanager
def ours(
    tmp: Path,
    pin: bool,
    nf: list[str] | None = None,
    port_base: int = 20000,
    channels: int = BASE_CHANNELS,
    extra: tuple[str, ...] = (),
    config_text: str | None = None,
    name: str = "ours",
) -> Iterator[Server]:
    """``nf run`` on a free loopback port, booted from a configuration of
    ``channels`` channels (listening from ``port_base`` on), or ``config_text``;
    ``extra``: more arguments of nf run.  Its files are ``tmp/name*``."""
    config = tmp / f"{name}-config.xml"
    config.write_text(config_text or document(channels, port_base))
    port = free_port()
    if nf is None:
        venv_nf = ROOT / ".venv" / "bin" / "nf"
        nf = [str(venv_nf) if venv_nf.exists() else "nf"]
    cmd = [*nf, "run", "--listen", f"{HOST}:{port}", *extra]
    cmd += ["--state-dir", str(tmp / f"{name}-state"), "--config", str(config)]
    log = (tmp / f"{name}.log").open("wb")
    # as installed: bytecode cached (pip compiles it; a shell that sets
    # PYTHONDONTWRITEBYTECODE made every start compile nf again, 0.15 s a plane)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NF_ADMIN_PASSWORD"] = PASSWORD
    started = time.perf_counter()
    proc = subprocess.Popen(pinned(cmd, pin), stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"nf run exited ({proc.wait()}); see {tmp / f'{name}.log'}")
            if b"NETCONF over SSH on" in line:
                break
        booted = time.perf_counter() - started
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the rest
        yield Server(
            name, port, "admin", password=PASSWORD, pid=proc.pid, boot=booted, roots=(proc.pid,)
        )
    finally:
        stop(proc)
        log.close()


NETCONFD = "/usr/sbin/netconfd"
SUBSYSTEM = "/usr/sbin/netconf-subsystem"
SSHD = "/usr/sbin/sshd"


def baseline_missing() -> str | None:
    missing = [p for p in (NETCONFD, SUBSYSTEM, SSHD) if not os.access(p, os.X_OK)]
    if not shutil.which("ssh-keygen"):
        missing.append("ssh-keygen")
    if missing:
        return (
            f"baseline skipped: {', '.join(missing)} not installed "
            "(apt-get install netconfd openssh-server)"
        )
    if os.geteuid() != 0:
        return "baseline skipped: the private sshd needs root"
    return None


def without_actions(module: str) -> str:
    """``module`` (YANG text) without its ``action`` statements."""
    out: list[str] = []
    depth = 0  # inside an action: its brace depth
    for line in module.splitlines(keepends=True):
        if depth == 0 and line.lstrip().startswith("action "):
            depth = line.count("{") - line.count("}")
            continue
        if depth > 0:
            depth += line.count("{") - line.count("}")
            continue
        out.append(line)
    return "".join(out)


@contextlib.contextmanager
def private_sshd(
    base: Path, subsystem: str, pin: bool, port: int | None = None
) -> Iterator[tuple[int, paramiko.PKey, int]]:
    """An sshd of its own on ``port`` (or a free one) of loopback whose
    netconf subsystem is the command ``subsystem``; yields the port, the
    key root logs in with and sshd's pid."""
    for key in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)],
            check=True,
        )
    (base / "authorized_keys").write_text((base / "client.pub").read_text())
    port = port or free_port()
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress {HOST}\nHostKey {base / 'host'}\n"
        f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nUseDNS no\nMaxStartups 200\nMaxSessions 200\nLogLevel ERROR\n"
        f"Subsystem netconf {subsystem}\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    sshd = subprocess.Popen(
        pinned([SSHD, "-D", "-e", "-f", str(base / "sshd_config")], pin),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(base / "sshd.log").open("wb"),
    )
    try:
        wait_port(port, sshd, 30)
        yield port, paramiko.Ed25519Key.from_private_key_file(str(base / "client")), sshd.pid
    finally:
        stop(sshd)


NACM_OFF = (
    '<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm">'
    "<enable-nacm>false</enable-nacm></nacm>\n"
)


@contextlib.contextmanager
def ours_sshd(tmp: Path, pin: bool, nf: list[str] | None = None) -> Iterator[Server]:
    """``nf run --subsystem-socket`` behind a private sshd whose netconf
    subsystem is nf-subsystem, as netconfd is behind its own: root logs in.
    NACM is off, as netconfd's --superuser=root puts root above it (root
    is an ordinary NACM user to nf, and admin, the recovery user, has no
    key on this sshd)."""
    base = tmp / "ours-sshd"
    base.mkdir()
    sock = Path(tempfile.mkdtemp(prefix="nf-bench-")) / "netconf.sock"  # a short path
    helper = ROOT / ".venv" / "bin" / "nf-subsystem"
    config = f"<config>{document(BASE_CHANNELS, 20500)}{NACM_OFF}</config>"
    try:
        with (
            ours(
                tmp,
                pin,
                nf,
                20500,
                extra=("--subsystem-socket", str(sock)),
                name="ours-sshd",
                config_text=config,
            ) as mine,
            private_sshd(base, f"{helper} {sock}", pin) as (port, pkey, sshd),
        ):
            roots = (*mine.roots, sshd)
            yield Server("ours/sshd", port, "root", pkey=pkey, pid=mine.pid, roots=roots)
    finally:
        shutil.rmtree(sock.parent, ignore_errors=True)


@contextlib.contextmanager
def netconfd(tmp: Path, pin: bool) -> Iterator[Server]:
    """yuma123 netconfd behind a private sshd on a free loopback port, as root (superuser)."""
    base = tmp / "netconfd"
    base.mkdir()
    sock = base / "ncxserver.sock"
    home = base / "home"
    port = free_port()
    (home / ".yuma").mkdir(parents=True)  # netconfd keeps its transaction id there
    # only our module: the rest of yang/ (our notifications.yang among them)
    # would shadow yuma123's own copies, which its system modules augment
    # ("yuma123-system.yang:221: definition not found"); netconfd has the
    # ietf modules ours imports
    modules = base / "modules"
    modules.mkdir()
    # yuma123 2.13 fails "add defaults" on every edit when a list holds an
    # action whose input has a default (our serial-port send-break): it is
    # given the module without its actions, which no case measured calls
    (modules / f"{MODULE}.yang").write_text(
        without_actions((YANG_DIR / f"{MODULE}.yang").read_text())
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUMA_")}
    cmd = [
        NETCONFD,
        f"--home={home}",
        f"--port={port}",
        "--no-startup",
        "--superuser=root",
        "--target=candidate",
        "--with-startup=false",
        f"--modpath={modules}:/usr/share/yuma/modules",
        f"--module={modules / (MODULE + '.yang')}",
        f"--ncxserver-sockname={sock}",
        f"--log={base / 'netconfd.log'}",
        "--log-level=" + os.environ.get("BENCH_NETCONFD_LOG", "warn"),
    ]
    # netconfd writes its transaction id to ~/.yuma of the passwd entry, whatever --home says
    yuma_dir = Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".yuma"
    yuma_dir_existed = yuma_dir.exists()
    ncd = subprocess.Popen(
        pinned(cmd, pin),
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if ncd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"netconfd did not start; see {base / 'netconfd.log'}")
            time.sleep(0.05)
        subsystem = f"{SUBSYSTEM} --ncxserver-sockname={port}@{sock}"
        with private_sshd(base, subsystem, pin, port) as (_, pkey, sshd):
            server = Server("netconfd", port, "root", pkey=pkey, pid=ncd.pid, roots=(ncd.pid, sshd))
            with contextlib.closing(server.connect()) as session:  # the same 10 entries as ours
                session.rpc(RESET)
                session.rpc(COMMIT)
            yield server
    finally:
        stop(ncd)
        if not yuma_dir_existed:
            shutil.rmtree(yuma_dir, ignore_errors=True)


# -- measurements ------------------------------------------------------------------------


@dataclass
class Result:
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    note: str = ""

    def median(self) -> float:
        return statistics.median(self.samples)

    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclass
class Plan:
    get_config: int
    edit_commit: int
    big_commits: int
    big_gets: int
    sessions: int
    per_session: int
    warmup: int


def measure(server: Server, plan: Plan, log: Callable[[str], None]) -> dict[str, Result]:
    """Every case on one session, then the concurrent sessions; a failed case is noted."""
    results: dict[str, Result] = {}
    log(f"{server.name}: pid {server.pid}, port {server.port}")
    session = server.connect()

    def case(name: str) -> Result:
        results[name] = Result()
        return results[name]

    def guarded(names: list[str], run: Callable[[], None]) -> None:
        try:
            run()
        except Exception as exc:
            for name in names:
                results.setdefault(name, Result())
            first = results[names[0]]
            first.errors += 1
            first.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            log(f"{server.name}: {first.note}")

    def get_config() -> None:
        for _ in range(plan.warmup):
            session.rpc(GET_CONFIG)
        r = case(f"get-config ({BASE_CHANNELS} ch)")
        for _ in range(plan.get_config):
            r.samples.append(timed(session, GET_CONFIG)[0])

    def edit_commit() -> None:
        both = case(f"edit+commit 1 ch ({BASE_CHANNELS} ch)")
        e = case("  edit-config alone")
        c = case("  commit alone")
        for i in range(plan.warmup + plan.edit_commit):
            te, _ = timed(session, keepalive(30 + i % 2), want_ok=True)
            tc, _ = timed(session, COMMIT, want_ok=True)
            if i >= plan.warmup:
                e.samples.append(te)
                c.samples.append(tc)
                both.samples.append(te + tc)

    def big() -> None:
        be = case(f"edit-config {BIG_CHANNELS} ch")
        bc = case(f"commit creating {BIG_CHANNELS} ch")
        bd = case(f"commit deleting {BIG_CHANNELS} ch")
        gc = case(f"get-config ({BIG_CHANNELS} ch)")
        g = case(f"get ({BIG_CHANNELS} ch)")
        for i in range(plan.big_commits):
            be.samples.append(timed(session, CREATE_BIG, want_ok=True)[0])
            bc.samples.append(timed(session, COMMIT, want_ok=True)[0])
            if i < plan.big_commits - 1:
                session.rpc(RESET)
                bd.samples.append(timed(session, COMMIT, want_ok=True)[0])
        log(f"{server.name}: get-config and get of {BIG_CHANNELS} channels x{plan.big_gets}")
        for _ in range(plan.big_gets):
            t, reply = timed(session, GET_CONFIG)
            gc.samples.append(t)
            gc.note = f"reply {len(reply) // 1024} KiB"
            t, reply = timed(session, GET)
            g.samples.append(t)
            g.note = f"reply {len(reply) // 1024} KiB"
        session.rpc(RESET)
        bd.samples.append(timed(session, COMMIT, want_ok=True)[0])

    try:
        log(f"{server.name}: get-config x{plan.get_config}")
        guarded([f"get-config ({BASE_CHANNELS} ch)"], get_config)
        log(f"{server.name}: edit-config+commit x{plan.edit_commit}")
        guarded([f"edit+commit 1 ch ({BASE_CHANNELS} ch)"], edit_commit)
        if plan.big_commits:
            log(f"{server.name}: commit creating {BIG_CHANNELS} channels x{plan.big_commits}")
            guarded([f"commit creating {BIG_CHANNELS} ch"], big)
    finally:
        session.close()
    if plan.sessions:
        log(f"{server.name}: {plan.sessions} concurrent sessions x{plan.per_session} get-config")
        results.update(concurrent(server, plan.sessions, plan.per_session))
    return results


def concurrent(server: Server, sessions: int, per_session: int) -> dict[str, Result]:
    """Open N sessions at once, each doing ``per_session`` get-configs; count errors."""
    barrier = threading.Barrier(sessions)
    opened = threading.Barrier(sessions)  # every session is open before any rpc
    lock = threading.Lock()
    connects = Result()
    gets = Result()
    failures: list[str] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=60)
            t0 = time.perf_counter()
            session = server.connect()
            mine = [time.perf_counter() - t0]
            try:
                with contextlib.suppress(threading.BrokenBarrierError):
                    opened.wait(timeout=300)  # broken when a connect failed: go on
                samples = [timed(session, GET_CONFIG)[0] for _ in range(per_session)]
            finally:
                session.close()
            with lock:
                connects.samples += mine
                gets.samples += samples
        except Exception as exc:
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
            opened.abort()  # the others must not wait for a session that failed

    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    wall = time.perf_counter() - t0
    gets.errors = connects.errors = len(failures)
    gets.note = f"{len(failures)} errors, all done in {wall:.2f} s"
    if failures:
        gets.note += f"; first: {failures[0][:120]}"
    return {f"{sessions} sessions: connect": connects, f"{sessions} sessions: get-config": gets}


# -- scale: cost against configuration size ------------------------------------------


def channel_state_xpath(name: str) -> bytes:
    return (
        f'<get><filter type="xpath" xmlns:s="{NS}" '
        f"select=\"/s:serial-over-ip/s:channel[s:name='{name}']/s:state\"/></get>"
    ).encode()


def channel_state_subtree(name: str) -> bytes:
    return (
        f'<get><filter type="subtree"><serial-over-ip xmlns="{NS}"><channel>'
        f"<name>{name}</name><state/></channel></serial-over-ip></filter></get>"
    ).encode()


def plane_rss(supervisor: int) -> dict[str, float]:
    """MiB of resident memory of the supervisor and of each plane (its children)."""
    out: dict[str, float] = {}

    def rss(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    out["supervisor"] = rss(supervisor)
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    for child in children:
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        name = "data plane" if b"nf.plane.dataplane" in cmdline else "control plane"
        out[name] = rss(int(child))
    return out


def measure_scale(
    server: Server, size: int, larger: list[int], rounds: int, log: Callable[[str], None]
) -> tuple[dict[str, Result], dict[str, float]]:
    """The scale cases on one server of ``size`` channels."""
    results: dict[str, Result] = {}
    session = server.connect()
    try:
        time.sleep(1.0)  # let the planes settle before reading RSS
        assert server.pid is not None
        memory = plane_rss(server.pid)
        results["boot"] = Result([server.boot])
        log(f"ours {size}: boot {server.boot:.2f} s, RSS {memory}")
        both = results["edit+commit 1 leaf"] = Result()
        for i in range(5 + rounds):
            te, _ = timed(session, keepalive(30 + i % 2), want_ok=True)
            tc, _ = timed(session, COMMIT, want_ok=True)
            if i >= 5:
                both.samples.append(te + tc)
        for label, body in (
            ("no-op rpc (discard-changes)", b"<discard-changes/>"),
            ("get 1 channel state (xpath)", channel_state_xpath("c1")),
            ("get 1 channel state (subtree)", channel_state_subtree("c1")),
        ):
            r = results[label] = Result()
            for i in range(5 + rounds):
                t, reply = timed(session, body)
                if i >= 5:
                    r.samples.append(t)
                if label.startswith("get") and b"oper-status" not in reply:
                    raise NetconfError(f"{label}: no state in {reply[:300]!r}")
        if size <= BIG_CHANNELS:
            r = results["full get"] = Result()
            for i in range(2 + max(5, rounds // 5)):
                t, reply = timed(session, GET)
                if i >= 2:
                    r.samples.append(t)
                r.note = f"reply {len(reply) // 1024} KiB"
        for n in larger:
            log(f"ours {size}: commit creating {n} channels")
            r = results[f"commit creating {n} ch"] = Result()
            session.rpc(edit(entries(n, "x", 20000 + size + 10)))  # below the ephemeral ports
            r.samples.append(timed(session, COMMIT, want_ok=True)[0])
            session.rpc(edit(entries(size, "c", 20000), "replace"))
            session.rpc(COMMIT)
    finally:
        session.close()
    return results, memory


def server_time(results: dict[str, Result], case: str) -> float:
    """The median of ``case`` less that of a no-op rpc on the same session:
    the server's own time for it, without SSH and the client."""
    return max(0.0, results[case].median() - results["no-op rpc (discard-changes)"].median())


def scale(sizes: list[int], pin: bool, rounds: int, nf: list[str] | None, tmp: Path) -> int:
    """Run the scale cases for every size; print the table; 1 if a target is missed."""

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    sizes = sorted(sizes)
    table: dict[int, tuple[dict[str, Result], dict[str, float]]] = {}
    for size in sizes:
        run_dir = tmp / f"scale-{size}"
        run_dir.mkdir()
        larger = [n for n in sizes if n > size] if size == sizes[0] else []
        with ours(run_dir, pin, nf, channels=size) as server:
            table[size] = measure_scale(server, size, larger, rounds, log)
    base = table[sizes[0]][0]
    print()
    print(f"scale: latencies in ms (median / p99); ratio = median / median at {sizes[0]} channels")
    print(f"{'case':<32} " + " ".join(f"{n:>24}" for n in sizes))
    cases = list(dict.fromkeys(name for results, _ in table.values() for name in results))
    for case in cases:
        cells = []
        for size in sizes:
            r = table[size][0].get(case)
            if r is None or not r.samples:
                cells.append(f"{'-':>24}")
                continue
            ratio = ""
            b = base.get(case)
            if size != sizes[0] and b is not None and b.samples and len(r.samples) > 1:
                ratio = f" {r.median() / b.median():.2f}x"
            text = f"{ms(r.median())}/{ms(r.p99())}{ratio}"
            cells.append(f"{text:>24}")
        print(f"{case:<32} " + " ".join(cells))
    for case in ("get 1 channel state (xpath)", "get 1 channel state (subtree)", "full get"):
        cells = []
        for size in sizes:
            results = table[size][0]
            if case not in results:
                cells.append(f"{'-':>24}")
                continue
            cells.append(f"{ms(server_time(results, case)):>24}")
        print(f"{'server time: ' + case:<32} " + " ".join(cells))
    for plane in ("supervisor", "control plane", "data plane"):
        cells = [f"{table[size][1].get(plane, 0.0):>21.1f} MiB" for size in sizes]
        print(f"{'RSS ' + plane:<32} " + " ".join(cells))
    print()
    failed: list[str] = []
    small = base["edit+commit 1 leaf"].median()
    for size, limit in ((1000, 1.5), (10000, 2.0)):
        if size in table and size != sizes[0]:
            ratio = table[size][0]["edit+commit 1 leaf"].median() / small
            if ratio > limit:
                failed.append(f"edit+commit at {size} is {ratio:.2f}x (target {limit}x)")
    for size, (results, memory) in table.items():
        if "full get" in results and size >= 1000 and server_time(results, "full get") > 0.010:
            full = ms(server_time(results, "full get"))
            failed.append(f"full get at {size}: {full} ms of server time (target 10)")
        flt = server_time(results, "get 1 channel state (xpath)")
        if size >= 10000 and flt > 0.001:
            failed.append(f"filtered get at {size}: {ms(flt)} ms (target 1)")
        if size >= 10000 and results["boot"].median() > 5.0:
            failed.append(f"boot at {size}: {results['boot'].median():.2f} s (target 5)")
        # per 1000 channels beyond the smallest configuration's
        grown = memory.get("data plane", 0.0) - table[sizes[0]][1].get("data plane", 0.0)
        per_1000 = grown * 1000 / max(1, size - sizes[0])
        if size >= 1000 and per_1000 > 30:
            failed.append(f"data plane RSS at {size}: {per_1000:.1f} MiB per 1000 (target 30)")
    for name, r in base.items():
        if name.startswith("commit creating") and r.median() > 5.0:
            failed.append(f"{name}: {r.median():.2f} s (target 5)")
    for line in failed:
        print("FAIL", line)
    print("overall:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


# -- report ---------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
    return found


def _label(pid: int) -> str:
    """What a server process is: its command name, or for Python the module it runs."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return "?"
    if comm.startswith("python") or Path(argv[0]).name.startswith("python"):
        if "-m" in argv:
            return argv[argv.index("-m") + 1].rsplit(".", 1)[-1]  # control, dataplane
        return "supervisor"
    return "sshd" if comm.startswith("sshd") else comm


def cpu(server: Server) -> dict[str, int]:
    """Nanoseconds of CPU each of the server's processes (by ``_label``) has
    run so far, all its threads (/proc schedstat: exact, unlike the
    10 ms ticks of /proc/PID/stat)."""
    out: dict[str, int] = {}
    for root in server.roots:
        for pid in _descendants(root):
            label = _label(pid)
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                        out[label] = out.get(label, 0) + int(f.read().split()[0])
    return out


def paired(
    tmp: Path,
    pin: bool,
    nf: list[str] | None,
    rounds: int,
    per_round: int,
    log: Callable[[str], None],
) -> int:
    """get-config and one-leaf edit+commit at BASE_CHANNELS channels, ours
    (its own SSH server; and behind a private sshd, as netconfd is, when
    nf-subsystem is installed) and netconfd up at once and measured in
    alternating blocks (``per_round`` operations of each case on one, then
    on the next; the order rotates), so that all meet the machine's drift
    alike.  Prints each one's median over all blocks and the median of the
    per-round ratios to netconfd (the figure to judge: issue "Scale" wants
    <= 1.0), then each one's CPU per get-config by process."""
    skipped = baseline_missing()
    if skipped is not None:
        print(f"note: {skipped}")
        return 1
    cases = [f"get-config ({BASE_CHANNELS} ch)", f"edit+commit 1 ch ({BASE_CHANNELS} ch)"]
    with contextlib.ExitStack() as stack:
        servers = {"ours": stack.enter_context(ours(tmp, pin, nf))}
        if (ROOT / ".venv" / "bin" / "nf-subsystem").exists():
            servers["ours/sshd"] = stack.enter_context(ours_sshd(tmp, pin, nf))
        servers["netconfd"] = stack.enter_context(netconfd(tmp, pin))
        names = list(servers)
        samples = {c: {name: [] for name in names} for c in cases}
        ratios: dict[str, dict[str, list[float]]] = {
            c: {name: [] for name in names[:-1]} for c in cases
        }
        # server CPU per get-config, per round: {server: [{process: us}, ...]}
        spent: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        sessions = {
            name: stack.enter_context(contextlib.closing(server.connect()))
            for name, server in servers.items()
        }
        toggles = dict.fromkeys(servers, 0)

        def block(name: str, n: int) -> tuple[list[float], list[float]]:
            session = sessions[name]
            before = cpu(servers[name])
            gets = [timed(session, GET_CONFIG)[0] for _ in range(n)]
            after = cpu(servers[name])
            spent[name].append(
                {label: (ns - before.get(label, 0)) / n / 1e3 for label, ns in after.items()}
            )
            commits = []
            for _ in range(n):
                toggles[name] += 1
                te, _ = timed(session, keepalive(30 + toggles[name] % 2), want_ok=True)
                tc, _ = timed(session, COMMIT, want_ok=True)
                commits.append(te + tc)
            return gets, commits

        for name in names:  # warm-up, not counted
            block(name, per_round)
        for name in names:
            spent[name].clear()
        log(f"paired: {rounds} rounds of {per_round} get-config and edit+commit each")
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            medians: dict[str, list[float]] = {}
            for name in order:
                got = block(name, per_round)
                medians[name] = [statistics.median(x) for x in got]
                for case, values in zip(cases, got, strict=True):
                    samples[case][name] += values
            for i, case in enumerate(cases):
                for name in names[:-1]:
                    ratios[case][name].append(medians[name][i] / medians["netconfd"][i])
    print()
    print(
        f"paired: {rounds} rounds, {per_round} operations of each case per server and round, "
        "order rotating; latencies in ms (median/p99); ratio to netconfd: the median of rounds"
    )
    header = f"{'operation':<26}" + "".join(f"{name:>16}" for name in names)
    header += "".join(f"{name + ' / netconfd':>30}" for name in names[:-1])
    print(header)
    print("-" * len(header))
    for case in cases:
        line = f"{case:<26}"
        for name in names:
            res = Result(samples[case][name])
            line += f"{ms(res.median()) + '/' + ms(res.p99()):>16}"
        for name in names[:-1]:
            rs = ratios[case][name]
            below = sum(x <= 1.0 for x in rs)
            line += f"{statistics.median(rs):>9.2f} ({min(rs):.2f}-{max(rs):.2f}) <=1: {below:>2}"
        print(line)
    print()
    print("server CPU per get-config in us, median of rounds (each process, all its threads)")
    for name, per in spent.items():
        labels = {label for used in per for label in used}
        each = {k: statistics.median(used.get(k, 0.0) for used in per) for k in labels}
        shown = sorted(((k, v) for k, v in each.items() if v >= 0.05), key=lambda kv: -kv[1])
        parts = "  ".join(f"{k} {v:.1f}" for k, v in shown)
        total = statistics.median(sum(used.values()) for used in per)
        print(f"  {name:<10} total {total:6.1f}   {parts}")
    for name in names[:-1]:
        cpu_ratios = [
            sum(o.values()) / sum(b.values())
            for o, b in zip(spent[name], spent["netconfd"], strict=True)
        ]
        print(
            f"  {name}/netconfd, median of rounds: {statistics.median(cpu_ratios):.2f} "
            f"({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
        )
    return 0


def _versus_block(server: Server, session: RawSession, body: bytes, n: int) -> tuple[float, float]:
    """``n`` times ``body``: the median latency and the server's CPU ns per request."""
    before = sum(cpu(server).values())
    took = [timed(session, body)[0] for _ in range(n)]
    return statistics.median(took), (sum(cpu(server).values()) - before) / n


def versus(
    tmp: Path,
    pin: bool,
    nf: list[str] | None,
    other: list[str],
    rounds: int,
    log: Callable[[str], None],
) -> int:
    """Two builds of nf, up at once, in rotating blocks: get-config at
    BASE_CHANNELS channels (20 a block) and the full <get> of BIG_CHANNELS
    (5 a block); the median of per-round ratios of latency and of the
    control plane's CPU, this build (``nf``) over ``other``.  What a change
    did, without the machine's drift between two sequential runs."""
    cases = {
        f"get-config ({BASE_CHANNELS} ch)": (BASE_CHANNELS, GET_CONFIG, 20),
        f"get ({BIG_CHANNELS} ch)": (BIG_CHANNELS, GET, 5),
    }
    print(f"versus: this build / {shlex.join(other)}, {rounds} rounds; medians")
    print(f"{'operation':<22} {'this ms':>9} {'other ms':>9} {'latency':>8} {'CPU':>6}")
    for case, (channels, body, per) in cases.items():
        with contextlib.ExitStack() as stack:
            servers = {}
            for i, (name, command) in enumerate((("this", nf), ("other", other))):
                where = tmp / f"{case.split()[0]}-{channels}-{name}"
                where.mkdir()
                servers[name] = stack.enter_context(
                    ours(where, pin, command, 20000 + 2 * BIG_CHANNELS * i, channels)
                )
            sessions = {
                name: stack.enter_context(contextlib.closing(server.connect()))
                for name, server in servers.items()
            }

            for name in servers:  # warm-up
                _versus_block(servers[name], sessions[name], body, per)
            log(f"versus: {case}")
            got: dict[str, list[tuple[float, float]]] = {"this": [], "other": []}
            for r in range(rounds):
                for name in ("this", "other") if r % 2 == 0 else ("other", "this"):
                    got[name].append(_versus_block(servers[name], sessions[name], body, per))
        latency = [a[0] / b[0] for a, b in zip(got["this"], got["other"], strict=True)]
        work = [a[1] / b[1] for a, b in zip(got["this"], got["other"], strict=True)]
        print(
            f"{case:<22} {ms(statistics.median(x[0] for x in got['this'])):>9} "
            f"{ms(statistics.median(x[0] for x in got['other'])):>9} "
            f"{statistics.median(latency):>8.3f} {statistics.median(work):>6.3f}"
        )
    return 0


def targets(sessions: int) -> dict[str, tuple[str, Callable[[Result], bool]]]:
    """Operation -> (target as printed, test on our result), from issue 3."""
    return {
        f"get-config ({BASE_CHANNELS} ch)": ("med < 1 ms", lambda r: r.median() < 0.001),
        f"edit+commit 1 ch ({BASE_CHANNELS} ch)": ("med < 3 ms", lambda r: r.median() < 0.003),
        f"commit creating {BIG_CHANNELS} ch": ("med < 1 s", lambda r: r.median() < 1.0),
        f"get-config ({BIG_CHANNELS} ch)": ("med < 150 ms", lambda r: r.median() < 0.150),
        f"{sessions} sessions: get-config": (
            "0 errors",
            lambda r: r.errors == 0 and len(r.samples) > 0,
        ),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def report(ours_results: dict[str, Result], base: dict[str, Result] | None, sessions: int) -> bool:
    goals = targets(sessions)
    header = (
        f"{'operation':<28} {'n':>4} {'ours med':>9} {'p99':>8} {'min':>8}  "
        f"{'netconfd med':>12} {'p99':>8}  {'ratio':>6}  {'target':<13} {'':4}"
    )
    print()
    print("latencies in ms; ratio = ours median / netconfd median")
    print(header)
    print("-" * len(header))
    all_pass = True
    for name, r in ours_results.items():
        if not r.samples:
            line = f"{name:<28} {0:>4} {'-':>9} {'-':>8} {'-':>8}  "
        else:
            line = (
                f"{name:<28} {len(r.samples):>4} {ms(r.median()):>9} {ms(r.p99()):>8} "
                f"{ms(min(r.samples)):>8}  "
            )
        b = (base or {}).get(name)
        if b is not None and b.samples and r.samples:
            line += f"{ms(b.median()):>12} {ms(b.p99()):>8}  {r.median() / b.median():>6.2f}  "
        elif b is not None and b.errors:
            line += f"{'errors':>12} {'':>8}  {'':>6}  "
        else:
            line += f"{'-':>12} {'-':>8}  {'-':>6}  "
        if name in goals:
            text, test = goals[name]
            passed = bool(r.samples) and test(r)
            all_pass &= passed
            line += f"{text:<13} {'PASS' if passed else 'FAIL'}"
        else:
            line += f"{'':<13}"
        print(line.rstrip())
        if r.note:
            print(f"{'':<30}ours: {r.note}")
        if b is not None and b.note:
            print(f"{'':<30}netconfd: {b.note}")
    print()
    print("overall:", "PASS" if all_pass else "FAIL")
    return all_pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (about 1 minute)")
    parser.add_argument(
        "--paired",
        type=int,
        metavar="ROUNDS",
        help="instead: get-config and edit+commit at 10 channels against netconfd, both "
        "servers up, in ROUNDS alternating blocks; the median of per-round ratios",
    )
    parser.add_argument(
        "--per-round", type=int, default=20, help="operations per case and block (--paired)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip yuma123 netconfd")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    parser.add_argument(
        "--baseline-big",
        type=int,
        default=None,
        help="1000-channel commits on netconfd (about 1 min each; default 1, 0 with --quick)",
    )
    parser.add_argument(
        "--nf", help="command that runs nf, to measure another build (default: .venv/bin/nf)"
    )
    parser.add_argument(
        "--versus",
        metavar="NF",
        help="instead: this build (or --nf) against another command that runs nf (e.g. 'env "
        "PYTHONPATH=/tmp/old python -m nf'), both up, in rotating blocks of get-config (10 ch) "
        "and full get (1000 ch): latency and control-plane CPU ratios",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--scale",
        metavar="N,N,...",
        help="measure cost against configuration size instead (e.g. 10,1000,10000)",
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # refused or reset connections are counted by the concurrency case; no tracebacks
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    plan = (
        Plan(
            get_config=50,
            edit_commit=30,
            big_commits=2,
            big_gets=5,
            sessions=args.sessions,
            per_session=5,
            warmup=5,
        )
        if args.quick
        else Plan(
            get_config=200,
            edit_commit=100,
            big_commits=5,
            big_gets=20,
            sessions=args.sessions,
            per_session=10,
            warmup=20,
        )
    )

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench-netconf-"))
    if args.versus:
        try:
            nf = shlex.split(args.nf) if args.nf else None
            return versus(tmp, pin, nf, shlex.split(args.versus), args.paired or 20, log)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    if args.paired:
        try:
            nf = shlex.split(args.nf) if args.nf else None
            return paired(tmp, pin, nf, args.paired, args.per_round, log)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    if args.scale:
        try:
            sizes = [int(n) for n in args.scale.split(",")]
            nf = shlex.split(args.nf) if args.nf else None
            return scale(sizes, pin, 20 if args.quick else 100, nf, tmp)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    try:
        pinning = f"servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}" if pin else "off"
        print(
            f"bench_netconf: {BASE_CHANNELS} channels base, {BIG_CHANNELS} for the big cases; "
            f"pinning: {pinning}"
        )
        base: dict[str, Result] | None = None
        skipped = "baseline skipped (--no-baseline)" if args.no_baseline else baseline_missing()
        if skipped is None:
            try:
                big = args.baseline_big if args.baseline_big is not None else 0 if args.quick else 1
                with netconfd(tmp, pin) as server:
                    base = measure(server, dataclasses.replace(plan, big_commits=big), log)
            except Exception as exc:
                skipped = f"baseline failed: {type(exc).__name__}: {exc}"
        if skipped:
            print(f"note: {skipped}")
        with ours(tmp, pin, shlex.split(args.nf) if args.nf else None) as server:
            mine = measure(server, plan, log)
        passed = report(mine, base, plan.sessions)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
