"""Issue 4, the relay runtime end to end: every mode and option configured
through NETCONF over SSH, with real pseudo-terminals as serial devices and
real TCP/UDP sockets on 127.0.0.1 (SPEC §3, §4).

Every wait is bounded; a watchdog fails any test that runs longer than
``BUDGET`` seconds, so a hung relay cannot hang the suite.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from conftest import PASSWORD, DaemonFactory, Running
from lxml import etree
from relayhelpers import (
    SOIP,
    ChannelState,
    address_not_here,
    channel_state,
    channel_xml,
    config,
    connect,
    datagrams,
    delete_channel_xml,
    destination_xml,
    drain_fd,
    exchange,
    fd_silent,
    free_port,
    is_closed,
    listen_xml,
    port_is_free,
    port_state,
    port_xml,
    pty_device,
    read_fd,
    read_sock,
    secondary_xml,
    server_xml,
    silent,
    time_budget,
    udp_socket,
    wait_for,
    wait_state,
    write_fd,
)

from nf.config.codec import load_document
from nf.config.model import from_tree
from nf.runtime.relay import RelayRuntime
from nf.runtime.session import Session
from nf.runtime.transaction import PrepareError
from nf.runtime.udp import JoinError, bind_group
from nf.schema import default_schema

BUDGET = 20


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Fail (not hang) a test that exceeds its budget."""
    with time_budget(BUDGET):
        yield


@pytest.fixture
def relay(make_daemon: DaemonFactory) -> Running:
    empty, _ = load_document(f'<serial-over-ip xmlns="{SOIP}"/>', default_schema())
    return make_daemon(relay=True, initial=empty)


def runtime(running: Running) -> RelayRuntime:
    return cast(RelayRuntime, running.daemon.runtime)


def session_socket(session: Session) -> socket.socket:
    """The relay's socket of a session (asyncio's wrapper of it)."""
    assert session.transport is not None
    return cast(socket.socket, session.transport.get_extra_info("socket"))


def statuses(state: ChannelState) -> dict[str, str]:
    return {role: row.get("status", "") for role, row in state.by_role().items()}


# -- server mode -------------------------------------------------------------------------
def test_server_takeover_replaces_the_session(relay: Running) -> None:
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path) + server_xml("c", "p", tcp, "<takeover>true</takeover>")
            ),
        )
        old = connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        old.sendall(b"old")
        assert read_fd(master, 3) == b"old"
        new = connect(tcp)
        assert is_closed(old), "the old session is closed by the takeover"
        state = wait_state(
            m, "c", lambda s: s.counter("sessions-accepted") == 2 and len(s.sessions) == 1
        )
        assert state.counter("sessions-refused") == 0
        assert state.oper_status == "up"
        assert state.sessions[0]["remote-port"] == str(new.getsockname()[1])
        os.write(master, b"to the new one")
        assert read_sock(new, 14) == b"to the new one"
        new.sendall(b"from new")
        assert read_fd(master, 8) == b"from new"
        events = [e for kind, e in runtime(relay).events if kind == "session-event"]
        connected = [e for e in events if e["event"] == "connected"]
        assert [e["status"] for e in connected] == ["active", "active"]
        (gone,) = [e for e in events if e["event"] == "disconnected"]
        assert gone["reason"] == "taken over" and gone["session-id"] == connected[0]["session-id"]
        new.close()


def test_a_full_tty_stalls_only_its_own_direction(relay: Running) -> None:
    """The device stops reading: the relay stops reading the session (flow
    control, nothing dropped), yet serial -> network keeps flowing at full
    speed; once the device reads again every byte arrives, in order."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("p", path) + server_xml("c", "p", tcp))
        )
        client = connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        # small socket buffers both ends: the kernel's (megabytes) would make
        # the pty carry them all before and after the push-back
        (session,) = runtime(relay).channels["c"].sessions.values()
        session_socket(session).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        client.setblocking(False)
        sent, blocked_since = bytearray(), None
        chunk = bytes(range(256)) * 256
        while len(sent) < 64 << 20:
            try:
                n = client.send(chunk)
                sent += chunk[:n]
                blocked_since = None
            except BlockingIOError:
                now = time.monotonic()
                blocked_since = blocked_since or now
                if now - blocked_since > 0.5:
                    break
                time.sleep(0.01)
        assert blocked_since is not None, "the relay never pushed back"
        client.setblocking(True)
        back = os.urandom(256 * 1024)
        started = time.monotonic()
        write_fd(master, back)
        assert read_sock(client, len(back)) == back
        assert time.monotonic() - started < 2, "serial -> network waited for the tty"
        assert read_fd(master, len(sent), timeout=15) == bytes(sent)
        state = wait_state(m, "c", lambda s: s.counter("net-to-serial-bytes") == len(sent))
        assert state.counter("serial-to-net-bytes") == len(back)
        assert state.counter("dropped-bytes") == 0
        client.close()


def _fill(master: int, stall: float = 0.5) -> int:
    """Write a stream into the pty until the relay stops taking it (its
    session no longer reads); how many bytes the tty took."""
    chunk = bytes(range(256)) * 256
    written, last_progress = 0, time.monotonic()
    while time.monotonic() - last_progress < stall:
        try:
            n = os.write(master, chunk)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        written += n
        last_progress = time.monotonic()
    return written


def test_bytes_a_reset_peer_never_received_are_counted(relay: Running) -> None:
    """A peer stops reading, then resets the connection: what asyncio and
    the kernel still held for it is lost, and counted.  Every byte the
    device wrote is either acknowledged by the peer or in dropped-bytes."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("p", path) + server_xml("c", "p", tcp))
        )
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        peer.connect(("127.0.0.1", tcp))
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        # the kernel would let the relay's socket queue up to 4 MB (tcp_wmem),
        # which takes the pty seconds to carry: a small send buffer holds the
        # same kinds of loss (unacknowledged, unsent, in asyncio) in less
        (session,) = runtime(relay).channels["c"].sessions.values()
        session_socket(session).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        written = _fill(master)

        # quiet: the peer's window is shut, the relay holds the rest; both
        # sides unchanged over two looks in a row (a busy machine may pause)
        def look() -> tuple[int, int]:
            queued = struct.unpack("i", fcntl.ioctl(peer, termios.FIONREAD, b"\0" * 4))[0]
            return channel_state(m, "c").counter("serial-to-net-bytes"), queued

        looks = [look()]
        while len(looks) < 3 or len(set(looks[-3:])) > 1:
            time.sleep(0.3)
            looks.append(look())
        sent, received = looks[-1]
        assert 0 < received < written
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        # the session goes; the port is read to the end with no session
        wait_for(lambda: port_state(m, "p").rx_bytes == written, timeout=10)
        state = wait_state(
            m, "c", lambda s: not s.sessions and s.counter("dropped-bytes") == written - received
        )
        assert state.counter("serial-to-net-bytes") == sent


