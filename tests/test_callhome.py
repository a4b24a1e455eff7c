"""NETCONF call home (RFC 8071, issue 15 point 3).

The schedule on its own (pure), then the daemon dialling out to managers
listening on loopback: over SSH with ncclient's ``manager.call_home``, over
TLS with an ncclient TLS session on the accepted connection (ncclient's
call_home speaks SSH only); a manager that goes away (its connection reset,
its port closed) and comes back is called again.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
from conftest import PASSWORD, USER, DaemonFactory, Running
from hypothesis import given
from hypothesis import strategies as st
from ncclient import manager
from ncclient.transport.tls import TLSSession
from pki import Issued, Pki, client_context, entry
from relayhelpers import free_port

from nf.northbound import transports
from nf.northbound.callhome import Schedule
from nf.northbound.transports import CallHome, Transports

MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
ACCEPT_TIMEOUT = 10.0


# -- the schedule, pure ------------------------------------------------------------
def test_persistent_backs_off_to_its_limit_and_resets_after_a_session() -> None:
    schedule = Schedule("persistent", period=3600, reconnect_max=8)
    assert schedule.first(0.0) == 0.0
    assert [schedule.failed(t) for t in range(6)] == [1, 2, 4, 8, 8, 8]
    assert schedule.ended(100.0) == 1.0  # a session ran: quick again
    assert schedule.failed(101.0) == 2.0
    assert Schedule("persistent", 60, reconnect_max=1).failed(0) == 1.0


def test_periodic_dials_on_the_period_from_the_first_attempt() -> None:
    schedule = Schedule("periodic", period=60, reconnect_max=8)
    assert schedule.first(1000.0) == 0.0
    assert schedule.failed(1000.5) == pytest.approx(59.5)
    assert schedule.ended(1030.0) == pytest.approx(30.0)
    # a session that lasted past two periods: the next boundary after now
    assert schedule.ended(1135.0) == pytest.approx(45.0)
    assert schedule.failed(1180.0) == pytest.approx(60.0)


@given(
    period=st.floats(1, 1e5),
    start=st.floats(0, 1e6),
    steps=st.lists(st.tuples(st.booleans(), st.floats(0, 1e5)), max_size=20),
)
def test_periodic_attempts_fall_on_period_boundaries(
    period: float, start: float, steps: list[tuple[bool, float]]
) -> None:
    schedule = Schedule("periodic", period, reconnect_max=30)
    schedule.first(start)
    now = start
    for ran, elapsed in steps:
        now += elapsed
        delay = schedule.ended(now) if ran else schedule.failed(now)
        assert 0 < delay <= period * (1 + 1e-5)
        periods = (now + delay - start) / period
        assert periods == pytest.approx(round(periods), abs=1e-6 * max(1.0, periods))
        now += delay


# -- managers on loopback ------------------------------------------------------------
def calling(
    make_daemon: DaemonFactory, *targets: CallHome, tls: Transports | None = None
) -> Running:
    base = tls or Transports()
    return make_daemon(transports=Transports(base.tls, targets))


def ssh_manager(port: int) -> manager.Manager:
    """ncclient's call home: listen on ``port``, take the device's connection, log in over SSH."""
    return manager.call_home(
        host="127.0.0.1",
        port=port,
        username=USER,
        password=PASSWORD,
        hostkey_verify=False,
        allow_agent=False,
        look_for_keys=False,
        timeout=ACCEPT_TIMEOUT,
    )


class _CalledTLS(TLSSession):  # type: ignore[misc]
    """ncclient's TLS session on a connection the manager accepted."""

    def attach(self, sock: ssl.SSLSocket) -> None:
        self._host = "127.0.0.1"
        self._socket = sock
        self._connected = True
        self._post_connect()


def tls_manager(port: int, pki: Pki, client: Issued) -> manager.Manager:
    """A manager that listens on ``port`` and, once the device connects, is
    the TLS client on that connection (RFC 8071 §4.1: the roles of TLS stay)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(ACCEPT_TIMEOUT)
        conn, _ = listener.accept()
    conn.settimeout(ACCEPT_TIMEOUT)
    sock = client_context(pki, client).wrap_socket(conn, server_hostname="127.0.0.1")
    handler = manager.make_device_handler({})
    session = _CalledTLS(handler)
    session.attach(sock)
    return manager.Manager(session, handler, timeout=ACCEPT_TIMEOUT)


def vanish(sock: socket.socket) -> None:
    """The manager goes away at once: its connection is reset (as when it
    crashes), leaving no TIME_WAIT on its port."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def own_session(m: manager.Manager) -> tuple[str, str, str]:
    reply = m.get(filter=("subtree", f'<netconf-state xmlns="{MON}"><sessions/></netconf-state>'))
    ns = f"{{{MON}}}"
    for s in reply.data_ele.iter(f"{ns}session"):
        if s.findtext(f"{ns}session-id") == m.session_id:
            return (
                s.findtext(f"{ns}transport") or "",
                s.findtext(f"{ns}username") or "",
                s.findtext(f"{ns}source-host") or "",
            )
    raise AssertionError("own session not listed")


