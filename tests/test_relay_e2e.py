"""The relay runtime end to end: real pseudo-terminals as serial devices, real
TCP/UDP sockets on loopback, configured through NETCONF over SSH."""

from __future__ import annotations

import os
import socket
import termios
import time
from pathlib import Path

import pytest
from conftest import DaemonFactory, Running
from ncclient.operations import RPCError
from relayhelpers import (
    NC,
    SOIP,
    config,
    connect,
    exchange,
    free_port,
    port_state,
    port_xml,
    pty_device,
    read_fd,
    read_sock,
    server_xml,
)

from nf.config.codec import load_document
from nf.runtime.relay import RelayRuntime
from nf.schema import default_schema


@pytest.fixture
def relay(make_daemon: DaemonFactory) -> Running:
    empty, _ = load_document(f'<serial-over-ip xmlns="{SOIP}"/>', default_schema())
    return make_daemon(relay=True, initial=empty)


def test_server_mode_relays_both_ways_with_counters(relay: Running) -> None:
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("p", path) + server_xml("c", "p", tcp))
        )
        client = connect(tcp)
        time.sleep(0.2)
        exchange(client, master, b"hello serial", b"hello network")
        state = m.get(filter=("subtree", f'<serial-over-ip xmlns="{SOIP}"/>')).data_xml
        assert "<oper-status>up</oper-status>" in state
        assert "<net-to-serial-bytes>12</net-to-serial-bytes>" in state
        assert "<serial-to-net-bytes>13</serial-to-net-bytes>" in state
        assert "<sessions-accepted>1</sessions-accepted>" in state
        assert "<role>primary</role>" in state
        # a second connection while the primary is connected is refused and counted
        second = connect(tcp)
        assert read_sock(second, 1, timeout=2) == b""
        second.close()
        deadline = time.monotonic() + 3
        while "<sessions-refused>1</sessions-refused>" not in m.get().data_xml:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.close()


def test_loop_device_echoes(relay: Running) -> None:
    with relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("l", "loop://") + server_xml("c", "l", tcp))
        )
        client = connect(tcp)
        client.sendall(b"ping")
        assert read_sock(client, 4) == b"ping"
        client.close()


def test_failed_prepare_leaves_nothing_behind(relay: Running) -> None:
    """A commit of 3 new channels whose third port cannot be bound opens no
    listener and leaves running unchanged."""
    with relay.connect() as m:
        ports = [free_port() for _ in range(3)]
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", ports[2]))
        blocker.listen()
        body = "".join(port_xml(f"l{i}", "loop://") for i in range(3))
        body += "".join(server_xml(f"c{i}", f"l{i}", ports[i]) for i in range(3))
        before = m.get_config("running").data_xml
        with pytest.raises(RPCError) as info:
            m.edit_config(target="running", config=config(body))
        assert info.value.tag == "in-use"
        assert info.value.path and "c2" in info.value.path
        assert m.get_config("running").data_xml == before
        for port in ports[:2]:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
        blocker.close()