def test_server_refuses_a_peer_not_allowed(relay: Running) -> None:
    """allowed-peer 10.0.0.0/8: 127.0.0.1 is closed at once, counted in
    sessions-refused; serial data with no session is dropped and counted."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + server_xml("c", "p", tcp, "<allowed-peer>10.0.0.0/8</allowed-peer>")
            ),
        )
        refused = connect(tcp)
        assert is_closed(refused)
        state = wait_state(m, "c", lambda s: s.counter("sessions-refused") == 1)
        assert state.counter("sessions-accepted") == 0 and not state.sessions
        assert state.oper_status == "listening"
        os.write(master, b"nobody")
        wait_state(m, "c", lambda s: s.counter("dropped-bytes") == 6)
        # allowing loopback lets it in
        m.edit_config(
            target="running",
            config=config(
                "<channel><name>c</name><allowed-peer>127.0.0.0/8</allowed-peer></channel>"
            ),
        )
        ok = connect(tcp)
        wait_state(m, "c", lambda s: s.counter("sessions-accepted") == 1)
        ok.sendall(b"in")
        assert read_fd(master, 2) == b"in"
        ok.close()


def test_inactivity_timeout_closes_an_idle_session(relay: Running) -> None:
    """The channel's timer in real time, through real sockets and the pty."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + server_xml("c", "p", tcp, "<inactivity-timeout>1</inactivity-timeout>")
            ),
        )
        client = connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        # that traffic either way restarts the timer is
        # tests/test_channel_harness.py::test_inactivity_timeout_closes_an_idle_session
        os.write(master, b"s")
        assert read_sock(client, 1) == b"s"
        client.sendall(b"n")
        assert read_fd(master, 1) == b"n"
        last = time.monotonic()
        assert is_closed(client, timeout=3)
        idle = time.monotonic() - last
        assert 0.8 <= idle <= 2.5, idle
        state = wait_state(m, "c", lambda s: not s.sessions)
        assert state.oper_status == "listening"
        events = [e for kind, e in runtime(relay).events if kind == "session-event"]
        assert events[-1]["event"] == "disconnected"
        assert events[-1]["reason"] == "inactivity timeout"


def test_keepalive_and_nodelay_on_relay_sockets(relay: Running) -> None:
    """keepalive is the idle time before the first probe (YANG); 0 turns
    it off; a uint16 beyond Linux's largest idle time (32767 s) is clamped,
    not silently left at the kernel's 2 hours."""
    with relay.connect() as m:
        tcp, off, big = free_port(), free_port(), free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("l", "loop://")
                + port_xml("l2", "loop://")
                + port_xml("l3", "loop://")
                + server_xml("c", "l", tcp, "<keepalive>7</keepalive>")
                + server_xml("k", "l2", off, "<keepalive>0</keepalive>")
                + server_xml("b", "l3", big, "<keepalive>65535</keepalive>")
            ),
        )
        clients = [connect(tcp), connect(off), connect(big)]
        for name in "ckb":
            wait_state(m, name, lambda s: len(s.sessions) == 1)
        channels = runtime(relay).channels
        (session,) = channels["c"].sessions.values()
        sock: socket.socket = session_socket(session)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        (session,) = channels["k"].sessions.values()
        sock = session_socket(session)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        (session,) = channels["b"].sessions.values()
        sock = session_socket(session)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 32767
        for client in clients:
            client.close()


# -- client mode -------------------------------------------------------------------------
def test_client_connects_reconnects_and_counts_dropped_data(relay: Running) -> None:
    with pty_device() as (master, path), relay.connect() as m, socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # bound, not listening yet: connecting is refused
        dest = server.getsockname()[1]
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + channel_xml(
                    "c", "p", "client", destination_xml(dest) + "<keepalive>9</keepalive>"
                )
            ),
        )
        state = wait_state(m, "c", lambda s: s.last_error is not None)
        assert state.oper_status == "connecting" and str(dest) in (state.last_error or "")
        server.listen()
        server.settimeout(4)  # the next attempt is 1 s after the failed one
        conn, _ = server.accept()
        state = wait_state(m, "c", lambda s: s.oper_status == "up" and len(s.sessions) == 1)
        assert state.sessions[0]["role"] == "primary"
        assert state.sessions[0]["remote-port"] == str(dest)
        (session,) = runtime(relay).channels["c"].sessions.values()
        sock: socket.socket = session_socket(session)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 9
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        conn.sendall(b"down")
        assert read_fd(master, 4) == b"down"
        os.write(master, b"up")
        assert read_sock(conn, 2) == b"up"

        # the server drops the connection; serial data meanwhile is dropped and counted
        conn.close()
        dropped_at = time.monotonic()
        wait_state(m, "c", lambda s: s.oper_status == "connecting" and not s.sessions)
        os.write(master, b"lost bytes")
        wait_state(m, "c", lambda s: s.counter("dropped-bytes") == 10, timeout=0.8)
        conn, _ = server.accept()
        assert 0.7 <= time.monotonic() - dropped_at <= 3.0
        assert silent(conn, 0.2), "dropped data is not delivered late"
        os.write(master, b"again")
        assert read_sock(conn, 5) == b"again"
        state = wait_state(m, "c", lambda s: s.counter("sessions-accepted") == 2)
        assert state.counter("dropped-bytes") == 10
        assert state.counter("serial-to-net-bytes") == 7
        assert state.counter("net-to-serial-bytes") == 4
        conn.close()


