"""``nf run`` as two planes under a supervisor (issue 10, points 1, 6, 7).

Real ``nf run`` processes, real ptys as serial devices, real TCP relay
sessions: kill -9 of the control plane while bytes stream both ways loses
none and drops no relay connection; kill -9 of the data plane is noticed,
repaired from running and reported; SIGTERM stops everything.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree
from ncclient import manager
from relayhelpers import (
    config,
    connect,
    exchange,
    free_port,
    port_is_free,
    port_xml,
    pty_device,
    read_fd,
    server_xml,
    wait_for,
    write_fd,
)
from test_startup import NF, SOIP

from nf.plane.supervisor import cpu_split, parse_cpus

pytestmark = pytest.mark.timing  # restarts and stops within bounds: run alone (tools/test.sh)

RESTART_LIMIT = 5.0
"""Seconds from kill -9 of the control plane to NETCONF served again."""


def _children(pid: int) -> dict[str, int]:
    """The supervisor's planes: {"control": pid, "data": pid} (those alive)."""
    found: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return found
    for child in map(int, text.split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"nf.plane.control" in cmdline:
            found["control"] = child
        elif b"nf.plane.dataplane" in cmdline:
            found["data"] = child
    return found


@dataclass
class Daemon:
    """A running ``nf run`` and what it printed."""

    proc: subprocess.Popen[str]
    port: int
    err: list[str] = field(default_factory=list)
    out: list[str] = field(default_factory=list)

    def planes(self) -> dict[str, int]:
        return _children(self.proc.pid)

    def connect(self, timeout: float = 10.0) -> manager.Manager:
        return manager.connect(
            host="127.0.0.1",
            port=self.port,
            username="admin",
            password="pw",
            hostkey_verify=False,
            allow_agent=False,
            look_for_keys=False,
            timeout=timeout,
        )

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)


