"""Telnet with the COM-PORT-OPTION (RFC 854/855/856/858, RFC 2217), sans I/O.

A channel with ``rfc2217`` set speaks Telnet on its TCP sessions, so that a
virtual-COM-port driver (pyserial's ``rfc2217://``, SCADA and terminal
software) can set the line settings, toggle DTR/RTS, send a break and be
told of modem-line changes.  Nothing here does I/O: ``ComPortServer.receive``
takes the bytes a session read and returns, in stream order, the data for
the serial port (bytes), what to send back to the client (``Reply``) and
what to do to the session's flow (``Purge``, ``Suspend``); a change of the
port's state it asks of the runtime through the ``apply`` it is given,
which answers with the state then in effect.  The runtime
(nf/runtime/session.py, channel.py) carries these out.

Why in this shape:

* The data path must cost no more than a raw channel's (the benchmark
  target is 0.9x).  Escaping is one ``bytes.replace`` (C).  A chunk
  without an IAC byte leaves the parser as the very same object; one
  whose IACs all come in adjacent pairs (escaped data only: random data
  has an IAC in 256 bytes, so nearly every bulk chunk) is unescaped by
  ``unescape_pairs``: in C (nf/protocol/_iac.c, memchr and memcpy) where
  the package was built with a compiler, else one ``split`` on IAC and a
  ``join`` of every other piece, about 20 times slower, which cost a
  fifth of the raw channel's throughput (``ACCELERATED`` says which runs).
  Only a chunk with a command is cut at each IAC with ``find`` and joined,
  and never walked byte by byte in Python.
* The server works on the state the runtime passes in (``PortState``) and
  hands a change to ``apply`` as the whole new state, so the runtime
  applies it in one place and ``<get>`` can show it; the reply is made
  from what ``apply`` returns, the state in effect, so a setting the
  driver refused is answered with the value the port kept.  Whether the
  client may change anything at all (``allow-line-control``, and which
  session the arbitration lets in, see nf/runtime/channel.py) is a flag of
  each call.  A client that may not change a setting is answered with the
  current value, as RFC 2217 says a server that cannot honour a request
  does; pyserial then reports "remote rejected value".

Decisions where the RFCs leave room:

* The server offers BINARY both ways and SUPPRESS-GO-AHEAD both ways at the
  start, and agrees to COM-PORT-OPTION whichever way the client asks for it
  (RFC 2217 has the client say WILL; pyserial also says DO).  Everything
  else is refused.  Data is passed through whether or not BINARY was
  agreed (no NVT CR-NUL rewriting): a serial line is eight-bit data.
* A subnegotiation longer than ``MAX_SUBNEGOTIATION`` is cut there (the
  rest is discarded); an IAC followed by anything but SE or IAC inside a
  subnegotiation ends it, and the byte is taken as a command.
* Telnet commands other than negotiation (NOP, BRK, AYT, ...) are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Final

__all__ = [
    "ACCELERATED",
    "IAC",
    "MAX_SUBNEGOTIATION",
    "ComPortServer",
    "Command",
    "Event",
    "Negotiation",
    "Option",
    "PortState",
    "Purge",
    "Reply",
    "Subnegotiation",
    "Suspend",
    "TelnetParser",
    "escape",
    "modem_state",
    "unescape_pairs",
    "unescape_pairs_py",
]

IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
SE: Final = 240
_IAC_BYTE: Final = b"\xff"
_IAC_DOUBLED: Final = b"\xff\xff"
MAX_SUBNEGOTIATION: Final = 512
"""Longest subnegotiation kept (a SIGNATURE text is the longest legitimate)."""
SERVER_OFFSET: Final = 100
"""A server's reply to COM-PORT-OPTION command N is command N + 100."""


class Option(IntEnum):
    BINARY = 0
    SGA = 3
    COM_PORT = 44


class Cpc(IntEnum):
    """COM-PORT-OPTION commands, client to server (RFC 2217)."""

    SIGNATURE = 0
    SET_BAUDRATE = 1
    SET_DATASIZE = 2
    SET_PARITY = 3
    SET_STOPSIZE = 4
    SET_CONTROL = 5
    NOTIFY_LINESTATE = 6
    NOTIFY_MODEMSTATE = 7
    FLOWCONTROL_SUSPEND = 8
    FLOWCONTROL_RESUME = 9
    SET_LINESTATE_MASK = 10
    SET_MODEMSTATE_MASK = 11
    PURGE_DATA = 12


