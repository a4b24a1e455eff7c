"""``nf run``: a small supervisor of the two planes.

The daemon is two processes: the data plane (``nf.plane.dataplane``: every
serial port and relay socket, the relay runtime) and the control plane
(``nf.plane.control``: SSH, NETCONF, datastores, validation).  ``nf run``
is neither: it is this supervisor, a process that imports nothing but the
standard library and ``nf.boot``, so that nothing a client sends can crash
or stall the process systemd (or an operator) signals, and so that either
plane can be restarted without the other:

- it opens the state directory, takes its lock and binds the NETCONF
  listener (and the NETCONF over TLS one, ``--tls-listen``), then starts
  the data plane and the control plane, handing the listeners to the
  control plane (an inherited descriptor: connections that
  arrive while a control plane restarts wait in the backlog, none is
  refused);
- a control plane that dies is started again at once; the new one attaches
  to the running data plane and re-reads the configuration from it
  (``nf.app``), relays never stop;
- a data plane that dies is started again at once; the control plane,
  which notices the lost connection, gives it the running configuration;
- SIGTERM, SIGINT or SIGHUP stop the control plane first (its NETCONF
  sessions end), then the data plane, within ``STOP_SECONDS``, and exit 0;
- under systemd (``Type=notify``, ``compose/nf.service``) it tells the
  service manager READY=1 when the control plane first serves (its ready
  byte), STOPPING=1 on a stop signal, and a STATUS= line (nf.plane.notify);
- a control plane that cannot boot the first time (a bad configuration, a
  port taken) ends ``nf run`` with its exit status and its one-line
  message: there is nothing to restart then.

Why a third process rather than one plane supervising the other: the plane
that supervised would be the one whose death takes the service down.  If
the data plane were the parent, ``kill -9`` of it would end the service
anyway; if the control plane were, a crash of the control plane (the
plane exposed to clients) would orphan the data plane.  A supervisor of
~200 lines that parses nothing has nothing to crash on.

The planes run in sessions of their own (a Ctrl-C in a terminal reaches
only the supervisor, which stops them in order) and get SIGKILL if the
supervisor itself dies (PR_SET_PDEATHSIG), so nothing outlives it: the
supervisor dies only by kill -9 (or a bug), and the daemon then crashes as
one process would, nothing done on the way out (a pending confirmed commit
stays on disk and the next boot rolls it back).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nf.boot import EXIT_BOOT_FAILED, BootError
from nf.plane.notify import Notifier

log = logging.getLogger("nf.supervisor")

LOCK_FILE = "nf.lock"
DATAPLANE_SOCKET = "dataplane.sock"
STOP_SECONDS = 1.8
"""SIGTERM to everything stopped within this (the issue's bound is 2 s)."""
CONTROL_STOP_SECONDS = 1.0
"""Of which the control plane gets at most this before the data plane is stopped."""
BACKOFF = (0.0, 0.2, 0.5, 1.0, 2.0)
"""Delays before restarting a plane that keeps dying (consecutive deaths)."""
STABLE_SECONDS = 30.0
"""A plane up this long has its restart count forgotten."""
_PR_SET_PDEATHSIG = 1
CONTROL_NICENESS = 10
"""The control plane runs at a lower priority than the data plane: when
both want a CPU (a burst of <get>, a login storm, a large commit), a
serial byte arriving wakes the data plane ahead of management work, which
only waits a little longer.  Raising the data plane instead would need
privileges (CAP_SYS_NICE) that a daemon run by an operator may not have."""


def parse_cpus(text: str, available: frozenset[int] | None = None) -> frozenset[int]:
    """A CPU list as taskset and the kernel write it: "1", "0,2", "2-3";
    ValueError if it is not one.  "auto": the last CPU of ``available``
    (the CPUs this process may use, by default) when there are two or more,
    else none (both planes share the only one).  One is all the data plane
    needs (one event loop) and all the control plane loses (one
    interpreter, which uses about one CPU at a time anyway)."""
    if text.strip() == "auto":
        allowed = available if available is not None else frozenset(os.sched_getaffinity(0))
        return frozenset({max(allowed)}) if len(allowed) > 1 else frozenset()
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"not a CPU list: {text!r} (e.g. 1 or 2-3 or 0,2)")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"not a CPU list: {text!r} ({part} is backwards)")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def cpu_split(
    data: frozenset[int] | None, available: frozenset[int] | None = None
) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """The CPUs of the data plane and of the control plane: ``data`` and
    the rest of ``available`` (the supervisor's own, by default).  With no
    ``data``, or no CPU left for the control plane, the control plane
    shares them all.  BootError for CPUs this process may not use.

    Why: on a small box the control plane's bursts (a <get> of every
    channel, a storm of logins) otherwise take the CPU a relay byte needs;
    a CPU of its own keeps the data plane's latency that of an idle box
    (tools/bench_isolation.py), as packet data planes (VPP, DPDK) do."""
    if not data:
        return None, None
    allowed = available if available is not None else frozenset(os.sched_getaffinity(0))
    if not data <= allowed:
        missing = ",".join(map(str, sorted(data - allowed)))
        raise BootError(f"--data-plane-cpus: CPU {missing} is not available here")
    rest = allowed - data
    return data, (rest or None)