@contextmanager
def nf_run(state: Path, cfg: Path, *extra: str) -> Iterator[Daemon]:
    env = dict(os.environ, NF_ADMIN_PASSWORD="pw")
    proc = subprocess.Popen(
        [
            NF,
            "run",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(state),
            "--config",
            str(cfg),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    daemon = Daemon(proc, 0)
    err_reader = threading.Thread(target=lambda: daemon.err.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    err_reader.start()
    line = proc.stdout.readline()
    daemon.out.append(line)
    threading.Thread(target=lambda: daemon.out.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        assert "NETCONF over SSH on" in line, f"did not start:\n{daemon.output()}"
        daemon.port = int(line.split("127.0.0.1:")[1].split()[0])
        yield daemon
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _relay_config(tmp_path: Path, device: str, tcp: int) -> Path:
    path = tmp_path / "relay.xml"
    path.write_text(config(port_xml("p", device) + server_xml("c", "p", tcp)))
    return path


class Stream:
    """Bytes both ways through a channel, counted: net->serial is a counter
    sequence written by the client and read from the pty; serial->net the
    same from the pty to the client.  Checks order and loss as it reads."""

    def __init__(self, client: socket.socket, master: int) -> None:
        self.client = client
        self.master = master
        self.stop = threading.Event()
        self.sent = {"n2s": 0, "s2n": 0}
        self.got = {"n2s": 0, "s2n": 0}
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._net_writer, daemon=True),
            threading.Thread(target=self._serial_writer, daemon=True),
            threading.Thread(target=self._serial_reader, daemon=True),
            threading.Thread(target=self._net_reader, daemon=True),
        ]

    @staticmethod
    def _chunk(offset: int, size: int) -> bytes:
        return bytes((offset + i) % 251 for i in range(size))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _net_writer(self) -> None:
        try:
            while not self.stop.is_set():
                data = self._chunk(self.sent["n2s"], 512)
                self.client.sendall(data)
                self.sent["n2s"] += len(data)
                time.sleep(0.002)
        except OSError as exc:
            self.errors.append(f"client send: {exc}")

    def _serial_writer(self) -> None:
        try:
            while not self.stop.is_set():
                data = self._chunk(self.sent["s2n"], 512)
                write_fd(self.master, data)
                self.sent["s2n"] += len(data)
                time.sleep(0.002)
        except (OSError, AssertionError) as exc:
            self.errors.append(f"pty write: {exc}")

    def _check(self, way: str, data: bytes) -> None:
        if data != self._chunk(self.got[way], len(data)):
            self.errors.append(f"{way}: bytes out of order or lost at {self.got[way]}")
        self.got[way] += len(data)

    def _serial_reader(self) -> None:
        while not (self.stop.is_set() and self.got["n2s"] >= self.sent["n2s"]):
            data = read_fd(self.master, 65536, timeout=0.2)
            if data:
                self._check("n2s", data)
            elif self.stop.is_set():
                return

    def _net_reader(self) -> None:
        while not (self.stop.is_set() and self.got["s2n"] >= self.sent["s2n"]):
            ready, _, _ = select.select([self.client], [], [], 0.2)
            if not ready:
                if self.stop.is_set():
                    return
                continue
            try:
                data = self.client.recv(65536)
            except OSError as exc:
                self.errors.append(f"client recv: {exc}")
                return
            if not data:
                self.errors.append("the relay connection was closed")
                return
            self._check("s2n", data)

    def finish(self, drain: float = 3.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + drain
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))


def test_kill_9_of_the_control_plane_is_hitless(tmp_path: Path) -> None:
    """Point 6: the relay keeps streaming both ways across a kill -9 of the
    control plane: 0 bytes lost, the TCP session never drops; a new control
    plane serves NETCONF within 5 s with the same running configuration."""
    tcp = free_port()
    with ExitStack() as stack:
        master, device = stack.enter_context(pty_device())
        daemon = stack.enter_context(
            nf_run(tmp_path / "state", _relay_config(tmp_path, device, tcp))
        )
        with daemon.connect() as m:
            running = m.get_config("running").data_xml
        planes = daemon.planes()
        assert set(planes) == {"control", "data"}, daemon.output()
        client = stack.enter_context(connect(tcp))
        exchange(client, master, b"hello", b"world")
        stream = Stream(client, master)
        stream.start()
        time.sleep(0.5)
        os.kill(planes["control"], signal.SIGKILL)
        killed = time.monotonic()
        m = wait_for(lambda: _try_connect(daemon), timeout=RESTART_LIMIT + 2, interval=0.1)
        restarted = time.monotonic() - killed
        with m:
            assert m.get_config("running").data_xml == running
            assert _processes(m) == {
                "control-plane-restarts": "1",
                "data-plane-restarts": "0",
                "relay-sessions-dropped": "0",
            }
        time.sleep(0.5)  # streaming on after the restart too
        stream.finish()
        after = daemon.planes()
        assert after["data"] == planes["data"], "the data plane was restarted"
        assert after["control"] != planes["control"]
        print(
            f"control plane back in {restarted:.2f} s; bytes net->serial "
            f"{stream.sent['n2s']} sent {stream.got['n2s']} received, serial->net "
            f"{stream.sent['s2n']} sent {stream.got['s2n']} received"
        )
        assert restarted < RESTART_LIMIT, daemon.output()
        assert stream.errors == [], stream.errors
        assert stream.got == stream.sent, (stream.got, stream.sent)
        assert stream.sent["n2s"] > 50_000 and stream.sent["s2n"] > 50_000
        exchange(client, master, b"still", b"here")  # the same TCP connection


def test_a_pending_persistent_confirmed_commit_survives_a_control_plane_kill(
    tmp_path: Path,
) -> None:
    """Point 6: the data plane keeps the unconfirmed configuration, the new
    control plane takes the commit over and still rolls it back on time."""
    tcp, other = free_port(), free_port()
    with ExitStack() as stack:
        _master, device = stack.enter_context(pty_device())
        _master2, device2 = stack.enter_context(pty_device())
        daemon = stack.enter_context(
            nf_run(tmp_path / "state", _relay_config(tmp_path, device, tcp))
        )
        timeout = 6
        with daemon.connect() as m:
            m.edit_config(
                target="candidate",
                config=config(port_xml("q", device2) + server_xml("d", "q", other)),
            )
            m.commit(confirmed=True, timeout=str(timeout), persist="token")
            committed = time.monotonic()
        connect(other).close()  # channel d listens
        os.kill(daemon.planes()["control"], signal.SIGKILL)
        m = wait_for(lambda: _try_connect(daemon), timeout=RESTART_LIMIT + 2, interval=0.1)
        with m:
            assert "<name>d</name>" in m.get_config("running").data_xml
        connect(other).close()  # still listening: nothing was re-applied
        # the rollback happens at the deadline of the commit, not later
        wait_for(lambda: port_is_free(other), timeout=timeout + 3, interval=0.1)
        rolled_back = time.monotonic() - committed
        assert timeout - 0.5 < rolled_back < timeout + 2, (rolled_back, daemon.output())
        with daemon.connect() as m:
            assert "<name>d</name>" not in m.get_config("running").data_xml


def _processes(m: manager.Manager) -> dict[str, str]:
    """/processes of <get>, leaf by leaf."""
    reply = m.get(filter=("subtree", f'<processes xmlns="{SOIP}"/>'))
    (node,) = reply.data_ele
    return {etree.QName(leaf).localname: leaf.text or "" for leaf in node}


def _try_connect(daemon: Daemon) -> manager.Manager | None:
    try:
        return daemon.connect(timeout=2)
    except Exception:
        return None


def test_kill_9_of_the_data_plane_is_repaired_and_reported(tmp_path: Path) -> None:
    """Point 7: the control plane notices within 1 s, the data plane comes
    back with running, the relay session that dropped is reported (a
    session-event, a log line) and the channel relays again."""
    tcp = free_port()
    with ExitStack() as stack:
        master, device = stack.enter_context(pty_device())
        daemon = stack.enter_context(
            nf_run(tmp_path / "state", _relay_config(tmp_path, device, tcp))
        )
        m = stack.enter_context(daemon.connect())
        m.create_subscription()
        client = stack.enter_context(connect(tcp))
        exchange(client, master, b"ping", b"pong")
        # the control plane has heard of the session before the kill
        first = m.take_notification(block=True, timeout=5)
        assert first is not None and "<event>connected</event>" in first.notification_xml
        planes = daemon.planes()
        os.kill(planes["data"], signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 5
        events: list[str] = []
        while time.monotonic() < deadline:
            note = m.take_notification(block=True, timeout=0.5)
            if note is None:
                continue
            events.append(note.notification_xml)
            if "data plane restarted" in note.notification_xml:
                noticed = time.monotonic() - killed
                break
        else:
            pytest.fail(f"no session-event for the dropped session: {events}\n{daemon.output()}")
        assert noticed < 1.0, noticed
        assert "<event>disconnected</event>" in events[-1]
        # the channel listens again and relays, on a new TCP connection
        fresh = stack.enter_context(connect(tcp, timeout=5))  # connect retries while refused
        exchange(fresh, master, b"again", b"back")
        assert daemon.planes()["data"] != planes["data"]
        assert _processes(m) == {
            "control-plane-restarts": "0",
            "data-plane-restarts": "1",
            "relay-sessions-dropped": "1",
        }
        assert "data plane" in daemon.output()


def test_sigterm_stops_both_planes_with_exit_0(tmp_path: Path) -> None:
    """Point 7: SIGTERM to nf run: every process gone within 2 s, exit 0."""
    tcp = free_port()
    with ExitStack() as stack:
        _master, device = stack.enter_context(pty_device())
        daemon = stack.enter_context(
            nf_run(tmp_path / "state", _relay_config(tmp_path, device, tcp))
        )
        planes = daemon.planes()
        assert set(planes) == {"control", "data"}
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=5) == 0, daemon.output()
        took = time.monotonic() - started
        assert took < 2.0, took
        for pid in planes.values():
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid
        assert port_is_free(tcp)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_second_nf_run_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    tcp = free_port()
    with pty_device() as (_master, device):
        cfg = _relay_config(tmp_path, device, tcp)
        with nf_run(tmp_path / "state", cfg) as daemon:
            second = subprocess.run(
                [NF, "run", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")],
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert second.returncode == 1
            assert second.stderr == (
                f"nf: state directory {tmp_path / 'state'} is in use by nf run "
                f"(pid {daemon.proc.pid})\n"
            )
            with daemon.connect() as m:  # the first one is unharmed
                m.get_config("running")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_data_plane_gets_cpus_of_its_own(tmp_path: Path) -> None:
    """--data-plane-cpus (auto: the last CPU): the data plane on those, the
    control plane on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    with ExitStack() as stack:
        _master, device = stack.enter_context(pty_device())
        cfg = _relay_config(tmp_path, device, free_port())
        daemon = stack.enter_context(nf_run(tmp_path / "state", cfg, "--data-plane-cpus", "auto"))
        planes = daemon.planes()
        assert os.sched_getaffinity(planes["data"]) == {cpus[-1]}
        assert os.sched_getaffinity(planes["control"]) == set(cpus[:-1])
        assert os.getpriority(os.PRIO_PROCESS, planes["control"]) > os.getpriority(
            os.PRIO_PROCESS, planes["data"]
        )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "nf run: --data-plane-cpus: not a CPU list: 'x' (e.g. 1 or 2-3 or 0,2)\n"),
        ("3-1", "nf run: --data-plane-cpus: not a CPU list: '3-1' (3-1 is backwards)\n"),
        ("4096", "nf: --data-plane-cpus: CPU 4096 is not available here\n"),
    ],
)
def test_a_bad_cpu_list_is_refused(tmp_path: Path, value: str, message: str) -> None:
    done = subprocess.run(
        [
            NF,
            "run",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(tmp_path),
            "--data-plane-cpus",
            value,
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert (done.returncode, done.stderr) == (2 if "list" in message else 1, message)


def test_cpu_lists() -> None:
    assert parse_cpus("1") == {1}
    assert parse_cpus("0,2-4") == {0, 2, 3, 4}
    assert cpu_split(None) == (None, None)
    assert cpu_split(frozenset({1}), frozenset({0, 1})) == ({1}, {0})
    assert cpu_split(frozenset({0, 1}), frozenset({0, 1})) == ({0, 1}, None)  # none left
    # auto: the last CPU for the data plane when there are two or more
    assert parse_cpus("auto", frozenset({0, 1, 2})) == {2}
    assert cpu_split(parse_cpus("auto", frozenset({4})), frozenset({4})) == (None, None)
