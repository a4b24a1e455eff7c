"""Telnet and the COM-PORT-OPTION (RFC 2217) as a pure state machine.

1. The parser: data, IAC IAC, every command, negotiation, subnegotiation
   (with escaped IACs, malformed and overlong), and any split of a stream.
2. Option negotiation: what the server offers, accepts, refuses, and that
   it never answers a state it is already in (no loops).
3. Every COM-PORT-OPTION command and the server's reply as RFC 2217 gives
   it; allow-line-control false answers with the current values.
4. Hypothesis: any byte stream round-trips through escape and the parser,
   whatever the split; the C and the Python ``unescape_pairs`` agree on any
   bytes, and the parser tests run on both.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nf.protocol import telnet
from nf.protocol.telnet import (
    ACCELERATED,
    DO,
    DONT,
    IAC,
    MAX_SUBNEGOTIATION,
    SB,
    SE,
    WILL,
    WONT,
    Command,
    ComPortServer,
    Negotiation,
    PortState,
    Purge,
    Reply,
    Subnegotiation,
    Suspend,
    TelnetParser,
    escape,
    modem_state,
    subnegotiation,
    unescape_pairs,
    unescape_pairs_py,
)

COM = 44
STATE = PortState(115200, 8, "none", "1", "none")


def sb(command: int, value: bytes = b"") -> bytes:
    """A client's COM-PORT-OPTION command on the wire."""
    return bytes((IAC, SB, COM, command)) + escape(value) + bytes((IAC, SE))


def data_of(items: list[object]) -> bytes:
    return b"".join(i for i in items if isinstance(i, bytes))


# -- 1. parser ------------------------------------------------------------------