PARITY_CODES: Final = {"none": 1, "odd": 2, "even": 3, "mark": 4, "space": 5}
STOP_CODES: Final = {"1": 1, "2": 2, "1.5": 3}
FLOW_CODES: Final = {"none": 1, "xon-xoff": 2, "rts-cts": 3}
"""SET-CONTROL values of the outbound (or both-ways) flow control."""
FLOW_IN_CODES: Final = {"none": 14, "xon-xoff": 15, "rts-cts": 16}
_PARITY_NAMES: Final = {v: k for k, v in PARITY_CODES.items()}
_STOP_NAMES: Final = {v: k for k, v in STOP_CODES.items()}
_FLOW_NAMES: Final = {v: k for k, v in FLOW_CODES.items()} | {
    v: k for k, v in FLOW_IN_CODES.items()
}

# modem-state bits (NOTIFY-MODEMSTATE)
CTS_DELTA, DSR_DELTA, RI_TRAILING, DCD_DELTA = 0x01, 0x02, 0x04, 0x08
CTS, DSR, RI, DCD = 0x10, 0x20, 0x40, 0x80


def escape(data: bytes) -> bytes:
    """Data for the network: every 0xFF doubled (C speed; the same object
    back when there is none)."""
    return data.replace(_IAC_BYTE, _IAC_DOUBLED)


def unescape_pairs_py(data: bytes) -> bytes | None:
    """``data`` with each IAC IAC made one IAC, when its IACs all come in
    adjacent pairs (escaped data only); None when one does not (a command,
    or an IAC cut off at the end).  IACs 1 and 2, 3 and 4, ... are pairs
    when every other piece between them is empty; three times the speed of
    replace(b"\\xff\\xff", ...), whose two-byte search is slow."""
    parts = data.split(_IAC_BYTE)
    if len(parts) & 1 and not any(parts[1::2]):
        return _IAC_BYTE.join(parts[::2])
    return None


try:
    from nf.protocol._iac import unescape_pairs
except ImportError:  # installed without a C compiler: the same results, slower
    unescape_pairs = unescape_pairs_py
ACCELERATED: Final = unescape_pairs is not unescape_pairs_py
"""Whether the C ``unescape_pairs`` is in use (nf/protocol/_iac.c)."""


def modem_state(cts: bool, dsr: bool, ri: bool, dcd: bool, previous: int | None) -> int:
    """The NOTIFY-MODEMSTATE byte for these lines, with the delta bits
    against ``previous`` (its upper four bits; None: no deltas)."""
    state = (CTS if cts else 0) | (DSR if dsr else 0) | (RI if ri else 0) | (DCD if dcd else 0)
    if previous is not None:
        changed = (state ^ previous) & 0xF0
        state |= changed >> 4 & (CTS_DELTA | DSR_DELTA | DCD_DELTA)
        if previous & RI and not state & RI:
            state |= RI_TRAILING
    return state


# -- the parser -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Negotiation:
    verb: int
    """WILL, WONT, DO or DONT."""
    option: int


@dataclass(frozen=True, slots=True)
class Subnegotiation:
    option: int
    payload: bytes
    """Unescaped: IAC IAC inside has become one 0xFF."""


@dataclass(frozen=True, slots=True)
class Command:
    """Any other Telnet command (NOP, BRK, AYT, ...): its code."""

    code: int


Event = Negotiation | Subnegotiation | Command

_DATA, _IAC, _VERB, _SB, _SB_IAC = range(5)


