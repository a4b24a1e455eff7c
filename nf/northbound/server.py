"""NETCONF over SSH (RFC 6242): listener, SSH handshake, hello, framing, sessions.

Built on paramiko and the ``netconf`` package's framing transport, with the
library's gaps closed here rather than worked around in tests:

* the listener is bound to the address it is told (``--listen``,
  127.0.0.1 by default; see nf.boot); sshutil always binds every address;
* each connection does its SSH handshake in its own thread with time
  limits, so a slow or silent client never holds up the accept loop;
* framing is bounded (``max_message`` bytes, 16 MiB by default) in both
  end-of-message (1.0) and chunked (1.1) modes, and EOF ends the session in
  both (the library loops forever on EOF in 1.0 framing);
* the hello must be a ``<hello>`` in the base namespace offering base:1.0 or
  base:1.1 and no session-id; anything else, such as an rpc sent before the
  hello, ends the session cleanly;
* messages go to ``rpcs.handle_message``: malformed XML gets
  malformed-message and the session goes on;
* a subscribed session (RFC 5277) gets a second thread that sends its
  notifications between replies (:interleave); one send lock per session
  keeps messages whole.  Sessions starting and ending are published as
  RFC 6470 events;
* a session runs on a ``Link``: an SSH channel here (``SshLink``), a TLS
  connection in nf.northbound.tls (``TlsLink``); everything above the byte
  stream (hello, framing, rpcs, notifications, NACM, monitoring) is the
  same.  ``serve_ssh`` is the SSH server on a connection this side opened
  (call home, nf.northbound.callhome);
* failed logins are throttled per source address (``throttle``): delayed,
  then refused without hashing for a while; a source may have only so
  many connections negotiating at once: the excess waits for their places
  (a bounded number, for a bounded time) and beyond that is closed, before
  any SSH work.  What a storm logs is rate-limited.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import paramiko
from lxml import etree
from netconf.base import NetconfFramingTransport
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from nf import rfc3339
from nf.config.codec import MAX_XML_BYTES, NC_NS, parse_xml
from nf.northbound import notifications as events
from nf.northbound.auth import Users
from nf.northbound.notifications import Notifications, Outbox
from nf.northbound.rpcs import Context, handle_message
from nf.northbound.throttle import (
    Admission,
    Change,
    Credential,
    LogLimiter,
    Throttle,
    source_of,
)

log = logging.getLogger(__name__)
SSH_LOG = f"{__name__}.ssh"
"""paramiko's log of the server's SSH connections (``paramiko.transport`` is
the in-process clients' too)."""

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
HELLO_TIMEOUT = 60.0
HANDSHAKE_TIMEOUT = 30.0
SEND_TIMEOUT = 60.0
"""A client that reads nothing for this long loses its session (and its locks)."""
CLOSE_LINGER = 1.0
"""How long a closing session waits for the client to close its side."""
MAX_HANDSHAKES = 64
"""Connections negotiating SSH at once; more wait in the listen backlog."""


class SessionEnd(Exception):
    """The peer closed, broke framing, or the session was killed."""


class MessageTooBig(SessionEnd):
    pass


class SendTimeout(SessionEnd):
    """The client read nothing for SEND_TIMEOUT."""


BIG_PIECE = 64 * 1024
"""A piece of a message sent without being joined to its neighbours."""

_CHUNK_HEADER = re.compile(rb"\n#([1-9][0-9]{0,8})\n")
"""A chunk header whose size has at most 9 digits (under 4294967295, so
no check is needed); longer ones, the end of chunks and anything malformed
take the careful path."""


class BoundedFraming(NetconfFramingTransport):  # type: ignore[misc]
    """RFC 6242 framing on an SSH channel, with a size bound and EOF handling."""

    def __init__(self, channel: Stream, max_message: int) -> None:
        super().__init__(channel, 64 * 1024, False)
        self.max_message = max_message
        self._buf = bytearray()
        self._pos = 0
        """Received bytes not yet consumed start at ``_buf[_pos]``.  Reading
        moves the position instead of copying the rest of the buffer, which
        made a 1 MB message in 1-byte chunks cost seconds (quadratic)."""

    def _recv(self) -> bytes:
        if self.stream is None:
            raise SessionEnd("closed")
        try:
            data: bytes = self.stream.recv(64 * 1024)
        except (TimeoutError, OSError, EOFError) as exc:
            raise SessionEnd(str(exc) or type(exc).__name__) from exc
        if not data:
            raise SessionEnd("end of stream")
        return data

    def _fill(self) -> None:
        """Read more, dropping what was consumed once it is most of the buffer
        (amortised linear)."""
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += self._recv()

    def _avail(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return data

    def receive(self, chunked: bool) -> bytes:
        return self._receive_chunked() if chunked else self._receive_eom()

    def _receive_eom(self) -> bytes:
        searched = 0  # bytes after _pos known to hold no end marker
        while True:
            idx = self._buf.find(EOM, self._pos + searched)
            # the bound is on the message, whether or not its end has arrived
            # in the same read; without an end marker the last len(EOM) - 1
            # bytes may be the start of one
            length = idx - self._pos if idx != -1 else self._avail() - len(EOM) + 1
            if length > self.max_message:
                raise MessageTooBig(f"message over {self.max_message} bytes")
            if idx != -1:
                msg = self._take(idx - self._pos)
                self._pos += len(EOM)
                return msg
            searched = max(0, self._avail() - len(EOM) + 1)
            self._fill()

    def _need(self, n: int) -> None:
        while self._avail() < n:
            self._fill()

    def _peek(self, start: int, end: int) -> bytes:
        return bytes(self._buf[self._pos + start : self._pos + end])

    def _receive_chunked(self) -> bytes:
        """One chunked message.  Headers already in the buffer are matched
        by one regular expression each and their chunks appended to the
        message in place: a 1 MB message in 1-byte chunks (a million
        headers, legal in RFC 6242) cost 2 s in a header-by-header parse,
        during which the session held the interpreter.  Anything else (a
        header split across reads, the end of chunks, a malformed header)
        goes through ``_chunk_header``, which waits for the bytes it needs
        and names what is wrong."""
        message = bytearray()
        match, limit = _CHUNK_HEADER.match, self.max_message
        while True:
            buf, pos = self._buf, self._pos  # the loop below is the hot one
            received = len(buf)
            while (found := match(buf, pos)) is not None:
                start = found.end()
                end = start + int(found.group(1))
                if end > received:
                    break
                message += buf[start:end]  # a chunk already received: bound after
                pos = end
                if len(message) > limit:
                    raise MessageTooBig(f"message over {limit} bytes")
            self._pos = pos
            size = self._chunk_header(not message)
            if size is None:
                return bytes(message)
            if len(message) + size > self.max_message:
                raise MessageTooBig(f"message over {self.max_message} bytes")
            self._need(size)
            message += self._take(size)

    def _chunk_header(self, first: bool) -> int | None:
        """Read one chunk header: its size, or None at the end of chunks.
        SessionEnd for a malformed one (the session cannot resynchronise)."""
        while True:
            self._need(4)
            if self._peek(0, 2) != b"\n#":
                raise SessionEnd(f"bad chunk header {self._peek(0, 12)!r}")
            if self._peek(2, 4) == b"#\n":  # end of chunks
                self._pos += 4
                if first:
                    raise SessionEnd("end-of-chunks without a chunk")
                return None
            while True:
                idx = self._buf.find(b"\n", self._pos + 2)
                if idx != -1:
                    idx -= self._pos
                    break
                if self._avail() > 13:  # "\n#" + 10 digits + "\n"
                    raise SessionEnd("chunk size too long")
                self._fill()
            digits = self._peek(2, idx)
            if not digits.isdigit() or digits.startswith(b"0") or len(digits) > 10:
                raise SessionEnd(f"bad chunk size {digits!r}")
            size = int(digits)
            if size > 4294967295:
                raise SessionEnd("chunk size over 4294967295")
            self._pos += idx + 1
            return size

    def send(self, msg: bytes, chunked: bool) -> None:
        self.send_parts((msg,), chunked)

    def send_parts(self, parts: Sequence[bytes], chunked: bool) -> None:
        """One message given in pieces (``Handled.parts``), with its
        framing.  Small pieces are joined and sent together; a big one
        (a list of a whole <get>) is sent as it is: copying 1 MB costs
        more, in fresh pages, than the short SSH packet its neighbours
        then make."""
        if self.stream is None:
            raise SessionEnd("closed")
        if chunked:
            framed = (b"\n#%d\n" % sum(map(len, parts)), *parts, b"\n##\n")
        else:
            framed = (*parts, EOM)
        self.stream.settimeout(SEND_TIMEOUT)
        try:
            small: list[bytes] = []
            for part in framed:
                if len(part) < BIG_PIECE:
                    small.append(part)
                    continue
                if small:
                    self.stream.sendall(b"".join(small))
                    small = []
                self.stream.sendall(part)
            if small:
                self.stream.sendall(b"".join(small))
        except TimeoutError as exc:
            raise SendTimeout(f"client read nothing for {SEND_TIMEOUT:.0f} s") from exc
        except (OSError, EOFError) as exc:
            raise SessionEnd(str(exc)) from exc
        finally:
            with contextlib.suppress(Exception):
                self.stream.settimeout(None)


def client_capabilities(hello: bytes) -> list[str]:
    """The capabilities of a client's hello message; SessionEnd if it is
    not a <hello> in the base namespace offering base:1.0 or base:1.1 and
    no session-id.  Whitespace before the XML declaration is tolerated
    (``parse_xml``): scrapli-netconf sends its hello after a newline."""
    try:
        root = parse_xml(hello)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SessionEnd(f"hello is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{NC_NS}}}hello":
        raise SessionEnd(f"expected <hello> in {NC_NS}, got {root.tag}")
    if root.find(f"{{{NC_NS}}}session-id") is not None:
        raise SessionEnd("client hello carries a session-id")
    capabilities = [
        (c.text or "").strip()
        for c in root.iterfind(f"{{{NC_NS}}}capabilities/{{{NC_NS}}}capability")
    ]
    if BASE_11 not in capabilities and BASE_10 not in capabilities:
        raise SessionEnd("client offers neither base:1.0 nor base:1.1")
    return capabilities


class Session:
    """One NETCONF session on one SSH channel or TLS connection (``link``),
    run in its own thread."""

    def __init__(
        self,
        server: NetconfServer,
        session_id: int,
        link: Link,
        username: str,
        peer: str,
    ) -> None:
        self.server = server
        self.id = session_id
        self.link = link
        self.transport = link.transport
        """The RFC 6022 transport identity: netconf-ssh or netconf-tls."""
        self.username = username
        self.peer = peer
        self.framing = BoundedFraming(link.stream, server.max_message)
        self.chunked = False
        self.client_capabilities: list[str] = []
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self.login_time = rfc3339.now(micro=False)
        self.killed = False
        self.killed_by: int | None = None
        self.termination = "dropped"
        """RFC 6470 termination-reason unless killed: closed, timeout, bad-hello, other."""
        self.rpcs = RpcCounters()
        self._send_lock = threading.Lock()
        self.subscription: Outbox | None = None

    @property
    def who(self) -> events.Who:
        return events.Who(self.username, self.id, self.peer.rsplit(":", 1)[0])

    def send(self, message: bytes) -> None:
        """Send one whole message; replies and notifications interleave."""
        self.send_parts((message,))

    def send_parts(self, parts: Sequence[bytes]) -> None:
        """Send one whole message given in pieces (``Handled.parts``)."""
        with self._send_lock:
            self.framing.send_parts(parts, self.chunked)

    def count(self, outcome: str) -> None:
        """RFC 6022 counters, per session and for the server."""
        self.rpcs.count(outcome)
        self.server.stats.count(outcome)

    def hello(self) -> etree._Element:
        root = etree.Element(f"{{{NC_NS}}}hello", nsmap={None: NC_NS})  # type: ignore[dict-item]
        caps = etree.SubElement(root, f"{{{NC_NS}}}capabilities")
        for uri in self.server.capabilities:
            etree.SubElement(caps, f"{{{NC_NS}}}capability").text = uri
        etree.SubElement(root, f"{{{NC_NS}}}session-id").text = str(self.id)
        return root

    def _exchange_hellos(self) -> None:
        self.framing.send(
            etree.tostring(self.hello(), encoding="UTF-8", xml_declaration=True), False
        )
        self.link.stream.settimeout(HELLO_TIMEOUT)
        raw = self.framing.receive(False)
        self.link.stream.settimeout(None)
        self.client_capabilities = client_capabilities(raw)
        self.chunked = BASE_11 in self.client_capabilities

    def run(self) -> None:
        reason = "closed"
        try:
            try:
                self._exchange_hellos()
            except SessionEnd:
                self.server.stats.in_bad_hellos += 1
                self.termination = "bad-hello"
                raise
            self.server.stats.in_sessions += 1
            self.server.publish(events.session_start(self.who))
            log.info(
                "session %d: %s from %s, base:%s",
                self.id,
                self.username,
                self.peer,
                "1.1" if self.chunked else "1.0",
            )
            while not self._closed.is_set():
                try:
                    message = self.framing.receive(self.chunked)
                except MessageTooBig as exc:
                    self._send_too_big(str(exc))
                    raise
                handled = handle_message(self.server.context, self.id, message, self.username)
                self.count(handled.outcome)
                self.send_parts(handled.parts)
                if handled.subscription is not None:
                    self._start_notifier(handled.subscription)  # after its <ok>
                if handled.close:
                    reason = "close-session"
                    self.termination = "closed"
                    break
        except SessionEnd as exc:
            reason = str(exc)
            if isinstance(exc, SendTimeout):
                self.termination = "timeout"
        except Exception:  # never let one session take the daemon down
            log.exception("session %d failed", self.id)
            reason = "internal error"
        finally:
            # The session is over once the client is told (its close-session
            # <ok> is out): it ends, and its end is published, before the
            # wait for the client to hang up, which is the connection's affair.
            own = self._claim_close()
            if own:
                self._goodbye()
            try:
                self.server.session_ended(self, reason)
            finally:
                if own:
                    self._hang_up(CLOSE_LINGER)

    def _start_notifier(self, outbox: Outbox) -> None:
        self.subscription = outbox
        thread = threading.Thread(
            target=self._notify, args=(outbox,), name=f"netconf-notify-{self.id}", daemon=True
        )
        thread.start()

    def _notify(self, outbox: Outbox) -> None:
        """Send the subscription's notifications until it finishes or the
        session closes.  Only this thread waits on a slow client; a send
        that times out ends the session like a reply's would."""
        try:
            while not self._closed.is_set():
                message = outbox.take(0.5)
                if message is None:
                    if outbox.finished:
                        break
                    continue
                self.send(message)
                self.rpcs.out_notifications += 1
                self.server.stats.out_notifications += 1
        except SessionEnd as exc:
            log.info("session %d: notification not sent: %s", self.id, exc)
            if isinstance(exc, SendTimeout):
                self.termination = "timeout"
            self.close(CLOSE_LINGER)
        finally:
            outbox.on_finish()

    def _send_too_big(self, message: str) -> None:
        reply = (
            f'<?xml version="1.0" encoding="UTF-8"?><rpc-reply xmlns="{NC_NS}"><rpc-error>'
            "<error-type>transport</error-type><error-tag>too-big</error-tag>"
            f"<error-severity>error</error-severity><error-message>{message}; "
            "closing the session</error-message></rpc-error></rpc-reply>"
        ).encode()
        with contextlib.suppress(SessionEnd):
            self.send(reply)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self, linger: float = 0.0) -> None:
        """End the session the way SSH clients expect; safe from any thread,
        any number of times (the first call does it).

        The channel gets exit-status 0 and EOF, then the client has up to
        ``linger`` seconds to close its side before the channel and the
        connection are closed.  Tearing the connection down at once, with
        the client's last packets unread, made the kernel reset it: ncclient
        logged "Connection reset by peer" and ``ssh -s netconf`` exited 255.
        """
        if self._claim_close():
            self._goodbye()
            self._hang_up(linger)

    def close_in_background(self) -> None:
        """close(CLOSE_LINGER) from outside the session (kill-session, a
        subscriber overflowing, perhaps on the event loop): the session
        counts as closed when this returns, but talking to paramiko and
        waiting for the client happen in a thread of their own."""
        if self._claim_close():
            threading.Thread(
                target=self._end_in_background,
                name=f"netconf-close-{self.id}",
                daemon=True,
            ).start()

    def _claim_close(self) -> bool:
        """Mark the session closed: False if it already was."""
        with self._close_lock:
            if self._closed.is_set():
                return False
            self._closed.set()
            return True

    def _end_in_background(self) -> None:
        self._goodbye()
        self._hang_up(CLOSE_LINGER)

    def _goodbye(self) -> None:
        self.link.goodbye()

    def _hang_up(self, linger: float) -> None:
        self.link.hang_up(linger)


class Stream(Protocol):
    """The byte stream a session is framed on (a paramiko channel, a TLS stream)."""

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def settimeout(self, timeout: float | None) -> None: ...


class Link(Protocol):
    """What a session runs on: its stream and how the transport ends it.

    The session, framing and rpc code is the same over SSH (SshLink) and
    TLS (nf.northbound.tls.TlsLink); only the goodbye differs."""

    transport: str
    """The RFC 6022 transport identity (ietf-netconf-monitoring)."""

    @property
    def stream(self) -> Stream: ...

    def goodbye(self) -> None:
        """Tell the client the session is over (idempotent, never raises)."""

    def hang_up(self, linger: float) -> None:
        """Close once the client has closed its side, or after ``linger`` s."""


class SshStream:
    """A paramiko channel as a session's stream.

    paramiko's ``Channel.sendall`` slices off what each packet took
    (``s = s[sent:]``), copying the rest of the message every 32 KB
    packet: a 1.2 MB reply (a <get> of 1000 channels) was copied 37 times,
    28 MB of copies and fresh pages, more than its encryption.  It is
    handed a memoryview here, whose slices copy nothing."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def recv(self, size: int) -> bytes:
        return self.channel.recv(size)

    def sendall(self, data: bytes) -> None:
        # paramiko takes any buffer (Message.add_string writes it as is)
        self.channel.sendall(memoryview(data))  # type: ignore[arg-type]

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def close(self) -> None:
        """The netconf package's framing closes its stream when collected."""
        self.channel.close()


class SshLink:
    """A session's SSH channel (RFC 6242)."""

    transport = "netconf-ssh"

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel
        self._stream = SshStream(channel)

    @property
    def stream(self) -> Stream:
        return self._stream

    def goodbye(self) -> None:
        """What an SSH client waits for before it closes: exit-status and EOF."""
        with contextlib.suppress(Exception):
            self.channel.send_exit_status(0)
            self.channel.shutdown_write()

    def hang_up(self, linger: float) -> None:
        """Close the channel and the connection once the client has closed
        its side, or after ``linger`` seconds."""
        deadline = time.monotonic() + linger
        # Read (and drop) what the client still sends until it closes the
        # channel or the connection: unread bytes are what make a reset.
        with contextlib.suppress(Exception):
            while not self.channel.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.channel.settimeout(remaining)
                if not self.channel.recv(64 * 1024):
                    break  # the client's EOF
        with contextlib.suppress(Exception):
            self.channel.close()
        transport = self.channel.get_transport()
        if transport is not None:
            # then for the client to drop the connection (ssh sends its
            # disconnect after the channel close): the transport's thread
            # ends when it does
            with contextlib.suppress(Exception):
                transport.join(max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(Exception):
                transport.close()


class _ClientResets(logging.Filter):
    """A client that resets its connection is leaving, not a server error.

    ncclient closes its socket as soon as it has the close-session reply,
    without reading the exit-status, EOF and channel close that follow, so
    its kernel resets the connection while the server still reads it;
    paramiko logs that as an ERROR.  It is logged at INFO, like the end of
    the session that follows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().startswith(
            "Socket exception: Connection reset by peer"
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


logging.getLogger(SSH_LOG).addFilter(_ClientResets())


class _SSHInterface(paramiko.ServerInterface):
    """Authentication and channel policy of one SSH connection.

    paramiko calls the checks in the connection's own thread, so the
    throttle's delay holds this connection only."""

    def __init__(self, server: NetconfServer, peer: str, source: str) -> None:
        self.server = server
        self.peer = peer
        self.source = source
        self.username: str | None = None
        self.subsystem = threading.Event()
        self.channel_opened = False

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        users = self.server.users
        return self._check(username, "password", lambda: users.check_password(username, password))

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        users = self.server.users
        return self._check(username, "publickey", lambda: users.check_key(username, key))

    def _check(self, username: str, credential: Credential, check: Callable[[], bool]) -> int:
        if self.server.authenticate(self.source, self.peer, username, credential, check):
            self.username = username
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session" and not self.channel_opened:
            self.channel_opened = True  # one NETCONF session per SSH connection
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        """Grant and ignore a terminal request: the session stays raw bytes.

        scrapli's system transport runs ``ssh -tt -s netconf`` so that
        OpenSSH prompts for the password on its pty, and OpenSSH gives up
        on the connection when the request is refused.  No terminal exists
        on this side to set up, so granting it changes nothing.
        """
        return True

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "netconf":
            return False
        self.subsystem.set()
        return True


@dataclass
class RpcCounters:
    """The rpc counters RFC 6022 keeps per session and for the server."""

    in_rpcs: int = 0
    in_bad_rpcs: int = 0
    out_rpc_errors: int = 0
    out_notifications: int = 0

    def count(self, outcome: str) -> None:
        """One message handled: "ok", "error" (rpc-error reply) or "bad"."""
        if outcome == "bad":
            self.in_bad_rpcs += 1
        else:
            self.in_rpcs += 1
            if outcome == "error":
                self.out_rpc_errors += 1


@dataclass
class Statistics(RpcCounters):
    """ietf-netconf-monitoring /netconf-state/statistics (RFC 6022 §2.1.5)."""

    start_time: str = field(default_factory=lambda: rfc3339.now(micro=False))
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0


ENDING_WAIT = 0.8
"""Seconds close() waits for the sessions to end (their end callbacks, a
confirmed-commit rollback among them): within the second the supervisor
gives the control plane to stop."""


class SessionRegistry:
    """The live sessions by id, shared by the session threads.

    Its own object, made before the server, so that what must ask whether
    a session still exists (the datastore locks, the confirmed commit) gets
    it at construction, before there is a server to ask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, Session] = {}
        self._next_id = 1

    def add(self, make: Callable[[int], Session]) -> Session:
        """The session ``make`` builds with the next session-id, registered."""
        with self._lock:
            session_id = self._next_id
            self._next_id += 1
            session = self._sessions[session_id] = make(session_id)
        return session

    def remove(self, session_id: int) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def get(self, session_id: int) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    def who(self, session_id: int) -> events.Who | None:
        """The user and host of a live session, for netconf-config-change."""
        session = self.get(session_id)
        return None if session is None else session.who

    def is_live(self, session_id: int) -> bool:
        """Whether the session exists and has not been closed or killed."""
        session = self.get(session_id)
        return session is not None and not session.closed

    def all(self) -> list[Session]:
        with self._lock:
            return sorted(self._sessions.values(), key=lambda s: s.id)

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._sessions)


class Wakeup:
    """A flag another thread sets to end a wait in select() (a read or
    write of a stream that runs non-blocking): ``fd`` goes in the waiter's
    readers, and becomes readable when the flag is set.  Its pipe is
    closed when the Wakeup is collected, not when its stream closes: a
    thread may be about to select() on it then, and a number closed
    under it could already be another connection's."""

    def __init__(self) -> None:
        self.fd, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.is_set = False
        weakref.finalize(self, _close_fds, self.fd, self._write)

    def set(self) -> None:
        self.is_set = True
        with contextlib.suppress(OSError):
            os.write(self._write, b"x")


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Acceptor:
    """A listening socket accepted on in a thread of its own, with at most
    MAX_HANDSHAKES connections negotiating at once (the others wait in
    the backlog): the loop of the listeners beside SSH's (TLS in
    nf.northbound.tls, sshd's subsystem in nf.northbound.subsystem).
    ``_accepted`` takes each connection and its place, which the
    connection gives back (``_places.release``) once it has negotiated."""

    name = "accept"

    def __init__(self, listener: socket.socket | None) -> None:
        self._socket = listener
        self._stopping = threading.Event()
        self._places = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        assert self._socket is not None
        self._socket.settimeout(0.5)
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._socket.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        assert self._socket is not None
        while not self._stopping.is_set():
            if not self._places.acquire(timeout=0.5):
                continue
            try:
                conn, addr = self._socket.accept()
            except TimeoutError:
                self._places.release()
                continue
            except OSError:
                self._places.release()
                if self._stopping.is_set():
                    return
                log.exception("%s failed", self.name)
                continue
            self._accepted(conn, addr)

    def _accepted(self, conn: socket.socket, addr: Any) -> None:
        """Take ``conn`` and the place it holds (release it when done)."""
        raise NotImplementedError


class _Waiting:
    """A connection over its source's cap of negotiating ones, waiting its
    turn (nf.northbound.throttle.Waiter): a socket, no thread, no SSH work."""

    def __init__(self, server: NetconfServer, conn: socket.socket, peer: str, source: str) -> None:
        self.server, self.conn, self.peer, self.source = server, conn, peer, source

    def start(self) -> None:
        self.server._spawn(self.peer, self.server._waited, self.conn, self.peer, self.source)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        log.info(
            "connection from %s closed: it waited %s s for a place",
            self.peer,
            self.server.throttle.policy.max_wait,
        )


class NetconfServer:
    """The SSH listener; its live sessions are in ``registry``."""

    def __init__(
        self,
        context_factory: Callable[[NetconfServer], Context],
        users: Users,
        host_key: paramiko.PKey,
        capabilities: list[str],
        sock: socket.socket,
        on_session_end: Callable[[int], None] | None = None,
        max_message: int = MAX_XML_BYTES,
        notifications: Notifications | None = None,
        throttle: Throttle | None = None,
        registry: SessionRegistry | None = None,
    ) -> None:
        self.users = users
        self.host_key = host_key
        self.capabilities = capabilities
        self._socket = sock
        """Bound and listening already (nf.boot.Listen.bind): a busy port
        fails the boot before anything else is started."""
        self.max_message = max_message
        self.on_session_end = on_session_end
        self.registry = registry if registry is not None else SessionRegistry()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ending = threading.Condition()
        """Notified as each session's end (its callbacks included) is done."""
        self._ends_running = 0
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self.stats = Statistics()
        self.throttle = throttle if throttle is not None else Throttle()
        self._login_log = LogLimiter()
        self.notifications = notifications
        if notifications is not None:
            notifications.on_overflow = self._overflowed
        self.context = context_factory(self)

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Start accepting; returns the bound (host, port)."""
        sock = self._socket
        sock.settimeout(0.5)
        thread = threading.Thread(target=self._accept_loop, name="netconf-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop accepting and close every session."""
        self._stopping.set()
        for waiter in self.throttle.drain_waiting():
            waiter.close()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
        with contextlib.suppress(OSError):
            self._socket.close()
        for session in self.registry.all():
            session.termination = "other"  # the server is shutting down
            session.close()
        # the sessions' threads end them (a non-persistent confirmed commit
        # of one rolls back then): wait for that, not only for the sockets
        deadline = time.monotonic() + ENDING_WAIT
        with self._ending:
            while self.registry.all() or self._ends_running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("sessions still ending at shutdown: %s", self.registry.ids())
                    break
                self._ending.wait(remaining)
        for thread in self._threads:
            thread.join(timeout=2)

    # -- sessions ------------------------------------------------------------------
    def kill(self, session_id: int, by: int | None = None) -> bool:
        session = self.registry.get(session_id)
        if session is None:
            return False
        log.info("session %d killed", session_id)
        session.killed = True
        session.killed_by = by
        session.close_in_background()
        return True

    def publish(self, event: etree._Element) -> None:
        if self.notifications is not None:
            self.notifications.publish(event)

    def _overflowed(self, session_id: int) -> None:
        """A subscriber's outbox is full: close its session.  Called by the
        publisher, perhaps on the event loop, hence in the background."""
        session = self.registry.get(session_id)
        if session is None:
            return
        session.termination = "other"
        session.close_in_background()

    def sessions(self) -> list[Session]:
        return self.registry.all()

    def session_ids(self) -> list[int]:
        return self.registry.ids()

    def session_ended(self, session: Session, reason: str) -> None:
        with self._ending:
            self._ends_running += 1
        try:
            self._session_ended(session, reason)
        finally:
            with self._ending:
                self._ends_running -= 1
                self._ending.notify_all()

    def _session_ended(self, session: Session, reason: str) -> None:
        self.registry.remove(session.id)
        if session.termination != "closed" and not session.killed:
            # RFC 6022: ended other than by close-session or kill-session
            self.stats.dropped_sessions += 1
        log.info("session %d ended: %s", session.id, reason)
        if self.notifications is not None:
            self.notifications.unsubscribe(session.id)
            termination = "killed" if session.killed else session.termination
            self.publish(events.session_end(session.who, termination, session.killed_by))
        if self.on_session_end is not None:
            try:
                self.on_session_end(session.id)
            except Exception:  # the loop may already be gone at shutdown
                log.debug("session-end hook failed", exc_info=True)

    # -- logins ------------------------------------------------------------------
    def authenticate(
        self,
        source: str,
        peer: str,
        username: str,
        credential: Credential,
        check: Callable[[], bool],
    ) -> bool:
        """One authentication attempt, through the throttle: held while the
        source must wait, refused unchecked (no scrypt) while it is refused."""
        verdict = self.throttle.attempt(source)
        if verdict.wait > 0 and self._stopping.wait(verdict.wait):
            return False  # shutting down
        if verdict.refuse:
            self._login_note(
                logging.INFO, "login of %r from %s refused unchecked (throttled)", username, peer
            )
            return False
        if check():
            self.throttle.succeeded(source)
            return True
        change = self.throttle.failed(source, credential)
        if credential == "password":
            self._login_note(
                logging.WARNING, "authentication failed: user %r from %s (password)", username, peer
            )
        else:
            self._login_note(logging.INFO, "public key not accepted for %r from %s", username, peer)
        policy = self.throttle.policy
        if change is Change.DELAYING:
            self._login_note(
                logging.WARNING,
                "delaying logins from %s: %d failures (from %.0f s, doubling up to %.0f s)",
                source,
                policy.free_failures,
                policy.first_delay,
                policy.max_delay,
            )
        elif change is Change.REFUSING:
            self._login_note(
                logging.WARNING,
                "refusing logins from %s for %.0f s unchecked: too many failures",
                source,
                policy.refuse_for,
            )
        return False

    def _login_note(self, level: int, message: str, *args: object) -> None:
        """Log a line of the login throttle, unless a storm has used up the
        budget; the next line logged says how many were dropped."""
        dropped = self._login_log.allow()
        if dropped is None:
            return
        if dropped:
            message += " (%d login log lines dropped before this one)"
            args = (*args, dropped)
        log.log(level, message, *args)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            # At most MAX_HANDSHAKES connections negotiate at once; further
            # clients wait in the kernel's listen backlog until a place frees
            # (a handshake is bounded by HANDSHAKE_TIMEOUT), not refused.
            places = self._handshakes
            if not places.acquire(timeout=0.5):
                continue
            try:
                conn, addr = self._socket.accept()
            except TimeoutError:
                places.release()
                continue
            except OSError:
                places.release()
                if self._stopping.is_set():
                    return
                log.exception("accept failed")
                continue
            peer = f"{addr[0]}:{addr[1]}"
            source = source_of(str(addr[0]))
            # replies are written whole; Nagle would hold their tails for an ACK
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            admission = self.throttle.admit(source, _Waiting(self, conn, peer, source))
            if admission is Admission.NEGOTIATE:
                self._spawn(peer, self._connection, conn, peer, source, places)
                continue
            places.release()  # waiting or closed: no SSH work, no place
            if admission is Admission.REFUSE:
                with contextlib.suppress(OSError):
                    conn.close()
                self._login_note(
                    logging.WARNING,
                    "connection from %s closed: %d connections of %s negotiating "
                    "and %d waiting already",
                    peer,
                    self.throttle.policy.max_unauthenticated,
                    source,
                    self.throttle.policy.max_waiting,
                )

    def _spawn(self, peer: str, target: Callable[..., None], *args: Any) -> None:
        """A connection's thread, named after its peer."""
        thread = threading.Thread(target=target, args=args, name=f"netconf-{peer}", daemon=True)
        thread.start()

    def _waited(self, conn: socket.socket, peer: str, source: str) -> None:
        """A connection that waited for its source's place has it: it takes
        a handshake place like any (the accept loop's way), then negotiates."""
        places = self._handshakes
        while not places.acquire(timeout=0.5):
            if self._stopping.is_set():
                with contextlib.suppress(OSError):
                    conn.close()
                self.throttle.connection_done(source)
                return
        self._connection(conn, peer, source, places)

    def _connection(
        self, conn: socket.socket, peer: str, source: str, places: threading.BoundedSemaphore
    ) -> None:
        try:
            session = self._handshake(conn, peer, source)
        finally:
            places.release()
            self.throttle.connection_done(source)  # may start one that waited
        if session is not None:
            session.run()

    def _handshake(self, conn: socket.socket, peer: str, source: str) -> Session | None:
        """SSH negotiation, authentication and the netconf subsystem, time-bounded."""
        transport = paramiko.Transport(conn)
        transport.set_log_channel(SSH_LOG)
        transport.banner_timeout = HANDSHAKE_TIMEOUT
        transport.handshake_timeout = HANDSHAKE_TIMEOUT
        transport.auth_timeout = HANDSHAKE_TIMEOUT
        transport.add_server_key(self.host_key)
        iface = _SSHInterface(self, peer, source)
        try:
            transport.start_server(server=iface)
            channel = transport.accept(timeout=HANDSHAKE_TIMEOUT)
            if channel is None or iface.username is None:
                raise SessionEnd("no authenticated channel")
            if not iface.subsystem.wait(timeout=HANDSHAKE_TIMEOUT):
                raise SessionEnd("no netconf subsystem request")
        except (paramiko.SSHException, EOFError, OSError, SessionEnd) as exc:
            log.info("SSH connection from %s dropped: %s", peer, exc or type(exc).__name__)
            transport.close()
            return None
        if self._stopping.is_set():
            transport.close()
            return None
        return self.open_session(SshLink(channel), iface.username, peer)

    def open_session(self, link: Link, username: str, peer: str) -> Session | None:
        """A new session on an authenticated ``link`` (SSH, TLS, either of
        them called home), registered; None once the server is stopping."""
        if self._stopping.is_set():
            return None
        return self.registry.add(lambda session_id: Session(self, session_id, link, username, peer))

    def serve_ssh(self, conn: socket.socket, peer: str) -> bool:
        """Be the SSH server on a connection this side opened (RFC 8071 call
        home) and run its NETCONF session to the end; False when no session
        came of it (the handshake or the login failed)."""
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = self._handshake(conn, peer, source_of(peer.rsplit(":", 1)[0]))
        if session is None:
            return False
        session.run()
        return True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def note(self, level: int, message: str, *args: object) -> None:
        """Log a line of a connection refused or a login failed, within the
        budget that keeps a storm from flooding the log (TLS and call home
        use it as SSH does)."""
        self._login_note(level, message, *args)