@pytest.fixture(params=["c", "python"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a parser test on the C ``unescape_pairs`` and on the Python one."""
    if request.param == "python":
        monkeypatch.setattr(telnet, "unescape_pairs", unescape_pairs_py)
    return str(request.param)


def test_the_c_unescape_is_built() -> None:
    """The suite (and the benchmarks) must run what users get from an
    install with a compiler; tools/bootstrap.sh --test installs one."""
    assert ACCELERATED, "nf/protocol/_iac.c was not built: no C compiler at install time?"


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        (b"", b""),
        (b"abc", b"abc"),
        (b"\xff\xff", b"\xff"),
        (b"a\xff\xffb\xff\xff\xff\xffc", b"a\xffb\xff\xffc"),
        (b"\xff", None),  # cut off at the end
        (b"a\xff\xff\xff", None),
        (b"\xff\xfb\x00", None),  # a command
        (b"a\xff\xffb\xff\xf0", None),
    ],
)
def test_unescape_pairs(data: bytes, expect: bytes | None) -> None:
    assert unescape_pairs(data) == unescape_pairs_py(data) == expect


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"\xff", b"\xff\xff", b"\xff\xff\xff", b"\xff\xfb", b"\xff\xf0"]),
        ),
        max_size=20,
    )
)
def test_c_and_python_unescape_agree_on_any_bytes(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    assert unescape_pairs(data) == unescape_pairs_py(data)
    assert unescape_pairs(escape(data)) == data


def test_plain_data_is_passed_without_copy(impl: str) -> None:
    data = b"hello\x00\xfe"
    out = TelnetParser().feed(data)
    assert out == [data] and out[0] is data
    assert TelnetParser().feed(b"") == []


def test_doubled_iac_is_one_data_byte(impl: str) -> None:
    assert TelnetParser().feed(b"a\xff\xffb\xff\xff") == [b"a\xffb\xff"]


@pytest.mark.parametrize(
    ("wire", "expect"),
    [
        (b"\xff\xff\xff\xff", [b"\xff\xff"]),  # even runs: the replace path
        (b"\xff\xff\xff\xfb\x00x", [b"\xff", Negotiation(WILL, 0), b"x"]),  # odd: a command
        (b"\xff\xff\xff", [b"\xff"]),  # an IAC cut off at the end waits
        (b"\xff\xff\xff\xff\xff\xfa\x2c\x00\xff\xf0", [b"\xff\xff", Subnegotiation(COM, b"\x00")]),
    ],
)
def test_runs_of_iac(wire: bytes, expect: list[object], impl: str) -> None:
    assert TelnetParser().feed(wire) == expect


def test_negotiation_between_data_keeps_order() -> None:
    out = TelnetParser().feed(b"ab" + bytes((IAC, DO, 0)) + b"cd")
    assert out == [b"ab", Negotiation(DO, 0), b"cd"]


@pytest.mark.parametrize("verb", [WILL, WONT, DO, DONT])
def test_each_verb(verb: int) -> None:
    assert TelnetParser().feed(bytes((IAC, verb, 44))) == [Negotiation(verb, 44)]


@pytest.mark.parametrize("code", [241, 242, 243, 244, 245, 246, 247, 248, 249])
def test_other_commands(code: int) -> None:
    assert TelnetParser().feed(bytes((IAC, code)) + b"x") == [Command(code), b"x"]


def test_stray_se_is_ignored() -> None:
    assert TelnetParser().feed(bytes((IAC, SE)) + b"x") == [b"x"]


def test_subnegotiation_with_escaped_iac() -> None:
    wire = bytes((IAC, SB, COM, 1, 0, 0, IAC, IAC, IAC, SE))
    assert TelnetParser().feed(wire) == [Subnegotiation(COM, bytes((1, 0, 0, 255)))]


def test_empty_subnegotiation_is_nothing() -> None:
    assert TelnetParser().feed(bytes((IAC, SB, IAC, SE)) + b"z") == [b"z"]


def test_malformed_subnegotiation_ends_at_the_next_command() -> None:
    wire = bytes((IAC, SB, COM, 7, IAC, DO, 0)) + b"x"
    assert TelnetParser().feed(wire) == [Subnegotiation(COM, b"\x07"), Negotiation(DO, 0), b"x"]
    wire = bytes((IAC, SB, COM, 7, IAC, 241)) + b"y"  # IAC NOP inside
    assert TelnetParser().feed(wire) == [Subnegotiation(COM, b"\x07"), Command(241), b"y"]


def test_overlong_subnegotiation_is_cut() -> None:
    wire = bytes((IAC, SB, COM, 0)) + b"s" * 5000 + bytes((IAC, IAC, IAC, SE)) + b"after"
    out = TelnetParser().feed(wire)
    assert isinstance(out[0], Subnegotiation)
    assert len(out[0].payload) == MAX_SUBNEGOTIATION - 1
    assert out[1:] == [b"after"]


def test_every_state_survives_a_split(impl: str) -> None:
    wire = b"a" + bytes((IAC, IAC, IAC, WILL, 3)) + sb(1, bytes((0, 0, 0xFF, 0xFF))) + b"z"
    whole = TelnetParser().feed(wire)
    for cut in range(len(wire) + 1):
        parser = TelnetParser()
        parts = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
        assert [p for p in parts if not isinstance(p, bytes)] == [
            p for p in whole if not isinstance(p, bytes)
        ]
        assert data_of(parts) == data_of(whole) == b"a\xffz"


def test_escape() -> None:
    assert escape(b"") == b""
    assert escape(b"\xff") == b"\xff\xff"
    assert escape(b"a\xff\xffb") == b"a\xff\xff\xff\xffb"
    data = b"no iac"
    assert escape(data) is data or escape(data) == data


# -- 4. hypothesis ---------------------------------------------------------------


# the fixture (which unescape_pairs) holds for every example
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_any_stream_round_trips_through_escape_and_parser(
    impl: str, data: bytes, cuts: list[int]
) -> None:
    wire = escape(data)
    parser = TelnetParser()
    out: list[object] = []
    pos = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        out += parser.feed(wire[pos:cut])
        pos = cut
    assert all(isinstance(i, bytes) for i in out)
    assert data_of(out) == data


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=50).map(lambda b: ("data", b)),
            st.tuples(st.integers(0, 12), st.binary(max_size=6)).map(lambda c: ("sb", c)),
        ),
        max_size=12,
    ),
    st.integers(1, 7),
)
def test_data_and_commands_interleaved_survive_any_chunking(
    impl: str, items: list[tuple[str, object]], size: int
) -> None:
    wire = b""
    expect_data = b""
    expect_sb = []
    for kind, value in items:
        if kind == "data":
            assert isinstance(value, bytes)
            wire += escape(value)
            expect_data += value
        else:
            assert isinstance(value, tuple)
            wire += sb(value[0], value[1])
            expect_sb.append(Subnegotiation(COM, bytes((value[0],)) + value[1]))
    parser = TelnetParser()
    out: list[object] = []
    for i in range(0, len(wire), size):
        out += parser.feed(wire[i : i + size])
    assert data_of(out) == expect_data
    assert [i for i in out if not isinstance(i, bytes)] == expect_sb


# -- 2. negotiation ---------------------------------------------------------------


def replies(actions: list[object]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Reply))


def test_start_offers_binary_and_sga_both_ways() -> None:
    server = ComPortServer()
    assert server.start() == bytes((IAC, WILL, 0, IAC, DO, 0, IAC, WILL, 3, IAC, DO, 3))
    # the client agrees: no answer to an answer
    agree = bytes((IAC, DO, 0, IAC, WILL, 0, IAC, DO, 3, IAC, WILL, 3))
    assert server.receive(agree, STATE, True) == []
    assert server.ours == {0, 3} and server.theirs == {0, 3}


def test_com_port_accepted_either_way_and_once() -> None:
    server = ComPortServer()
    server.start()
    assert not server.com_port
    # agreed: the modem state follows at once
    assert replies(server.receive(bytes((IAC, WILL, COM)), STATE, True)) == bytes(
        (IAC, DO, COM)
    ) + subnegotiation(107, b"\x00")
    assert server.com_port
    assert replies(server.receive(bytes((IAC, DO, COM)), STATE, True)) == bytes((IAC, WILL, COM))
    # repeated: already in that state, no answer (no loop)
    assert server.receive(bytes((IAC, WILL, COM, IAC, DO, COM)), STATE, True) == []


def test_unsupported_options_refused() -> None:
    server = ComPortServer()
    assert replies(server.receive(bytes((IAC, DO, 1)), STATE, True)) == bytes((IAC, WONT, 1))
    assert replies(server.receive(bytes((IAC, WILL, 24)), STATE, True)) == bytes((IAC, DONT, 24))
    # a WONT/DONT of what is off needs no answer
    assert server.receive(bytes((IAC, WONT, 24, IAC, DONT, 1)), STATE, True) == []


def test_refusal_of_our_offer_and_later_disable() -> None:
    server = ComPortServer()
    server.start()
    assert server.receive(bytes((IAC, DONT, 0, IAC, WONT, 0)), STATE, True) == []
    assert 0 not in server.ours and 0 not in server.theirs
    server.receive(bytes((IAC, WILL, COM)), STATE, True)
    # the client turns it off: acknowledged once
    out = replies(server.receive(bytes((IAC, WONT, COM)), STATE, True))
    assert out == bytes((IAC, DONT, COM)) and not server.com_port


# -- 3. COM-PORT-OPTION -------------------------------------------------------------


def server_with_com() -> ComPortServer:
    server = ComPortServer(signature="nf test")
    server.receive(bytes((IAC, WILL, COM)), STATE, True)
    return server


def one(server: ComPortServer, wire: bytes, may: bool = True, state: PortState = STATE) -> tuple:
    """The replies, the last state asked of ``apply`` (None: no change) and
    the actions."""
    changes: list[PortState] = []

    def apply(new: PortState) -> PortState:
        changes.append(new)
        return new

    actions = server.receive(wire, state, may, apply)
    return replies(actions), (changes[-1] if changes else None), actions


def test_signature() -> None:
    server = server_with_com()
    assert one(server, sb(0))[0] == subnegotiation(100, b"nf test")
    assert one(server, sb(0, b"client 1.0"))[0] == b""
    assert server.client_signature == b"client 1.0"


@pytest.mark.parametrize(
    ("baud", "expect"), [(9600, 9600), (0, 115200), (0xFF00FF, 0xFF00FF), (4000000, 4000000)]
)
def test_set_baudrate(baud: int, expect: int) -> None:
    reply, change, _ = one(server_with_com(), sb(1, struct.pack("!I", baud)))
    assert reply == subnegotiation(101, struct.pack("!I", expect))
    assert (change.baud_rate if change else 115200) == expect
    assert (change is None) == (baud == 0)


def test_short_baudrate_ignored() -> None:
    assert one(server_with_com(), sb(1, b"\x00\x01")) == (b"", None, [])


@pytest.mark.parametrize(("size", "expect"), [(5, 5), (7, 7), (8, 8), (0, 8), (4, 8), (9, 8)])
def test_set_datasize(size: int, expect: int) -> None:
    reply, change, _ = one(server_with_com(), sb(2, bytes((size,))))
    assert reply == subnegotiation(102, bytes((expect,)))
    assert (change.data_bits if change else 8) == expect


@pytest.mark.parametrize(
    ("code", "name"), [(1, "none"), (2, "odd"), (3, "even"), (4, "mark"), (5, "space"), (0, None)]
)
def test_set_parity(code: int, name: str | None) -> None:
    reply, change, _ = one(server_with_com(), sb(3, bytes((code,))))
    assert reply == subnegotiation(103, bytes((code or 1,)))
    if name in (None, "none"):
        assert change is None
    else:
        assert change is not None and change.parity == name


@pytest.mark.parametrize(("code", "name"), [(1, "1"), (2, "2"), (3, "1.5"), (0, None), (9, None)])
def test_set_stopsize(code: int, name: str | None) -> None:
    reply, change, _ = one(server_with_com(), sb(4, bytes((code,))))
    expect = code if name else 1
    assert reply == subnegotiation(104, bytes((expect,)))
    assert (change.stop_bits if change else "1") == (name or "1")


@pytest.mark.parametrize(
    ("code", "answer", "field", "value"),
    [
        (0, 1, None, None),
        (1, 1, None, None),
        (2, 2, "flow_control", "xon-xoff"),
        (3, 3, "flow_control", "rts-cts"),
        (4, 6, None, None),
        (5, 5, "break_on", True),
        (6, 6, None, None),
        (7, 8, None, None),
        (8, 8, None, None),
        (9, 9, "dtr", False),
        (10, 11, None, None),
        (11, 11, None, None),
        (12, 12, "rts", False),
        (13, 14, None, None),
        (14, 14, None, None),
        (15, 15, "flow_control", "xon-xoff"),
        (16, 16, "flow_control", "rts-cts"),
        (17, 1, None, None),
    ],
)
def test_set_control(code: int, answer: int, field: str | None, value: object) -> None:
    reply, change, _ = one(server_with_com(), sb(5, bytes((code,))))
    assert reply == subnegotiation(105, bytes((answer,)))
    if field is None:
        assert change is None
    else:
        assert change is not None and getattr(change, field) == value


def test_requests_answer_the_current_state() -> None:
    state = PortState(9600, 7, "even", "2", "rts-cts", dtr=False, rts=False, break_on=True)
    server = server_with_com()
    wire = sb(1, bytes(4)) + sb(2, b"\0") + sb(3, b"\0") + sb(4, b"\0")
    wire += sb(5, b"\x00") + sb(5, b"\x04") + sb(5, b"\x07") + sb(5, b"\x0a") + sb(5, b"\x0d")
    reply, change, _ = one(server, wire, state=state)
    assert change is None
    assert reply == b"".join(
        [
            subnegotiation(101, struct.pack("!I", 9600)),
            subnegotiation(102, b"\x07"),
            subnegotiation(103, b"\x03"),
            subnegotiation(104, b"\x02"),
            subnegotiation(105, b"\x03"),
            subnegotiation(105, b"\x05"),
            subnegotiation(105, b"\x09"),
            subnegotiation(105, b"\x0c"),
            subnegotiation(105, b"\x10"),
        ]
    )


def test_line_control_refused_answers_current_values() -> None:
    server = server_with_com()
    wire = sb(1, struct.pack("!I", 9600)) + sb(2, b"\x07") + sb(3, b"\x03") + sb(4, b"\x02")
    wire += sb(5, b"\x03") + sb(5, b"\x05") + sb(5, b"\x09") + sb(5, b"\x0c")
    reply, change, _ = one(server, wire, may=False)
    assert change is None
    assert reply == b"".join(
        [
            subnegotiation(101, struct.pack("!I", 115200)),
            subnegotiation(102, b"\x08"),
            subnegotiation(103, b"\x01"),
            subnegotiation(104, b"\x01"),
            subnegotiation(105, b"\x01"),
            subnegotiation(105, b"\x06"),
            subnegotiation(105, b"\x08"),
            subnegotiation(105, b"\x0b"),
        ]
    )


def test_changes_accumulate_within_one_chunk() -> None:
    wire = sb(1, struct.pack("!I", 9600)) + b"mid" + sb(2, b"\x07") + sb(3, b"\x03")
    lines: list[PortState] = []
    actions = server_with_com().receive(wire, STATE, True, lambda s: lines.append(s) or s)
    assert [(s.baud_rate, s.data_bits, s.parity) for s in lines] == [
        (9600, 8, "none"),
        (9600, 7, "none"),
        (9600, 7, "even"),
    ]
    assert actions.index(b"mid") == 1  # data between commands stays in place


def test_a_change_the_port_refuses_is_answered_with_what_it_kept() -> None:
    """``apply`` returns the state in effect: a driver that refused 7 data
    bits leaves 8, and the reply says 8."""
    wire = sb(2, b"\x07") + sb(1, struct.pack("!I", 9600))
    seen: list[PortState] = []

    def refuse_data_bits(new: PortState) -> PortState:
        seen.append(new)
        return dataclasses.replace(new, data_bits=8)

    actions = server_with_com().receive(wire, STATE, True, refuse_data_bits)
    assert replies(actions) == subnegotiation(102, b"\x08") + subnegotiation(
        101, struct.pack("!I", 9600)
    )
    assert [s.data_bits for s in seen] == [7, 8]  # the second change starts from what was kept


def test_baudrate_with_iac_bytes_escaped_in_the_reply() -> None:
    reply, change, _ = one(server_with_com(), sb(1, struct.pack("!I", 0xFF)))
    assert change is not None and change.baud_rate == 255
    assert reply == bytes((IAC, SB, COM, 101, 0, 0, 0, IAC, IAC, IAC, SE))


def test_notify_linestate_and_modemstate() -> None:
    server = server_with_com()
    state = PortState(9600, 8, "none", "1", "none", modem=0xB0)
    assert one(server, sb(6), state=state)[0] == subnegotiation(106, b"\x00")
    assert one(server, sb(7), state=state)[0] == subnegotiation(107, b"\xb0")


def test_masks() -> None:
    server = server_with_com()
    assert one(server, sb(10, b"\x1f"))[0] == subnegotiation(110, b"\x1f")
    assert server.line_mask == 0x1F
    assert one(server, sb(11, b"\x30"))[0] == subnegotiation(111, b"\x30")
    assert server.modem_mask == 0x30
    state = PortState(9600, 8, "none", "1", "none", modem=0xF0)
    assert one(server, sb(7), state=state)[0] == subnegotiation(107, b"\x30")
    # a change the mask filters out is not sent; one it lets through is
    assert server.modem_changed(0x88, 0x00) == b""  # DCD: masked
    assert server.modem_changed(0x11, 0x00) == subnegotiation(107, b"\x10")
    server.modem_mask = 0xFF
    assert server.modem_changed(0x11, 0x00) == subnegotiation(107, b"\x11")
    assert server.modem_changed(0x10, 0x10) == b""  # nothing changed
    assert server.modem_changed(0x50, 0x10) == subnegotiation(107, b"\x50")  # RI rose
    assert server.modem_changed(0x14, 0x50) == subnegotiation(107, b"\x14")  # RI fell


def test_modem_changed_needs_com_port() -> None:
    assert ComPortServer().modem_changed(0x11, 0x00) == b""


def test_flowcontrol_suspend_resume_have_no_reply() -> None:
    server = server_with_com()
    assert server.receive(sb(8), STATE, False) == [Suspend(True)]
    assert server.receive(sb(8), STATE, False) == []  # already suspended
    assert server.receive(sb(9), STATE, False) == [Suspend(False)]
    assert not server.suspended


@pytest.mark.parametrize(("code", "receive", "transmit"), [(1, 1, 0), (2, 0, 1), (3, 1, 1)])
def test_purge(code: int, receive: int, transmit: int) -> None:
    actions = server_with_com().receive(sb(12, bytes((code,))), STATE, False)
    assert actions == [
        Purge(bool(receive), bool(transmit)),
        Reply(subnegotiation(112, bytes((code,)))),
    ]


def test_bad_purge_and_unknown_commands_ignored() -> None:
    server = server_with_com()
    assert server.receive(sb(12, b"\x04") + sb(13) + sb(101, b"x"), STATE, True) == []
    assert server.receive(bytes((IAC, SB, 24, 1, IAC, SE)), STATE, True) == []  # not COM


def test_modem_state_byte() -> None:
    assert modem_state(True, False, False, True, None) == 0x90
    assert modem_state(True, False, False, True, 0x90) == 0x90
    assert modem_state(False, True, False, True, 0x90) == 0xA3
    assert modem_state(False, False, False, False, 0x40) == 0x04  # RI trailing edge
    assert modem_state(False, False, True, False, 0x00) == 0x40  # RI rising: no delta
