#!/usr/bin/env python3
"""Benchmark how much management work disturbs the serial links (relay RTT under NETCONF load).

``nf run`` runs as a subprocess, booted from a configuration of N idle
channels plus one echo channel.  Every channel is a TCP server on
127.0.0.1 relaying a pseudo-terminal: a device process of this benchmark
(``bench_relay.Device``) owns the pty masters and echoes whatever reaches
them, like a loopback plug.  The idle channels have no TCP client, so
nothing ever reaches their ptys; the daemon still holds their ttys and
listening sockets open.  The echo channel is a pty too (not ``loop://``):
the relay path measured is the real one, tty and all.

In each phase this process sends 1 byte to the echo channel's TCP port and
waits for it to come back, ``--round-trips`` times, paced every
``--interval`` ms like a polling master (not back to back), and reports the
median, p99 and max round trip.  The load of a phase runs in processes of
its own (no GIL shared with the prober):

* ``idle``: nothing;
* ``get``: 4 NETCONF sessions looping a full ``<get>`` (config and state
  of every channel);
* ``commit``: one session looping a one-leaf edit (the description of
  channel c0, toggled) on candidate, then ``<commit>``;
* ``login``: a storm of wrong-password SSH logins from one client process,
  a new connection per attempt (SSH handshake included), 16 in flight.  The
  daemon throttles failed logins per source address (a few free failures,
  then doubling delays, then refusal without hashing), so the storm
  rotates over source addresses 127.0.0.2 ... (``--storm-sources``, 253
  by default: enough for every attempt of a few-second phase to be checked,
  an scrypt each).  The daemon's own counters of checked and refused
  attempts are reported;
* ``bigedit``: one session sending an edit-config whose serial-port name is
  1 MB long (invalid: names are at most 32 characters) once a second.

Each phase starts its load, waits until every load session is open and a
short warm-up has passed, then probes; the load achieved (operations per
second) and the daemon's CPU time (utime+stime of the ``nf run`` process
and all its descendants, so that a daemon split into processes is measured
whole) are taken over the probing window.

For the slowest 1% of each phase's round trips (those at and above p99)
the note "slowest 1%" says where their time went: how long the prober,
the data plane's main thread and the echo device each ran and waited for a
CPU while they lasted (/proc/.../schedstat).  Time that none of them ran
or waited for is the kernel's, the hypervisor's or wake-up latency; time
the data plane waited is another process on its CPU; only time it ran is
its own work.

A control relay, unless ``--no-control``: socat (C, one process, no
Python) relays a pty of its own, placed where nf's data plane is, and every
tick of the prober makes one round trip through nf's echo channel and one
through socat, so both meet the same load at the same moments.  socat has
nothing to do with the NETCONF load, so its p99/idle ratio and max are
what this machine does to any relay under that load: the floor below
which nf's figures cannot go here.

``--data-plane-cpus LIST`` (e.g. 1 or auto) runs nf with that option and
places this benchmark's own processes where a deployment has their
counterparts: the prober and the echo device (the serial link's far ends,
a remote host and a UART) on the data plane's CPUs, the load's clients
(orchestrators, on other machines in a deployment) on the others.  This
machine's kernel does not preempt kernel code (``preempt=none``): a
process that shares a CPU with the data plane delays its wake-up by as
long as its system calls run, whatever the priorities; on a CPU of its
own, the data plane sees none of that.

Targets (issue: control plane / data plane split, point 5): under each
load, p99 <= 1.2x the idle p99 of the same run and max <= 5 ms.  PASS/FAIL
is printed; the exit status is 0 either way (a benchmark, on a noisy
machine), unless the benchmark itself fails.

    .venv/bin/python tools/bench_isolation.py [--channels N] [--round-trips N]
        [--interval MS] [--phases idle,get,commit,login,bigedit]
        [--storm-sources N] [--json PATH|-] [--nf CMD] [--keep]
        [--data-plane-cpus LIST] [--load-nice N] [--no-control]

The channel ports are free ports found by binding port 0 and closing
(``bench_relay.free_ports``): another program could take one in between
(a small race; the boot then fails and says so).  All traffic stays on
127.0.0.0/8.  The default (500 channels, 1500 round trips every 2 ms, five
phases) takes about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import re
import shlex
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import bench_netconf
import bench_relay
import paramiko
from bench_netconf import GET, NS, RawSession, check

from nf.plane.supervisor import parse_cpus

HOST = bench_relay.HOST
PASSWORD = bench_relay.PASSWORD
ROOT = bench_relay.ROOT
PHASES = ("idle", "get", "commit", "login", "bigedit")
GET_SESSIONS = 4
STORM_THREADS = 16
BIG_NAME = 1 << 20
TARGET_RATIO = 1.2
TARGET_MAX = 0.005
WARMUP_SECONDS = 0.5
WARMUP_TRIPS = 20
LOAD_TIMEOUT = 60.0


# -- loads, each in a process of its own --------------------------------------------------


@dataclass
class Load:
    """The shared counters of one load process."""

    ops: Synchronized[int]
    busy: Synchronized[float]
    """Seconds spent in the counted operations (their mean latency, with ``ops``)."""
    errors: Synchronized[int]
    ready: Synchronized[int]
    stop: Event


LOAD_NICENESS = 19
"""The load's clients stand for orchestrators on other machines: here they
share the daemon's two CPUs, and their SSH crypto would take the CPU from
the data plane as no remote client can.  At nice 19 they still run flat
out (the load achieved is reported) but yield to the daemon, the prober
and the echo device.  ``--load-nice 0`` measures without that."""


def load_main(kind: str, port: int, load: Load, arg: int) -> None:
    """Run the load ``kind`` against the NETCONF port until ``load.stop``.

    ``ops`` counts completed operations, ``busy`` adds up their durations,
    ``errors`` counts unexpected outcomes;
    ``ready`` becomes 1 once the load is under way (its session open).
    """
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    niceness = int(os.environ.get("NF_BENCH_LOAD_NICE", LOAD_NICENESS))
    if niceness:
        os.nice(niceness)
    cpus = os.environ.get("NF_BENCH_LOAD_CPUS")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    try:
        {"get": _gets, "commit": _commits, "login": _storm, "bigedit": _big_edits}[kind](
            port, load, arg
        )
    except Exception as exc:
        with load.errors.get_lock():
            load.errors.value += 1
        print(f"load {kind} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        load.ready.value = 1  # never leave the phase waiting for a dead load


def _session(port: int) -> RawSession:
    return RawSession(port, "admin", PASSWORD, timeout=LOAD_TIMEOUT)


def _gets(port: int, load: Load, _arg: int) -> None:
    session = _session(port)
    load.ready.value = 1
    try:
        while not load.stop.is_set():
            t0 = time.perf_counter()
            session.rpc(GET)
            done(load, t0)
    finally:
        session.close()


def done(load: Load, t0: float) -> None:
    """One operation started at ``t0`` (perf_counter) completed now."""
    load.busy.value += time.perf_counter() - t0
    load.ops.value += 1


def description(i: int) -> bytes:
    return bench_netconf.edit(
        f"<channel><name>c0</name><description>bench {i % 2}</description></channel>"
    )


def _commits(port: int, load: Load, _arg: int) -> None:
    session = _session(port)
    load.ready.value = 1
    i = 0
    try:
        while not load.stop.is_set():
            t0 = time.perf_counter()
            check(session.rpc(description(i)), want_ok=True)
            check(session.rpc(bench_netconf.COMMIT), want_ok=True)
            done(load, t0)
            i += 1
    finally:
        session.close()


def big_edit() -> bytes:
    """An edit-config of about 1 MB, refused at edit time: the name is too long."""
    return bench_netconf.edit(
        f"<serial-port><name>{'n' * BIG_NAME}</name><device>loop://</device></serial-port>"
    )


def _big_edits(port: int, load: Load, _arg: int) -> None:
    session = _session(port)
    body = big_edit()
    load.ready.value = 1
    try:
        next_at = time.monotonic()
        while not load.stop.is_set():
            t0 = time.perf_counter()
            session.send(body)
            reply = session.receive()
            if bench_netconf.RPC_ERROR.search(reply):
                done(load, t0)
            else:  # accepted: the daemon missed the invalid name
                load.errors.value += 1
            next_at += 1.0
            load.stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        session.close()


def storm_sources(n: int) -> list[str]:
    """127.0.0.2 onwards, ``n`` addresses (all of them route to lo on Linux)."""
    return [f"127.0.{(i + 2) // 256}.{(i + 2) % 256}" for i in range(n)]


def _storm(port: int, load: Load, sources: int) -> None:
    addresses = storm_sources(sources)
    lock = threading.Lock()
    turn = [0]

    def attempt(source: str) -> None:
        t0 = time.perf_counter()
        sock = socket.socket()
        try:
            sock.settimeout(LOAD_TIMEOUT)
            sock.bind((source, 0))
            sock.connect((HOST, port))
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=LOAD_TIMEOUT)
                transport.auth_password("admin", "wrong-password")
            except paramiko.AuthenticationException:
                with lock:
                    done(load, t0)
                return
            finally:
                transport.close()
            with lock:
                load.errors.value += 1  # logged in with a wrong password?
        finally:
            sock.close()

    def worker() -> None:
        while not load.stop.is_set():
            with lock:
                source = addresses[turn[0] % len(addresses)]
                turn[0] += 1
            try:
                attempt(source)
            except (OSError, EOFError, paramiko.SSHException):
                with lock:  # closed at once (too many negotiating), reset, ...
                    load.errors.value += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(STORM_THREADS)]
    for thread in threads:
        thread.start()
    load.ready.value = 1
    for thread in threads:
        thread.join(LOAD_TIMEOUT)


class Loads:
    """The processes of one phase's load, started and stopped together."""

    def __init__(self, kind: str, port: int, workers: int, arg: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.loads = [
            Load(
                ctx.Value("q", 0),
                ctx.Value("d", 0.0),
                ctx.Value("q", 0),
                ctx.Value("b", 0),
                self.stop,
            )
            for _ in range(workers)
        ]
        self.procs = [
            ctx.Process(target=load_main, args=(kind, port, load, arg), daemon=True)
            for load in self.loads
        ]
        for proc in self.procs:
            proc.start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(load.ready.value for load in self.loads):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the load did not start in {timeout} s")
            time.sleep(0.02)

    def counts(self) -> tuple[int, float, int]:
        """Operations done, seconds spent in them, errors: of all the processes."""
        return (
            sum(load.ops.value for load in self.loads),
            sum(load.busy.value for load in self.loads),
            sum(load.errors.value for load in self.loads),
        )

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(LOAD_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join()


# -- the daemon's processes ------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants now (from /proc: parent of each process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


COUNTER = re.compile(rb"<(?:[\w.-]+:)?(failed-password-logins|refused-logins)>(\d+)<")


def module_of(pid: int) -> str:
    """What a process of the daemon runs: its python module (-m) or program."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    if b"-m" in argv[:-1]:
        return argv[argv.index(b"-m") + 1].decode()
    names = [Path(a.decode()).name for a in argv if a]
    if len(names) > 1 and names[0].startswith("python"):
        return names[1]  # a script: nf itself
    return names[0] if names else str(pid)


def login_counters(port: int) -> dict[str, int]:
    """The daemon's counters of checked and refused logins (/netconf-server)."""
    session = _session(port)
    try:
        reply = session.rpc(
            f'<get><filter type="subtree"><netconf-server xmlns="{NS}"/></filter></get>'.encode()
        )
    finally:
        session.close()
    return {m[1].decode(): int(m[2]) for m in COUNTER.finditer(reply)}


# -- the probe ----------------------------------------------------------------------------------


def schedstat(path: str) -> tuple[int, int]:
    """A thread's nanoseconds on a CPU and waiting for one (runnable, not
    running) so far: /proc/.../schedstat's first two fields."""
    with open(path, "rb") as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


class Stalls:
    """Where the time of the slowest round trips through the first socket
    went: for each thread of ``threads`` ({label: /proc/.../schedstat}),
    how long it ran and how long it waited for a CPU during each round trip.
    Time that no thread of the path ran or waited for is neither's: the
    kernel's (interrupts, softirqs), the hypervisor's, or a wake-up's own
    latency.  Why: a max of 15 ms could be the data plane's own work, a
    process on its CPU, or the machine; only the first is ours to fix."""

    def __init__(self, threads: dict[str, str]) -> None:
        self.threads = threads
        self.trips: list[tuple[float, list[tuple[int, int]]]] = []

    def read(self) -> list[tuple[int, int]]:
        out = []
        for path in self.threads.values():
            try:
                out.append(schedstat(path))
            except (OSError, ValueError):
                out.append((0, 0))
        return out

    def add(self, seconds: float, before: list[tuple[int, int]]) -> None:
        after = self.read()
        self.trips.append(
            (seconds, [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)])
        )

    def summary(self, slowest: float = 0.01) -> dict[str, Any]:
        """The slowest ``slowest`` share of the round trips (p99 and above):
        their total ms, and each thread's ms running and waiting for a CPU."""
        worst = sorted(self.trips, key=lambda t: t[0])[-max(1, round(len(self.trips) * slowest)) :]
        total = sum(t[0] for t in worst) * 1e3
        out: dict[str, Any] = {"round trips": len(worst), "ms": round(total, 2)}
        for i, label in enumerate(self.threads):
            out[f"{label} ran"] = round(sum(t[1][i][0] for t in worst) / 1e6, 2)
            out[f"{label} waited"] = round(sum(t[1][i][1] for t in worst) / 1e6, 2)
        return out


def paced_round_trips(
    socks: list[socket.socket], count: int, interval: float, stalls: Stalls | None = None
) -> list[list[float]]:
    """1-byte round trips, a tick every ``interval`` s (at once after a late
    one), each tick one through every socket in turn: seconds, per socket.
    ``stalls`` records the first socket's round trips (outside their time)."""
    buf = bytearray(1)
    samples: list[list[float]] = [[] for _ in socks]
    next_at = time.perf_counter()
    for i in range(count):
        now = time.perf_counter()
        if next_at > now:
            time.sleep(next_at - now)
        byte = bytes((i & 0xFF,))
        tick = time.perf_counter()
        for n, (sock, times) in enumerate(zip(socks, samples, strict=True)):
            before = stalls.read() if stalls is not None and n == 0 else None
            t0 = time.perf_counter()
            sock.sendall(byte)
            if sock.recv_into(buf, 1) != 1 or buf[0] != byte[0]:
                raise RuntimeError(f"round trip {i}: sent {byte!r}, got {bytes(buf)!r}")
            times.append(time.perf_counter() - t0)
            if before is not None and stalls is not None:
                stalls.add(times[-1], before)
        next_at = tick + interval
    return samples


@dataclass
class PhaseResult:
    phase: str
    load: str
    round_trips: int
    median_ms: float
    p99_ms: float
    max_ms: float
    seconds: float
    ops: int
    ops_per_s: float
    load_errors: int
    daemon_cpu_s: float
    daemon_cpu_pct: float
    notes: dict[str, Any] = field(default_factory=dict)
    p99_ratio: float = 0.0
    passed: bool | None = None
    control: dict[str, float] | None = None
    """socat's median_ms, p99_ms, max_ms (and p99_ratio) in the same ticks."""


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


LOAD_UNITS = {
    "idle": ("nothing", ""),
    "get": (f"full <get> x{GET_SESSIONS} sessions", "gets/s"),
    "commit": ("edit+commit of one leaf", "commits/s"),
    "login": ("wrong-password logins", "logins/s"),
    "bigedit": ("1 MB invalid edit-config", "edits/s"),
}


def run_phase(
    name: str,
    port: int,
    socks: list[socket.socket],
    daemon_pid: int,
    device_pid: int,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> PhaseResult:
    loads: Loads | None = None
    notes: dict[str, Any] = {}
    before_logins: dict[str, int] = {}
    try:
        if name == "get":
            loads = Loads("get", port, GET_SESSIONS)
        elif name == "commit":
            loads = Loads("commit", port, 1)
        elif name == "login":
            before_logins = login_counters(port)
            loads = Loads("login", port, 1, args.storm_sources)
        elif name == "bigedit":
            loads = Loads("bigedit", port, 1)
        if loads is not None:
            loads.wait_ready(LOAD_TIMEOUT)
            notes["load cpus"] = sorted(
                {c for p in loads.procs if p.pid for c in os.sched_getaffinity(p.pid)}
            )
            time.sleep(WARMUP_SECONDS)
        paced_round_trips(socks, WARMUP_TRIPS, args.interval / 1e3)
        pids = process_tree(daemon_pid)
        cpu0 = bench_relay.cpu_seconds(pids)
        dataplane = [pid for pid in pids if module_of(pid) == "nf.plane.dataplane"]
        dp0 = bench_relay.cpu_seconds(dataplane)
        ops0, busy0, _ = loads.counts() if loads else (0, 0.0, 0)
        threads = {"prober": f"/proc/self/task/{threading.get_native_id()}/schedstat"}
        if dataplane:
            threads["data plane"] = f"/proc/{dataplane[0]}/schedstat"
        threads["device"] = f"/proc/{device_pid}/schedstat"
        stalls = Stalls(threads)
        t0 = time.perf_counter()
        samples, *control = paced_round_trips(socks, args.round_trips, args.interval / 1e3, stalls)
        elapsed = time.perf_counter() - t0
        ops1, busy1, errors = loads.counts() if loads else (0, 0.0, 0)
        cpu = bench_relay.cpu_seconds(pids) - cpu0
        if dataplane:
            notes["data plane CPU s"] = round(bench_relay.cpu_seconds(dataplane) - dp0, 3)
        if len(process_tree(daemon_pid)) != len(pids):
            notes["daemon processes changed"] = True
    finally:
        if loads is not None:
            loads.close()
    notes["slowest 1%"] = stalls.summary()
    if ops1 > ops0:
        notes["mean operation ms"] = round((busy1 - busy0) / (ops1 - ops0) * 1e3, 1)
    if name == "login":
        after = login_counters(port)
        for key, value in after.items():
            notes[key] = value - before_logins.get(key, 0)
        notes["source addresses"] = args.storm_sources
    what, unit = LOAD_UNITS[name]
    result = PhaseResult(
        phase=name,
        load=what,
        round_trips=len(samples),
        median_ms=statistics.median(samples) * 1e3,
        p99_ms=p99(samples) * 1e3,
        max_ms=max(samples) * 1e3,
        seconds=elapsed,
        ops=ops1 - ops0,
        ops_per_s=(ops1 - ops0) / elapsed,
        load_errors=errors,
        daemon_cpu_s=cpu,
        daemon_cpu_pct=100 * cpu / elapsed,
        notes=notes,
    )
    if control:
        result.control = {
            "median_ms": statistics.median(control[0]) * 1e3,
            "p99_ms": p99(control[0]) * 1e3,
            "max_ms": max(control[0]) * 1e3,
        }
    log(
        f"{name}: median {result.median_ms:.3f} ms, p99 {result.p99_ms:.3f} ms, "
        f"max {result.max_ms:.3f} ms; {result.ops_per_s:.1f} {unit or 'ops/s'}"
        + (f"; socat p99 {result.control['p99_ms']:.3f} ms" if result.control else "")
    )
    return result


# -- report ---------------------------------------------------------------------------------------


def judge(results: list[PhaseResult]) -> None:
    idle = next((r for r in results if r.phase == "idle"), None)
    for r in results:
        if idle is not None:
            r.p99_ratio = r.p99_ms / idle.p99_ms
            if r.control is not None and idle.control is not None:
                r.control["p99_ratio"] = r.control["p99_ms"] / idle.control["p99_ms"]
        if r.phase != "idle":
            r.passed = r.max_ms <= TARGET_MAX * 1e3 and (
                idle is None or r.p99_ratio <= TARGET_RATIO
            )


def table(results: list[PhaseResult], channels: int, out: Any) -> None:
    def p(line: str = "") -> None:
        print(line, file=out)

    p()
    p(f"relay 1-byte RTT in ms through the echo channel; {channels} idle pty channels")
    p(
        f"targets under load: p99 <= {TARGET_RATIO}x idle p99, max <= {TARGET_MAX * 1e3:.0f} ms; "
        "CPU = the daemon's processes over the probing window"
    )
    control = any(r.control for r in results)
    header = (
        f"{'phase':<8} {'n':>5} {'median':>7} {'p99':>7} {'max':>7} {'p99/idle':>8}  "
        + (f"{'socat p99':>9} {'max':>7} {'p99/idle':>8}  " if control else "")
        + f"{'load achieved':<22} {'err':>4} {'CPU s':>6} {'CPU%':>5}  verdict"
    )
    p(header)
    p("-" * len(header))
    for r in results:
        _, unit = LOAD_UNITS[r.phase]
        load = f"{r.ops_per_s:.1f} {unit}" if unit else "-"
        ratio = f"{r.p99_ratio:.2f}" if r.p99_ratio else "-"
        verdict = "-" if r.passed is None else "PASS" if r.passed else "FAIL"
        floor = ""
        if r.control is not None:
            c = r.control
            c_ratio = f"{c['p99_ratio']:.2f}" if "p99_ratio" in c else "-"
            floor = f"{c['p99_ms']:>9.3f} {c['max_ms']:>7.3f} {c_ratio:>8}  "
        elif control:
            floor = f"{'-':>9} {'-':>7} {'-':>8}  "
        p(
            f"{r.phase:<8} {r.round_trips:>5} {r.median_ms:>7.3f} {r.p99_ms:>7.3f} "
            f"{r.max_ms:>7.3f} {ratio:>8}  {floor}{load:<22} {r.load_errors:>4} "
            f"{r.daemon_cpu_s:>6.2f} {r.daemon_cpu_pct:>5.0f}  {verdict}"
        )
        if r.notes:
            p(f"{'':9}{', '.join(f'{k}: {v}' for k, v in r.notes.items())}")
    verdicts = [r.passed for r in results if r.passed is not None]
    if control:
        p()
        p(
            "socat: the control relay (C, no NETCONF) on the data plane's CPUs, probed in the "
            "same ticks; its p99/idle and max under a load are this machine's floor for any relay"
        )
    if verdicts:
        p()
        p("overall: " + ("PASS" if all(verdicts) else "FAIL"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=500, help="idle channels (default 500)")
    parser.add_argument(
        "--round-trips", type=int, default=1500, help="round trips per phase (default 1500)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="ms between round trips (default 2)"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, from {','.join(PHASES)} (default all, in this order)",
    )
    parser.add_argument(
        "--storm-sources",
        type=int,
        default=253,
        help="source addresses of the login storm, from 127.0.0.2 (default 253)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON (- : stdout)")
    parser.add_argument("--nf", help="command that runs nf (default: .venv/bin/nf)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--load-nice",
        type=int,
        default=LOAD_NICENESS,
        help=f"nice value of the load's client processes (default {LOAD_NICENESS})",
    )
    parser.add_argument(
        "--data-plane-cpus",
        metavar="LIST",
        help="run nf with --data-plane-cpus LIST, and place this benchmark's own processes "
        "as a deployment would have them: the prober and the echo device (the serial "
        "link's far ends) on those CPUs, the load's clients (orchestrators, elsewhere in "
        "a deployment) on the others",
    )
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="no socat control relay (it runs by default when socat is installed)",
    )
    args = parser.parse_args()
    os.environ["NF_BENCH_LOAD_NICE"] = str(args.load_nice)  # the load processes inherit it
    link_cpus: set[int] = set()
    if args.data_plane_cpus:
        link_cpus = set(parse_cpus(args.data_plane_cpus))
        others = os.sched_getaffinity(0) - link_cpus
        if not link_cpus <= os.sched_getaffinity(0) or not others:
            parser.error(
                f"--data-plane-cpus {args.data_plane_cpus}: not a proper subset of "
                f"this machine's CPUs {sorted(os.sched_getaffinity(0))}"
            )
        os.environ["NF_BENCH_LOAD_CPUS"] = ",".join(map(str, sorted(others)))
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if args.round_trips < 1 or args.channels < 0 or args.storm_sources < 1:
        parser.error("--round-trips and --storm-sources must be positive, --channels >= 0")
    out = sys.stderr if args.json == "-" else sys.stdout
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if args.nf:
        nf = shlex.split(args.nf)
    else:
        venv_nf = ROOT / ".venv" / "bin" / "nf"
        nf = [str(venv_nf) if venv_nf.exists() else "nf"]
    if args.data_plane_cpus:  # an option of "nf run", which comes after the command
        run = f'exec {shlex.join(nf)} "$@" --data-plane-cpus {shlex.quote(args.data_plane_cpus)}'
        nf = ["sh", "-c", run, "nf"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    results: list[PhaseResult] = []
    try:
        log(f"booting nf with {args.channels} idle channels and one echo channel")
        t0 = time.monotonic()
        server = bench_relay.start_ours(tmp, args.channels + 1, nf, "nf")
        cleanup = contextlib.ExitStack()
        try:
            boot = time.monotonic() - t0
            daemon_pid = server.procs[0].pid
            log(f"booted in {boot:.1f} s; NETCONF on {HOST}:{server.netconf_port}")
            socks = [server.connect(args.channels)]  # the last channel echoes
            link_pids = [os.getpid(), server.device.pid]
            if not args.no_control and shutil.which("socat"):
                control = bench_relay.start_socat(1)
                cleanup.callback(control.close)
                socks.append(control.connect(0))
                link_pids += [control.device.pid, *control.pids()]
            if link_cpus:
                bench_relay.set_affinity(link_pids, link_cpus)
            for name in phases:
                log(f"phase {name}")
                results.append(
                    run_phase(
                        name, server.netconf_port, socks, daemon_pid, server.device.pid, args, log
                    )
                )
            rss = bench_relay.peak_rss_mib(process_tree(daemon_pid))
            placement = {
                "prober": sorted(os.sched_getaffinity(0)),
                "device": sorted(os.sched_getaffinity(server.device.pid)),
                "load": sorted({c for r in results for c in r.notes.get("load cpus", ())}),
                "daemon": {
                    module_of(pid): sorted(os.sched_getaffinity(pid))
                    for pid in process_tree(daemon_pid)
                },
            }
            if len(socks) > 1:
                placement["control"] = sorted(
                    {c for p in link_pids[2:] for c in os.sched_getaffinity(p)}
                )
        finally:
            cleanup.close()
            server.close()
        judge(results)
        table(results, args.channels, out)
        print(f"boot {boot:.1f} s; daemon peak RSS {rss:.1f} MiB; {server.note}", file=out)
        if args.json:
            doc = {
                "channels": args.channels,
                "round_trips": args.round_trips,
                "interval_ms": args.interval,
                "boot_s": boot,
                "peak_rss_mib": rss,
                "targets": {"p99_ratio": TARGET_RATIO, "max_ms": TARGET_MAX * 1e3},
                "phases": [asdict(r) for r in results],
                "cpus": placement,
                "passed": all(r.passed for r in results if r.passed is not None),
            }
            text = json.dumps(doc, indent=2)
            if args.json == "-":
                print(text)
            else:
                Path(args.json).write_text(text + "\n")
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