def lock_state_dir(state_dir: Path) -> int:
    """Hold the state directory's lock for as long as this process runs, or
    BootError: two daemons on one state directory would take each other's
    data-plane socket and overwrite each other's files."""
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise BootError(f"state directory {state_dir} is in use by nf run (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _setup(parent: int, niceness: int, cpus: frozenset[int] | None) -> Callable[[], None]:
    """preexec_fn of a plane: SIGKILL when the supervisor dies, whichever
    way; ``niceness`` added to its scheduling priority; only ``cpus``."""

    def setup() -> None:
        if niceness:
            os.nice(niceness)
        if cpus:
            os.sched_setaffinity(0, cpus)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return setup


@dataclass
class Plane:
    """One supervised process: how to start it and how it has fared."""

    name: str
    argv: Callable[[], list[str]]
    pass_fds: Callable[[], Sequence[int]] = tuple
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deaths: int = 0
    """Consecutive deaths, for the restart backoff."""
    restart_at: float | None = None
    ever_ready: bool = False
    niceness: int = 0
    """Added to the process's nice value (lower priority)."""
    cpus: frozenset[int] | None = None
    """The CPUs it may run on (None: those of the supervisor)."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(),
            pass_fds=tuple(self.pass_fds()),
            start_new_session=True,
            preexec_fn=_setup(os.getpid(), self.niceness, self.cpus),  # one thread here
        )
        self.started = time.monotonic()
        self.restart_at = None
        log.debug("%s started, pid %d", self.name, self.proc.pid)

    def exited(self) -> int | None:
        """The exit status if the process has ended (reaped), else None."""
        if self.proc is None:
            return None
        return self.proc.poll()

    def describe(self, status: int) -> str:
        if status < 0:
            return f"killed by {signal.Signals(-status).name}"
        return f"exit status {status}"


@dataclass
class Options:
    """What ``nf run`` was asked (nf.cli)."""

    state_dir: Path
    config: Path | None
    log_level: str
    ignore_bad_startup: bool
    demo_port: int = 0
    """``--demo-port``: where the embedded demo listens (0: its own port)."""
    data_cpus: frozenset[int] | None = None
    """The data plane's CPUs (``--data-plane-cpus``; None: all of them)."""
    control_cpus: frozenset[int] | None = None
    """The control plane's CPUs: the others (cpu_split; None: all of them)."""
    transport_config: Path | None = None
    """``--transport-config``: TLS and call home (read by the control plane)."""


class Supervisor:
    """Starts, watches, restarts and stops the two planes."""

    def __init__(
        self,
        options: Options,
        listener: socket.socket,
        notifier: Notifier,
        tls_listener: socket.socket | None = None,
        subsystem: socket.socket | None = None,
    ) -> None:
        self.options = options
        self.listener = listener
        self.tls_listener = tls_listener
        """NETCONF over TLS (--tls-listen): handed down like ``listener``, so
        that TLS clients too wait in its backlog while a control plane restarts."""
        self.subsystem = subsystem
        """nf-subsystem's Unix socket (--subsystem-socket), handed down alike."""
        self.notifier = notifier
        """The service manager (systemd ``Type=notify``): told READY=1 when
        the control plane first serves, STOPPING=1 on a stop signal."""
        self.socket_path = options.state_dir / DATAPLANE_SOCKET
        self._ready_r, self._ready_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._ready_r, False)  # read as it comes, never waited on
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping: int | None = None
        self.control_restarts = 0
        self._failure: str | None = None
        """Why the control plane's first boot failed, printed last."""
        self.data = Plane("data plane", self._data_argv, cpus=options.data_cpus)
        self.control = Plane(
            "control plane",
            self._control_argv,
            self._control_fds,
            niceness=CONTROL_NICENESS,
            cpus=options.control_cpus,
        )

    def _control_fds(self) -> tuple[int, ...]:
        fds: tuple[int, ...] = (self.listener.fileno(), self._ready_w)
        if self.tls_listener is not None:
            fds += (self.tls_listener.fileno(),)
        if self.subsystem is not None:
            fds += (self.subsystem.fileno(),)
        return fds

    def _python(self) -> list[str]:
        return [sys.executable, "-m"]

    def _data_argv(self) -> list[str]:
        return [
            *self._python(),
            "nf.plane.dataplane",
            "--socket",
            str(self.socket_path),
            "--log-level",
            self.options.log_level,
        ]

    def _control_argv(self) -> list[str]:
        o = self.options
        argv = [
            *self._python(),
            "nf.plane.control",
            "--state-dir",
            str(o.state_dir),
            "--listen-fd",
            str(self.listener.fileno()),
            "--ready-fd",
            str(self._ready_w),
            "--dataplane",
            str(self.socket_path),
            "--log-level",
            o.log_level,
        ]
        if o.config is not None:
            argv += ["--config", str(o.config)]
        if self.tls_listener is not None:
            argv += ["--tls-listen-fd", str(self.tls_listener.fileno())]
        if self.subsystem is not None:
            argv += ["--subsystem-fd", str(self.subsystem.fileno())]
        if o.transport_config is not None:
            argv += ["--transport-config", str(o.transport_config)]
        if o.ignore_bad_startup:
            argv.append("--ignore-bad-startup")
        if o.demo_port:
            argv += ["--demo-port", str(o.demo_port)]
        argv += ["--restarts", str(self.control_restarts)]
        return argv

    def run(self) -> int:
        """Supervise until a stop signal (0) or a first boot that fails (its status)."""
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the fd
        self.data.start()
        self.control.start()
        try:
            return self._loop()
        finally:
            self._stop_all()
            if self.subsystem is not None:  # no file left that nobody answers on
                with contextlib.suppress(OSError):
                    os.unlink(self.subsystem.getsockname())
            # the one line a failed boot prints, after whatever the data
            # plane logged as it stopped
            with contextlib.suppress(BlockingIOError):
                self._heard(os.read(self._ready_r, 4096))
            if self._failure is not None:
                print(self._failure, file=sys.stderr, flush=True)

    def _on_stop(self, signum: int, _frame: object) -> None:
        if self._stopping is None:
            self._stopping = signum

    def _loop(self) -> int:
        while self._stopping is None:
            timeout = self._next_restart_in()
            wake = self._wake_r.fileno()
            readable, _, _ = select.select([wake, self._ready_r], [], [], timeout)
            if self._ready_r in readable:
                self._heard(os.read(self._ready_r, 4096))
            if wake in readable:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
            if self._stopping is not None:
                break
            for plane in (self.control, self.data):
                status = plane.exited()
                if status is not None and plane.restart_at is None:
                    failed = self._died(plane, status)
                    if failed is not None:
                        return failed
            now = time.monotonic()
            for plane in (self.data, self.control):
                if plane.restart_at is not None and now >= plane.restart_at:
                    log.warning("restarting the %s", plane.name)
                    if plane is self.control:
                        self.control_restarts += 1
                    plane.start()
        name = signal.Signals(self._stopping).name
        log.info("received %s, stopping", name)
        self.notifier.notify(STOPPING="1", STATUS=f"stopping on {name}")
        return 0

    def _heard(self, message: bytes) -> None:
        """The control plane's word on the pipe: b"r" serving, or b"F" and
        the line that says why its boot failed."""
        if message.startswith(b"F"):
            self._failure = message[1:].decode(errors="replace")
            self.notifier.notify(STATUS=self._failure)
        elif message:
            first = not self.control.ever_ready
            self.control.ever_ready = True
            self.control.deaths = 0
            host, port = self.listener.getsockname()[:2]
            status = f"serving NETCONF on {host}:{port}"
            if self.control_restarts:
                status += f" (control plane restarts: {self.control_restarts})"
            if first:  # systemd's start job ends here, and so does its start timeout
                self.notifier.notify(READY="1", STATUS=status)
            else:
                self.notifier.notify(STATUS=status)

    def _died(self, plane: Plane, status: int) -> int | None:
        """A plane ended on its own: schedule its restart, or the exit status
        of ``nf run`` when the control plane's first boot failed."""
        how = plane.describe(status)
        if plane is self.control and not plane.ever_ready:
            # the first boot failed: it has said why (one line on stderr)
            if status > 0:
                return status
            log.error("control plane %s before it was ready", how)
            return EXIT_BOOT_FAILED
        if plane is self.data and not self.control.ever_ready and status > 0:
            log.error("data plane %s while booting", how)
            return EXIT_BOOT_FAILED
        if time.monotonic() - plane.started > STABLE_SECONDS:
            plane.deaths = 0
        delay = BACKOFF[min(plane.deaths, len(BACKOFF) - 1)]
        plane.deaths += 1
        pid = plane.proc.pid if plane.proc else 0
        log.error("%s (pid %d) %s; restarting it in %.1f s", plane.name, pid, how, delay)
        self.notifier.notify(STATUS=f"{plane.name} {how}; restarting it")
        plane.restart_at = time.monotonic() + delay
        return None

    def _next_restart_in(self) -> float | None:
        pending = [p.restart_at for p in (self.data, self.control) if p.restart_at is not None]
        if not pending:
            return None
        return max(0.0, min(pending) - time.monotonic())

    def _stop_all(self) -> None:
        """Control plane first (its sessions end cleanly), then the data plane."""
        deadline = time.monotonic() + STOP_SECONDS
        _terminate(self.control, min(deadline, time.monotonic() + CONTROL_STOP_SECONDS))
        _terminate(self.data, deadline)
        signal.set_wakeup_fd(-1)


def _terminate(plane: Plane, deadline: float) -> None:
    proc = plane.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        log.error("%s (pid %d) did not stop in time; killed", plane.name, proc.pid)
        proc.kill()
        proc.wait()


def supervise(
    options: Options,
    listener: socket.socket,
    lock: int,
    tls_listener: socket.socket | None = None,
    subsystem: socket.socket | None = None,
) -> int:
    """``nf run`` after nf.boot and ``lock_state_dir``: run both planes."""
    try:
        notifier = Notifier.from_environment()
        return Supervisor(options, listener, notifier, tls_listener, subsystem).run()
    finally:
        os.close(lock)
