"""A commit drops only what it must (issue 13), with live traffic.

For each live leaf (nf/liveness.py): a TCP session streams
sequence-numbered records both ways through a real pty while a NETCONF
commit changes that leaf; every byte arrives once and in order, the TCP
connection stays, and the new value takes effect (on the socket, the
tty's termios, the framer's output or the arbiter).  For each restart
leaf: the session ends, is counted in sessions-ended-by-commit, its
session-event says why, and <get> tells last-restart and its reason.
A line setting the driver refuses (a spy on tcsetattr) fails the commit
and leaves the port's settings as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import socket
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from conftest import DaemonFactory, Running
from ncclient.operations import RPCError
from planehelpers import serial_port, server_channel
from relayhelpers import (
    SOIP,
    channel_xml,
    config,
    connect,
    destination_xml,
    exchange,
    free_port,
    is_closed,
    listen_xml,
    port_state,
    pty_device,
    read_fd,
    read_sock,
    secondary_xml,
    server_xml,
    wait_for,
    write_fd,
)
from test_store_prepare import GROUP, multicast_on_loopback

from nf.config.codec import load_document
from nf.protocol.arbitration import Role, SlottedArbiter, Status
from nf.runtime.channel import ChannelRuntime
from nf.runtime.document import DocumentPatch
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import Delta
from nf.schema import default_schema

STREAM_FOR = 0.4
"""Seconds of traffic before and after the commit."""


@pytest.fixture
def relay(make_daemon: DaemonFactory) -> Running:
    empty, _ = load_document(f'<serial-over-ip xmlns="{SOIP}"/>', default_schema())
    return make_daemon(relay=True, initial=empty)


class Duplex:
    """Numbered records both ways between a TCP client and a pty master,
    from four threads, until ``finish``: what each side sent and read."""

    def __init__(self, client: socket.socket, master: int) -> None:
        self.client = client
        self.master = master
        self.sent = {"net": bytearray(), "serial": bytearray()}
        self.got = {"net": bytearray(), "serial": bytearray()}
        """"net": what the client sent, and what reached the pty; "serial":
        what the pty master sent, and what reached the client."""
        self.eof = False
        self._writing = True
        self._reading = True
        self._threads = [
            threading.Thread(target=f, daemon=True)
            for f in (self._write_net, self._write_serial, self._read_net, self._read_serial)
        ]
        for thread in self._threads:
            thread.start()

    def _records(self, tag: bytes, out: bytearray, send: Callable[[bytes], None]) -> None:
        i = 0
        while self._writing:
            chunk = b"".join(b"%s%07d\n" % (tag, i + k) for k in range(16))
            send(chunk)
            out += chunk
            i += 16
            time.sleep(0.002)

    def _write_net(self) -> None:
        self._records(b"N", self.sent["net"], self.client.sendall)

    def _write_serial(self) -> None:
        self._records(b"S", self.sent["serial"], lambda data: write_fd(self.master, data))

    def _read_net(self) -> None:
        self.client.settimeout(0.05)
        while self._reading:
            try:
                data = self.client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                self.eof = True
                return
            if not data:
                self.eof = True
                return
            self.got["serial"] += data

    def _read_serial(self) -> None:
        while self._reading:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    self.got["net"] += os.read(self.master, 65536)

    def finish(self) -> None:
        """Stop writing; wait until everything sent has arrived (or 10 s);
        check it arrived exactly once and in order, the connection open."""
        self._writing = False
        for thread in self._threads[:2]:
            thread.join(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            len(self.got[k]) < len(self.sent[k]) for k in self.sent
        ):
            time.sleep(0.02)
        self._reading = False
        for thread in self._threads[2:]:
            thread.join(5)
        for direction in ("net", "serial"):
            sent, got = bytes(self.sent[direction]), bytes(self.got[direction])
            assert len(sent) > 1000, f"{direction}: too little traffic to tell ({len(sent)})"
            first = next(
                (i for i, (a, b) in enumerate(zip(sent, got, strict=False)) if a != b),
                min(len(sent), len(got)),
            )
            assert got == sent, (
                f"{direction}: {len(sent)} bytes sent, {len(got)} received, "
                f"first difference at {first}"
            )
        assert not self.eof, "the TCP connection was closed"


@dataclass
class Setup:
    relay: Running
    m: Any
    path: str
    master: int
    tcp: int
    port_body: str
    """The serial port's leaves but its name and device."""
    extra: str
    """The channel's leaves but name, serial-port, mode and listen."""

    @property
    def runtime(self) -> RelayRuntime:
        runtime = self.relay.daemon.runtime
        assert isinstance(runtime, RelayRuntime)
        return runtime

    @property
    def channel(self) -> ChannelRuntime:
        return self.runtime.channels["c"]

    def body(self, port_body: str | None = None, extra: str | None = None) -> str:
        port = self.port_body if port_body is None else port_body
        return (
            f"<serial-port><name>p</name><device>{self.path}</device>{port}</serial-port>"
            + server_xml("c", "p", self.tcp, self.extra if extra is None else extra)
        )

    def commit(self, body: str) -> None:
        self.m.edit_config(target="running", config=config(body), default_operation="replace")


