"""RFC 2217 channels end to end: a daemon with the real relay, real ptys,
real sockets, and pyserial's own ``rfc2217://`` client.

1. pyserial opens the port and sets 9600 8E1 with RTS/CTS: the tty's
   termios shows it (data bits and parity on the tcsetattr call, which a
   pty does not keep); every byte value 0-255, runs of 0xFF included, goes
   both ways unchanged; on close the configured settings come back, and
   <get> shows the effective settings and the session that set them
   meanwhile.
2. Modem lines: unknown on a pty; where the driver reports them (an
   ioctl spy stands in for a UART's TIOCMGET), <get> shows them and a
   change is a NOTIFY-MODEMSTATE to the client and a port-event.
3. allow-line-control false: requests are answered with the current values
   and the tty does not change (pyserial refuses to open with others).
4. With a secondary port: who may change the settings in Failover, Raw
   and Slotted modes.
"""

from __future__ import annotations

import os
import socket
import struct
import termios
import time
from collections.abc import Iterator

import pytest
import serial
from conftest import Running
from lxml import etree
from ncclient.xml_ import to_ele
from relayhelpers import (
    SOIP,
    config,
    connect,
    free_port,
    port_xml,
    pty_device,
    read_fd,
    secondary_xml,
    server_xml,
    spy_tcsetattr,
    time_budget,
    wait_for,
    wait_state,
)

from nf.protocol.telnet import IAC, SB, SE, Subnegotiation, TelnetParser, escape

BUDGET = 30
COM = 44


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Fail (not hang) a test that exceeds its budget."""
    with time_budget(BUDGET):
        yield


def vcom_channel(m: object, path: str, tcp: int, extra: str = "") -> None:
    """Serial port p on the pty at ``path``, relayed by server channel c
    with rfc2217 on TCP port ``tcp`` (and ``extra`` channel leaves)."""
    body = port_xml("p", path) + server_xml("c", "p", tcp, extra + "<rfc2217>true</rfc2217>")
    m.edit_config(target="running", config=config(body))  # type: ignore[attr-defined]


def termios_of(path: str) -> tuple[int, int, bool]:
    """(ispeed, ospeed, CRTSCTS) of the tty at ``path``."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        _, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    return ispeed, ospeed, bool(cflag & termios.CRTSCTS)


def effective(m: object) -> dict[str, str]:
    """serial-port p's state/effective leaves from <get>."""
    data = etree.fromstring(m.get().data_xml.encode())  # type: ignore[attr-defined]
    node = data.find(f".//{{{SOIP}}}serial-port/{{{SOIP}}}state/{{{SOIP}}}effective")
    assert node is not None
    return {etree.QName(e).localname: e.text or "" for e in node}


def system_origins(m: object) -> dict[str, tuple[str, str]]:
    """Serial port p's line leaves in operational (NMDA <get-data> with
    origins) whose origin is not intended: (value, origin)."""
    nmda = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
    request = (
        f'<get-data xmlns="{nmda}" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">'
        "<datastore>ds:operational</datastore><with-origin/></get-data>"
    )
    reply = m.dispatch(to_ele(request))  # type: ignore[attr-defined]
    raw = reply.xml.encode() if isinstance(reply.xml, str) else reply.xml
    port = etree.fromstring(raw).find(f".//{{{SOIP}}}serial-port")
    assert port is not None
    origin = "{urn:ietf:params:xml:ns:yang:ietf-origin}origin"
    return {
        etree.QName(leaf).localname: (leaf.text or "", leaf.get(origin) or "")
        for leaf in port
        if leaf.get(origin) not in (None, "or:intended", "or:default")
    }


