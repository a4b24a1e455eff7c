"""RFC 2217 channels in memory (tests/channelpair.py): the escaping on every
byte path (packing, the secondary port's arbitration and its queue), who
may change the line in each response mode, the revert when the owner
leaves, PURGE-DATA, FLOWCONTROL-SUSPEND and modem-line notifications.
The same through real sockets, ptys and pyserial is tests/test_rfc2217.py.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import termios
from collections.abc import Awaitable, Callable

import anyio
from channelpair import PORT, ChannelPair, MemoryTransport, channel_config, channel_pair

from nf.model import ChannelConfig
from nf.protocol.arbitration import Role
from nf.protocol.telnet import IAC, SB, SE, Subnegotiation, TelnetParser, escape

P, S = Role.PRIMARY, Role.SECONDARY
COM = 44
OPENING = bytes((IAC, 251, 0, IAC, 253, 0, IAC, 251, 3, IAC, 253, 3))


def in_loop(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def run() -> None:
        anyio.run(test)

    return run


def rfc2217(**kwargs: object) -> ChannelConfig:
    return dataclasses.replace(channel_config(**kwargs), rfc2217=True)  # type: ignore[arg-type]


def sb(command: int, value: bytes = b"") -> bytes:
    return bytes((IAC, SB, COM, command)) + escape(value) + bytes((IAC, SE))


def telnet(t: MemoryTransport) -> tuple[bytes, list[Subnegotiation]]:
    """What the peer read since the last call: data and COM-PORT-OPTION
    commands (negotiation left out)."""
    items = TelnetParser().feed(t.recv())
    data = b"".join(i for i in items if isinstance(i, bytes))
    return data, [i for i in items if isinstance(i, Subnegotiation)]


def joined(t: MemoryTransport) -> MemoryTransport:
    """A session that agreed to COM-PORT-OPTION, its opening read."""
    t.send(bytes((IAC, 251, COM)))
    opening = t.recv()
    assert opening.startswith(OPENING)
    return t


def two(p: ChannelPair) -> tuple[MemoryTransport, MemoryTransport]:
    """A primary and a secondary session, both agreed to COM-PORT-OPTION."""
    a, b = p.connect(P), p.connect(S)
    assert a is not None and b is not None
    return joined(a), joined(b)


def baud(t: MemoryTransport, value: int) -> int:
    t.send(sb(1, struct.pack("!I", value)))
    _, commands = telnet(t)
    (reply,) = [c for c in commands if c.payload[0] == 101]
    answer: int = struct.unpack("!I", reply.payload[1:5])[0]
    return answer


@in_loop
async def test_escaping_with_packing_and_slotted_queue() -> None:
    cfg = rfc2217(response_mode="slotted", slot_ms=600, delimiter=0xFF, max_frame_size=4)
    async with channel_pair(cfg) as p:
        a, b = two(p)
        a.send(b"req\xff\xff")  # the primary's slot opens
        assert p.link.take() == b"req\xff"
        b.send(b"q\xff")  # the secondary waits: queued unescaped, the escape split
        b.send(b"\xffu\xff")
        assert p.link.take() == b""
        p.link.inject(b"\xffab\xffcdef\xff")  # frames cut on data bytes, then escaped
        assert a.writes[-4:] == [b"\xff\xff", b"ab\xff\xff", b"cdef", b"\xff\xff"]
        data, _ = telnet(a)
        assert data == b"\xffab\xffcdef\xff"
        assert b.recv() == b""  # the slot owner's answer only
        p.advance(0.7)  # the slot ends: the queue goes out, unescaped once
        assert p.link.take() == b"q\xffu"
        assert p.counters["serial-to-net-bytes"] == 9  # data bytes, not wire bytes


@in_loop
async def test_failover_only_the_active_session_sets_the_line_and_the_owner_reverts() -> None:
    async with channel_pair(rfc2217(response_mode="failover")) as p:
        a, b = two(p)
        assert p.statuses() == {"primary": "active", "secondary": "backup"}
        assert baud(b, 9600) == 115200  # backup: the current value, nothing changes
        assert p.link.line_settings == []
        assert baud(a, 19200) == 19200
        assert [c.baud_rate for c in p.link.line_settings] == [19200]
        assert p.channel.line_owner == p.channel.session_of(P).id  # type: ignore[union-attr]
        a.hang_up()
        await p.settle()
        # the owner left: the configured settings are back, the secondary takes over
        assert p.link.line_settings[-1].baud_rate == PORT.baud_rate
        assert p.channel.line_owner is None
        assert baud(b, 9600) == 9600


@in_loop
async def test_raw_both_sessions_may_and_the_last_owns() -> None:
    async with channel_pair(rfc2217(response_mode="raw")) as p:
        a, b = two(p)
        assert baud(a, 9600) == 9600
        assert baud(b, 19200) == 19200
        a.hang_up()  # not the owner: nothing reverts
        await p.settle()
        assert p.channel.port_state.baud_rate == 19200
        b.hang_up()
        await p.settle()
        assert p.channel.port_state.baud_rate == PORT.baud_rate


@in_loop
async def test_allow_line_control_false() -> None:
    cfg = dataclasses.replace(rfc2217(), allow_line_control=False)
    async with channel_pair(cfg) as p:
        a = p.connect()
        assert a is not None
        joined(a)
        assert baud(a, 9600) == 115200
        a.send(sb(5, b"\x09"))  # DTR off: refused, answered with on
        assert [c.payload for c in telnet(a)[1]] == [b"\x69\x08"]
        assert p.link.line_settings == [] and p.link.control == (True, True, False)


@in_loop
async def test_purge_and_flow_suspend() -> None:
    async with channel_pair(rfc2217(max_frame_size=100)) as p:
        a = p.connect()
        assert a is not None
        joined(a)
        p.link.block()
        a.send(b"unsent")
        p.link.inject(b"pending")  # a partial frame, waiting
        a.send(sb(12, b"\x03"))  # purge both
        assert [c.payload for c in telnet(a)[1]] == [b"\x70\x03"]
        assert p.counters["dropped-bytes"] == 13
        p.link.unblock()
        assert p.link.take() == b""
        a.send(sb(8))  # suspend: the port is not read
        assert p.link.paused
        a.send(sb(9))
        assert not p.link.paused
        a.send(sb(8))
        a.hang_up()  # a suspended session that leaves lets go
        await p.settle()
        assert not p.link.paused


@in_loop
async def test_modem_changes_notify_and_raise_a_port_event() -> None:
    async with channel_pair(rfc2217()) as p:
        a = p.connect()
        assert a is not None
        joined(a)
        p.channel.modem_update(termios.TIOCM_CTS)  # the first reading: state only
        assert telnet(a)[1] == [] and not [
            e for k, e in p.events if e.get("event") == "modem-change"
        ]
        p.channel.modem_update(termios.TIOCM_CTS | termios.TIOCM_CAR)
        assert [c.payload for c in telnet(a)[1]] == [bytes((107, 0x10 | 0x80 | 0x08))]
        (event,) = [e for k, e in p.events if e.get("event") == "modem-change"]
        assert (event["modem-lines"], event["changed"]) == ("cts dcd", "dcd")
        assert dict(p.channel.modem_leaves())["dcd"] == "on"
        p.channel.modem_update(None)  # the port went: unknown, no event
        assert dict(p.channel.modem_leaves())["dcd"] == "unknown"


@in_loop
async def test_a_setting_the_driver_refuses_is_answered_with_the_kept_value() -> None:
    async with channel_pair(rfc2217()) as p:
        a = p.connect()
        assert a is not None
        joined(a)
        p.link.refuse_line = "memory: cannot set baudrate: unsupported"
        assert baud(a, 7) == 115200  # the port kept its speed, and says so
        assert p.channel.port_state.baud_rate == 115200
        assert p.channel.last_error == "memory: cannot set baudrate: unsupported"
        assert any(e.get("event") == "error" for k, e in p.events if k == "port-event")


@in_loop
async def test_a_commit_changing_the_line_ends_a_clients_settings() -> None:
    """The commit's prepare gave the open port the new configuration; the
    channel's view follows: the client no longer owns the line, the state
    in effect is the new configuration's, and the client leaving later
    reverts nothing."""
    async with channel_pair(rfc2217()) as p:
        session = p.connect(P)
        assert session is not None
        a = joined(session)
        assert baud(a, 9600) == 9600
        assert p.channel.line_owner is not None
        faster = dataclasses.replace(PORT, baud_rate=57600)
        p.channel.reconfigure(p.channel.cfg, faster)
        assert p.channel.line_owner is None
        assert p.channel.port_state.baud_rate == 57600
        applied = len(p.link.line_settings)
        a.hang_up()
        await p.settle()
        assert len(p.link.line_settings) == applied  # nothing to revert
        assert p.channel.port_state.baud_rate == 57600