@contextlib.contextmanager
def channel(relay: Running, port_body: str = "", extra: str = "") -> Iterator[Setup]:
    with pty_device() as (master, path), relay.connect() as m:
        setup = Setup(relay, m, path, master, free_port(), port_body, extra)
        setup.commit(setup.body())
        yield setup


def tty_attrs(path: str) -> list[Any]:
    """The termios of the tty at ``path``, as the kernel keeps it."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        return termios.tcgetattr(fd)
    finally:
        os.close(fd)


def tty_line(path: str) -> tuple[int, int]:
    """(ospeed, cflag) of the tty at ``path``."""
    attrs = tty_attrs(path)
    return attrs[5], attrs[2]


def session_socket(setup: Setup) -> socket.socket:
    session = setup.channel.session_of(Role.PRIMARY)
    assert session is not None and session.transport is not None
    sock: socket.socket = session.transport.get_extra_info("socket")
    return sock


def discard(sock: socket.socket) -> None:
    """Read and forget until the socket ends."""
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass


def frames_for(setup: Setup, client: socket.socket, writes: list[bytes], gap: float) -> int:
    """How many frames the channel sends for ``writes`` made to the pty
    ``gap`` seconds apart (all read back by ``client``)."""
    before = setup.channel.counters.serial_to_net_frames
    for data in writes:
        os.write(setup.master, data)
        time.sleep(gap)
    total = b"".join(writes)
    assert read_sock(client, len(total)) == total
    time.sleep(0.2)  # the loop's thread counts a frame just after sending it
    return setup.channel.counters.serial_to_net_frames - before


# -- the live leaves: (initial port leaves, initial channel leaves, changed
# port leaves, changed channel leaves, check of the effect) ---------------------------
Check = Callable[[Setup, socket.socket], None]


def check_inactivity(setup: Setup, client: socket.socket) -> None:
    assert setup.channel.cfg.inactivity_timeout == 1
    assert is_closed(client, timeout=4), "the idle session was not closed after 1 s"
    assert any(payload.get("reason") == "inactivity timeout" for _, payload in setup.runtime.events)


def check_keepalive(setup: Setup, client: socket.socket) -> None:
    sock = session_socket(setup)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 17


def check_takeover(setup: Setup, client: socket.socket) -> None:
    newcomer = connect(setup.tcp)
    try:
        assert is_closed(client), "takeover: the old session was not replaced"
        time.sleep(0.1)
        exchange(newcomer, setup.master, b"new master", b"answer")
    finally:
        newcomer.close()


def check_max_frame_size(setup: Setup, client: socket.socket) -> None:
    assert frames_for(setup, client, [b"abcdefgh"], 0.0) == 2


def check_frame_delay(setup: Setup, client: socket.socket) -> None:
    assert frames_for(setup, client, [b"a", b"b", b"c"], 0.05) == 1


def check_delimiter(setup: Setup, client: socket.socket) -> None:
    assert frames_for(setup, client, [b"ab\ncd\n"], 0.0) == 2


def check_slot_timeout(setup: Setup, client: socket.socket) -> None:
    arbiter = setup.channel.arbiter
    assert isinstance(arbiter, SlottedArbiter) and arbiter.timeout == 0.1


def check_speed(speed: int) -> Check:
    def check(setup: Setup, client: socket.socket) -> None:
        assert tty_line(setup.path)[0] == speed

    return check


def check_cflag(flag: int) -> Check:
    def check(setup: Setup, client: socket.socket) -> None:
        assert tty_line(setup.path)[1] & flag

    return check


def check_xon_xoff(setup: Setup, client: socket.socket) -> None:
    iflag = tty_attrs(setup.path)[0]
    assert iflag & termios.IXON and iflag & termios.IXOFF


def check_rs485(setup: Setup, client: socket.socket) -> None:
    """A pty has no RS-485 mode: the port says so, and keeps relaying."""
    state = port_state(setup.m, "p")
    assert state.oper_status == "up"
    assert state.last_error is not None and "RS-485" in state.last_error


LIVE: dict[str, tuple[str, str, str, str, Check]] = {
    "inactivity-timeout": (
        "",
        "",
        "",
        "<inactivity-timeout>1</inactivity-timeout>",
        check_inactivity,
    ),
    "keepalive": ("", "", "", "<keepalive>17</keepalive>", check_keepalive),
    "takeover": ("", "", "", "<takeover>true</takeover>", check_takeover),
    "allowed-peer": (
        "",
        "",
        "",
        "<allowed-peer>127.0.0.0/8</allowed-peer><allowed-peer>192.0.2.0/24</allowed-peer>",
        lambda s, c: None,
    ),
    "packing/max-frame-size": (
        "",
        "",
        "",
        "<packing><max-frame-size>4</max-frame-size></packing>",
        check_max_frame_size,
    ),
    "packing/frame-delay": (
        "",
        "",
        "",
        "<packing><frame-delay>300</frame-delay></packing>",
        check_frame_delay,
    ),
    "packing/delimiter": (
        "",
        "",
        "",
        "<packing><delimiter>10</delimiter></packing>",
        check_delimiter,
    ),
    "baud-rate": (
        "<baud-rate>9600</baud-rate>",
        "",
        "<baud-rate>38400</baud-rate>",
        "",
        check_speed(termios.B38400),
    ),
    "stop-bits": ("", "", "<stop-bits>2</stop-bits>", "", check_cflag(termios.CSTOPB)),
    "flow-control": (
        "",
        "",
        "<flow-control>rts-cts</flow-control>",
        "",
        check_cflag(termios.CRTSCTS),
    ),
    "flow-control xon-xoff": (
        "",
        "",
        "<flow-control>xon-xoff</flow-control>",
        "",
        check_xon_xoff,
    ),
    "line-mode": ("", "", "<line-mode>rs485</line-mode>", "", check_rs485),
}


@pytest.mark.parametrize("leaf", sorted(LIVE))
def test_a_live_leaf_changes_under_traffic_without_a_byte_or_the_session_lost(
    relay: Running, leaf: str
) -> None:
    port0, extra0, port1, extra1, check = LIVE[leaf]
    with channel(relay, port0, extra0) as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        (session_id,) = chan.sessions
        link, listener = chan.res.link, chan.res.listener
        events = len(setup.runtime.events)
        duplex = Duplex(client, setup.master)
        time.sleep(STREAM_FOR)
        setup.commit(setup.body(port1, extra1))
        time.sleep(STREAM_FOR)
        duplex.finish()
        assert setup.channel is chan, "the channel was restarted"
        assert list(chan.sessions) == [session_id]
        assert (chan.res.link, chan.res.listener) == (link, listener), "reopened or rebound"
        kinds = [(kind, payload.get("event")) for kind, payload in setup.runtime.events[events:]]
        # the one port-event a live change may bring: RS-485 refused by a pty
        assert kinds in ([], [("port-event", "error")]), kinds
        assert chan.counters.sessions_ended_by_commit == 0
        check(setup, client)
        client.close()


def test_the_slot_timeout_and_the_response_mode_change_under_traffic(relay: Running) -> None:
    """secondary/timeout: the slotted arbiter takes the new T.  Then
    response-mode failover -> raw: the secondary, a backup whose data was
    ignored, becomes active and its data reaches the port; the primary's
    stream is untouched throughout."""
    ts = free_port()
    with channel(relay, extra=secondary_xml(ts, "slotted", 600)) as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        duplex = Duplex(client, setup.master)
        time.sleep(STREAM_FOR)
        setup.commit(setup.body(extra=secondary_xml(ts, "slotted", 100)))
        time.sleep(STREAM_FOR)
        duplex.finish()
        assert setup.channel is chan
        check_slot_timeout(setup, client)

        setup.commit(setup.body(extra=secondary_xml(ts, "failover")))
        secondary = connect(ts)
        wait_for(lambda: chan.session_of(Role.SECONDARY) is not None)
        assert chan.arbiter.status(Role.SECONDARY) is Status.BACKUP
        # under raw the secondary gets the serial stream too: read it away
        drain = threading.Thread(target=discard, args=(secondary,), daemon=True)
        drain.start()
        duplex = Duplex(client, setup.master)
        time.sleep(STREAM_FOR)
        setup.commit(setup.body(extra=secondary_xml(ts, "raw")))
        time.sleep(STREAM_FOR)
        duplex.finish()
        assert setup.channel is chan
        assert chan.arbiter.status(Role.SECONDARY) is Status.ACTIVE
        assert any(
            payload.get("event") == "role-change" and payload.get("role") == "secondary"
            for _, payload in setup.runtime.events
        )
        secondary.sendall(b"from the secondary")
        assert read_fd(setup.master, 18) == b"from the secondary"
        client.close()
        secondary.shutdown(socket.SHUT_RDWR)
        drain.join(5)
        secondary.close()


def test_a_session_no_longer_allowed_is_closed_and_counted_the_others_stay(
    relay: Running,
) -> None:
    with channel(relay) as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        setup.commit(setup.body(extra="<allowed-peer>192.0.2.0/24</allowed-peer>"))
        assert is_closed(client)
        assert setup.channel.counters.sessions_ended_by_commit == 1
        assert any(
            payload.get("event") == "disconnected"
            and payload.get("reason") == "allowed-peer changed"
            for _, payload in setup.runtime.events
        )
        client.close()


def test_enabling_a_channel_leaves_a_streaming_one_alone(relay: Running) -> None:
    with channel(relay) as setup, pty_device() as (master2, path2):
        tcp2 = free_port()
        other = f"<serial-port><name>p2</name><device>{path2}</device></serial-port>" + server_xml(
            "d", "p2", tcp2, "<enabled>{}</enabled>"
        )
        setup.commit(setup.body() + other.format("false"))
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        duplex = Duplex(client, setup.master)
        time.sleep(STREAM_FOR)
        setup.commit(setup.body() + other.format("true"))
        time.sleep(STREAM_FOR)
        duplex.finish()
        assert setup.channel is chan
        second = connect(tcp2)
        exchange(second, master2, b"d works", b"yes")
        assert setup.runtime.channels["d"].last_restart_reason == "enabled"
        second.close()
        client.close()


class TcsetattrSpy:
    """Records every tcsetattr of the process, and refuses those that set
    ``refuse`` as the output speed (a driver that cannot do that baud rate)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refuse: int | None = None) -> None:
        self.calls: list[list[Any]] = []
        real = termios.tcsetattr

        def spy(fd: int, when: int, attrs: list[Any]) -> None:
            self.calls.append(list(attrs))
            if refuse is not None and attrs[5] == refuse:
                raise termios.error(22, "Invalid argument")
            real(fd, when, attrs)

        monkeypatch.setattr(termios, "tcsetattr", spy)


