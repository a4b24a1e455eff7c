#!/usr/bin/env python3
"""Benchmark the relay data path (TCP <-> channel <-> pty), against socat and ser2net.

The benchmark plays the serial device: a process of its own owns the
pseudo-terminal masters (``os.openpty``, raw) and echoes back whatever the
relay writes to the slave, or sinks or sources exact byte streams on demand.
The server under test opens the slaves as its serial ports, and this client
talks TCP to it.  Every server gets its own device process and its own
ptys, and all of them run at once: each repetition of each case runs on
ours, socat and ser2net in turn (each repetition starting one server
later, so that none is always first), so machine noise hits them alike.
Cases:

* bulk echo: the client streams N bytes in and reads them back (MB/s of
  payload; every byte verified by SHA-256);
* one-way net->serial (the device sinks and hashes) and serial->net (the
  device sources, the client hashes);
* round-trip latency of 1- and 64-byte messages, one in flight, with the
  client, the device and the server pinned to CPU 0 (median, p99, min);
* 128 channels ping-ponging 64-byte messages at once, one in flight per
  channel, unpinned (round trips per second, p99 of the round trip);
* blocked tty: the device stops reading, the client fills the channel
  towards the serial port until nothing more is accepted, then the device
  writes 256 KiB the other way: it must reach the client in time;
* daemon CPU seconds per MB relayed (utime+stime from /proc, over the
  bulk-echo runs: each payload MB crosses the relay twice, so this divides
  by twice the payload; the one-way runs divide by the payload) and peak
  RSS (VmHWM) after the 128-channel case.

Targets (issue 4): bulk echo and each one-way >= 1.0x socat's in the same
run, 1-byte RTT median <= 1.3x socat's (pinned), 128 channels >= 25k round
trips/s with p99 < 10 ms, <= 0.01 CPU s/MB, RSS <= 64 MiB, and serial->net
keeps flowing while a tty write is blocked.  The device echoes like a UART
with a loopback plug: it never stops reading to wait for its own echo to be
taken (see ``device_main``).  Each channel's TCP connection is opened once
and kept for every case (socat serves one connection and exits).

Servers: ours (``nf run`` as a subprocess, booted from a configuration whose
serial ports are the pty slaves and whose channels are TCP servers on free
127.0.0.1 ports); socat (one ``socat TCP-LISTEN:P,bind=127.0.0.1,reuseaddr,
nodelay /dev/pts/N,raw,echo=0`` per channel); ser2net (one ``ser2net -d``
with a YAML connection per channel, ``chardelay: false`` and 4096-byte
buffers), skipped with a note when not installed.  A bare pty echo (no TCP,
no relay) is measured once as the ceiling of this setup.

    .venv/bin/python tools/bench_relay.py [--quick] [--reps N] [--channels N]
        [--no-baselines | --no-ser2net] [--no-bare] [--no-pin] [--uvloop]
        [--nf CMD] [--base CMD] [--instances K] [--cases LIST] [--profile PREFIX]
        [--keep]

``--quick`` takes about 30 s (16 MiB transfers, 500 round trips, 1 s of
128-channel ping-pong, 3 repetitions); the default about 2 minutes.
``--nf CMD`` measures another build (CMD gets ``run --listen ...
--config ...`` appended); ``--base CMD`` runs one more build alongside, in
the same interleaved repetitions, so that a change is compared with its
base under the same machine noise (the ratio column ours/base), and
prints the ratio repetition by repetition: their spread is the noise the
median ratio is up against.  A commit's tree as the base::

    git archive REV nf yang | tar -x -C /tmp/base
    ... --base "env PYTHONPATH=/tmp/base .venv/bin/python -m nf"

(the daemons run with PYTHONSAFEPATH=1: else ``-m nf`` started from a
checkout imports the checkout's ``nf/`` ahead of PYTHONPATH, and the
"base" is this build again).  One daemon process (with its device and
ptys) can be 10-25% faster or slower than another of the same build, the
same way in every repetition (seen on the pinned 1-byte RTT min; not the
hash seed, cause not found), so one process per build compares processes
as much as builds: ``--instances K`` starts K of each and repetition r runs on
instance r mod K; ``--instances 3 --reps 6`` for an A/B comparison.
``--cases bulk-echo,multi`` runs only those cases (the others' targets
then fail).
``--uvloop`` runs ``nf`` through a wrapper that passes
``backend_options={"use_uvloop": True}`` to ``anyio.run`` (uvloop must be
installed in the venv).  ``--profile PREFIX`` records our daemon with py-spy
during each case (PREFIX-CASE.svg, or .txt for collapsed stacks).  All
traffic stays on 127.0.0.1; every loop is bounded in bytes or time.  Exit
status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import multiprocessing
import os
import random
import select
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
import traceback
import tty
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
HOST = "127.0.0.1"
PASSWORD = "bench-password"
PIN_CPU = 0
PATTERN_SIZE = (1 << 20) + 4099  # not a power of two: misplaced chunks change the hash
CHUNK = 1 << 16
MULTI_SIZE = 64
STALL_BACK = 256 * 1024
ECHO_LIMIT = 1 << 30
TIMEOUT = 30.0

UVLOOP_WRAPPER = """
import sys
import anyio
_run = anyio.run
def run(func, *args, backend="asyncio", backend_options=None):
    options = dict(backend_options or {})
    options.setdefault("use_uvloop", True)
    return _run(func, *args, backend=backend, backend_options=options)