class TelnetParser:
    """Split a Telnet byte stream into data and Telnet events, in order.

    ``feed`` takes any split of the stream and returns a list of data
    chunks (bytes, unescaped) and events; the result of feeding a stream
    in pieces is that of feeding it whole, except that data chunks may be
    cut differently.
    """

    __slots__ = ("_sb", "_state", "_verb")

    def __init__(self) -> None:
        self._state = _DATA
        self._verb = 0
        self._sb = bytearray()

    def feed(self, data: bytes) -> list[bytes | Event]:
        if self._state == _DATA:
            if data.find(_IAC_BYTE) < 0:
                return [data] if data else []  # the fast path: no copy
            plain = unescape_pairs(data)
            if plain is not None:  # escaped data only: no command in it
                return [plain]
        out: list[bytes | Event] = []
        chunk = bytearray()
        pos, end = 0, len(data)
        state = self._state
        while pos < end:
            if state == _DATA:
                i = data.find(_IAC_BYTE, pos)
                if i < 0:
                    chunk += data[pos:]
                    break
                chunk += data[pos:i]
                pos = i + 1
                state = _IAC
                continue
            if state == _SB:
                i = data.find(_IAC_BYTE, pos)
                stop = end if i < 0 else i
                room = MAX_SUBNEGOTIATION - len(self._sb)
                if room > 0:
                    self._sb += data[pos : min(stop, pos + room)]
                if i < 0:
                    break
                pos = i + 1
                state = _SB_IAC
                continue
            byte = data[pos]
            pos += 1
            if state == _VERB:
                self._flush(chunk, out)
                out.append(Negotiation(self._verb, byte))
                state = _DATA
            elif state == _SB_IAC:
                if byte == IAC:
                    if len(self._sb) < MAX_SUBNEGOTIATION:
                        self._sb.append(IAC)
                    state = _SB
                    continue
                self._end_sb(chunk, out)
                # anything but SE: a malformed subnegotiation, the byte a command
                state = _DATA if byte == SE else self._command(byte, chunk, out)
            else:  # _IAC
                state = self._command(byte, chunk, out)
        self._state = state
        self._flush(chunk, out)
        return out

    def _command(self, byte: int, chunk: bytearray, out: list[bytes | Event]) -> int:
        """The byte after an IAC; the next state."""
        if byte == IAC:
            chunk.append(IAC)
            return _DATA
        if byte in (WILL, WONT, DO, DONT):
            self._verb = byte
            return _VERB
        if byte == SB:
            self._sb.clear()
            return _SB
        if byte != SE:  # a stray SE is nothing
            self._flush(chunk, out)
            out.append(Command(byte))
        return _DATA

    def _end_sb(self, chunk: bytearray, out: list[bytes | Event]) -> None:
        sb = self._sb
        if sb:
            self._flush(chunk, out)
            out.append(Subnegotiation(sb[0], bytes(sb[1:])))
        sb.clear()

    @staticmethod
    def _flush(chunk: bytearray, out: list[bytes | Event]) -> None:
        if chunk:
            out.append(bytes(chunk))
            chunk.clear()


# -- the COM-PORT-OPTION server -------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortState:
    """What a client sees of the port and may change: the line settings
    (YANG names and values), the control lines we drive, and the modem
    lines the driver reports (a NOTIFY-MODEMSTATE byte without deltas)."""

    baud_rate: int
    data_bits: int
    parity: str
    stop_bits: str
    flow_control: str
    dtr: bool = True
    rts: bool = True
    break_on: bool = False
    modem: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes for the client (negotiation and COM-PORT-OPTION replies)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Purge:
    """PURGE-DATA: ``receive`` is the data read from the serial port not yet
    sent to the client, ``transmit`` the client's data not yet written."""

    receive: bool
    transmit: bool


@dataclass(frozen=True, slots=True)
class Suspend:
    """FLOWCONTROL-SUSPEND (True) or -RESUME (False): stop or resume sending
    serial data to this client."""

    on: bool


Action = bytes | Reply | Purge | Suspend
Apply = Callable[[PortState], PortState]
"""Make this the port's state (only the fields that differ change); the
state then in effect."""


def _unchanged(state: PortState) -> PortState:
    return state


_OURS: Final = frozenset({Option.BINARY, Option.SGA, Option.COM_PORT})
"""Options we agree to do (answer DO with WILL)."""
_THEIRS: Final = frozenset({Option.BINARY, Option.SGA, Option.COM_PORT})
"""Options we agree that the client does (answer WILL with DO)."""


def subnegotiation(command: int, value: bytes) -> bytes:
    """IAC SB COM-PORT-OPTION command value IAC SE, the value escaped."""
    return bytes((IAC, SB, Option.COM_PORT, command)) + escape(value) + bytes((IAC, SE))


