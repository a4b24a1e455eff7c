"""Helpers for the relay end-to-end tests: pseudo-terminals as serial devices,
loopback sockets, NETCONF configuration snippets and operational state."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import termios
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import pytest
from lxml import etree

SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"

T = TypeVar("T")


# -- sockets ---------------------------------------------------------------------------
def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Can the test take 127.0.0.1:port?  TCP: listen on it (SO_REUSEADDR, so
    that connections of a closed listener in TIME_WAIT do not count); UDP:
    bind it."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen()
            else:
                s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def address_not_here() -> str:
    """An IPv4 address that no interface of this host has (binding it fails
    with EADDRNOTAVAIL); documentation ranges, tried in turn.  Nothing is
    ever sent to it."""
    for candidate in ("198.51.100.77", "203.0.113.77", "192.0.2.77"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((candidate, 0))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return candidate
    pytest.skip("every candidate address is on this host")


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_sock(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    """Up to ``n`` bytes; fewer on timeout or end of stream."""
    deadline = time.monotonic() + timeout
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while len(data) < n:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    return data


def is_closed(sock: socket.socket, timeout: float = 3.0) -> bool:
    """Did the far end close (EOF or reset) within ``timeout``?  Data read
    meanwhile is discarded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def silent(sock: socket.socket, wait: float = 0.3) -> bool:
    """Nothing arrives on ``sock`` (and it stays open) for ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        sock.recv(4096)  # data, or b"" at end of stream
    except TimeoutError:
        return True
    return False


def udp_socket(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    return s


def datagrams(sock: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    """Up to ``count`` datagrams, each exactly as received."""
    deadline = time.monotonic() + timeout
    out: list[bytes] = []
    while len(out) < count:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            out.append(sock.recv(65536))
        except TimeoutError:
            break
    return out


# -- serial devices --------------------------------------------------------------------
@contextlib.contextmanager
def pty_device() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal: the test holds the master and plays the serial device."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    tty.setraw(master)
    # Non-blocking: select() calls a master readable while no slave is open
    # (EIO), and if the daemon opens the slave before our read, a blocking
    # read would wait for data that never comes.
    os.set_blocking(master, False)
    os.close(slave)  # the daemon opens it by path
    try:
        yield master, path
    finally:
        with contextlib.suppress(OSError):
            os.close(master)


def read_fd(fd: int, n: int, timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data += os.read(fd, n - len(data))
        except BlockingIOError:  # the slave was opened between select and read
            time.sleep(0.01)
        except OSError:  # EIO: nobody has the other end open
            time.sleep(0.01)
    return data


def drain_fd(fd: int, quiet: float = 0.5) -> int:
    """Read until nothing comes for ``quiet`` seconds; how many bytes came."""
    total = 0
    while chunk := read_fd(fd, 1 << 20, timeout=quiet):
        total += len(chunk)
    return total


def write_fd(fd: int, data: bytes, timeout: float = 5.0) -> None:
    """Write all of ``data`` to a non-blocking fd, waiting while it is full."""
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            assert time.monotonic() < deadline, f"{len(view)} bytes still unwritten"
            select.select([], [fd], [], 0.05)


def exchange(client: socket.socket, master: int, to_serial: bytes, to_net: bytes) -> None:
    """One message each way through a channel: client -> pty, then pty -> client."""
    client.sendall(to_serial)
    assert read_fd(master, len(to_serial)) == to_serial
    os.write(master, to_net)
    assert read_sock(client, len(to_net)) == to_net


def fd_silent(fd: int, wait: float = 0.3) -> bool:
    """Nothing to read on ``fd`` for ``wait`` seconds.  A pty master whose
    slave nobody has open reads EIO: that is silence too."""
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return True
    try:
        return os.read(fd, 4096) == b""
    except OSError:  # EIO (no slave) or EAGAIN (slave opened since select)
        return True


# -- configuration -----------------------------------------------------------------------
def config(body: str) -> str:
    return f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip></config>'


def port_xml(name: str, device: str) -> str:
    return f"<serial-port><name>{name}</name><device>{device}</device></serial-port>"


def listen_xml(port: int, address: str = "127.0.0.1") -> str:
    return f"<listen><address>{address}</address><port>{port}</port></listen>"


def channel_xml(name: str, serial: str, mode: str, extra: str = "") -> str:
    return (
        f"<channel><name>{name}</name><serial-port>{serial}</serial-port>"
        f"<mode>{mode}</mode>{extra}</channel>"
    )


def server_xml(name: str, serial: str, tcp: int, extra: str = "") -> str:
    return channel_xml(name, serial, "server", listen_xml(tcp) + extra)


def destination_xml(port: int, address: str = "127.0.0.1") -> str:
    return f"<destination><address>{address}</address><port>{port}</port></destination>"


def secondary_xml(port: int, mode: str, timeout_ms: int | None = None) -> str:
    timeout = f"<timeout>{timeout_ms}</timeout>" if timeout_ms is not None else ""
    return (
        f"<secondary><port>{port}</port><response-mode>{mode}</response-mode>{timeout}</secondary>"
    )


def delete_channel_xml(name: str) -> str:
    return f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>{name}</name></channel>'


# -- operational state -----------------------------------------------------------------
@dataclass
class ChannelState:
    oper_status: str | None
    last_error: str | None
    counters: dict[str, str]
    sessions: list[dict[str, str]] = field(default_factory=list)

    def counter(self, name: str) -> int:
        return int(self.counters.get(name, "0"))

    def by_role(self) -> dict[str, dict[str, str]]:
        return {s["role"]: s for s in self.sessions}


@dataclass
class PortState:
    oper_status: str | None
    last_error: str | None
    rx_bytes: int
    tx_bytes: int


def _q(name: str) -> str:
    return f"{{{SOIP}}}{name}"


def _leaves(node: Any) -> dict[str, str]:
    return {
        etree.QName(child).localname: child.text or ""
        for child in node
        if len(child) == 0 and isinstance(child.tag, str)
    }


def _state_root(m: Any) -> Any:
    reply = m.get(filter=("subtree", f'<serial-over-ip xmlns="{SOIP}"/>'))
    root = etree.fromstring(reply.data_xml.encode())
    return root.find(f".//{_q('serial-over-ip')}")


def channel_state(m: Any, name: str) -> ChannelState:
    """The channel's ``state`` as read through a NETCONF <get>."""
    top = _state_root(m)
    for channel in top.findall(_q("channel")) if top is not None else []:
        if channel.findtext(_q("name")) != name:
            continue
        state = channel.find(_q("state"))
        if state is None:
            return ChannelState(None, None, {})
        counters = state.find(_q("counters"))
        return ChannelState(
            state.findtext(_q("oper-status")),
            state.findtext(_q("last-error")),
            _leaves(counters) if counters is not None else {},
            [_leaves(s) for s in state.findall(_q("session"))],
        )
    raise AssertionError(f"channel {name} not in <get>")