def test_client_with_a_secondary_port_in_failover(relay: Running) -> None:
    with dual(relay, "failover", client=True) as (m, master, primary, secondary, server):
        assert statuses(channel_state(m, "c")) == {"primary": "active", "secondary": "backup"}
        secondary.sendall(b"nope")
        wait_state(m, "c", lambda s: s.counter("ignored-bytes") == 4)
        os.write(master, b"p only")
        assert read_sock(primary, 6) == b"p only"
        assert silent(secondary, 0.2)
        primary.close()  # the destination drops us: the secondary takes over
        state = wait_state(m, "c", lambda s: len(s.sessions) == 1)
        assert statuses(state) == {"secondary": "active"}
        assert state.oper_status == "connecting"
        secondary.sendall(b"s")
        assert read_fd(master, 1) == b"s"
        # the reconnected primary waits for its first byte
        primary, _ = server.accept()
        state = wait_state(m, "c", lambda s: len(s.sessions) == 2)
        assert statuses(state) == {"primary": "waiting", "secondary": "active"}
        primary.close()


def test_client_with_a_secondary_port_in_raw(relay: Running) -> None:
    with dual(relay, "raw", client=True) as (m, master, primary, secondary, _):
        assert statuses(channel_state(m, "c")) == {"primary": "active", "secondary": "active"}
        os.write(master, b"both")
        assert read_sock(primary, 4) == b"both"
        assert read_sock(secondary, 4) == b"both"
        primary.sendall(b"P1")
        assert read_fd(master, 2) == b"P1"
        secondary.sendall(b"S1")
        assert read_fd(master, 2) == b"S1"
        state = channel_state(m, "c")
        assert state.counter("serial-to-net-bytes") == 8  # 4 bytes to each session
        assert state.counter("net-to-serial-bytes") == 4


def test_client_with_a_secondary_port_in_slotted(relay: Running) -> None:
    slotted = dual(relay, "slotted", int(SLOT * 1000), client=True)
    with slotted as (m, master, primary, secondary, _):
        primary.sendall(b"req-p")  # the outgoing primary opens a slot
        assert read_fd(master, 5) == b"req-p"
        secondary.sendall(b"req-s")
        assert fd_silent(master, 0.1), "the other session's data is queued"
        state = channel_state(m, "c")
        assert statuses(state) == {"primary": "active", "secondary": "waiting"}
        os.write(master, b"resp-p")
        answered = time.monotonic()
        assert read_sock(primary, 6) == b"resp-p"
        assert silent(secondary, 0.1)
        # the slot ends T after the last traffic; the queue opens the secondary's
        assert read_fd(master, 5, timeout=2) == b"req-s"
        assert time.monotonic() - answered >= SLOT * 0.8
        os.write(master, b"resp-s")
        assert read_sock(secondary, 6) == b"resp-s"
        assert silent(primary, 0.1)