anyio.run = run
from nf.cli import main
sys.exit(main(sys.argv[1:]))
"""


# -- byte streams ------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def pattern(seed: int) -> bytes:
    return random.Random(seed).randbytes(PATTERN_SIZE)


def chunks(seed: int, nbytes: int, size: int = CHUNK) -> Iterator[memoryview]:
    """The stream ``seed`` (its pattern repeated), ``nbytes`` long, in pieces of ``size``."""
    pat = memoryview(pattern(seed))
    pos, left = 0, nbytes
    while left:
        n = min(size, left, len(pat) - pos)
        yield pat[pos : pos + n]
        pos = (pos + n) % len(pat)
        left -= n


@functools.lru_cache(maxsize=32)
def digest(seed: int, nbytes: int) -> str:
    h = hashlib.sha256()
    for piece in chunks(seed, nbytes, 1 << 20):
        h.update(piece)
    return h.hexdigest()


# -- the serial device: pty masters in a process of their own ----------------------------


@dataclass
class _Port:
    fd: int
    reading: bool = True  # False: stalled, the relay's tty writes block
    sink_hash: Any = None  # a sha256 while sinking
    sink_left: int = 0
    sink_first: float = 0.0
    echo_out: bytearray = field(default_factory=bytearray)  # echo the master did not take yet
    src: memoryview | None = None  # the source pattern
    src_pos: int = 0
    src_left: int = 0
    src_first: float = 0.0
    mask: int = 0
    extra: int = 0  # bytes read beyond a sink's count


def device_main(conn: Connection, count: int) -> None:
    """Own ``count`` pty masters; echo by default; sink, source or stall on command.

    Like a UART with a loopback plug, reading never waits for the echo to be
    written: echo bytes the master does not take at once are buffered (a
    relay that blocks in a tty write while not reading the tty would
    otherwise deadlock against an echoing device that stops reading).

    Every command gets an immediate ("ok",); a sink or source also sends its
    result ("sunk", digest, first, last, extra) or ("sourced", first, last)
    when done.  The slaves stay open here too, so a server closing its side
    never hangs up the master.
    """
    try:
        _device(conn, count)
    except Exception:
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))


def _device(conn: Connection, count: int) -> None:
    ports: list[_Port] = []
    paths: list[str] = []
    keep: list[int] = []
    for _ in range(count):
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        ports.append(_Port(master))
        keep.append(slave)
        paths.append(os.ttyname(slave))
    ep = select.epoll()
    by_fd = {p.fd: p for p in ports}
    control = conn.fileno()
    ep.register(control, select.EPOLLIN)

    def want(p: _Port) -> None:
        mask = 0
        if p.reading:
            mask |= select.EPOLLIN
        if p.echo_out or p.src_left:
            mask |= select.EPOLLOUT
        if mask != p.mask:
            if p.mask == 0:
                ep.register(p.fd, mask)
            elif mask == 0:
                ep.unregister(p.fd)
            else:
                ep.modify(p.fd, mask)
            p.mask = mask

    for p in ports:
        want(p)
    conn.send(("paths", paths))
    read, write = os.read, os.write
    while True:
        for fd, events in ep.poll():
            if fd == control:
                cmd = conn.recv()
                op = cmd[0]
                if op == "quit":
                    return
                p = ports[cmd[1]]
                if op == "stall":
                    p.reading = False
                elif op == "reset":  # after a failed case: forget what was under way
                    p.reading, p.sink_hash, p.src, p.src_left = True, None, None, 0
                    p.echo_out.clear()
                    with contextlib.suppress(BlockingIOError):
                        while read(p.fd, CHUNK):
                            pass
                elif op == "sink":
                    p.reading = True
                    p.sink_hash, p.sink_left, p.sink_first, p.extra = hashlib.sha256(), cmd[2], 0, 0
                elif op == "source":
                    p.src, p.src_pos, p.src_left = memoryview(pattern(cmd[3])), 0, cmd[2]
                    p.src_first = time.perf_counter()
                want(p)
                conn.send(("ok",))
                continue
            p = by_fd[fd]
            if events & select.EPOLLOUT:
                if p.echo_out:
                    try:
                        n = write(fd, memoryview(p.echo_out)[:CHUNK])
                    except BlockingIOError:
                        n = 0
                    del p.echo_out[:n]
                elif p.src is not None and p.src_left:
                    end = min(len(p.src), p.src_pos + min(CHUNK, p.src_left))
                    try:
                        n = write(fd, p.src[p.src_pos : end])
                    except BlockingIOError:
                        n = 0
                    p.src_pos = (p.src_pos + n) % len(p.src)
                    p.src_left -= n
                    if not p.src_left:
                        conn.send(("sourced", p.src_first, time.perf_counter()))
                        p.src = None
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and p.reading:
                try:
                    data = read(fd, CHUNK)
                except BlockingIOError:
                    data = b""
                if data:
                    if p.sink_hash is not None:
                        if not p.sink_first:
                            p.sink_first = time.perf_counter()
                        take = min(len(data), p.sink_left)
                        p.sink_hash.update(data[:take] if take < len(data) else data)
                        p.sink_left -= take
                        p.extra += len(data) - take
                        if not p.sink_left:
                            now = time.perf_counter()
                            result = p.sink_hash.hexdigest()
                            conn.send(("sunk", result, p.sink_first, now, p.extra))
                            p.sink_hash = None
                    elif p.echo_out:  # echo, in order behind what is still buffered
                        p.echo_out += data
                        if len(p.echo_out) > ECHO_LIMIT:
                            raise RuntimeError(f"{len(p.echo_out)} echo bytes not taken")
                    else:
                        try:
                            n = write(fd, data)
                        except BlockingIOError:
                            n = 0
                        if n < len(data):
                            p.echo_out += memoryview(data)[n:]
            want(p)


class Device:
    """The parent's handle on a device process."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=device_main, args=(child, count), daemon=True)
        self.proc.start()
        child.close()
        self.paths: list[str] = self._receive(60)[1]

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def _receive(self, timeout: float) -> tuple[Any, ...]:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the device process did not answer in {timeout} s")
        msg: tuple[Any, ...] = self.conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"the device process failed:\n{msg[1]}")
        return msg

    def call(self, *cmd: Any) -> None:
        self.conn.send(cmd)
        self._receive(TIMEOUT)

    def result(self, timeout: float = TIMEOUT) -> tuple[Any, ...]:
        return self._receive(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("quit",))
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# -- processes: CPU, memory, pinning ---------------------------------------------------------


CLK_TCK = os.sysconf("SC_CLK_TCK")


def with_descendants(pids: list[int]) -> list[int]:
    """``pids`` and every process below them (from /proc)."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            todo += map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def peak_rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def set_affinity(pids: list[int], cpus: set[int]) -> None:
    """Every thread of every process in ``pids`` (what ``taskset -a -p`` does)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), cpus)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def listening(port: int) -> bool:
    """Is a TCP socket listening on ``port``?  (A probe connection would be a session.)"""
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                return True
    return False