def no_sessions(running: Running, timeout: float = 5.0) -> bool:
    server = running.daemon.server
    assert server is not None
    deadline = time.monotonic() + timeout
    while server.session_ids() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not server.session_ids()


def test_ssh_call_home_survives_the_manager_going_away(make_daemon: DaemonFactory) -> None:
    port = free_port()
    running = calling(
        make_daemon, CallHome("nms", "ssh", "127.0.0.1", port, "persistent", reconnect_max=1)
    )
    m = ssh_manager(port)
    assert "serial-over-ip" in m.get_config("running").data_xml
    assert own_session(m) == ("netconf-ssh", USER, "127.0.0.1")
    vanish(m._session._transport.sock)
    with contextlib.suppress(Exception):
        m._session.close()
    assert no_sessions(running)
    time.sleep(1.5)  # the device retries against a closed port meanwhile
    started = time.monotonic()
    with ssh_manager(port) as again:  # back: the device calls within its backoff (1 s)
        assert "serial-over-ip" in again.get_config("running").data_xml
    assert time.monotonic() - started < 3.0
    assert running.daemon.call_home[0].sessions >= 1


def test_ssh_call_home_needs_a_valid_login(make_daemon: DaemonFactory) -> None:
    port = free_port()
    running = calling(
        make_daemon, CallHome("nms", "ssh", "127.0.0.1", port, "persistent", reconnect_max=1)
    )
    with pytest.raises(Exception) as failed:
        manager.call_home(
            host="127.0.0.1",
            port=port,
            username=USER,
            password="wrong",
            hostkey_verify=False,
            allow_agent=False,
            look_for_keys=False,
            timeout=ACCEPT_TIMEOUT,
        )
    assert "Authentication" in type(failed.value).__name__ or "auth" in str(failed.value).lower()
    assert no_sessions(running)


def tls_settings(pki: Pki, client: Issued) -> Transports:
    path = pki.directory / "transport.toml"
    path.write_text(pki.tls_table(entry(1, client.fingerprint(), "specified", "admin")))
    return transports.load(path)


def test_tls_call_home_survives_the_manager_going_away(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    pki = Pki.make(tmp_path)
    nms = pki.client("nms")
    port = free_port()
    running = calling(
        make_daemon,
        CallHome("nms", "tls", "127.0.0.1", port, "persistent", reconnect_max=1),
        tls=tls_settings(pki, nms),
    )
    m = tls_manager(port, pki, nms)
    assert "serial-over-ip" in m.get_config("running").data_xml
    assert own_session(m) == ("netconf-tls", "admin", "127.0.0.1")
    vanish(m._session._socket)
    assert no_sessions(running)
    time.sleep(1.5)
    started = time.monotonic()
    with tls_manager(port, pki, nms) as again:
        assert "serial-over-ip" in again.get_config("running").data_xml
    assert time.monotonic() - started < 3.0


def test_tls_call_home_refuses_an_unmapped_manager(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    pki = Pki.make(tmp_path)
    nms = pki.client("nms")
    impostor = pki.client("impostor")  # trusted CA, but not in the map
    port = free_port()
    running = calling(
        make_daemon,
        CallHome("nms", "tls", "127.0.0.1", port, "persistent", reconnect_max=1),
        tls=tls_settings(pki, nms),
    )
    with pytest.raises(Exception) as failed, tls_manager(port, pki, impostor) as m:
        m.get_config("running")
    assert type(failed.value).__module__.startswith(("ncclient", "ssl")), repr(failed.value)
    assert no_sessions(running)


def test_periodic_call_home_calls_again_after_the_period(make_daemon: DaemonFactory) -> None:
    port = free_port()
    running = calling(
        make_daemon, CallHome("nms", "ssh", "127.0.0.1", port, "periodic", period=2.0)
    )
    first = ssh_manager(port)
    first_at = time.monotonic()
    first.get_config("running")
    vanish(first._session._transport.sock)
    with contextlib.suppress(Exception):
        first._session.close()
    assert no_sessions(running)  # the reset is through: the port is free again
    with ssh_manager(port) as second:
        second_at = time.monotonic()
        second.get_config("running")
    # the next period's boundary (2 s after the daemon's first attempt, which
    # may have been before the manager listened), not at once
    assert 1.0 < second_at - first_at < 4.5
    assert running.daemon.call_home[0].sessions >= 1