@pytest.mark.parametrize("leaf", ["data-bits", "parity"])
def test_data_bits_and_parity_on_a_pty_are_asked_and_the_stream_goes_on(
    relay: Running, monkeypatch: pytest.MonkeyPatch, leaf: str
) -> None:
    """A pty runs 8N whatever it is told, and refuses (EINVAL) a tcsetattr
    that changes only data bits or parity: such a commit succeeds, the
    request reaches the driver (the spy sees it; a real tty would take
    it), the port stays 8N and the stream goes on.  Changed with the baud
    rate, the baud rate is applied."""
    change = {"data-bits": "<data-bits>7</data-bits>", "parity": "<parity>even</parity>"}[leaf]
    asked = termios.CS7 if leaf == "data-bits" else termios.PARENB
    mask = termios.CSIZE if leaf == "data-bits" else termios.PARENB
    with channel(relay) as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        spy = TcsetattrSpy(monkeypatch)
        duplex = Duplex(client, setup.master)
        time.sleep(STREAM_FOR)
        setup.commit(setup.body(change))
        time.sleep(STREAM_FOR)
        duplex.finish()
        assert setup.channel is chan
        assert [call[2] & mask for call in spy.calls] == [asked]
        assert chan.port_cfg.data_bits == (7 if leaf == "data-bits" else 8)
        spy.calls.clear()
        setup.commit(setup.body(change + "<baud-rate>19200</baud-rate>"))
        assert termios.B19200 in [call[5] for call in spy.calls]
        speed, cflag = tty_line(setup.path)
        assert speed == termios.B19200
        assert cflag & termios.CSIZE == termios.CS8 and not cflag & termios.PARENB  # 8N
        exchange(client, setup.master, b"still", b"here")
        client.close()