def read_all(fd: int, n: int, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        data += read_fd(fd, n - len(data), max(0.0, deadline - time.monotonic()))
    return data


def pattern() -> bytes:
    """Every byte value, and runs of 0xFF of every length up to 5."""
    runs = b"".join(b"a" + b"\xff" * k for k in range(1, 6))
    return bytes(range(256)) * 4 + runs + b"\xff\xff\xff"


def test_pyserial_sets_the_line_and_relays_every_byte(
    relay: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_tcsetattr(monkeypatch)
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        vcom_channel(m, path, tcp)
        assert termios_of(path) == (termios.B115200, termios.B115200, False)
        assert "set-by-session" not in effective(m)
        calls.clear()
        port = serial.serial_for_url(
            f"rfc2217://127.0.0.1:{tcp}?timeout=5",
            baudrate=9600,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_EVEN,
            stopbits=serial.STOPBITS_ONE,
            rtscts=True,
            timeout=5,
        )
        try:
            assert termios_of(path) == (termios.B9600, termios.B9600, True)
            # the modem state came with the option: a pty shows no lines
            assert (port.cts, port.dsr, port.ri, port.cd) == (False, False, False, False)
            cflag = calls[-1][2]
            assert isinstance(cflag, int)
            assert cflag & termios.CSIZE == termios.CS8
            assert cflag & (termios.PARENB | termios.PARODD) == termios.PARENB
            assert not cflag & termios.CSTOPB
            state = wait_state(m, "c", lambda s: len(s.sessions) == 1)
            session_id = state.sessions[0]["id"]
            shown = effective(m)
            assert shown == {
                "baud-rate": "9600",
                "data-bits": "8",
                "parity": "even",
                "stop-bits": "1",
                "flow-control": "rts-cts",
                "set-by-session": session_id,
            }
            assert system_origins(m) == {
                "baud-rate": ("9600", "or:system"),
                "parity": ("even", "or:system"),
                "flow-control": ("rts-cts", "or:system"),
            }
            data = pattern()
            port.write(data)
            assert read_all(master, len(data)) == data
            os.write(master, data)
            got = b""
            deadline = time.monotonic() + 10
            while len(got) < len(data) and time.monotonic() < deadline:
                got += port.read(len(data) - len(got))
            assert got == data
        finally:
            port.close()
        wait_for(lambda: termios_of(path)[0] == termios.B115200 or None, 5)
        assert termios_of(path) == (termios.B115200, termios.B115200, False)
        shown = effective(m)
        assert "set-by-session" not in shown and shown["baud-rate"] == "115200"
        assert system_origins(m) == {}  # operational is running's again


class Client:
    """A bare RFC 2217 client on a socket: says WILL COM-PORT-OPTION and
    sends commands; the replies it reads through nf's own parser."""

    def __init__(self, tcp: int | socket.socket) -> None:
        self.sock = connect(tcp) if isinstance(tcp, int) else tcp
        self.parser = TelnetParser()
        self.replies: list[Subnegotiation] = []
        self.data = b""
        self.sock.sendall(bytes((IAC, 251, COM)))
        self.initial_modem = self.wait_for(107)
        """The NOTIFY-MODEMSTATE that follows the agreement to COM-PORT-OPTION."""

    def command(self, code: int, value: bytes = b"") -> bytes:
        """Send a COM-PORT-OPTION command; the value of its reply."""
        self.sock.sendall(bytes((IAC, SB, COM, code)) + escape(value) + bytes((IAC, SE)))
        return self.wait_for(code + 100)

    def wait_for(self, code: int) -> bytes:
        """The value of the next server command ``code`` (a reply or a
        notification)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for r in self.replies:
                if r.payload[0] == code:
                    self.replies.remove(r)
                    return r.payload[1:]
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                break
            for item in self.parser.feed(chunk):
                if isinstance(item, bytes):
                    self.data += item
                elif isinstance(item, Subnegotiation):
                    self.replies.append(item)
        raise AssertionError(f"no COM-PORT-OPTION {code} from the server")

    def baud(self, baud: int) -> int:
        value: int = struct.unpack("!I", self.command(1, struct.pack("!I", baud)))[0]
        return value

    def close(self) -> None:
        self.sock.close()


def test_line_control_off_answers_current_values(relay: Running) -> None:
    with pty_device() as (_, path), relay.connect() as m:
        tcp = free_port()
        vcom_channel(m, path, tcp, "<allow-line-control>false</allow-line-control>")
        client = Client(tcp)
        assert client.baud(9600) == 115200
        assert client.command(2, b"\x07") == b"\x08"
        assert client.command(3, b"\x03") == b"\x01"
        assert client.command(5, b"\x03") == b"\x01"  # hardware flow: stays none
        assert termios_of(path) == (termios.B115200, termios.B115200, False)
        assert "set-by-session" not in effective(m)
        client.close()
        # pyserial sees the value it asked for refused
        with pytest.raises(ValueError, match="remote rejected value for option 'baudrate'"):
            serial.serial_for_url(f"rfc2217://127.0.0.1:{tcp}?timeout=2", baudrate=9600)
        # the settings it has are fine
        port = serial.serial_for_url(f"rfc2217://127.0.0.1:{tcp}?timeout=5", baudrate=115200)
        port.close()


@pytest.mark.parametrize("mode", ["failover", "raw", "slotted"])
def test_who_may_change_settings_with_a_secondary_port(relay: Running, mode: str) -> None:
    """Failover: only the active session (the primary while it is there;
    the backup is answered with the current values).  Raw: both.  Slotted:
    whoever owns the slot, or either while none is open; a session waiting
    for the slot is answered with the current values."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp, second = free_port(), free_port()
        extra = secondary_xml(second, mode, 5000 if mode == "slotted" else None)
        vcom_channel(m, path, tcp, extra)
        primary = Client(tcp)
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        secondary = Client(second)
        wait_state(m, "c", lambda s: len(s.sessions) == 2)
        if mode == "failover":
            assert secondary.baud(9600) == 115200  # backup
            assert primary.baud(19200) == 19200
            assert secondary.baud(9600) == 19200
        elif mode == "raw":
            assert secondary.baud(9600) == 9600
            assert primary.baud(19200) == 19200
        else:
            primary.sock.sendall(b"request")  # opens the primary's slot (5 s)
            assert read_all(master, 7) == b"request"
            assert secondary.baud(9600) == 115200  # waiting for the slot
            assert primary.baud(19200) == 19200
        assert termios_of(path)[0] == termios.B19200
        # the last to change owns the settings; they revert when it ends
        primary.close()
        wait_for(lambda: termios_of(path)[0] == termios.B115200 or None, 5)
        secondary.close()


def test_telnet_negotiation_and_escaping_on_a_raw_socket(relay: Running) -> None:
    """The opening offers, and 0xFF doubled towards the client with packing
    (a frame boundary never splits an escape)."""
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        packing = "<packing><max-frame-size>3</max-frame-size></packing>"
        vcom_channel(m, path, tcp, packing)
        sock = connect(tcp)
        start = bytes((IAC, 251, 0, IAC, 253, 0, IAC, 251, 3, IAC, 253, 3))
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(start) and time.monotonic() < deadline:
            got += sock.recv(100)
        assert got == start
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        os.write(master, b"\xff\xff\xffa\xff\xff")  # two frames of three
        want = b"\xff" * 6 + b"a" + b"\xff" * 4
        got = b""
        while len(got) < len(want) and time.monotonic() < deadline:
            got += sock.recv(100)
        assert got == want
        sock.sendall(b"x\xff\xffy")
        assert read_all(master, 3) == b"x\xffy"
        sock.close()


def modem_lines(m: object) -> dict[str, str]:
    data = etree.fromstring(m.get().data_xml.encode())  # type: ignore[attr-defined]
    node = data.find(f".//{{{SOIP}}}serial-port/{{{SOIP}}}state/{{{SOIP}}}modem-lines")
    assert node is not None
    return {etree.QName(e).localname: e.text or "" for e in node}


def test_modem_lines_are_unknown_on_a_pty(relay: Running) -> None:
    with pty_device() as (_, path), relay.connect() as m:
        tcp = free_port()
        vcom_channel(m, path, tcp)
        lines = ("dtr", "rts", "cts", "dsr", "dcd", "ri")
        assert modem_lines(m) == dict.fromkeys(lines, "unknown")
        client = Client(tcp)
        assert client.command(7) == b"\x00"  # NOTIFY-MODEMSTATE: nothing known
        client.close()


def test_modem_line_changes_reach_the_client_and_the_operator(
    relay: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pty has no modem lines, so TIOCMGET is answered by a spy standing
    in for a UART's driver."""
    import nf.runtime.serial as serial_module

    bits = {"now": termios.TIOCM_DTR | termios.TIOCM_RTS | termios.TIOCM_CTS | termios.TIOCM_DSR}
    monkeypatch.setattr(serial_module, "tiocmget", lambda fd: bits["now"])
    with pty_device() as (_, path), relay.connect() as m:
        m.create_subscription(filter=[f'<port-event xmlns="{SOIP}"/>'])
        tcp = free_port()
        vcom_channel(m, path, tcp)
        assert modem_lines(m) == {
            "dtr": "on",
            "rts": "on",
            "cts": "on",
            "dsr": "on",
            "dcd": "off",
            "ri": "off",
        }
        client = Client(tcp)
        assert client.command(7) == b"\x30"  # CTS and DSR, no deltas
        wait_state(m, "c", lambda s: len(s.sessions) == 1)
        # CTS drops, DCD rises
        bits["now"] = termios.TIOCM_DTR | termios.TIOCM_RTS | termios.TIOCM_DSR | termios.TIOCM_CAR
        assert client.wait_for(107) == bytes((0x20 | 0x80 | 0x01 | 0x08,))
        assert modem_lines(m)["dcd"] == "on" and modem_lines(m)["cts"] == "off"
        event = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            n = m.take_notification(block=True, timeout=1)
            if n is None:
                continue
            root = etree.fromstring(n.notification_xml.encode())
            if root[1].findtext(f"{{{SOIP}}}event") == "modem-change":
                event = root[1]
                break
        assert event is not None, "no port-event modem-change"
        assert event.findtext(f"{{{SOIP}}}modem-lines") == "dtr rts dsr dcd"
        assert event.findtext(f"{{{SOIP}}}changed") == "cts dcd"
        # a client's mask filters: only RI now, so a DSR change is not sent
        assert client.command(11, b"\x40") == b"\x40"
        bits["now"] &= ~termios.TIOCM_DSR
        time.sleep(0.3)
        bits["now"] |= termios.TIOCM_RNG
        assert client.wait_for(107) == b"\x40"
        client.close()


# -- the send-break action ---------------------------------------------------------------

YANG_NS = "urn:ietf:params:xml:ns:yang:1"


def send_break(m: object, port: str, duration: str | None = None) -> object:
    value = f"<duration>{duration}</duration>" if duration is not None else ""
    return m.dispatch(  # type: ignore[attr-defined]
        etree.fromstring(
            f'<action xmlns="{YANG_NS}"><serial-over-ip xmlns="{SOIP}"><serial-port>'
            f"<name>{port}</name><send-break>{value}</send-break>"
            "</serial-port></serial-over-ip></action>"
        )
    )


def spy_breaks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    """TIOCSBRK/TIOCCBRK as pyserial asks them of the tty (a pty takes
    them and shows nothing), with when: the ioctl layer, spied on."""
    import fcntl

    from nf.runtime.serial import TIOCCBRK, TIOCSBRK

    calls: list[tuple[float, str]] = []
    real = fcntl.ioctl
    names = {TIOCSBRK: "on", TIOCCBRK: "off"}

    def spy(fd: int, request: int, *args: object) -> object:
        if request in names:
            calls.append((time.monotonic(), names[request]))
        return real(fd, request, *args)  # type: ignore[call-overload]

    monkeypatch.setattr(fcntl, "ioctl", spy)
    return calls


def test_send_break_action_holds_the_break_for_its_duration(
    relay: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaks = spy_breaks(monkeypatch)
    with pty_device() as (master, path), relay.connect() as m:
        tcp = free_port()
        vcom_channel(m, path, tcp)
        assert send_break(m, "p", "200").ok  # type: ignore[attr-defined]
        wait_for(lambda: len(breaks) >= 2 or None, 5)
        (t_on, on), (t_off, off) = breaks[:2]
        assert (on, off) == ("on", "off")
        assert 0.19 <= t_off - t_on < 1.5
        breaks.clear()
        assert send_break(m, "p").ok  # type: ignore[attr-defined]  # default 250 ms
        wait_for(lambda: len(breaks) >= 2 or None, 5)
        assert breaks[1][0] - breaks[0][0] >= 0.24
        # the data path is unaffected
        client = Client(tcp)
        client.sock.sendall(b"after")
        assert read_all(master, 5) == b"after"
        client.close()


def test_send_break_errors(relay: Running) -> None:
    from ncclient.operations import RPCError

    with pty_device() as (_, path), relay.connect() as m:
        m.edit_config(
            target="running", config=config(port_xml("p", path) + port_xml("idle", "loop://"))
        )
        with pytest.raises(RPCError) as missing:
            send_break(m, "nope")
        assert missing.value.tag == "data-missing"
        with pytest.raises(RPCError) as closed:
            send_break(m, "idle")  # configured, but no channel holds it
        assert closed.value.tag == "operation-failed"
        assert "not open" in str(closed.value.message)
        with pytest.raises(RPCError) as bad:
            send_break(m, "p", "0")
        assert bad.value.tag == "invalid-value"
        with pytest.raises(RPCError) as unknown:
            m.dispatch(
                etree.fromstring(
                    f'<action xmlns="{YANG_NS}"><serial-over-ip xmlns="{SOIP}"><channel>'
                    "<name>c</name><clear/></channel></serial-over-ip></action>"
                )
            )
        assert unknown.value.tag == "operation-not-supported"


def test_rfc2217_break_and_control_lines_reach_the_driver(
    relay: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaks = spy_breaks(monkeypatch)
    with pty_device() as (_, path), relay.connect() as m:
        tcp = free_port()
        vcom_channel(m, path, tcp)
        client = Client(tcp)
        assert client.command(5, b"\x05") == b"\x05"  # BREAK on
        assert [b for _, b in breaks] == ["on"]
        assert client.command(5, b"\x04") == b"\x05"  # asked: on
        assert client.command(5, b"\x06") == b"\x06"  # BREAK off
        assert [b for _, b in breaks] == ["on", "off"]
        assert client.command(5, b"\x09") == b"\x09"  # DTR off: a pty has none, the state says
        assert client.command(5, b"\x07") == b"\x09"
        client.command(5, b"\x05")
        client.close()  # its session ends: the break is lifted with its settings
        wait_for(lambda: [b for _, b in breaks] == ["on", "off", "on", "off"] or None, 5)


def test_client_mode_is_a_telnet_server_on_its_outgoing_connection(relay: Running) -> None:
    """A client-mode channel connects out, and the far end is the RFC 2217
    client (a virtual COM port that listens): the same protocol."""
    with (
        pty_device() as (master, path),
        relay.connect() as m,
        socket.create_server(("127.0.0.1", 0)) as listener,
    ):
        listener.settimeout(10)
        port = listener.getsockname()[1]
        dest = f"<destination><address>127.0.0.1</address><port>{port}</port></destination>"
        m.edit_config(
            target="running",
            config=config(
                port_xml("p", path)
                + f"<channel><name>c</name><serial-port>p</serial-port><mode>client</mode>"
                f"{dest}<rfc2217>true</rfc2217></channel>"
            ),
        )
        sock, _ = listener.accept()
        client = Client(sock)
        assert client.baud(9600) == 9600
        wait_for(lambda: termios_of(path)[0] == termios.B9600 or None, 5)
        sock.sendall(escape(b"\xffdata\xff"))
        assert read_all(master, 6) == b"\xffdata\xff"
        client.close()
        wait_for(lambda: termios_of(path)[0] == termios.B115200 or None, 5)
