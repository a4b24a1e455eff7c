"""A fleet of nf daemons on one machine, each a host of its own (``compose/lab``).

    compose/lab up N          N daemons h1..hN and an orchestrator, on a bridge
    compose/lab status        hosts, namespaces, addresses, endpoints, alive or not
    compose/lab exec NODE -- CMD   CMD in NODE's namespace (orchestrator, h1, ...)
    compose/lab down          stop and remove everything the lab made

Why network namespaces: a fleet needs hosts that each have an address of
their own and listen on the NETCONF port, 830, as real boxes do, which
loopback ports cannot give.  Every node (the hosts and the orchestrator, the
namespace clients run in) is a namespace ``nflab-ID-NODE`` with one veth
link to a bridge in the lab's own namespace ``nflab-ID-br``: both ends of
each link are created inside the lab's namespaces, so nothing of the root
namespace changes, and the addresses (198.18.0.0/24, a benchmarking range,
RFC 2544) exist only inside them, with no route out: no packet of the lab
can leave the machine, and two labs of different ids never see each other.

Each host runs ``nf run --listen ADDR:830`` on a simulated serial device (a
pty that echoes, ``start_device``) in its own namespace.  ``up`` records
every namespace and process in ``LAB_DIR/lab.json`` before making it, so
``down`` undoes a failed or partial ``up`` too; ``down`` also finds
namespaces by the lab's prefix and the processes in them (``ip netns pids``),
so a lost state file leaves nothing behind either.  It ends only the
processes it started or that run in the lab's namespaces.

LAB_DIR is ``$NF_LAB_DIR``, else ``.nf-lab/ID`` in the repository; ID is
``--id``, else ``$NF_LAB_ID``, else ``main``.  The lab dir keeps each host's
log and state directory (host key, users) after ``down``, as a box keeps its
disk; its configuration is written again at each ``up``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PREFIX = "nflab-"
NETWORK = ipaddress.ip_network("198.18.0.0/24")
NETCONF_PORT = 830
ORCHESTRATOR = "orchestrator"
MAX_HOSTS = 200
USER = "admin"
STATE_FILE = "lab.json"
SERIAL_PORT = "ttyS0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
ID_PATTERN = re.compile(r"[a-z0-9]{1,16}")  # no "-": one lab's prefix never starts another's


class LabError(Exception):
    """A failure to report in one message (and exit status 1)."""


# -- the lab's names and addresses ----------------------------------------------


@dataclass(frozen=True)
class Node:
    """One namespace of the lab with an address on its bridge."""

    name: str  # "orchestrator", "h1", ...
    namespace: str
    address: str
    link: str  # the veth end on the bridge, in the bridge's namespace

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{NETCONF_PORT}"


@dataclass(frozen=True)
class Lab:
    """Where a lab lives: its id, its directory and the names it uses."""

    id: str
    dir: Path

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.id}-"

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}br"

    @property
    def state_file(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.ini"

    def orchestrator(self) -> Node:
        return Node(ORCHESTRATOR, f"{self.prefix}orch", str(NETWORK[1]), "orch")

    def host(self, k: int) -> Node:
        return Node(f"h{k}", f"{self.prefix}h{k}", str(NETWORK[10 + k]), f"h{k}")

    def host_dir(self, node: Node) -> Path:
        return self.dir / node.name


def lab_from(args: argparse.Namespace) -> Lab:
    lab_id = args.id or os.environ.get("NF_LAB_ID") or "main"
    if not ID_PATTERN.fullmatch(lab_id):
        raise LabError(f"lab id {lab_id!r}: 1-16 lowercase letters and digits")
    lab_dir = os.environ.get("NF_LAB_DIR")
    return Lab(lab_id, Path(lab_dir).resolve() if lab_dir else ROOT / ".nf-lab" / lab_id)


# -- the state file ---------------------------------------------------------------


@dataclass
class Proc:
    """A process the lab started: its pid and start time (so a reused pid is
    never taken for it)."""

    role: str
    pid: int
    start: int

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start


class State:
    """lab.json: what the lab made, written before each thing is made."""

    def __init__(self, lab: Lab, data: dict[str, Any]) -> None:
        self.lab = lab
        self.data = data

    @classmethod
    def new(cls, lab: Lab, hosts: int) -> State:
        data = {
            "id": lab.id,
            "hosts": hosts,
            "password": secrets.token_urlsafe(12),
            "namespaces": [],
            "processes": [],
        }
        return cls(lab, data)

    @classmethod
    def load(cls, lab: Lab) -> State | None:
        try:
            return cls(lab, json.loads(lab.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            print(f"lab: ignoring unreadable {lab.state_file}: {exc}", file=sys.stderr)
            return None

    def save(self) -> None:
        tmp = self.lab.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.lab.state_file)

    @property
    def password(self) -> str:
        return str(self.data["password"])

    def hosts(self) -> list[Node]:
        return [self.lab.host(k) for k in range(1, int(self.data["hosts"]) + 1)]

    @property
    def namespaces(self) -> list[str]:
        return list(self.data["namespaces"])

    def add_namespace(self, name: str) -> None:
        self.data["namespaces"].append(name)
        self.save()

    def processes(self) -> list[Proc]:
        return [Proc(**p) for p in self.data["processes"]]

    def add_process(self, proc: Proc) -> None:
        self.data["processes"].append(vars(proc))
        self.save()

    def process(self, role: str) -> Proc | None:
        return next((p for p in self.processes() if p.role == role), None)


# -- processes -----------------------------------------------------------------------


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def spawn(state: State, role: str, namespace: str, argv: Sequence[str], log: Path) -> Proc:
    """Start ``argv`` in ``namespace``, detached (it outlives ``compose/lab``),
    its output appended to ``log``; recorded in the state file at once."""
    env = dict(os.environ, NF_ADMIN_PASSWORD=state.password)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    start = _start_time(popen.pid)
    proc = Proc(role, popen.pid, start if start is not None else -1)
    state.add_process(proc)
    return proc


def stop(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM, then SIGKILL whatever still runs after ``grace`` seconds; the
    pids that needed SIGKILL."""
    procs = {pid: _start_time(pid) for pid in pids}
    procs = {pid: start for pid, start in procs.items() if start is not None}
    for pid in procs:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        procs = {pid: s for pid, s in procs.items() if _start_time(pid) == s}
        if not procs:
            return []
        time.sleep(0.05)
    for pid in procs:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_start_time(p) == s for p, s in procs.items()):
        time.sleep(0.05)
    return list(procs)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# -- namespaces and links ---------------------------------------------------------------


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def namespaces_with(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    names = (line.split()[0] for line in out.stdout.splitlines() if line.strip())
    return sorted(name for name in names if name.startswith(prefix))


def namespace_pids(namespace: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def make_bridge(state: State) -> None:
    ns = state.lab.bridge_ns
    state.add_namespace(ns)
    ip("netns", "add", ns)
    ip("-n", ns, "link", "add", "br0", "type", "bridge")
    ip("-n", ns, "link", "set", "br0", "up")


def make_node(state: State, node: Node) -> None:
    """A namespace joined to the bridge by a veth pair created across the
    lab's namespaces (never in the root one): ``eth0`` with the node's
    address, loopback up, no default route."""
    bridge = state.lab.bridge_ns
    state.add_namespace(node.namespace)
    ip("netns", "add", node.namespace)
    ip("-n", bridge, "link", "add", node.link, "type", "veth", "peer", "name", "eth0",
       "netns", node.namespace)  # fmt: skip
    ip("-n", bridge, "link", "set", node.link, "master", "br0", "up")
    ip("-n", node.namespace, "addr", "add", f"{node.address}/{NETWORK.prefixlen}", "dev", "eth0")
    ip("-n", node.namespace, "link", "set", "eth0", "up")
    ip("-n", node.namespace, "link", "set", "lo", "up")


# -- the hosts -------------------------------------------------------------------------------


def start_device(state: State, node: Node, link: Path, log: Path) -> Proc:
    """The host's simulated serial device (``nf sim echo``): a pty whose
    slave ``link`` points to, echoing every byte written to it."""
    link.unlink(missing_ok=True)
    return spawn(
        state,
        f"{node.name} device",
        node.namespace,
        [str(VENV_BIN / "nf"), "sim", "echo", "--link", str(link)],
        log,
    )


def host_config(device: Path) -> str:
    """The configuration a host boots: one serial port on its device, no
    channel (the playbooks of compose/ansible add one)."""
    return f"""\
<serial-over-ip xmlns="{SOIP}">
  <serial-port>
    <name>{SERIAL_PORT}</name>
    <description>the lab's simulated device: a pty that echoes</description>
    <device>{device}</device>
  </serial-port>
</serial-over-ip>
"""


def write_config(path: Path, device: Path) -> None:
    path.write_text(host_config(device))
    done = subprocess.run(
        [str(VENV_BIN / "nf"), "validate", "-q", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise LabError(f"nf validate {path}:\n{done.stdout}{done.stderr}")


def start_daemon(state: State, node: Node, host_dir: Path) -> Proc:
    return spawn(
        state,
        f"{node.name} nf",
        node.namespace,
        [
            str(VENV_BIN / "nf"),
            "run",
            "--listen",
            node.endpoint,
            "--state-dir",
            str(host_dir / "state"),
            "--config",
            str(host_dir / "config.xml"),
        ],
        host_dir / "nf.log",
    )


def wait_for_links(links: Sequence[Path], devices: Sequence[Proc], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for link, device in zip(links, devices, strict=True):
        while not link.exists():
            if not device.alive() or time.monotonic() > deadline:
                log = link.with_name("device.log")
                raise LabError(f"the device {link} did not appear; {log}:\n{log_tail(log)}")
            time.sleep(0.02)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text[-lines:])


def probe_argv(lab: Lab, *args: str) -> list[str]:
    """This script's ``args`` (``_wait``, ``_probe``), run in the orchestrator's
    namespace: the hosts' addresses exist only in the lab."""
    return ["ip", "netns", "exec", lab.orchestrator().namespace, sys.executable, __file__, *args]


def probe_env(state: State) -> dict[str, str]:
    return dict(os.environ, NF_LAB_PASSWORD=state.password)


def wait_answering(state: State, hosts: Sequence[Node], timeout: float) -> None:
    """Until every daemon serves NETCONF (an ncclient session opens) to a
    client in the orchestrator's namespace; a daemon that exits meanwhile
    fails the wait at once, with its log."""
    lab = state.lab
    probe = subprocess.Popen(
        probe_argv(lab, "_wait", "--timeout", str(timeout), *(h.endpoint for h in hosts)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=probe_env(state),
    )
    try:
        while probe.poll() is None:
            for host in hosts:
                proc = state.process(f"{host.name} nf")
                if proc is None or not proc.alive():
                    log = lab.host_dir(host) / "nf.log"
                    raise LabError(f"{host.name}: nf run stopped; {log}:\n{log_tail(log)}")
            time.sleep(0.1)
        assert probe.stdout is not None
        if probe.returncode != 0:
            logs = "\n".join(
                f"--- {host.name}: {lab.host_dir(host) / 'nf.log'}\n"
                + log_tail(lab.host_dir(host) / "nf.log")
                for host in hosts
            )
            raise LabError(f"{probe.stdout.read().strip()}\n{logs}")
    finally:
        if probe.poll() is None:
            probe.kill()
        probe.wait()
        if probe.stdout is not None:
            probe.stdout.close()


def netconf_error(endpoint: str, password: str, timeout: float) -> str | None:
    """Why ``endpoint`` does not serve NETCONF to ``admin`` (None: it does,
    a session was opened and closed)."""
    from ncclient import manager  # type: ignore[import-untyped]  # only in the probe

    host, port = endpoint.rsplit(":", 1)
    try:
        with manager.connect(
            host=host,
            port=int(port),
            username=USER,
            password=password,
            hostkey_verify=False,
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
        ):
            return None
    except Exception as exc:  # any failure is the answer
        return f"{type(exc).__name__}: {exc}"


def netconf_errors(endpoints: Sequence[str], timeout: float) -> dict[str, str | None]:
    """netconf_error of each endpoint, all at once (the password from
    $NF_LAB_PASSWORD, not the command line that ps shows)."""
    password = os.environ["NF_LAB_PASSWORD"]
    with ThreadPoolExecutor(max_workers=16) as pool:
        errors = pool.map(lambda e: netconf_error(e, password, timeout), endpoints)
        return dict(zip(endpoints, errors, strict=True))


def write_inventory(state: State) -> None:
    lab = state.lab
    hosts = "".join(f"{h.name} ansible_host={h.address}\n" for h in state.hosts())
    lab.inventory.write_text(
        f"# written by compose/lab up ({lab.id}): the addresses exist only in the\n"
        f"# lab's namespaces; run Ansible with compose/lab exec orchestrator -- ...\n"
        "[nf]\n"
        f"{hosts}"
        "[nf:vars]\n"
        "ansible_connection=ansible.netcommon.netconf\n"
        "ansible_network_os=default\n"
        f"ansible_port={NETCONF_PORT}\n"
        f"ansible_user={USER}\n"
        f"ansible_password={state.password}\n"
        "ansible_host_key_checking=false\n"
        f"ansible_python_interpreter={VENV_BIN / 'python'}\n"
    )


# -- commands --------------------------------------------------------------------------------


def cmd_up(lab: Lab, count: int, timeout: float) -> int:
    if not 1 <= count <= MAX_HOSTS:
        raise LabError(f"up: 1 to {MAX_HOSTS} hosts")
    leftovers = namespaces_with(lab.prefix)
    if lab.state_file.exists() or leftovers:
        raise LabError(
            f"lab {lab.id} is already up or left over ({', '.join(leftovers) or lab.state_file});"
            " run compose/lab down first"
        )
    lab.dir.mkdir(parents=True, exist_ok=True)
    state = State.new(lab, count)
    state.save()
    try:
        make_bridge(state)
        make_node(state, lab.orchestrator())
        hosts = state.hosts()
        for host in hosts:
            make_node(state, host)
        links, devices = [], []
        for host in hosts:
            host_dir = lab.host_dir(host)
            host_dir.mkdir(exist_ok=True)
            (host_dir / "nf.log").write_text("")
            link = host_dir / SERIAL_PORT
            write_config(host_dir / "config.xml", link)
            links.append(link)
            devices.append(start_device(state, host, link, host_dir / "device.log"))
        wait_for_links(links, devices, timeout)
        for host in hosts:
            start_daemon(state, host, lab.host_dir(host))
        wait_answering(state, hosts, timeout)
    except LabError as exc:
        raise LabError(
            f"up failed: {exc}\n(run compose/lab down to remove what was made)"
        ) from None
    write_inventory(state)
    print_table(state, answering=[h.endpoint for h in hosts])
    print(f"user {USER}, password {state.password}")
    print(f"inventory: {lab.inventory}")
    print("clients run in the orchestrator's namespace: compose/lab exec orchestrator -- CMD")
    return 0


def print_table(state: State, answering: Collection[str]) -> None:
    """Each node; a live daemon "answers" if its endpoint is in ``answering``
    (it served NETCONF to the orchestrator)."""
    lab = state.lab
    print(f"lab {lab.id} in {lab.dir}: {len(state.hosts())} hosts on {NETWORK}")
    rows = [("node", "namespace", "address", "NETCONF", "pid", "daemon")]
    orch = lab.orchestrator()
    rows.append((orch.name, orch.namespace, orch.address, "-", "-", "-"))
    for host in state.hosts():
        proc = state.process(f"{host.name} nf")
        alive = proc is not None and proc.alive()
        status = "stopped"
        if alive:
            status = "answers" if host.endpoint in answering else "not answering"
        pid = str(proc.pid) if proc else "-"
        rows.append((host.name, host.namespace, host.address, host.endpoint, pid, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def probe_endpoints(state: State) -> list[str]:
    """The hosts' endpoints that serve NETCONF to the orchestrator's namespace."""
    lab = state.lab
    if lab.orchestrator().namespace not in namespaces_with(lab.prefix):
        return []
    done = subprocess.run(
        probe_argv(lab, "_probe", *(h.endpoint for h in state.hosts())),
        capture_output=True,
        text=True,
        timeout=60,
        env=probe_env(state),
    )
    return done.stdout.split()


def cmd_status(lab: Lab) -> int:
    state = State.load(lab)
    found = namespaces_with(lab.prefix)
    if state is None:
        if found:
            print(f"lab {lab.id}: no state file, but left over: {', '.join(found)}")
            return 1
        print(f"lab {lab.id}: not up")
        return 1
    print_table(state, answering=probe_endpoints(state))
    missing = sorted(set(state.namespaces) - set(found))
    if missing:
        print(f"missing namespaces: {', '.join(missing)}")
    if lab.inventory.exists():
        print(f"inventory: {lab.inventory}")
    return 0


def cmd_down(lab: Lab) -> int:
    state = State.load(lab)
    recorded = state.processes() if state else []
    stopped = [p for p in recorded if p.alive()]
    stop([p.pid for p in stopped], grace=5.0)
    namespaces = sorted(set(state.namespaces if state else []) | set(namespaces_with(lab.prefix)))
    existing = set(namespaces_with(lab.prefix))
    strays = [pid for ns in namespaces if ns in existing for pid in namespace_pids(ns)]
    stop(strays, grace=3.0)
    for ns in namespaces:
        if ns in existing:
            ip("netns", "del", ns)
    left = namespaces_with(lab.prefix)
    if left:
        raise LabError(f"down: namespaces still there: {', '.join(left)}")
    lab.state_file.unlink(missing_ok=True)
    print(
        f"lab {lab.id}: stopped {len(stopped) + len(strays)} processes,"
        f" removed {len(existing)} namespaces"
    )
    return 0


def cmd_exec(lab: Lab, node: str, argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise LabError("exec: which command?")
    name = f"{lab.prefix}orch" if node in (ORCHESTRATOR, "orch") else f"{lab.prefix}{node}"
    if name not in namespaces_with(lab.prefix):
        raise LabError(f"exec: no node {node} in lab {lab.id} (compose/lab status)")
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    os.execvpe("ip", ["ip", "netns", "exec", name, *argv], env)


def cmd_wait(endpoints: list[str], timeout: float) -> int:
    """(in the orchestrator's namespace) until every endpoint serves NETCONF."""
    deadline = time.monotonic() + timeout
    errors: dict[str, str | None] = dict.fromkeys(endpoints, "not tried")
    while time.monotonic() < deadline:
        waiting = [e for e, error in errors.items() if error is not None]
        if not waiting:
            return 0
        errors.update(netconf_errors(waiting, max(1.0, deadline - time.monotonic())))
        if any(errors.values()):
            time.sleep(0.2)
    failed = "; ".join(f"{e}: {error}" for e, error in errors.items() if error is not None)
    if not failed:
        return 0
    print(f"no NETCONF session within {timeout:g} s: {failed}")
    return 1


def cmd_probe(endpoints: list[str]) -> int:
    """(in the orchestrator's namespace) print the endpoints that serve NETCONF."""
    for endpoint, error in netconf_errors(endpoints, 10.0).items():
        if error is None:
            print(endpoint)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="compose/lab", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--id", help="the lab's id (default $NF_LAB_ID, else main)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start N hosts")
    up.add_argument("count", type=int, metavar="N")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the hosts")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("status", help="what runs")
    ex = sub.add_parser("exec", help="run a command in a node's namespace")
    ex.add_argument("node", help="orchestrator, h1, h2, ...")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    wait = sub.add_parser("_wait")  # internal: run inside the orchestrator's namespace
    wait.add_argument("--timeout", type=float, required=True)
    wait.add_argument("endpoints", nargs="+")
    probe = sub.add_parser("_probe")  # internal, likewise
    probe.add_argument("endpoints", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.command == "_wait":
            return cmd_wait(args.endpoints, args.timeout)
        if args.command == "_probe":
            return cmd_probe(args.endpoints)
        if os.geteuid() != 0:
            raise LabError("network namespaces need root")
        lab = lab_from(args)
        if args.command == "up":
            return cmd_up(lab, args.count, args.timeout)
        if args.command == "down":
            return cmd_down(lab)
        if args.command == "status":
            return cmd_status(lab)
        return cmd_exec(lab, args.node, args.argv)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