def test_unchanged_channel_is_never_touched(relay: Running) -> None:
    """Channel B streams while commits add, change and delete channel A: B keeps
    its TCP connection and loses no byte."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp_b, tcp_a = free_port(), free_port()
        m.edit_config(
            target="running", config=config(port_xml("pb", path) + server_xml("b", "pb", tcp_b))
        )
        client = connect(tcp_b)
        time.sleep(0.2)
        sent = bytearray()
        for step in range(3):
            chunk = bytes([65 + step]) * 1000
            client.sendall(chunk)
            sent += chunk
            if step == 0:
                m.edit_config(
                    target="running",
                    config=config(port_xml("pa", "loop://") + server_xml("a", "pa", tcp_a)),
                )
            elif step == 1:
                m.edit_config(
                    target="running",
                    config=config("<channel><name>a</name><keepalive>10</keepalive></channel>"),
                )
            else:
                m.edit_config(
                    target="running",
                    config=config(
                        f'<channel xmlns:nc="{NC}" nc:operation="delete"><name>a</name></channel>'
                    ),
                )
        assert read_fd(master, len(sent)) == bytes(sent)
        os.write(master, b"still here")
        assert read_sock(client, 10) == b"still here"
        client.close()


def test_missing_device_at_boot_is_retried_not_fatal(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """A startup config naming an absent device (an unplugged adapter) boots;
    the channel reopens the port when it appears.  A commit naming an absent
    device is still refused."""
    link = tmp_path / "ttyLATE"
    tcp = free_port()
    tree, errors = load_document(
        f'<serial-over-ip xmlns="{SOIP}">{port_xml("late", str(link))}'
        f"{server_xml('c', 'late', tcp)}</serial-over-ip>",
        default_schema(),
    )
    assert errors == []
    d = make_daemon(relay=True, initial=tree)
    with d.connect() as m:
        assert "<oper-status>error</oper-status>" in m.get().data_xml
        with pytest.raises(RPCError) as info:
            m.edit_config(
                target="running",
                config=config(
                    port_xml("gone", str(tmp_path / "nope")) + server_xml("x", "gone", free_port())
                ),
            )
        assert info.value.tag == "resource-denied"
        with pty_device() as (master, path):
            link.symlink_to(path)  # the adapter is plugged in
            client = connect(tcp)
            deadline = time.monotonic() + 6  # backoff 1 s, 2 s, ...
            while True:
                client.sendall(b"x")
                if read_fd(master, 1, timeout=0.5) == b"x":
                    break
                assert time.monotonic() < deadline, "the port was never reopened"
            client.close()


def test_description_change_keeps_the_channel_running(relay: Running) -> None:
    """A commit that changes only the descriptions of a channel and of its
    serial port restarts nothing: the session stays connected (same id, no
    disconnect), the port stays open, and bytes keep flowing both ways."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        m.edit_config(
            target="running", config=config(port_xml("p", path) + server_xml("c", "p", tcp))
        )
        client = connect(tcp)
        client.sendall(b"before")
        assert read_fd(master, 6) == b"before"
        runtime = relay.daemon.runtime
        assert isinstance(runtime, RelayRuntime)
        channel = runtime.channels["c"]
        (session_id,) = channel.sessions
        events = len(runtime.events)
        m.edit_config(
            target="running",
            config=config(
                "<serial-port><name>p</name><description>bench A</description></serial-port>"
                "<channel><name>c</name><description>line 4</description></channel>"
            ),
        )
        assert "<description>line 4</description>" in m.get_config("running").data_xml
        assert runtime.channels["c"] is channel, "the channel was not restarted"
        assert list(channel.sessions) == [session_id]
        assert runtime.events[events:] == [], "no session or port event at all"
        exchange(client, master, b"after", b"back")
        state = m.get(filter=("subtree", f'<serial-over-ip xmlns="{SOIP}"/>')).data_xml
        assert "<sessions-accepted>1</sessions-accepted>" in state
        assert "<net-to-serial-bytes>11</net-to-serial-bytes>" in state
        client.close()


def test_rs485_unsupported_by_the_driver_is_a_port_error_in_state(relay: Running) -> None:
    """line-mode rs485 on a port whose driver has no RS-485 mode (a pty has
    none): the port still opens and relays, and its state says why RS-485
    direction control is missing."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        rs485 = (
            f"<serial-port><name>p</name><device>{path}</device>"
            "<line-mode>rs485</line-mode></serial-port>"
        )
        m.edit_config(target="running", config=config(rs485 + server_xml("c", "p", tcp)))
        client = connect(tcp)
        time.sleep(0.2)
        exchange(client, master, b"half duplex", b"still relayed")
        state = port_state(m, "p")
        assert state.oper_status == "up"
        assert state.last_error is not None and "RS-485" in state.last_error
        client.close()


def _line(path: str) -> dict[str, object]:
    """The line settings of the tty at ``path`` that a pty keeps, as its
    termios says.  A pty forces 8 data bits and no parity whatever it is
    told (drivers/tty/pty.c, pty_set_termios), so those two are checked on
    what the port asks the kernel for, in test_serial_link.py."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        iflag, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    return {
        "speed": (ispeed, ospeed),
        "stop-bits": 2 if cflag & termios.CSTOPB else 1,
        "rts-cts": bool(cflag & termios.CRTSCTS),
        "xon-xoff": bool(iflag & termios.IXON and iflag & termios.IXOFF),
    }


def test_line_settings_reach_the_tty_and_follow_a_change(relay: Running) -> None:
    """Baud rate, stop bits and flow control of the model are what the
    tty's termios says, and a commit that changes them changes the tty."""

    def port(settings: str) -> str:
        return (
            f"<serial-port><name>p</name><device>{path}</device>{settings}</serial-port>"
            + server_xml("c", "p", tcp)
        )

    first = (
        "<baud-rate>9600</baud-rate><data-bits>7</data-bits><parity>even</parity>"
        "<stop-bits>2</stop-bits><flow-control>rts-cts</flow-control>",
        {"speed": (termios.B9600,) * 2, "stop-bits": 2, "rts-cts": True, "xon-xoff": False},
    )
    changed = (
        "<baud-rate>115200</baud-rate><data-bits>8</data-bits><parity>odd</parity>"
        "<stop-bits>1</stop-bits><flow-control>xon-xoff</flow-control>",
        {"speed": (termios.B115200,) * 2, "stop-bits": 1, "rts-cts": False, "xon-xoff": True},
    )
    with pty_device() as (_, path), relay.connect() as m:
        tcp = free_port()
        for settings, expected in (first, changed):
            m.edit_config(target="running", config=config(port(settings)))
            assert port_state(m, "p").oper_status == "up"
            assert _line(path) == expected