def port_state(m: Any, name: str) -> PortState:
    top = _state_root(m)
    for port in top.findall(_q("serial-port")) if top is not None else []:
        if port.findtext(_q("name")) != name:
            continue
        leaves = _leaves(port.find(_q("state")))
        return PortState(
            leaves.get("oper-status"),
            leaves.get("last-error"),
            int(leaves.get("rx-bytes", "0")),
            int(leaves.get("tx-bytes", "0")),
        )
    raise AssertionError(f"serial port {name} not in <get>")


def wait_for(probe: Callable[[], T], timeout: float = 5.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)


def wait_state(
    m: Any, name: str, check: Callable[[ChannelState], bool], timeout: float = 5.0
) -> ChannelState:
    """Poll the channel's state until ``check`` holds; fail with the last state."""
    last: list[ChannelState] = []

    def probe() -> ChannelState | None:
        state = channel_state(m, name)
        last[:] = [state]
        return state if check(state) else None

    try:
        return wait_for(probe, timeout)
    except AssertionError:
        raise AssertionError(f"channel {name}: state not reached: {last}") from None


@contextlib.contextmanager
def time_budget(seconds: int) -> Iterator[None]:
    """Fail (not hang) a test that takes longer than ``seconds`` (SIGALRM)."""

    def expired(signum: int, frame: FrameType | None) -> None:
        pytest.fail(f"test exceeded its {seconds} s budget")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def spy_tcsetattr(monkeypatch: pytest.MonkeyPatch) -> list[list[object]]:
    """Record every tcsetattr's attributes on its way to the real one: a pty
    forces 8 data bits and no parity whatever it is told, so those are
    checked on the call, where a UART driver would take them."""
    calls: list[list[object]] = []
    real = termios.tcsetattr

    def spy(fd: int, when: int, attrs: list[object]) -> None:
        calls.append(list(attrs))
        real(fd, when, attrs)

    monkeypatch.setattr(termios, "tcsetattr", spy)
    return calls