def _requested(command: int, arg: int, state: PortState) -> PortState:
    """The state a SET-BAUDRATE..SET-CONTROL command with ``arg`` asks for
    (``state`` itself for a request of the current value or a bad one)."""
    if command == Cpc.SET_BAUDRATE:
        return replace(state, baud_rate=arg) if arg else state
    if command == Cpc.SET_DATASIZE:
        return replace(state, data_bits=arg) if 5 <= arg <= 8 else state
    if command == Cpc.SET_PARITY:
        return replace(state, parity=_PARITY_NAMES[arg]) if arg in _PARITY_NAMES else state
    if command == Cpc.SET_STOPSIZE:
        return replace(state, stop_bits=_STOP_NAMES[arg]) if arg in _STOP_NAMES else state
    if arg in _FLOW_NAMES:  # SET-CONTROL
        return replace(state, flow_control=_FLOW_NAMES[arg])
    if arg in (5, 6):
        return replace(state, break_on=arg == 5)
    if arg in (8, 9):
        return replace(state, dtr=arg == 8)
    if arg in (11, 12):
        return replace(state, rts=arg == 11)
    return state


def _value(command: int, code: int, state: PortState) -> bytes:
    """The reply's value to a SET-BAUDRATE..SET-CONTROL command: what is in
    effect (for SET-CONTROL, of what ``code`` was about)."""
    if command == Cpc.SET_BAUDRATE:
        return struct.pack("!I", state.baud_rate)
    if command == Cpc.SET_DATASIZE:
        return bytes((state.data_bits,))
    if command == Cpc.SET_PARITY:
        return bytes((PARITY_CODES[state.parity],))
    if command == Cpc.SET_STOPSIZE:
        return bytes((STOP_CODES[state.stop_bits],))
    if code in (0, 1, 2, 3) or code >= 17:  # flow (outbound/both); DCD/DSR/DTR flow: ours
        value = FLOW_CODES[state.flow_control]
    elif code in (13, 14, 15, 16):
        value = FLOW_IN_CODES[state.flow_control]
    elif code in (4, 5, 6):
        value = 5 if state.break_on else 6
    elif code in (7, 8, 9):
        value = 8 if state.dtr else 9
    else:  # 10, 11, 12
        value = 11 if state.rts else 12
    return bytes((value,))