def test_a_baud_rate_the_driver_refuses_fails_the_commit_and_changes_nothing(
    relay: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal is met in prepare: the commit fails, naming the channel's
    serial port; the port keeps its settings of before (termios), the
    channel and its session keep running, and no other change of the same
    commit is applied."""
    with channel(relay, "<baud-rate>9600</baud-rate>") as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        before = tty_line(setup.path)
        spy = TcsetattrSpy(monkeypatch, refuse=termios.B57600)
        duplex = Duplex(client, setup.master)
        time.sleep(STREAM_FOR)
        with pytest.raises(RPCError) as failed:
            setup.commit(
                setup.body(
                    "<baud-rate>57600</baud-rate><stop-bits>2</stop-bits>",
                    "<keepalive>17</keepalive>",
                )
            )
        time.sleep(STREAM_FOR)
        duplex.finish()
        assert "cannot apply the line settings" in str(failed.value)
        assert spy.calls, "the driver was asked"
        assert tty_line(setup.path) == before
        assert setup.channel is chan and chan.cfg.keepalive != 17
        assert chan.port_cfg.baud_rate == 9600
        assert "<baud-rate>9600</baud-rate>" in setup.m.get_config("running").data_xml
        client.close()


def test_line_settings_applied_in_prepare_are_undone_when_another_channel_fails(
    relay: Running,
) -> None:
    """Channel c's new baud rate is taken by its driver in prepare; channel
    b of the same commit cannot bind its port: the commit fails and c's
    port is given its old baud rate back."""
    with channel(relay, "<baud-rate>9600</baud-rate>") as setup, pty_device() as (_, path2):
        client = connect(setup.tcp)
        before = tty_line(setup.path)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            other = f"<serial-port><name>p2</name><device>{path2}</device></serial-port>" + (
                server_xml("b", "p2", busy)
            )
            with pytest.raises(RPCError):
                setup.commit(setup.body("<baud-rate>38400</baud-rate>") + other)
        assert tty_line(setup.path) == before
        assert setup.channel.port_cfg.baud_rate == 9600
        exchange(client, setup.master, b"still", b"here")
        client.close()


# -- the restart leaves --------------------------------------------------------------
@pytest.mark.parametrize(
    "leaf",
    ["listen/port", "listen/address", "serial-port/device", "serial-port", "secondary/port"],
)
def test_a_restart_leaf_ends_the_sessions_counted_with_the_reason(
    relay: Running, leaf: str
) -> None:
    with channel(relay) as setup, pty_device() as (_, path2):
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        (session_id,) = chan.sessions
        second_port = f"<serial-port><name>p2</name><device>{path2}</device></serial-port>"
        tcp, device, ref, extra, address = setup.tcp, setup.path, "p", "", "127.0.0.1"
        if leaf == "listen/port":
            tcp = free_port()
        elif leaf == "listen/address":
            address = "127.0.0.2"  # loopback too; bound beside the old one
        elif leaf == "serial-port/device":
            device = path2
        elif leaf == "serial-port":
            ref = "p2"
        else:
            extra = secondary_xml(free_port(), "raw")
        setup.commit(
            f"<serial-port><name>p</name><device>{device}</device></serial-port>"
            + second_port
            + channel_xml("c", ref, "server", listen_xml(tcp, address) + extra)
        )
        assert is_closed(client), "the session outlived the restart"
        reason = f"configuration changed: {leaf}"
        disconnected = [
            payload
            for kind, payload in setup.runtime.events
            if kind == "session-event" and payload.get("event") == "disconnected"
        ]
        assert [(p["session-id"], p["reason"]) for p in disconnected] == [(str(session_id), reason)]
        restarted = setup.channel
        assert restarted is not chan
        assert restarted.counters.sessions_ended_by_commit == 1
        state = setup.m.get(filter=("subtree", f'<serial-over-ip xmlns="{SOIP}"/>')).data_xml
        assert f"<last-restart-reason>{reason}</last-restart-reason>" in state
        whole = setup.m.get().data_xml  # the unfiltered <get> is joined from kept bytes
        assert f"<last-restart-reason>{reason}</last-restart-reason>" in whole
        assert "<sessions-ended-by-commit>1</sessions-ended-by-commit>" in state
        assert f"<last-restart>{restarted.last_restart}</last-restart>" in state
        client.close()


def test_a_peer_s_next_datagram_goes_to_the_new_destinations(relay: Running) -> None:
    """Peer mode, destination A -> B while numbered records stream both
    ways (the pty's as datagrams, datagrams to the pty): every serial
    record arrives once, in order, at A until the commit and at B after
    it; every datagram reaches the pty; the channel is not restarted."""
    with pty_device() as (master, path), relay.connect() as m:
        receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        got: list[bytearray] = [bytearray(), bytearray()]
        reading = True

        def receive(sock: socket.socket, into: bytearray) -> None:
            sock.settimeout(0.05)
            while reading:
                with contextlib.suppress(TimeoutError):
                    into += sock.recv(65536)

        for sock in receivers:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind(("127.0.0.1", 0))
        threads = [
            threading.Thread(target=receive, args=(sock, into), daemon=True)
            for sock, into in zip(receivers, got, strict=True)
        ]
        for thread in threads:
            thread.start()
        udp = free_port(socket.SOCK_DGRAM)

        def body(receiver: socket.socket) -> str:
            return f"<serial-port><name>p</name><device>{path}</device></serial-port>" + (
                channel_xml(
                    "c",
                    "p",
                    "peer",
                    listen_xml(udp) + destination_xml(receiver.getsockname()[1]),
                )
            )

        m.edit_config(target="running", config=config(body(receivers[0])))
        runtime = relay.daemon.runtime
        assert isinstance(runtime, RelayRuntime)
        chan = runtime.channels["c"]
        sent = bytearray()
        to_serial, at_serial = bytearray(), bytearray()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        i = 0

        def stream(seconds: float) -> None:
            nonlocal i
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                chunk = b"".join(b"S%07d\n" % (i + k) for k in range(16))
                write_fd(master, chunk)
                sent.extend(chunk)
                datagram = b"U%07d\n" % i
                sender.sendto(datagram, ("127.0.0.1", udp))
                to_serial.extend(datagram)
                i += 16
                time.sleep(0.002)

        def read_serial() -> None:
            while reading:
                at_serial.extend(read_fd(master, 65536, timeout=0.05))

        threads.append(threading.Thread(target=read_serial, daemon=True))
        threads[-1].start()

        time.sleep(0.1)
        stream(STREAM_FOR)
        writer = threading.Thread(target=stream, args=(2 * STREAM_FOR,), daemon=True)
        writer.start()
        time.sleep(STREAM_FOR / 2)
        m.edit_config(
            target="running", config=config(body(receivers[1])), default_operation="replace"
        )
        writer.join(10)
        wait_for(lambda: len(got[0]) + len(got[1]) >= len(sent), timeout=10)
        wait_for(lambda: len(at_serial) >= len(to_serial), timeout=10)
        reading = False
        for thread in threads:
            thread.join(5)
        assert runtime.channels["c"] is chan
        assert got[0] and got[1], "the change came between records, not before or after"
        assert bytes(got[0] + got[1]) == bytes(sent)
        assert bytes(at_serial) == bytes(to_serial)
        for sock in [*receivers, sender]:
            sock.close()


def test_a_mode_change_restarts_the_channel_as_the_new_kind(relay: Running) -> None:
    """server -> client: the server's session ends (counted, with the
    changed leaves as the reason) and the channel connects out."""
    with channel(relay) as setup, socket.socket() as master_station:
        master_station.bind(("127.0.0.1", 0))
        master_station.listen()
        master_station.settimeout(5)
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        setup.commit(
            f"<serial-port><name>p</name><device>{setup.path}</device></serial-port>"
            + channel_xml("c", "p", "client", destination_xml(master_station.getsockname()[1]))
        )
        assert is_closed(client)
        outgoing, _ = master_station.accept()
        with outgoing:
            exchange(outgoing, setup.master, b"as a client", b"yes")
        restarted = setup.channel
        assert restarted is not chan and restarted.counters.sessions_ended_by_commit == 1
        reason = restarted.last_restart_reason
        assert reason is not None and reason.startswith("configuration changed: mode, ")
        assert any(
            payload.get("event") == "disconnected" and payload.get("reason") == reason
            for _, payload in setup.runtime.events
        )
        client.close()


def test_disabling_a_channel_ends_its_sessions_with_the_reason(relay: Running) -> None:
    with channel(relay) as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        setup.commit(setup.body(extra="<enabled>false</enabled>"))
        assert is_closed(client)
        assert "c" not in setup.runtime.channels
        assert any(
            payload.get("event") == "disconnected" and payload.get("reason") == "channel disabled"
            for _, payload in setup.runtime.events
        )
        setup.commit(setup.body())
        assert setup.channel.last_restart_reason == "enabled"
        fresh = connect(setup.tcp)
        exchange(fresh, setup.master, b"back", b"again")
        fresh.close()
        client.close()


def test_an_abort_after_prepare_gives_the_port_its_line_settings_back() -> None:
    """The runtime itself: prepare applies a new baud rate to the open
    port (the driver takes it); abort, as after a failure of a later step
    of the commit, gives the old one back, and the channel is untouched."""
    with pty_device() as (_, path):
        tcp = free_port()
        before = dataclasses.replace(serial_port("p", path), baud_rate=9600)
        after = dataclasses.replace(before, baud_rate=38400)

        async def scenario() -> None:
            runtime = RelayRuntime()
            async with anyio.create_task_group() as tg:
                await tg.start(runtime.run)
                try:
                    txn = await runtime.prepare(
                        Delta({"p": before}, {"c": server_channel("c", "p", tcp)}),
                        DocumentPatch.of_bytes(b""),
                    )
                    await txn.apply()
                    chan = runtime.channels["c"]
                    assert tty_line(path)[0] == termios.B9600
                    txn = await runtime.prepare(
                        Delta({"p": after}, {}), DocumentPatch.of_bytes(b"")
                    )
                    assert tty_line(path)[0] == termios.B38400, "applied in prepare"
                    await txn.abort()
                    assert tty_line(path)[0] == termios.B9600, "given back"
                    assert runtime.channels["c"] is chan and chan.port_cfg == before
                    assert runtime.config.serial_ports["p"] == before
                finally:
                    await runtime.shutdown()

        anyio.run(scenario)


def test_a_restart_keeps_the_open_port_and_gives_it_the_new_line_settings(
    relay: Running,
) -> None:
    """listen/port and baud-rate in one commit: the channel restarts (its
    session ends) with the very port object handed over, not reopened, at
    the new baud rate."""
    with channel(relay, "<baud-rate>9600</baud-rate>") as setup:
        client = connect(setup.tcp)
        exchange(client, setup.master, b"hello", b"hi")
        chan = setup.channel
        link = chan.res.link
        setup.tcp = free_port()
        setup.commit(setup.body("<baud-rate>38400</baud-rate>"))
        assert is_closed(client)
        assert setup.channel is not chan and setup.channel.res.link is link
        assert tty_line(setup.path)[0] == termios.B38400
        assert setup.channel.last_restart_reason == "configuration changed: listen/port"
        fresh = connect(setup.tcp)
        exchange(fresh, setup.master, b"new port", b"same tty")
        fresh.close()
        client.close()


def test_a_multicast_group_change_restarts_the_peer_with_its_reason(relay: Running) -> None:
    """A peer has no sessions to end; its restart is told in its state."""
    reason = multicast_on_loopback()
    if reason:
        pytest.skip(reason)
    with pty_device() as (_, path), relay.connect() as m:
        udp = free_port(socket.SOCK_DGRAM)

        def body(group: str) -> str:
            return f"<serial-port><name>p</name><device>{path}</device></serial-port>" + (
                channel_xml(
                    "c",
                    "p",
                    "peer",
                    listen_xml(udp, "0.0.0.0")
                    + destination_xml(9)
                    + f"<multicast-group>{group}</multicast-group>",
                )
            )

        m.edit_config(target="running", config=config(body(GROUP)))
        runtime = relay.daemon.runtime
        assert isinstance(runtime, RelayRuntime)
        chan = runtime.channels["c"]
        assert chan.last_restart_reason == "created"
        other = GROUP.rsplit(".", 1)[0] + f".{int(GROUP.rsplit('.', 1)[1]) % 250 + 2}"
        m.edit_config(target="running", config=config(body(other)), default_operation="replace")
        assert runtime.channels["c"] is not chan
        state = m.get(filter=("subtree", f'<serial-over-ip xmlns="{SOIP}"/>')).data_xml
        expected = "configuration changed: multicast-group"
        assert f"<last-restart-reason>{expected}</last-restart-reason>" in state