def test_reconnect_churn_keeps_the_channel_healthy(relay: Running) -> None:
    """Clients that connect, talk and go in quick succession (each new one
    arriving while the last is still closing) never break the channel."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("p", path) + server_xml("c", "p", tcp))
        )
        refused = 0
        for i in range(25):
            client = connect(tcp)
            message = f"<{i:02}>".encode()
            client.sendall(message)
            got = read_fd(master, 4, timeout=2)
            if got != message:  # connected while the last one was closing: refused
                assert got == b"" and is_closed(client)
                refused += 1
            client.close()
        state = wait_state(m, "c", lambda s: not s.sessions)
        assert state.counter("sessions-accepted") + state.counter("sessions-refused") == 25
        assert state.counter("sessions-refused") == refused
        assert state.oper_status == "listening"
        client = connect(tcp)
        client.sendall(b"last")
        assert read_fd(master, 4) == b"last"
        client.close()


# -- peer mode (UDP) -----------------------------------------------------------------------
def start_peer(m: Any, path: str, extra: str) -> None:
    """Peer channel "u" on the pty at ``path`` (serial port "p"), up."""
    m.edit_config(
        target="running",
        config=config(port_xml("p", path) + channel_xml("u", "p", "peer", extra)),
    )
    wait_state(m, "u", lambda s: s.oper_status == "up")


def test_peer_relays_datagrams_to_every_destination(relay: Running) -> None:
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        udp_socket() as d1,
        udp_socket() as d2,
        udp_socket() as sender,
    ):
        listen = free_port(socket.SOCK_DGRAM)
        extra = (
            listen_xml(listen)
            + destination_xml(d1.getsockname()[1])
            + destination_xml(d2.getsockname()[1])
            + "<packing><delimiter>10</delimiter></packing>"
        )
        start_peer(m, path, extra)
        sender.sendto(b"datagram one", ("127.0.0.1", listen))
        sender.sendto(b"+two", ("127.0.0.1", listen))
        assert read_fd(master, 16) == b"datagram one+two"
        os.write(master, b"one\ntwo\nthr")
        for d in (d1, d2):
            assert datagrams(d, 2) == [b"one\n", b"two\n"]
        os.write(master, b"ee\n")
        for d in (d1, d2):
            assert datagrams(d, 1) == [b"three\n"]
            assert datagrams(d, 1, timeout=0.2) == []
        state = channel_state(m, "u")
        # every datagram sent counts: 3 frames to each of 2 destinations
        assert state.counter("serial-to-net-frames") == 6
        assert state.counter("serial-to-net-bytes") == 2 * 14
        assert state.counter("net-to-serial-bytes") == 16
        assert state.counter("dropped-bytes") == 0
        assert not state.sessions
        # deleting the channel releases its UDP port
        assert not port_is_free(listen, socket.SOCK_DGRAM)
        m.edit_config(target="running", config=config(delete_channel_xml("u")))
        assert port_is_free(listen, socket.SOCK_DGRAM)


def test_peer_receives_and_sends_broadcasts(relay: Running) -> None:
    """Loopback's broadcast address (127.255.255.255, in the kernel's local
    table): a peer listening on the wildcard receives a broadcast, and a
    broadcast destination is sent to (which needs SO_BROADCAST)."""
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as everyone,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        everyone.bind(("0.0.0.0", 0))  # a broadcast reaches wildcard-bound sockets
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sender.bind(("127.0.0.1", 0))
        listen = free_port(socket.SOCK_DGRAM)
        extra = listen_xml(listen, "0.0.0.0") + destination_xml(
            everyone.getsockname()[1], "127.255.255.255"
        )
        start_peer(m, path, extra)
        sender.sendto(b"to all", ("127.255.255.255", listen))
        assert read_fd(master, 6) == b"to all"
        os.write(master, b"answer")
        assert datagrams(everyone, 1) == [b"answer"]
        state = channel_state(m, "u")
        assert state.counter("net-to-serial-bytes") == 6
        assert state.counter("serial-to-net-bytes") == 6
        assert state.counter("dropped-bytes") == 0


def test_peer_counts_a_datagram_that_cannot_be_sent(relay: Running) -> None:
    """A destination the kernel refuses (an IPv6 address from an IPv4
    socket) loses its datagrams: counted in dropped-bytes, with last-error,
    while the other destination is served."""
    with pty_device() as (master, path), relay.connect() as m, udp_socket() as dest:
        listen = free_port(socket.SOCK_DGRAM)
        extra = (
            listen_xml(listen) + destination_xml(dest.getsockname()[1]) + destination_xml(9, "::1")
        )
        start_peer(m, path, extra)
        os.write(master, b"abc")
        assert datagrams(dest, 1) == [b"abc"]
        state = wait_state(m, "u", lambda s: s.counter("dropped-bytes") == 3)
        assert state.counter("serial-to-net-bytes") == 3
        assert state.counter("serial-to-net-frames") == 1
        assert state.last_error and "::1" in state.last_error


def test_peer_counts_datagrams_the_full_serial_port_cannot_take(relay: Running) -> None:
    """The device stops reading: datagrams fill the tty and the relay's
    write buffer, and those that arrive then are dropped and counted, not
    left to overflow from the kernel's socket buffer uncounted.  Every byte
    sent reaches the device or is in dropped-bytes."""
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        udp_socket() as sender,
        udp_socket() as dest,
    ):
        listen = free_port(socket.SOCK_DGRAM)
        extra = listen_xml(listen) + destination_xml(dest.getsockname()[1])
        start_peer(m, path, extra)
        datagram = bytes(range(250)) * 4
        count = 400  # 400 kB: far more than the tty and the write buffer hold
        for i in range(count):
            sender.sendto(datagram, ("127.0.0.1", listen))
            if i % 8 == 7:
                time.sleep(0.001)  # the relay reads them all; none overflows the socket
        wait_state(m, "u", lambda s: s.counter("dropped-bytes") > 0)
        received = drain_fd(master)
        state = wait_state(
            m, "u", lambda s: s.counter("dropped-bytes") == count * len(datagram) - received
        )
        assert state.counter("net-to-serial-bytes") == received
        assert 0 < received < count * len(datagram)


def test_peer_says_how_many_datagrams_the_kernel_dropped(relay: Running) -> None:
    """The relay's loop stalls (a fault caused here by blocking it) while a
    burst overflows the socket's receive buffer: the kernel's drops cannot
    be counted in bytes, but last-error says how many datagrams, and with
    them every byte sent is accounted for."""
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        udp_socket() as sender,
        udp_socket() as dest,
    ):
        listen = free_port(socket.SOCK_DGRAM)
        start_peer(m, path, listen_xml(listen) + destination_xml(dest.getsockname()[1]))
        datagram = bytes(range(250)) * 4
        count = 600  # 600 kB in one burst: more than a default receive buffer holds
        stall = threading.Thread(target=relay.portal.call, args=(time.sleep, 0.5))
        stall.start()
        time.sleep(0.1)  # the loop is blocked now
        for _ in range(count):
            sender.sendto(datagram, ("127.0.0.1", listen))
        stall.join()
        state = wait_state(m, "u", lambda s: s.last_error is not None)
        match = re.fullmatch(
            r"the kernel dropped (\d+) datagrams in all: the UDP receive buffer overflowed",
            state.last_error or "",
        )
        assert match and 0 < int(match.group(1)) < count, state.last_error
        lost = int(match.group(1)) * len(datagram)
        received = drain_fd(master)
        wait_state(
            m,
            "u",
            lambda s: received + s.counter("dropped-bytes") + lost == count * len(datagram),
        )


def test_peer_refuses_datagrams_from_a_peer_not_allowed(relay: Running) -> None:
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        udp_socket() as dest,
        udp_socket() as sender,
    ):
        listen = free_port(socket.SOCK_DGRAM)
        extra = (
            listen_xml(listen)
            + destination_xml(dest.getsockname()[1])
            + "<allowed-peer>10.0.0.0/8</allowed-peer>"
        )
        start_peer(m, path, extra)
        sender.sendto(b"refused!", ("127.0.0.1", listen))
        state = wait_state(m, "u", lambda s: s.counter("dropped-bytes") == 8)
        assert state.counter("net-to-serial-bytes") == 0
        assert fd_silent(master, 0.2)
        # sending to the destinations is not affected by allowed-peer
        os.write(master, b"out")
        assert datagrams(dest, 1) == [b"out"]


def _multicast_on_loopback(group: str) -> str | None:
    """Why multicast over lo does not work here, or None when it does."""
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
        ):
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rx.bind((group, 0))
            membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1"))
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            tx.sendto(b"probe", (group, rx.getsockname()[1]))
            rx.settimeout(1)
            rx.recv(16)
    except OSError as exc:
        return f"multicast on lo is not usable in this sandbox: {exc}"
    return None


def test_peer_joins_the_multicast_group(relay: Running) -> None:
    """listen/address 127.0.0.1 + multicast-group: datagrams to the group
    reach the device, and unicast to 127.0.0.1 still does."""
    group = f"239.255.{os.getpid() % 250}.{time.monotonic_ns() % 250 + 1}"
    reason = _multicast_on_loopback(group)
    if reason:
        pytest.skip(reason)
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        udp_socket() as dest,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        listen = free_port(socket.SOCK_DGRAM)
        extra = (
            listen_xml(listen)
            + destination_xml(dest.getsockname()[1])
            + f"<multicast-group>{group}</multicast-group>"
        )
        start_peer(m, path, extra)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sender.sendto(b"to the group", (group, listen))
        assert read_fd(master, 12) == b"to the group"
        sender.sendto(b"unicast", ("127.0.0.1", listen))
        assert read_fd(master, 7) == b"unicast"
        assert fd_silent(master, 0.2), "each datagram is written once"
        os.write(master, b"reply")
        assert datagrams(dest, 1) == [b"reply"]


def test_a_failed_multicast_join_says_join_not_bind() -> None:
    """IP_ADD_MEMBERSHIP on an interface address that no interface has fails
    (ENODEV) wherever the test runs, unlike a join on 0.0.0.0, which depends
    on the routing table.  The error names the group, the interface and the
    cause, and the relay reports it at the multicast-group leaf: the text
    the rpc-error, the log and a refused boot carry."""
    address, group = address_not_here(), "239.1.1.1"
    with pytest.raises(JoinError) as info:
        bind_group(address, 0, group)
    assert str(info.value) == f"cannot join multicast group {group} on {address}: No such device"
    body = port_xml("p", "loop://") + channel_xml(
        "mc",
        "p",
        "peer",
        listen_xml(0, address) + destination_xml(9) + f"<multicast-group>{group}</multicast-group>",
    )
    schema = default_schema()
    tree, errors = load_document(config(body), schema)
    assert not errors
    relay_config = from_tree(tree, schema)
    cfg = relay_config.channels["mc"]

    async def acquire_group() -> None:
        await RelayRuntime()._acquire(cfg, relay_config.serial_ports["p"], "group")

    with pytest.raises(PrepareError) as refused:
        anyio.run(acquire_group)
    (fault,) = refused.value.faults
    assert fault.message == (
        f"channel mc: cannot join multicast group {group} on {address}: No such device"
    )
    assert (fault.channel, fault.leaf) == ("mc", "multicast-group")


# -- packing ---------------------------------------------------------------------------------
def test_packing_frames_are_datagrams(relay: Running) -> None:
    """max-frame-size cuts, frame-delay flushes after serial silence and
    joins bytes that arrive within it; each frame is exactly one datagram."""
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        udp_socket() as dest,
    ):
        listen = free_port(socket.SOCK_DGRAM)
        extra = (
            listen_xml(listen)
            + destination_xml(dest.getsockname()[1])
            + "<packing><max-frame-size>4</max-frame-size><frame-delay>200</frame-delay></packing>"
        )
        start_peer(m, path, extra)
        written = time.monotonic()
        os.write(master, b"abcdefghij")
        assert datagrams(dest, 2) == [b"abcd", b"efgh"]
        assert datagrams(dest, 1) == [b"ij"]
        assert time.monotonic() - written >= 0.15, "the tail waits for frame-delay"
        os.write(master, b"xy")
        time.sleep(0.05)
        os.write(master, b"z")
        assert datagrams(dest, 1) == [b"xyz"]
        assert datagrams(dest, 1, timeout=0.3) == []
        state = channel_state(m, "u")
        assert state.counter("serial-to-net-frames") == 4
        assert state.counter("serial-to-net-bytes") == 13


def test_packing_counts_frames_on_tcp(relay: Running) -> None:
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + server_xml("c", "p", tcp, "<packing><delimiter>59</delimiter></packing>")
            ),
        )
        client = connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        os.write(master, b"a;bb;ccc;dd")
        assert read_sock(client, 9) == b"a;bb;ccc;"
        assert silent(client, 0.2), "the partial frame waits for its delimiter"
        state = channel_state(m, "c")
        assert state.counter("serial-to-net-frames") == 3
        assert state.counter("serial-to-net-bytes") == 9
        os.write(master, b";")
        assert read_sock(client, 3) == b"dd;"
        wait_state(m, "c", lambda s: s.counter("serial-to-net-frames") == 4)
        client.close()


# -- secondary port --------------------------------------------------------------------------
@contextlib.contextmanager
def dual(
    relay: Running, mode: str, timeout_ms: int | None = None, *, client: bool = False
) -> Iterator[tuple[Any, int, socket.socket, socket.socket, Any]]:
    """A channel with a secondary port, both sessions connected; yields the
    manager, the pty master, the primary's far end, the secondary, and last
    the primary's TCP port (server mode) or the destination's listener
    (client mode: the outgoing connection is the primary, the secondary
    listens on listen/address:secondary/port)."""
    with pty_device() as (master, path), relay.connect() as m, socket.socket() as server:
        sec_port = free_port()
        sec = secondary_xml(sec_port, mode, timeout_ms)
        if client:
            server.bind(("127.0.0.1", 0))
            server.listen()
            server.settimeout(5)
            extra = "<listen><address>127.0.0.1</address></listen>" + sec
            body = channel_xml("c", "p", "client", extra + destination_xml(server.getsockname()[1]))
        else:
            tcp = free_port()
            body = server_xml("c", "p", tcp, sec)
        m.edit_config(target="running", config=config(port_xml("p", path) + body))
        primary = server.accept()[0] if client else connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)  # the primary is first
        secondary = connect(sec_port)
        wait_state(m, "c", lambda s: len(s.sessions) == 2)
        try:
            yield m, master, primary, secondary, server if client else tcp
        finally:
            primary.close()
            secondary.close()


def test_secondary_raw(relay: Running) -> None:
    with dual(relay, "raw") as (m, master, primary, secondary, _):
        state = channel_state(m, "c")
        assert statuses(state) == {"primary": "active", "secondary": "active"}
        primary.sendall(b"P1")
        assert read_fd(master, 2) == b"P1"
        secondary.sendall(b"S1")
        assert read_fd(master, 2) == b"S1"
        os.write(master, b"both")
        assert read_sock(primary, 4) == b"both"
        assert read_sock(secondary, 4) == b"both"
        state = channel_state(m, "c")
        assert state.counter("net-to-serial-bytes") == 4
        assert state.counter("serial-to-net-bytes") == 8  # 4 bytes to each session
        assert state.counter("ignored-bytes") == 0


def test_secondary_failover(relay: Running) -> None:
    """Failover through real sockets, the pty and the NETCONF state; the
    whole sequence (a returning primary waits until it sends, and so on)
    is tests/test_channel_harness.py::test_secondary_failover."""
    with dual(relay, "failover") as (m, master, primary, secondary, _):
        state = channel_state(m, "c")
        assert statuses(state) == {"primary": "active", "secondary": "backup"}
        secondary.sendall(b"ignored")
        wait_state(m, "c", lambda s: s.counter("ignored-bytes") == 7)
        assert fd_silent(master, 0.2)
        os.write(master, b"to primary")
        assert read_sock(primary, 10) == b"to primary"
        assert silent(secondary, 0.2)
        primary.sendall(b"p")
        assert read_fd(master, 1) == b"p"

        # the primary goes away: the backup becomes active
        primary.close()
        state = wait_state(m, "c", lambda s: len(s.sessions) == 1)
        assert statuses(state) == {"secondary": "active"}
        secondary.sendall(b"s-active")
        assert read_fd(master, 8) == b"s-active"
        os.write(master, b"to secondary")
        assert read_sock(secondary, 12) == b"to secondary"


SLOT = 0.4


def test_secondary_slotted(relay: Running) -> None:
    """A slot ends on the channel's own timer, in real time, and the state
    shows who waits; queue overflow, the owner leaving and the exact slot
    boundaries are tests/test_channel_harness.py::test_secondary_slotted."""
    with dual(relay, "slotted", int(SLOT * 1000)) as (m, master, primary, secondary, _):
        assert statuses(channel_state(m, "c")) == {"primary": "active", "secondary": "active"}
        os.write(master, b"no slot")  # goes to every session
        assert read_sock(primary, 7) == b"no slot"
        assert read_sock(secondary, 7) == b"no slot"

        # the primary opens a slot; the secondary's request is queued
        primary.sendall(b"req-p")
        assert read_fd(master, 5) == b"req-p"
        secondary.sendall(b"req-s")
        state = channel_state(m, "c")
        assert statuses(state) == {"primary": "active", "secondary": "waiting"}
        assert fd_silent(master, 0.1), "the other session's data is queued"
        os.write(master, b"resp-p")  # restarts T
        answered = time.monotonic()
        assert read_sock(primary, 6) == b"resp-p"
        # at the end of the slot the queue is written and opens the secondary's slot
        assert read_fd(master, 5, timeout=2) == b"req-s"
        assert time.monotonic() - answered >= SLOT * 0.8
        state = channel_state(m, "c")
        assert statuses(state) == {"primary": "waiting", "secondary": "active"}
        os.write(master, b"resp-s")
        assert read_sock(secondary, 6) == b"resp-s"
        # T passes with no traffic: no slot, both active again
        wait_state(m, "c", lambda s: set(statuses(s).values()) == {"active"})


# -- serial port loss and recovery -----------------------------------------------------------
def test_serial_port_loss_leaves_other_channels_alone(relay: Running) -> None:
    with (
        pty_device() as (master_a, path_a),
        pty_device() as (master_b, path_b),
        relay.connect() as m,
    ):
        tcp_a, tcp_b = free_port(), free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("pa", path_a)
                + port_xml("pb", path_b)
                + server_xml("a", "pa", tcp_a)
                + server_xml("b", "pb", tcp_b)
            ),
        )
        ca, cb = connect(tcp_a), connect(tcp_b)
        wait_state(m, "a", lambda s: len(s.sessions) == 1)
        wait_state(m, "b", lambda s: len(s.sessions) == 1)
        os.close(master_a)  # the device vanishes
        port = wait_for(lambda: (p := port_state(m, "pa")).oper_status == "error" and p)
        assert port.last_error
        state = channel_state(m, "a")
        assert state.oper_status == "down" and state.last_error
        events = [e for kind, e in runtime(relay).events if kind == "port-event"]
        assert {"serial-port": "pa", "event": "error"}.items() <= events[-1].items()
        # data for the vanished port is dropped and counted
        ca.sendall(b"void")
        wait_state(m, "a", lambda s: s.counter("dropped-bytes") == 4)
        # the other channel relays as before
        cb.sendall(b"b still")
        assert read_fd(master_b, 7) == b"b still"
        os.write(master_b, b"yes")
        assert read_sock(cb, 3) == b"yes"
        assert port_state(m, "pb").oper_status == "up"
        assert channel_state(m, "b").oper_status == "up"
        ca.close()
        cb.close()


@contextlib.contextmanager
def socat_pair(directory: Path) -> Iterator[tuple[Path, Path]]:
    """Two linked ptys at fixed paths: the daemon opens ttyV0, the test ttyV1."""
    v0, v1 = directory / "ttyV0", directory / "ttyV1"
    proc = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={v0}", f"pty,raw,echo=0,link={v1}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: v0.exists() and v1.exists(), timeout=5)
        yield v0, v1
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        wait_for(lambda: not v0.exists(), timeout=5)


@contextlib.contextmanager
def open_tty(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_serial_port_recovers_when_the_device_returns(relay: Running, tmp_path: Path) -> None:
    with relay.connect() as m:
        tcp, tcp_other = free_port(), free_port()
        with socat_pair(tmp_path) as (v0, v1), open_tty(v1) as device:
            m.edit_config(
                target="running",
                config=config(
                    port_xml("p", str(v0))
                    + port_xml("l", "loop://")
                    + server_xml("c", "p", tcp)
                    + server_xml("other", "l", tcp_other)
                ),
            )
            client, other = connect(tcp), connect(tcp_other)
            wait_state(m, "c", lambda s: len(s.sessions) == 1)
            client.sendall(b"first")
            assert read_fd(device, 5) == b"first"
        # socat is gone: the port fails, the channel goes down
        wait_for(lambda: port_state(m, "p").oper_status == "error")
        assert channel_state(m, "c").oper_status == "down"
        with socat_pair(tmp_path) as (v0, v1), open_tty(v1) as device:
            returned = time.monotonic()
            wait_for(lambda: port_state(m, "p").oper_status == "up", timeout=5)
            assert time.monotonic() - returned < 4
            state = wait_state(m, "c", lambda s: s.oper_status == "up")
            assert len(state.sessions) == 1, "the TCP session survived the port outage"
            client.sendall(b"again")
            assert read_fd(device, 5) == b"again"
            os.write(device, b"back")
            assert read_sock(client, 4) == b"back"
            events = [e["event"] for kind, e in runtime(relay).events if kind == "port-event"]
            assert events[-1] == "opened" and "error" in events
        # the other channel never noticed
        other.sendall(b"echo")
        assert read_sock(other, 4) == b"echo"
        assert channel_state(m, "other").counter("sessions-accepted") == 1
        client.close()
        other.close()


# -- counters ----------------------------------------------------------------------------------
def test_counters_match_traffic_and_clear_counters_resets_them(relay: Running) -> None:
    with pty_device() as (master, path), relay.connect() as m:
        tcp, tcp2 = free_port(), free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + port_xml("l", "loop://")
                + server_xml("c", "p", tcp)
                + server_xml("e", "l", tcp2)
            ),
        )
        client, echo = connect(tcp), connect(tcp2)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        client.sendall(b"x" * 1000)
        assert read_fd(master, 1000) == b"x" * 1000
        os.write(master, b"y" * 300)
        assert read_sock(client, 300) == b"y" * 300
        echo.sendall(b"ping")
        assert read_sock(echo, 4) == b"ping"
        state = wait_state(m, "c", lambda s: s.counter("serial-to-net-bytes") == 300)
        assert state.counter("net-to-serial-bytes") == 1000
        assert state.counter("sessions-accepted") == 1
        assert state.counter("dropped-bytes") == state.counter("ignored-bytes") == 0
        assert state.sessions[0]["rx-bytes"] == "1000"
        assert state.sessions[0]["tx-bytes"] == "300"
        assert "last-cleared" not in state.counters
        port = port_state(m, "p")
        assert (port.rx_bytes, port.tx_bytes) == (300, 1000)

        # one channel
        m.dispatch(
            etree.fromstring(
                f'<clear-counters xmlns="{SOIP}"><channel>e</channel></clear-counters>'
            )
        )
        echo_state = channel_state(m, "e")
        assert (
            echo_state.counter("net-to-serial-bytes") == 0 and echo_state.counters["last-cleared"]
        )
        assert channel_state(m, "c").counter("net-to-serial-bytes") == 1000

        # everything
        m.dispatch(etree.fromstring(f'<clear-counters xmlns="{SOIP}"/>'))
        state = channel_state(m, "c")
        for name in (
            "serial-to-net-bytes",
            "serial-to-net-frames",
            "net-to-serial-bytes",
            "dropped-bytes",
            "ignored-bytes",
            "sessions-accepted",
            "sessions-refused",
        ):
            assert state.counter(name) == 0, name
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
            state.counters["last-cleared"],
        )
        port = port_state(m, "p")
        assert (port.rx_bytes, port.tx_bytes) == (0, 0)
        # counting goes on from zero
        client.sendall(b"z" * 5)
        assert read_fd(master, 5) == b"zzzzz"
        wait_state(m, "c", lambda s: s.counter("net-to-serial-bytes") == 5)
        client.close()
        echo.close()


def test_get_reports_every_state_leaf_of_the_module(relay: Running) -> None:
    """Every config-false leaf of the YANG module, read off the compiled
    schema, is in <get> once the runtime has something to say for it: a
    port up and one that failed, a channel with a session, counters
    cleared.  A state leaf added to the model without the runtime behind
    it fails here."""
    schema = default_schema()
    wanted = {
        "/".join(n.name for n in reversed([node, *node.ancestors()]))
        for node in schema.walk()
        if node.namespace == SOIP and node.keyword in ("leaf", "leaf-list") and not node.config
    }
    assert len(wanted) >= 20, wanted  # the walk found the state tree
    with (
        pty_device() as (master, path),
        pty_device() as (lost_master, lost_path),
        pty_device() as (_, vcom_path),
        relay.connect() as m,
    ):
        tcp, vcom_tcp = free_port(), free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + port_xml("gone", lost_path)
                + port_xml("v", vcom_path)
                + server_xml("c", "p", tcp)
                + server_xml("d", "gone", free_port())
                + server_xml("r", "v", vcom_tcp, "<rfc2217>true</rfc2217>")
            ),
        )
        client = connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        # an RFC 2217 client sets the baud rate: set-by-session
        vcom = connect(vcom_tcp)
        vcom.sendall(b"\xff\xfb\x2c\xff\xfa\x2c\x01\x00\x00\x25\x80\xff\xf0")
        # the offers (12 bytes), DO COM-PORT-OPTION (3), NOTIFY-MODEMSTATE (7), the reply
        assert b"\xff\xfa\x2c\x65\x00\x00\x25\x80\xff\xf0" in read_sock(vcom, 32)
        m.dispatch(etree.fromstring(f'<clear-counters xmlns="{SOIP}"/>'))
        exchange(client, master, b"to serial", b"to net")
        os.close(lost_master)  # port "gone" fails: last-error in port and channel
        wait_state(m, "d", lambda s: s.last_error is not None)
        data = etree.fromstring(m.get().data_xml.encode())
        reported = {
            "/".join(reversed([etree.QName(e).localname for e in (leaf, *leaf.iterancestors())]))
            for leaf in data.iter(f"{{{SOIP}}}*")
            if len(leaf) == 0
        }
        reported = {path.removeprefix("data/") for path in reported}
        assert wanted - reported == set()
        client.close()
        vcom.close()


# -- lifecycle -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_closes_relay_sessions_and_exits(tmp_path: Path, sig: signal.Signals) -> None:
    nf = Path(sys.executable).parent / "nf"
    with pty_device() as (master, path):
        tcp = free_port()
        cfg = tmp_path / "boot.xml"
        cfg.write_text(
            f'<serial-over-ip xmlns="{SOIP}">'
            + port_xml("p", path)
            + server_xml("c", "p", tcp)
            + "</serial-over-ip>"
        )
        env = dict(os.environ, NF_ADMIN_PASSWORD=PASSWORD)
        proc = subprocess.Popen(
            [
                str(nf),
                "run",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                str(tmp_path / "state"),
                "--config",
                str(cfg),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            match = re.search(r"NETCONF over SSH on 127\.0\.0\.1:(\d+)", banner)
            assert match and int(match.group(1)) > 0, banner
            client = connect(tcp)
            client.sendall(b"alive")
            assert read_fd(master, 5) == b"alive"
            signalled = time.monotonic()
            proc.send_signal(sig)
            assert proc.wait(timeout=2) == 0
            assert time.monotonic() - signalled < 2
            assert is_closed(client, timeout=1)
            client.close()
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()


def test_deleted_channel_frees_its_port_in_the_same_commit(relay: Running) -> None:
    with (
        pty_device() as (master_a, path_a),
        pty_device() as (master_b, path_b),
        relay.connect() as m,
    ):
        tcp = free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("pa", path_a) + port_xml("pb", path_b) + server_xml("a", "pa", tcp)
            ),
        )
        old = connect(tcp)
        old.sendall(b"to a")
        assert read_fd(master_a, 4) == b"to a"
        m.edit_config(
            target="running", config=config(delete_channel_xml("a") + server_xml("b", "pb", tcp))
        )
        assert is_closed(old)
        new = connect(tcp)
        state = wait_state(m, "b", lambda s: len(s.sessions) == 1)
        assert state.oper_status == "up"
        new.sendall(b"to b")
        assert read_fd(master_b, 4) == b"to b"
        assert fd_silent(master_a, 0.1)
        os.write(master_b, b"from b")
        assert read_sock(new, 6) == b"from b"
        assert port_state(m, "pa").oper_status == "down"
        new.close()


def test_disabled_channel_holds_no_port(relay: Running) -> None:
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path) + server_xml("c", "p", tcp, "<enabled>false</enabled>")
            ),
        )
        assert port_is_free(tcp)
        assert channel_state(m, "c").oper_status == "down"
        assert port_state(m, "p").oper_status == "down"
        m.edit_config(
            target="running",
            config=config("<channel><name>c</name><enabled>true</enabled></channel>"),
        )
        client = connect(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        assert not port_is_free(tcp)
        client.sendall(b"on")
        assert read_fd(master, 2) == b"on"
        m.edit_config(
            target="running",
            config=config("<channel><name>c</name><enabled>false</enabled></channel>"),
        )
        assert is_closed(client)
        assert port_is_free(tcp)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", tcp), timeout=2).close()
        assert channel_state(m, "c").oper_status == "down"
        assert port_state(m, "p").oper_status == "down"