class ComPortServer:
    """The access-server side of one RFC 2217 session.

    ``start()`` is what to send when the session opens; ``receive`` what
    the client sent; ``modem_changed`` is called by the runtime when the
    port's modem lines change and returns the notification to send (empty
    when the client's mask filters it out).
    """

    def __init__(self, signature: str = "nf") -> None:
        self.signature = signature.encode()
        self.parser = TelnetParser()
        self.ours: set[int] = set()
        """Options enabled on our side (we WILL)."""
        self.theirs: set[int] = set()
        """Options enabled on the client's side (it WILL)."""
        self._asked_ours: set[int] = set()
        self._asked_theirs: set[int] = set()
        self.modem_mask = 0xFF
        self.line_mask = 0x00
        self.suspended = False
        self.client_signature = b""

    @property
    def com_port(self) -> bool:
        """The client agreed to COM-PORT-OPTION (either way round)."""
        return Option.COM_PORT in self.ours or Option.COM_PORT in self.theirs

    def start(self) -> bytes:
        """The opening offers: BINARY and SGA both ways."""
        out = bytearray()
        for option in (Option.BINARY, Option.SGA):
            self._asked_ours.add(option)
            self._asked_theirs.add(option)
            out += bytes((IAC, WILL, option, IAC, DO, option))
        return bytes(out)

    def receive(
        self, data: bytes, state: PortState, may_change: bool, apply: Apply = _unchanged
    ) -> list[Action]:
        """What the client sent: data for the port and actions, in order.

        ``state`` is the port's state before this data; ``may_change``
        whether this client may change it now; ``apply`` makes a change
        (called in stream order, before the reply to it is made).
        """
        items = self.parser.feed(data)
        if len(items) == 1 and type(items[0]) is bytes:
            return items  # type: ignore[return-value]  # the fast path: one data chunk
        out: list[Action] = []
        for item in items:
            if type(item) is bytes:
                out.append(item)
            elif isinstance(item, Negotiation):
                had = self.com_port
                reply = self._negotiate(item.verb, item.option)
                if reply:
                    out.append(Reply(reply))
                if self.com_port and not had:
                    # the modem state from the start, as ser2net and the
                    # NPort do: pyserial's cts/dsr/ri/cd need one to answer
                    modem = bytes((state.modem & self.modem_mask,))
                    out.append(Reply(subnegotiation(Cpc.NOTIFY_MODEMSTATE + SERVER_OFFSET, modem)))
            elif isinstance(item, Subnegotiation) and item.option == Option.COM_PORT:
                state = self._com_port(item.payload, state, may_change, apply, out)
            # other subnegotiations and commands: ignored
        return out

    # -- option negotiation (RFC 1143's rules, without the queue) ----------------
    def _negotiate(self, verb: int, option: int) -> bytes:
        if verb in (DO, DONT):
            return self._side(verb == DO, option, self.ours, self._asked_ours, _OURS, WILL, WONT)
        return self._side(verb == WILL, option, self.theirs, self._asked_theirs, _THEIRS, DO, DONT)

    @staticmethod
    def _side(
        yes: bool,
        option: int,
        enabled: set[int],
        asked: set[int],
        supported: frozenset[int],
        accept: int,
        refuse: int,
    ) -> bytes:
        """One side of one option: answer only what changes state, so that
        two agents never loop (RFC 854: never acknowledge a state you are
        already in)."""
        was_asked = option in asked
        asked.discard(option)
        if yes:
            if option in enabled:
                return b""
            if option in supported:
                enabled.add(option)
                return b"" if was_asked else bytes((IAC, accept, option))
            return bytes((IAC, refuse, option))
        if option in enabled:
            enabled.discard(option)
            return b"" if was_asked else bytes((IAC, refuse, option))
        return b""

    # -- COM-PORT-OPTION ---------------------------------------------------------------
    def _com_port(
        self, payload: bytes, state: PortState, may_change: bool, apply: Apply, out: list[Action]
    ) -> PortState:
        """One client command: its effect and its reply; the state after it."""
        if not payload:
            return state
        command, value = payload[0], payload[1:]
        new = state
        answer: bytes | None = None
        if Cpc.SET_BAUDRATE <= command <= Cpc.SET_CONTROL:
            if command == Cpc.SET_BAUDRATE and len(value) < 4:
                return state
            arg = struct.unpack("!I", value[:4])[0] if command == Cpc.SET_BAUDRATE else 0
            code = value[0] if value else 0
            if may_change:
                new = _requested(command, arg or code, state)
                if new != state:
                    new = apply(new)
            answer = _value(command, code, new)
        elif command == Cpc.SIGNATURE:
            if value:
                self.client_signature = value[:MAX_SUBNEGOTIATION]
                return state  # the client told us its own: nothing to answer
            answer = self.signature
        elif command == Cpc.NOTIFY_LINESTATE:
            answer = b"\x00"  # no line errors are tracked: an empty line state
        elif command == Cpc.NOTIFY_MODEMSTATE:
            answer = bytes((state.modem & self.modem_mask,))
        elif command in (Cpc.FLOWCONTROL_SUSPEND, Cpc.FLOWCONTROL_RESUME):
            on = command == Cpc.FLOWCONTROL_SUSPEND
            if on != self.suspended:
                self.suspended = on
                out.append(Suspend(on))
            return state  # RFC 2217 gives these no reply
        elif command == Cpc.SET_LINESTATE_MASK:
            self.line_mask = value[0] if value else 0
            answer = bytes((self.line_mask,))
        elif command == Cpc.SET_MODEMSTATE_MASK:
            self.modem_mask = value[0] if value else 0
            answer = bytes((self.modem_mask,))
        elif command == Cpc.PURGE_DATA:
            code = value[0] if value else 0
            if code not in (1, 2, 3):
                return state
            out.append(Purge(receive=code in (1, 3), transmit=code in (2, 3)))
            answer = bytes((code,))
        else:
            return state  # unknown (or a server command echoed back): ignored
        out.append(Reply(subnegotiation(command + SERVER_OFFSET, answer)))
        return new

    # -- notifications -----------------------------------------------------------------
    def modem_changed(self, modem: int, previous: int) -> bytes:
        """NOTIFY-MODEMSTATE for a change from ``previous`` to ``modem``
        (its delta bits set), if the client's mask lets a changed line
        through: a state bit that differs, or one whose delta bit is set
        (a ring indicator's trailing edge has only the latter)."""
        changed = ((modem ^ previous) & 0xF0) | (modem & 0x0F) << 4
        if not self.com_port or not changed & self.modem_mask:
            return b""  # nothing changed that the client asked to hear of
        return subnegotiation(
            Cpc.NOTIFY_MODEMSTATE + SERVER_OFFSET, bytes((modem & self.modem_mask,))
        )