def wait_port(port: int, procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        if listening(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- servers under test ------------------------------------------------------------------------


class Stream(Protocol):
    def sendall(self, data: Any, /) -> None: ...

    def recv_into(self, buffer: Any, nbytes: int = 0, /) -> int: ...


class FdStream:
    """A blocking tty fd with the socket calls the client uses."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def sendall(self, data: Any) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        view = memoryview(buffer)
        return os.readv(self.fd, [view[:nbytes] if nbytes else view])


@dataclass
class Server:
    """One server under test, its device, and a connection per channel once asked for."""

    name: str
    device: Device
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    socks: dict[int, socket.socket] = field(default_factory=dict)
    note: str = ""
    respawn: Callable[[int], None] | None = None  # a server that ends with its connection
    netconf_port: int = 0  # ours: where its NETCONF/SSH listens (from its banner)

    def recover(self) -> None:
        """After a failed case: new connections, the device's ports reset."""
        for channel, sock in list(self.socks.items()):
            sock.close()
            del self.socks[channel]
            if self.respawn is not None:
                self.respawn(channel)
            with contextlib.suppress(Exception):
                self.device.call("reset", channel)

    def pids(self, channel: int | None = None) -> list[int]:
        """The processes that serve ``channel`` (all when None), with their
        descendants: nf run is a supervisor of two processes."""
        if channel is not None and len(self.procs) > 1:
            return with_descendants([self.procs[channel].pid])
        return with_descendants([p.pid for p in self.procs])

    def connect(self, channel: int) -> socket.socket:
        """A connected, verified socket to ``channel`` (kept for the whole run)."""
        sock = self.socks.get(channel)
        if sock is not None:
            return sock
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                sock = socket.create_connection((HOST, self.ports[channel]), timeout=TIMEOUT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # the path is live both ways once a byte comes back (ser2net and socat open the
        # tty on connect; ours registers the session right after accept)
        sock.settimeout(0.2)
        probes = 0
        while probes < TIMEOUT / 0.2:
            probes += 1
            sock.sendall(b"\x00")
            with contextlib.suppress(TimeoutError):
                if sock.recv(1) == b"\x00":
                    break
        else:
            raise RuntimeError(f"{self.name}: channel {channel} does not echo")
        if probes > 1:  # the earlier probes may still come back: drain them
            time.sleep(0.2)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while sock.recv(65536):
                    pass
        sock.settimeout(TIMEOUT)
        self.socks[channel] = sock
        return sock

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        for proc in self.procs:
            stop(proc)
        for fn in self.cleanup:
            with contextlib.suppress(Exception):
                fn()
        self.device.close()


class PortTaken(RuntimeError):
    """A listen port that ``free_ports`` found free was taken before the
    daemon bound it (another program on the machine opened a socket)."""


def start_ours(
    tmp: Path, n: int, nf: list[str], label: str, files: str = "", extras: Sequence[str] = ()
) -> Server:
    """``nf run`` on ``n`` new ptys; ``label`` names the server in the
    report, ``files`` (default: the label) its configuration, state and log;
    ``extras[i]``: more leaves of channel i (``<rfc2217>true</rfc2217>``).
    A boot that lost a port to another program is tried again on new ports."""
    files = files or label
    device = Device(n)
    try:
        for attempt in range(3):
            try:
                return _boot_ours(tmp, device, nf, label, files, extras)
            except PortTaken as exc:
                log(f"{label}: {exc}; again on other ports" if attempt < 2 else str(exc))
        raise RuntimeError(f"{label}: three boots lost a listen port to another program")
    except BaseException:
        device.close()
        raise


def _boot_ours(
    tmp: Path, device: Device, nf: list[str], label: str, files: str, extras: Sequence[str]
) -> Server:
    n = len(device.paths)
    ports = free_ports(n)
    body = "".join(
        f"<serial-port><name>p{i}</name><device>{path}</device></serial-port>"
        for i, path in enumerate(device.paths)
    ) + "".join(
        f"<channel><name>c{i}</name><serial-port>p{i}</serial-port><mode>server</mode>"
        f"<listen><address>{HOST}</address><port>{port}</port></listen>"
        f"{extras[i] if i < len(extras) else ''}</channel>"
        for i, port in enumerate(ports)
    )
    config = tmp / f"{files}.xml"
    config.write_text(f'<serial-over-ip xmlns="{NS}">{body}</serial-over-ip>\n')
    state = tmp / f"{files}-state"
    shutil.rmtree(state, ignore_errors=True)  # a failed boot's
    cmd = [*nf, "run", "--listen", f"{HOST}:0", "--state-dir", str(state)]
    cmd += ["--config", str(config), "--log-level", "warning"]
    log_path = tmp / f"{files}.log"
    log_file = log_path.open("wb")
    # PYTHONSAFEPATH: "python -m nf" run from a checkout would import the
    # checkout's nf/ from the current directory ahead of PYTHONPATH, so a
    # --base build exported elsewhere would silently be this one again
    # as installed: bytecode cached (see bench_netconf.ours)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"NF_ADMIN_PASSWORD": PASSWORD, "PYTHONSAFEPATH": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                log_file.flush()
                text = log_path.read_text(errors="replace")
                tail = "\n".join(text.splitlines()[-15:])
                if "Address already in use" in text:
                    raise PortTaken(f"nf run exited ({proc.wait()}): a listen port was taken")
                raise RuntimeError(f"nf run exited ({proc.wait()}):\n{tail}")
            if b"NETCONF over SSH on" in line:
                netconf_port = int(line.split(f"{HOST}:".encode())[1].split()[0])
                break
        else:
            raise RuntimeError("nf run printed no banner in 120 s")
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the rest
        wait_port(ports[-1], [proc], 60)
    except BaseException:
        stop(proc)
        log_file.close()
        raise
    server = Server(label, device, ports, [proc], [log_file.close], netconf_port=netconf_port)
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    loop = "uvloop" if "uvloop" in maps else "asyncio"
    rss = sum(rss_mib(pid) for pid in with_descendants([proc.pid]))
    server.note = f"event loop {loop}; RSS after boot {rss:.1f} MiB (all its processes)"
    return server


def start_socat(n: int) -> Server:
    device = Device(n)
    ports = free_ports(n)
    server = Server("socat", device, ports, [])

    def spawn(channel: int) -> subprocess.Popen[bytes]:
        cmd = ["socat", f"TCP-LISTEN:{ports[channel]},bind={HOST},reuseaddr,nodelay"]
        cmd.append(f"{device.paths[channel]},raw,echo=0")
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def respawn(channel: int) -> None:  # socat serves one connection, then exits
        stop(server.procs[channel])
        server.procs[channel] = spawn(channel)
        wait_port(ports[channel], [server.procs[channel]], 30)

    server.respawn = respawn
    try:
        server.procs.extend(spawn(i) for i in range(n))
        for port in ports:
            wait_port(port, server.procs, 30)
    except BaseException:
        server.close()
        raise
    return server


def start_ser2net(tmp: Path, n: int, accepters: Sequence[str] = ()) -> Server:
    """ser2net with ``n`` connections; ``accepters[i]``: the gensio stack
    in front of channel i's ``tcp`` (``telnet(rfc2217)``), none by default."""
    device = Device(n)
    ports = free_ports(n)
    lines = ["%YAML 1.1", "---"]
    for i, (port, path) in enumerate(zip(ports, device.paths, strict=True)):
        stack = f"{accepters[i]}," if i < len(accepters) and accepters[i] else ""
        lines += [
            f"connection: &c{i}",
            f"  accepter: {stack}tcp,{HOST},{port}",
            f"  connector: serialdev,{path},115200n81,local",
            "  options:",
            "    chardelay: false",
            "    dev-to-net-bufsize: 4096",
            "    net-to-dev-bufsize: 4096",
        ]
    config = tmp / "ser2net.yaml"
    config.write_text("\n".join(lines) + "\n")
    cmd = ["ser2net", "-d", "-u", "-c", str(config), "-P", str(tmp / "ser2net.pid")]
    log = (tmp / "ser2net.log").open("wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    server = Server("ser2net", device, ports, [proc], [log.close])
    try:
        wait_port(ports[-1], [proc], 30)
    except BaseException:
        server.close()
        raise
    return server


# -- RFC 2217 (issue 14) --------------------------------------------------------------------------

IAC, SB, SE, WILL, WONT, DO, DONT = 255, 250, 240, 251, 252, 253, 254
TELNET_OPTIONS = (0, 3, 44)
"""What the client agrees to: BINARY, SUPPRESS-GO-AHEAD, COM-PORT-OPTION."""


class TelnetStream:
    """The bench client's side of an RFC 2217 session, as a ``Stream``: it
    asks for BINARY both ways and COM-PORT-OPTION, agrees to what it asked
    for (and refuses anything else), escapes what it sends and unescapes
    what it receives.  The parser is nf's own (nf.protocol.telnet); the
    hash of every echoed byte checks it against ser2net as much as ours."""

    def __init__(self, sock: socket.socket) -> None:
        from nf.protocol.telnet import TelnetParser

        self.sock = sock
        self.parser = TelnetParser()
        self.pending = bytearray()
        self.lock = threading.Lock()
        self.ours = {0, 44}
        self.theirs = {0}
        self._send_raw(bytes((IAC, WILL, 0, IAC, DO, 0, IAC, WILL, 44)))

    def _send_raw(self, data: bytes) -> None:
        with self.lock:  # negotiation answers from the reader vs. the sender thread
            self.sock.sendall(data)

    def sendall(self, data: Any) -> None:
        self._send_raw(bytes(data).replace(b"\xff", b"\xff\xff"))

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        """Unescaped data into ``buffer``: at most as many wire bytes are
        read as there is room, so what they hold always fits (no copy kept
        over, which cost the client as much CPU as the relay's work)."""
        from nf.protocol.telnet import Negotiation

        view = memoryview(buffer)
        want = nbytes or len(view)
        if self.pending:
            n = min(want, len(self.pending))
            view[:n] = self.pending[:n]
            del self.pending[:n]
            return n
        while True:
            raw = self.sock.recv(want)
            if not raw:
                return 0
            items = self.parser.feed(raw)
            if len(items) == 1 and type(items[0]) is bytes:
                data = items[0]
            else:
                chunks = []
                for item in items:
                    if type(item) is bytes:
                        chunks.append(item)
                    elif isinstance(item, Negotiation):
                        self._answer(item.verb, item.option)
                data = b"".join(chunks)
            if data:
                view[: len(data)] = data
                return len(data)

    def _answer(self, verb: int, option: int) -> None:
        """Agree once to what we support, refuse the rest (no loops)."""
        if verb in (WILL, DO):
            enabled = self.theirs if verb == WILL else self.ours
            yes, no = (DO, DONT) if verb == WILL else (WILL, WONT)
            if option not in TELNET_OPTIONS:
                self._send_raw(bytes((IAC, no, option)))
            elif option not in enabled:
                enabled.add(option)
                self._send_raw(bytes((IAC, yes, option)))


class EscapedStream:
    """A Telnet session's socket after negotiation, as a ``Stream`` of wire
    bytes: what is sent is escaped (C speed), what is received is passed
    on as it came.  The bulk echo then compares the wire with the escaped
    stream (``escaped_digest``): escaping is byte by byte, so the echo of
    a stream, however the relay cut it into frames, is exactly its
    escape, and the client spends no more CPU than a raw one (unescaping
    in the client cost as much as the relay's own work, on the same two
    CPUs)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendall(self, data: Any) -> None:
        self.sock.sendall(bytes(data).replace(b"\xff", b"\xff\xff"))

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        return self.sock.recv_into(buffer, nbytes)


@functools.lru_cache(maxsize=32)
def escaped_digest(seed: int, nbytes: int) -> tuple[str, int]:
    """sha256 and length of the stream ``seed``, ``nbytes`` long, escaped."""
    h = hashlib.sha256()
    length = 0
    for piece in chunks(seed, nbytes, 1 << 20):
        wire = bytes(piece).replace(b"\xff", b"\xff\xff")
        h.update(wire)
        length += len(wire)
    return h.hexdigest(), length


def telnet_connect(server: Server, channel: int) -> TelnetStream:
    """A negotiated Telnet session to ``channel`` whose echo works."""
    sock = socket.create_connection((HOST, server.ports[channel]), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = TelnetStream(sock)
    sock.settimeout(0.2)
    buf = bytearray(1)
    for _ in range(int(TIMEOUT / 0.2)):
        stream.sendall(b"\x00")
        with contextlib.suppress(TimeoutError):
            if stream.recv_into(buf, 1) == 1 and buf == b"\x00":
                break
    else:
        raise RuntimeError(f"{server.name}: telnet channel {channel} does not echo")
    time.sleep(0.2)  # earlier probes may still come back: drain them
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while stream.recv_into(bytearray(65536)):
            pass
    stream.pending.clear()
    sock.settimeout(TIMEOUT)
    server.cleanup.append(sock.close)
    return stream


def tty_line(path: str) -> tuple[int, bool]:
    """(ospeed, CRTSCTS) of the tty at ``path``."""
    import termios

    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    return attrs[5], bool(attrs[2] & termios.CRTSCTS)


def pyserial_check(server: Server, channel: int, options: str = "") -> str:
    """pyserial's rfc2217:// client on ``channel``: open at 9600 8E1 with
    RTS/CTS, the tty's termios, every byte value through the echo, close
    and the tty again.  A line saying what happened (the exception where
    it failed).  ``options``: more of pyserial's URL options.

    ser2net 4.3 on a pty fails this: it does not answer SET-CONTROL DTR
    on/off and RTS on at all (a pty has no modem lines, and it drops the
    reply with the failed ioctl), so pyserial's open, which sets DTR and
    RTS and waits for each answer, ends in "timeout while waiting for
    option 'control'"; it answers a DTR or RTS state request with the
    request's own code (7, 10).  With ``ign_set_control`` (pyserial's
    option for such servers) it opens and relays."""
    import termios

    import serial

    path = server.device.paths[channel]
    url = f"rfc2217://{HOST}:{server.ports[channel]}?timeout=5{options}"
    try:
        port = serial.serial_for_url(url, baudrate=9600, parity="E", rtscts=True, timeout=5)
    except Exception as exc:
        return f"{server.name}: pyserial cannot open {url}: {type(exc).__name__}: {exc}"
    try:
        speed, rtscts = tty_line(path)
        if (speed, rtscts) == (termios.B9600, True):
            line = "9600 RTS/CTS on the tty"
        else:
            line = f"tty NOT set (speed code {speed}, RTS/CTS {rtscts})"
        data = bytes(range(256)) * 4 + b"\xff" * 7
        port.write(data)
        got = b""
        deadline = time.monotonic() + 10
        while len(got) < len(data) and time.monotonic() < deadline:
            got += port.read(len(data) - len(got))
        if got == data:
            echo = f"all {len(data)} bytes (0-255, 0xFF runs) echoed"
        else:
            echo = f"echo WRONG ({len(got)} of {len(data)} bytes)"
    except Exception as exc:
        return f"{server.name}: pyserial opened, then failed: {type(exc).__name__}: {exc}"
    finally:
        port.close()
    time.sleep(0.5)
    after = tty_line(path)
    restored = "restored" if after == (termios.B115200, False) else f"NOT restored {after}"
    return f"{server.name}: pyserial rfc2217:// {line}; {echo}; after close the tty is {restored}"


def rfc2217_bench(tmp: Path, plan: Plan, nf: list[str], ser2net: bool) -> bool:
    """Bulk echo of random bytes (an IAC in 256) through a raw and an
    rfc2217 channel of ours, and of ser2net (tcp and telnet(rfc2217)
    accepters) when installed, interleaved by repetition; pyserial's
    rfc2217:// client against both first.  Target: ours rfc2217 >= 0.9x
    ours raw in the same run."""
    servers: list[Server] = []
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    failures: dict[str, str] = {}
    try:
        log("starting ours (raw channel, rfc2217 channel)")
        servers.append(start_ours(tmp, 2, nf, "ours", extras=("", "<rfc2217>true</rfc2217>")))
        if ser2net:
            log("starting ser2net (tcp accepter, telnet(rfc2217) accepter)")
            servers.append(start_ser2net(tmp, 2, ("", "telnet(rfc2217)")))
        log("pyserial rfc2217:// checks")
        checks = []
        for server in servers:
            checks.append(pyserial_check(server, 1))
            if "cannot open" in checks[-1]:
                checks.append(pyserial_check(server, 1, "&ign_set_control") + " (ign_set_control)")
        targets: list[tuple[str, Stream]] = []
        for server in servers:
            targets.append((f"{server.name} raw", server.connect(0)))
            try:
                telnet = telnet_connect(server, 1)
                targets.append((f"{server.name} rfc2217", EscapedStream(telnet.sock)))
            except (OSError, RuntimeError) as exc:
                failures[f"{server.name} rfc2217"] = f"{type(exc).__name__}: {exc}"[:200]
        rates = {name: [] for name, _ in targets}
        cpu = {name: [0.0, 0.0] for name, _ in targets}
        owner = {f"{s.name} {kind}": s for s in servers for kind in ("raw", "rfc2217")}
        for rep in range(plan.reps):
            log(f"repetition {rep + 1} of {plan.reps}")
            start = rep % len(targets)
            for name, stream in targets[start:] + targets[:start]:
                if name in failures:
                    continue
                c0 = cpu_seconds(owner[name].pids())
                try:
                    escaped = isinstance(stream, EscapedStream)
                    elapsed = bulk_echo(stream, plan.bulk_bytes, 100 + rep, escaped)
                except Exception as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                rates[name].append(plan.bulk_bytes / elapsed / 1e6)
                cpu[name][0] += cpu_seconds(owner[name].pids()) - c0
                cpu[name][1] += 2 * plan.bulk_bytes / 1e6
    finally:
        for server in servers:
            server.close()
    print()
    from nf.protocol.telnet import ACCELERATED

    parser = "C (nf/protocol/_iac.c)" if ACCELERATED else "pure Python (no C compiler at install)"
    print(f"RFC 2217 bulk echo, {plan.bulk_bytes >> 20} MiB of random bytes, {plan.reps} reps")
    print(f"  unescape of this checkout's nf: {parser}")
    for name, values in rates.items():
        cells = " ".join(f"{v:.1f}" for v in values)
        median = f"{statistics.median(values):.1f}" if values else "-"
        seconds, mb = cpu.get(name, (0.0, 0.0))
        per_mb = f"{seconds / mb:.4f}" if mb else "-"
        print(f"  {name:<18} median {median:>6} MB/s, server CPU {per_mb} s/MB  ({cells})")
    for name, failure in failures.items():
        print(f"  failed: {name}: {failure}")

    def ratio(a: str, b: str) -> float | None:
        pairs = [x / y for x, y in zip(rates.get(a, []), rates.get(b, []), strict=False) if y]
        if not pairs:
            return None
        cells = " ".join(f"{r:.2f}" for r in pairs)
        print(f"  {a} / {b}: median {statistics.median(pairs):.2f} ({cells})")
        return statistics.median(pairs)

    ours = ratio("ours rfc2217", "ours raw")
    if ser2net:
        ratio("ser2net rfc2217", "ser2net raw")
        ratio("ours rfc2217", "ser2net rfc2217")
        ratio("ours raw", "ser2net raw")
    for check in checks:
        print(f"  {check}")
    passed = ours is not None and ours >= 0.9
    print("  target ours rfc2217 >= 0.9x ours raw:", "PASS" if passed else "FAIL")
    return passed


# -- cases -------------------------------------------------------------------------------------


@dataclass
class Plan:
    bulk_bytes: int
    oneway_bytes: int
    reps: int
    rtt_count: int
    rtt_warmup: int
    multi_seconds: float
    channels: int


class Failure(Exception):
    pass


def bulk_echo(stream: Stream, nbytes: int, seed: int, escaped: bool = False) -> float:
    """Stream ``nbytes`` in and read them back: seconds, every byte verified.
    ``escaped``: ``stream`` is an ``EscapedStream``, and what comes back is
    compared with the escape of what was sent."""
    errors: list[BaseException] = []
    expected, length = escaped_digest(seed, nbytes) if escaped else (digest(seed, nbytes), nbytes)

    def sender() -> None:
        try:
            for piece in chunks(seed, nbytes, 1 << 20):
                stream.sendall(piece)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sender, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    received = receive_digest(stream, length)
    elapsed = time.perf_counter() - t0
    thread.join(TIMEOUT)
    if errors:
        raise Failure(f"send failed: {errors[0]!r}")
    if received != expected:
        raise Failure("echoed bytes differ from those sent")
    return elapsed


def receive_digest(stream: Stream, nbytes: int) -> str:
    """Read exactly ``nbytes``: their sha256, computed as they arrive."""
    h = hashlib.sha256()
    buf = memoryview(bytearray(1 << 20))
    got = 0
    while got < nbytes:
        n = stream.recv_into(buf, min(len(buf), nbytes - got))
        if not n:
            raise Failure(f"connection closed after {got} of {nbytes} bytes")
        h.update(buf[:n])
        got += n
    return h.hexdigest()


def net_to_serial(server: Server, sock: socket.socket, nbytes: int, seed: int) -> float:
    server.device.call("sink", 0, nbytes)
    t0 = time.perf_counter()
    for piece in chunks(seed, nbytes, 1 << 20):
        sock.sendall(piece)
    _, result, _first, last, extra = server.device.result(TIMEOUT + nbytes / 1e6)
    if result != digest(seed, nbytes) or extra:
        raise Failure(f"the device received other bytes than sent ({extra} extra)")
    return float(last) - t0


def serial_to_net(server: Server, sock: socket.socket, nbytes: int, seed: int) -> float:
    t0 = time.perf_counter()
    server.device.call("source", 0, nbytes, seed)
    received = receive_digest(sock, nbytes)
    elapsed = time.perf_counter() - t0
    server.device.result()
    if received != digest(seed, nbytes):
        raise Failure("the client received other bytes than the device sent")
    return elapsed


def round_trips(stream: Stream, size: int, count: int, warmup: int) -> list[float]:
    """One message in flight: seconds per round trip, each echo compared."""
    pat = pattern(7)
    buf = memoryview(bytearray(max(size, 4096)))
    samples = []
    for i in range(warmup + count):
        offset = (i * 131) % (len(pat) - size)
        msg = pat[offset : offset + size]
        t0 = time.perf_counter()
        stream.sendall(msg)
        got = 0
        while got < size:
            n = stream.recv_into(buf[got:], size - got)
            if not n:
                raise Failure("connection closed during a round trip")
            got += n
        t1 = time.perf_counter()
        if buf[:size] != msg:
            raise Failure("the echo differs from the message")
        if i >= warmup:
            samples.append(t1 - t0)
    return samples


def multi_ping_pong(socks: list[socket.socket], size: int, seconds: float) -> list[float]:
    """All channels at once, one message in flight each: round-trip times until the deadline."""
    n = len(socks)
    pat = pattern(11)
    msgs = [pat[i * size : (i + 1) * size] for i in range(n)]  # bytes
    ep = select.epoll()
    index = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        index[s.fileno()] = i
    pending = [b""] * n
    sent = [0.0] * n
    samples: list[float] = []
    clock = time.perf_counter
    try:
        start = clock()
        deadline = start + seconds
        for i, s in enumerate(socks):
            sent[i] = clock()
            s.send(msgs[i])
        active = n
        while active:
            events = ep.poll(1.0)
            if not events and clock() > deadline + TIMEOUT:
                raise Failure(f"{active} channels stopped answering")
            for fd, _ in events:
                i = index[fd]
                data = socks[i].recv(65536)
                if not data:
                    raise Failure(f"channel {i} closed")
                got = pending[i] + data if pending[i] else data
                if len(got) < size:
                    pending[i] = got
                    continue
                now = clock()
                if got != msgs[i]:
                    raise Failure(f"channel {i}: the echo differs from the message")
                pending[i] = b""
                if now <= deadline:
                    samples.append(now - sent[i])
                    sent[i] = clock()
                    socks[i].send(msgs[i])
                else:
                    active -= 1
    finally:
        ep.close()
        for s in socks:
            s.settimeout(TIMEOUT)
    return samples


def blocked_tty(server: Server, sock: socket.socket) -> tuple[bool, str]:
    """While the tty write is blocked, does serial->net still flow?

    The device stops reading; the client sends towards the tty until nothing
    more is accepted for 0.3 s; then the device writes ``STALL_BACK`` bytes
    the other way, which must reach the client within 5 s.  Afterwards the
    device reads the held bytes (verified), so the channel ends clean.
    """
    device = server.device
    device.call("stall", 0)
    sock.setblocking(False)
    sent = 0
    stream = chunks(3, 1 << 30)
    piece = next(stream)
    last_progress = time.monotonic()
    limit = last_progress + 20
    try:
        while time.monotonic() - last_progress < 0.3 and time.monotonic() < limit:
            try:
                n = sock.send(piece)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            sent += n
            last_progress = time.monotonic()
            piece = piece[n:] if n < len(piece) else next(stream)
    finally:
        sock.settimeout(TIMEOUT)
    h = hashlib.sha256()
    got = 0
    buf = memoryview(bytearray(1 << 16))

    def receive(timeout: float) -> None:
        nonlocal got
        sock.settimeout(timeout)
        try:
            while got < STALL_BACK:
                n = sock.recv_into(buf, min(len(buf), STALL_BACK - got))
                if not n:
                    raise Failure("connection closed")
                h.update(buf[:n])
                got += n
        finally:
            sock.settimeout(TIMEOUT)

    t0 = time.perf_counter()
    device.call("source", 0, STALL_BACK, 5)
    with contextlib.suppress(TimeoutError):
        receive(5.0)
    flowed = got == STALL_BACK
    note = (
        f"{sent // 1024} KiB held towards the tty; {got // 1024} of {STALL_BACK // 1024} KiB "
        f"came back in {(time.perf_counter() - t0) * 1e3:.0f} ms"
    )
    if flowed:
        device.result()  # sourced
    device.call("sink", 0, sent)
    if not flowed:
        receive(TIMEOUT)  # unblocked now: the rest of the source comes
    results = {msg[0]: msg for msg in (device.result() for _ in range(1 if flowed else 2))}
    if h.hexdigest() != digest(5, STALL_BACK):
        raise Failure("serial->net bytes altered during the stall")
    if results["sunk"][1] != digest(3, sent):
        raise Failure("the bytes held during the stall arrived altered")
    return flowed, note


# -- running every case on every server ----------------------------------------------------------


@dataclass
class Stat:
    values: list[float] = field(default_factory=list)
    note: str = ""

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


CASES = ("bulk echo", "one-way", "rtt1", "rtt64", "blocked tty", "multi")
"""The cases in the order they run (``--cases`` takes them with - for spaces)."""


class Bench:
    def __init__(
        self,
        servers: list[Server],
        plan: Plan,
        pin: bool,
        profile: str | None,
        cases: Sequence[str] | None = None,
        instances: dict[str, list[Server]] | None = None,
    ) -> None:
        self.servers = servers
        self.instances = instances or {}
        """Every process of a server that has several (``--instances``),
        by name; repetition r runs on the instance r modulo their number."""
        self.plan = plan
        self.pin = pin
        self.profile = profile
        self.cases = None if cases is None else set(cases)
        """Only these cases (None: all)."""
        self.stats: dict[tuple[str, str], Stat] = {}
        self.failures: dict[tuple[str, str], str] = {}
        self.all_cpus = os.sched_getaffinity(0)

    def stat(self, server: Server, metric: str) -> Stat:
        return self.stats.setdefault((server.name, metric), Stat())

    @contextlib.contextmanager
    def pinned(self, server: Server) -> Iterator[None]:
        pids = [os.getpid(), server.device.pid, *server.pids(0)]
        if self.pin:
            set_affinity(pids, {PIN_CPU})
        try:
            yield
        finally:
            if self.pin:
                set_affinity(pids, self.all_cpus)

    @contextlib.contextmanager
    def profiled(self, case: str) -> Iterator[None]:
        """py-spy on our daemon for the whole case (idle time is not sampled)."""
        ours = self.servers[0]
        if not self.profile or not ours.name.startswith("ours"):
            yield
            return
        fmt = {".txt": "raw", ".json": "speedscope"}.get(Path(self.profile).suffix, "flamegraph")
        stem = self.profile.removesuffix(Path(self.profile).suffix)
        out = f"{stem}-{case.replace(' ', '-')}{Path(self.profile).suffix or '.svg'}"
        spy = shutil.which("py-spy", path=str(ROOT / ".venv" / "bin")) or "py-spy"
        cmd = [spy, "record", "--pid", str(ours.procs[0].pid), "-o", out, "--format", fmt]
        proc = subprocess.Popen(
            [*cmd, "--nonblocking", "--rate", "200"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            log(f"profile of {case}: {out}")

    def each(self, case: str, run: Callable[[Server, int], None]) -> None:
        """``run`` on every server, ``reps`` times, interleaved; a failure is noted.

        Each repetition starts one server later in the list (rotation): a
        server always run first (after another case, or right after the
        baselines' heavier load) would otherwise meet the machine in another
        state than the one run second, every time.
        """
        failed: set[str] = set()
        servers = self.servers
        with self.profiled(case):
            for rep in range(self.plan.reps):
                start = rep % len(servers)
                for first in servers[start:] + servers[:start]:
                    if first.name in failed:
                        continue
                    instances = self.instances.get(first.name, [first])
                    server = instances[rep % len(instances)]
                    try:
                        run(server, rep)
                    except Exception as exc:
                        failed.add(server.name)
                        self.failures[(server.name, case)] = f"{type(exc).__name__}: {exc}"[:200]
                        log(f"{server.name}: {case} failed: {exc!r}")
                        server.recover()

    def run(self) -> None:
        plan = self.plan
        mb = 1e6
        cpu_echo: dict[str, list[float]] = {}
        cpu_oneway: dict[tuple[str, str], list[float]] = {}

        def echo(server: Server, rep: int) -> None:
            sock = server.connect(0)
            c0 = cpu_seconds(server.pids(0))
            elapsed = bulk_echo(sock, plan.bulk_bytes, 100 + rep)
            cpu = cpu_seconds(server.pids(0)) - c0
            self.stat(server, "bulk echo").values.append(plan.bulk_bytes / elapsed / mb)
            totals = cpu_echo.setdefault(server.name, [0.0, 0.0])
            totals[0] += cpu
            totals[1] += 2 * plan.bulk_bytes / mb

        def oneway(server: Server, rep: int) -> None:
            sock = server.connect(0)
            for name, fn in (("net->serial", net_to_serial), ("serial->net", serial_to_net)):
                totals = cpu_oneway.setdefault((server.name, name), [0.0, 0.0])
                c0 = cpu_seconds(server.pids(0))
                elapsed = fn(server, sock, plan.oneway_bytes, 200 + rep)
                totals[0] += cpu_seconds(server.pids(0)) - c0
                totals[1] += plan.oneway_bytes / mb
                self.stat(server, name).values.append(plan.oneway_bytes / elapsed / mb)

        def rtt(size: int) -> Callable[[Server, int], None]:
            def case(server: Server, rep: int) -> None:
                sock = server.connect(0)
                with self.pinned(server):
                    samples = round_trips(sock, size, plan.rtt_count, plan.rtt_warmup)
                us = 1e6
                self.stat(server, f"RTT {size} B median").values.append(
                    statistics.median(samples) * us
                )
                self.stat(server, f"RTT {size} B p99").values.append(percentile(samples, 0.99) * us)
                self.stat(server, f"RTT {size} B min").values.append(min(samples) * us)

            return case

        def stall(server: Server, rep: int) -> None:
            if rep:
                return
            flowed, note = blocked_tty(server, server.connect(0))
            stat = self.stat(server, "blocked tty")
            stat.values.append(1.0 if flowed else 0.0)
            stat.note = note

        def multi(server: Server, rep: int) -> None:
            socks = [server.connect(i) for i in range(plan.channels)]
            pids = server.pids()
            c0, d0 = cpu_seconds(pids), cpu_seconds([server.device.pid])
            t0 = os.times()
            samples = multi_ping_pong(socks, MULTI_SIZE, plan.multi_seconds)
            t1 = os.times()
            cpu, dev = cpu_seconds(pids) - c0, cpu_seconds([server.device.pid]) - d0
            mine = t1.user + t1.system - t0.user - t0.system
            stat = self.stat(server, f"{plan.channels} ch round trips/s")
            stat.values.append(len(samples) / plan.multi_seconds)
            secs = plan.multi_seconds
            stat.note = (
                f"CPU use over {secs:g} s: server {cpu / secs:.0%} "
                f"({cpu / max(1, len(samples)) * 1e6:.0f} us per round trip), "
                f"device {dev / secs:.0%}, client {mine / secs:.0%}"
            )
            self.stat(server, f"{plan.channels} ch p99").values.append(
                percentile(samples, 0.99) * 1e3
            )

        steps: list[tuple[str, Callable[[Server, int], None]]] = [
            ("bulk echo", echo),
            ("one-way", oneway),
            ("rtt1", rtt(1)),
            ("rtt64", rtt(64)),
            ("blocked tty", stall),
            ("multi", multi),
        ]
        assert [case for case, _ in steps] == list(CASES)
        for case, fn in steps:
            if self.cases is not None and case not in self.cases:
                continue
            log(f"{case} x{plan.reps} on {', '.join(s.name for s in self.servers)}")
            self.each(case, fn)
        for server in self.servers:
            for name, (cpu, relayed) in (
                ("CPU s/MB echo", cpu_echo.get(server.name, (0.0, 0.0))),
                ("CPU s/MB net->serial", cpu_oneway.get((server.name, "net->serial"), (0, 0))),
                ("CPU s/MB serial->net", cpu_oneway.get((server.name, "serial->net"), (0, 0))),
            ):
                if relayed:
                    self.stat(server, name).values.append(cpu / relayed)
            rss = self.stat(server, f"peak RSS MiB ({plan.channels} ch)")
            instances = self.instances.get(server.name, [server])
            rss.values.append(max(peak_rss_mib(i.pids()) for i in instances))
            if len(server.procs) > 1:
                rss.note = f"sum over {len(server.procs)} processes"
            elif len(instances) > 1:
                rss.note = f"the largest of {len(instances)} instances"


def bare_pty(plan: Plan, pin: bool) -> str:
    """The ceiling of this setup: the client on the slave, no TCP, no relay."""
    device = Device(1)
    fd = os.open(device.paths[0], os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        stream = FdStream(fd)
        rates = [plan.bulk_bytes / bulk_echo(stream, plan.bulk_bytes, 9) / 1e6 for _ in range(3)]
        all_cpus = os.sched_getaffinity(0)
        pids = [os.getpid(), device.pid]
        if pin:
            set_affinity(pids, {PIN_CPU})
        try:
            samples = round_trips(stream, 1, plan.rtt_count, plan.rtt_warmup)
        finally:
            set_affinity(pids, all_cpus)
        return (
            f"bare pty (no TCP, no relay): bulk echo {statistics.median(rates):.1f} MB/s, "
            f"RTT 1 B median {statistics.median(samples) * 1e6:.0f} us"
            + (" (pinned)" if pin else "")
        )
    finally:
        os.close(fd)
        device.close()


# -- report ----------------------------------------------------------------------------------


@dataclass
class Metric:
    name: str
    unit: str
    fmt: str
    target: str = ""
    test: Callable[[float, float | None], bool] | None = None  # (ours, socat) -> pass


def metrics(channels: int) -> list[Metric]:
    def at_least_socat(ours: float, socat: float | None) -> bool:
        return socat is not None and ours >= socat

    return [
        Metric("bulk echo", "MB/s", "{:.1f}", ">= 1.0x socat", at_least_socat),
        Metric("net->serial", "MB/s", "{:.1f}", ">= 1.0x socat", at_least_socat),
        Metric("serial->net", "MB/s", "{:.1f}", ">= 1.0x socat", at_least_socat),
        Metric(
            "RTT 1 B median",
            "us",
            "{:.0f}",
            "<= 1.3x socat",
            lambda o, s: s is not None and o <= 1.3 * s,
        ),
        Metric("RTT 1 B p99", "us", "{:.0f}"),
        Metric("RTT 1 B min", "us", "{:.0f}"),
        Metric("RTT 64 B median", "us", "{:.0f}"),
        Metric("RTT 64 B p99", "us", "{:.0f}"),
        Metric("RTT 64 B min", "us", "{:.0f}"),
        Metric(f"{channels} ch round trips/s", "", "{:.0f}", ">= 25000", lambda o, s: o >= 25000),
        Metric(f"{channels} ch p99", "ms", "{:.2f}", "< 10 ms", lambda o, s: o < 10),
        Metric("CPU s/MB echo", "s", "{:.4f}", "<= 0.01", lambda o, s: o <= 0.01),
        Metric("CPU s/MB net->serial", "s", "{:.4f}", "<= 0.01", lambda o, s: o <= 0.01),
        Metric("CPU s/MB serial->net", "s", "{:.4f}", "<= 0.01", lambda o, s: o <= 0.01),
        Metric(f"peak RSS MiB ({channels} ch)", "MiB", "{:.1f}", "<= 64 MiB", lambda o, s: o <= 64),
        Metric("blocked tty", "", "{}", "flows", lambda o, s: o == 1.0),
    ]


def report(bench: Bench, notes: list[str]) -> bool:
    names = [s.name for s in bench.servers]
    ours, base = names[0], names[1:]
    cols = "".join(f" {n:>10}" for n in names)
    ratios = "".join(f" {'/' + n:>9}" for n in base)
    header = f"{'metric':<24} {'unit':<5}{cols}{ratios}  {'target':<14}"
    print()
    print(f"medians over {bench.plan.reps} repetitions; ratio = {ours} / baseline")
    print(header.rstrip())
    print("-" * (len(header) + 5))
    all_pass = True
    for m in metrics(bench.plan.channels):
        cells, values = "", {}
        for n in names:
            st = bench.stats.get((n, m.name))
            v = st.median() if st else None
            values[n] = v
            if v is None:
                text = "-"
            elif m.name == "blocked tty":
                text = "flows" if v == 1.0 else "STALLS"
            else:
                text = m.fmt.format(v)
            cells += f" {text:>10}"
        ratio_cells = ""
        for n in base:
            o, b = values[ours], values[n]
            if o is not None and b and m.name != "blocked tty":
                ratio_cells += f" {o / b:>9.2f}"
            else:
                ratio_cells += f" {'-':>9}"
        line = f"{m.name:<24} {m.unit:<5}{cells}{ratio_cells}  {m.target:<14}"
        if m.test is not None:
            o = values[ours]
            passed = o is not None and m.test(o, values.get("socat"))
            all_pass &= passed
            line += " PASS" if passed else " FAIL"
        print(line.rstrip())
        for n in names:
            st = bench.stats.get((n, m.name))
            if st is not None and st.note:
                print(f"{'':<26}{n}: {st.note}")
    for (name, case), failure in bench.failures.items():
        print(f"failed: {name}, {case}: {failure}")
    for note in notes:
        print(f"note: {note}")
    if "base" in names:
        paired(bench, ours, "base")
    print()
    print("overall:", "PASS" if all_pass else "FAIL")
    return all_pass


def paired(bench: Bench, ours: str, base: str) -> None:
    """``ours / base`` repetition by repetition: the two ran one right after
    the other, so the spread of these ratios is the noise a median of them
    is up against (a build that is really slower is slower in most of them)."""
    print()
    print(f"{ours} / {base} by repetition (ratio of values measured back to back):")
    for m in metrics(bench.plan.channels):
        o, b = bench.stats.get((ours, m.name)), bench.stats.get((base, m.name))
        if o is None or b is None or len(o.values) < 2 or len(b.values) < 2:
            continue
        ratios = [x / y for x, y in zip(o.values, b.values, strict=False) if y]
        if not ratios:
            continue
        cells = " ".join(f"{r:.2f}" for r in ratios)
        print(
            f"  {m.name:<24} {cells}  (median {statistics.median(ratios):.2f}, "
            f"{min(ratios):.2f}-{max(ratios):.2f})"
        )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases (about 30 s)")
    parser.add_argument("--reps", type=int, help="repetitions of each case (default 5, quick 3)")
    parser.add_argument("--channels", type=int, default=128, help="channels for the multi case")
    parser.add_argument("--no-baselines", action="store_true", help="skip socat and ser2net")
    parser.add_argument("--no-ser2net", action="store_true", help="skip ser2net")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare pty ceiling")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the latency runs")
    parser.add_argument("--uvloop", action="store_true", help="run nf on uvloop (a wrapper)")
    parser.add_argument("--nf", help="command that runs nf (default: .venv/bin/nf)")
    parser.add_argument(
        "--base",
        metavar="CMD",
        help="also run another build of nf (as 'base') for a ratio, e.g. "
        "'env PYTHONPATH=DIR .venv/bin/python -m nf' for a tree exported to DIR",
    )
    parser.add_argument(
        "--cases",
        type=lambda text: [c if c in CASES else c.replace("-", " ") for c in text.split(",")],
        help="run only these cases, comma-separated: "
        + ",".join(c.replace(" ", "-") for c in CASES),
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        metavar="K",
        help="start K daemons of ours (and of base), each with its own device, used in turn "
        "by repetition: one process can be 10%% faster or slower than another of the same build",
    )
    parser.add_argument("--profile", metavar="PREFIX", help="py-spy our daemon per case")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--rfc2217",
        action="store_true",
        help="only the RFC 2217 case: bulk echo through a raw and an rfc2217 channel "
        "(and ser2net's tcp and telnet(rfc2217) accepters), pyserial's rfc2217:// against each",
    )
    args = parser.parse_args()
    if args.instances < 1:
        parser.error("--instances: at least 1")
    if args.cases is not None and set(args.cases) - set(CASES):
        parser.error(f"--cases: unknown {', '.join(sorted(set(args.cases) - set(CASES)))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up servers and devices
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    reps = args.reps or (3 if args.quick else 5)
    mib = 1 << 20
    plan = (
        Plan(16 * mib, 16 * mib, reps, 500, 50, 1.0, args.channels)
        if args.quick
        else Plan(64 * mib, 64 * mib, reps, 3000, 200, 3.0, args.channels)
    )
    pin = not args.no_pin and shutil.which("taskset") is not None
    pin = pin and PIN_CPU in os.sched_getaffinity(0) and (os.cpu_count() or 1) >= 2
    venv_python = ROOT / ".venv" / "bin" / "python"
    if args.nf:
        nf = shlex.split(args.nf)
    elif args.uvloop:
        nf = [str(venv_python) if venv_python.exists() else sys.executable, "-c", UVLOOP_WRAPPER]
    else:
        venv_nf = ROOT / ".venv" / "bin" / "nf"
        nf = [str(venv_nf) if venv_nf.exists() else "nf"]
    label = "ours+uvloop" if args.uvloop else "ours"
    with contextlib.suppress(ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    if args.rfc2217:
        tmp = Path(tempfile.mkdtemp(prefix="bench-rfc2217-"))
        try:
            with_ser2net = not (args.no_baselines or args.no_ser2net)
            if with_ser2net and shutil.which("ser2net") is None:
                print("note: ser2net skipped: not installed (apt-get install ser2net)")
                with_ser2net = False
            return 0 if rfc2217_bench(tmp, plan, nf, with_ser2net) else 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    notes: list[str] = []
    servers: list[Server] = []
    instances: dict[str, list[Server]] = {}
    extra: list[Server] = []  # instances after the first
    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    passed = False
    try:
        print(
            f"bench_relay: {plan.channels} channels, bulk {plan.bulk_bytes // mib} MiB, "
            f"one-way {plan.oneway_bytes // mib} MiB, {plan.rtt_count} round trips, "
            f"multi {plan.multi_seconds:g} s, {reps} repetitions; latency runs pinned to "
            + (f"CPU {PIN_CPU}" if pin else "nothing")
        )
        if not args.no_bare:
            log("bare pty ceiling")
            notes.append(bare_pty(plan, pin))
        builds = [(label, nf)] + ([("base", shlex.split(args.base))] if args.base else [])
        for name, cmd in builds:
            log(f"starting {name} ({shlex.join(cmd)[:80]}) x{args.instances}")
            instances[name] = []
            for k in range(args.instances):
                server = start_ours(tmp, plan.channels, cmd, name, f"{name}{k}")
                (extra if k else servers).append(server)  # the report lists the first
                instances[name].append(server)
        if servers[0].note:
            notes.append(f"{label}: {servers[0].note}")
        if args.instances > 1:
            notes.append(
                f"{args.instances} instances of {' and '.join(instances)} (each its own "
                "daemon, device and ptys), used in turn by repetition"
            )
        if args.no_baselines:
            notes.append("baselines skipped (--no-baselines); targets relative to socat fail")
        else:
            if shutil.which("socat") is None:
                notes.append("socat baseline skipped: not installed (apt-get install socat)")
            else:
                log("starting socat")
                servers.append(start_socat(plan.channels))
            if args.no_ser2net:
                notes.append("ser2net baseline skipped (--no-ser2net)")
            elif shutil.which("ser2net") is None:
                notes.append("ser2net baseline skipped: not installed (apt-get install ser2net)")
            else:
                log("starting ser2net")
                servers.append(start_ser2net(tmp, plan.channels))
        if args.cases is not None:
            notes.append("only " + ", ".join(args.cases) + " (--cases): the others fail")
        bench = Bench(servers, plan, pin, args.profile, args.cases, instances)
        bench.run()
        passed = report(bench, notes)
    except RuntimeError as exc:  # a server or the device did not start
        print(f"bench_relay: {exc}", file=sys.stderr)
        return 2
    finally:
        for server in servers + extra:
            server.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
