"""A raw NETCONF-over-SSH client for transport tests (RFC 6242).

Unlike ncclient it does exactly what the test says and nothing more: it
can send bytes that are not valid NETCONF, skip or garble the hello, frame
a message in odd chunks, and it reads replies with an explicit framing so
that a test can tell end-of-message (1.0) from chunked (1.1) replies.

Every blocking step has a time limit, so a server that stops answering
fails a test instead of hanging it: socket connect, SSH banner, handshake
and authentication (paramiko's own timeouts), channel open and subsystem
request (a watchdog closes the transport when the time is up), and every
read (``Channel.settimeout``).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

import paramiko
from lxml import etree

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NC = f"{{{NC_NS}}}"
BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"

ERROR_TAGS = frozenset(  # RFC 6241 Appendix A
    {
        "in-use",
        "invalid-value",
        "too-big",
        "missing-attribute",
        "bad-attribute",
        "unknown-attribute",
        "missing-element",
        "bad-element",
        "unknown-element",
        "unknown-namespace",
        "access-denied",
        "lock-denied",
        "resource-denied",
        "rollback-failed",
        "data-exists",
        "data-missing",
        "operation-not-supported",
        "operation-failed",
        "partial-operation",
        "malformed-message",
    }
)
"""Every error-tag RFC 6241 Appendix A defines."""
TIMEOUT = 5.0


class Closed(Exception):
    """The server closed the connection before a whole message arrived."""


class FramingError(Exception):
    """The server's bytes do not follow the framing we expect."""


def frame_eom(message: bytes) -> bytes:
    return message + EOM


def frame_chunks(message: bytes, sizes: Iterable[int] | None = None) -> bytes:
    """Chunked framing; ``sizes`` (cycled) splits the message into several chunks."""
    if sizes is None:
        return b"\n#%d\n%s\n##\n" % (len(message), message)
    out = []
    pos = 0
    for size in itertools.cycle(list(sizes)):
        if pos >= len(message):
            break
        part = message[pos : pos + size]
        out.append(b"\n#%d\n%s" % (len(part), part))
        pos += size
    return b"".join(out) + b"\n##\n"


def hello_xml(capabilities: Sequence[str] = (BASE_10, BASE_11), ns: str = NC_NS) -> bytes:
    caps = "".join(f"<capability>{c}</capability>" for c in capabilities)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="{ns}">'
        f"<capabilities>{caps}</capabilities></hello>"
    ).encode()


def rpc_xml(body: str, message_id: str | None = "1", attrs: str = "") -> bytes:
    mid = f' message-id="{message_id}"' if message_id is not None else ""
    return f'<rpc xmlns="{NC_NS}"{mid}{attrs}>{body}</rpc>'.encode()


GET_CONFIG = "<get-config><source><running/></source></get-config>"


def tcp_connect(
    host: str, port: int, timeout: float = TIMEOUT, source: str | None = None
) -> socket.socket:
    """A TCP connection with TCP_NODELAY, for every SSH client of the tests.

    The server sets TCP_NODELAY; a client without it lets Nagle hold a small
    request until the server's delayed ACK (40 ms on Linux) whenever an
    earlier segment is unacknowledged, a wait that is the client's, not the
    server's, and that the suite would pay on every other round trip.
    """
    bind = None if source is None else (source, 0)
    sock = socket.create_connection((host, port), timeout=timeout, source_address=bind)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RawClient:
    """One SSH connection with one ``netconf`` subsystem channel."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str | None = None,
        pkey: paramiko.PKey | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.pkey = pkey
        self.timeout = timeout
        self.transport: paramiko.Transport | None = None
        self.channel: paramiko.Channel | None = None
        self.buffer = b""
        self.chunked = False
        self.session_id: int | None = None
        self.server_capabilities: list[str] = []

    # -- connection ------------------------------------------------------------
    def connect(self, subsystem: bool = True) -> RawClient:
        """TCP, SSH handshake, authentication, channel, ``netconf`` subsystem."""
        sock = tcp_connect(self.host, self.port, self.timeout)
        transport = paramiko.Transport(sock)
        self.transport = transport
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        transport.auth_timeout = self.timeout
        try:
            transport.start_client(timeout=self.timeout)
            if self.pkey is not None:
                transport.auth_publickey(self.username, self.pkey)
            else:
                transport.auth_password(self.username, self.password or "", fallback=False)
            with self._watchdog():
                channel = transport.open_session(timeout=self.timeout)
                self.channel = channel
                channel.settimeout(self.timeout)
                if subsystem:
                    channel.invoke_subsystem("netconf")
        except BaseException:
            self.close()
            raise
        return self

    @contextlib.contextmanager
    def _watchdog(self) -> Iterator[None]:
        """Close the transport if the block takes longer than the timeout."""
        timer = threading.Timer(self.timeout, self.close)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def close(self) -> None:
        if self.channel is not None:
            with contextlib.suppress(Exception):
                self.channel.close()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bytes -------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Send raw bytes as they are (one SSH write, within the timeout)."""
        assert self.channel is not None
        self.channel.settimeout(self.timeout)
        self.channel.sendall(data)

    def _fill(self, deadline: float) -> None:
        """Read at least one more byte into the buffer, or raise Closed/TimeoutError."""
        assert self.channel is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete message within the time limit; have {self.buffer!r}")
        self.channel.settimeout(remaining)
        try:
            data = self.channel.recv(65536)
        except TimeoutError:
            raise TimeoutError(
                f"no complete message within the time limit; have {self.buffer[:200]!r}"
            ) from None
        if not data:
            raise Closed(f"connection closed; unread: {self.buffer[:200]!r}")
        self.buffer += data

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def read_eom(self, timeout: float | None = None) -> bytes:
        """One end-of-message framed message (RFC 6242 §4.3)."""
        deadline = self._deadline(timeout)
        while (idx := self.buffer.find(EOM)) == -1:
            self._fill(deadline)
        message, self.buffer = self.buffer[:idx], self.buffer[idx + len(EOM) :]
        return message

    def read_chunked(self, timeout: float | None = None) -> bytes:
        """One chunked message (RFC 6242 §4.2), parsed strictly."""
        deadline = self._deadline(timeout)
        parts: list[bytes] = []
        while True:
            while len(self.buffer) < 4:
                self._fill(deadline)
            if self.buffer[:2] != b"\n#":
                raise FramingError(f"not a chunk header: {self.buffer[:40]!r}")
            if self.buffer[2:4] == b"#\n":
                self.buffer = self.buffer[4:]
                if not parts:
                    raise FramingError("end-of-chunks without a chunk")
                return b"".join(parts)
            while (idx := self.buffer.find(b"\n", 2)) == -1:
                if len(self.buffer) > 13:
                    raise FramingError(f"chunk header too long: {self.buffer[:40]!r}")
                self._fill(deadline)
            digits = self.buffer[2:idx]
            if not digits.isdigit() or digits.startswith(b"0"):
                raise FramingError(f"bad chunk size {digits!r}")
            size = int(digits)
            while len(self.buffer) < idx + 1 + size:
                self._fill(deadline)
            parts.append(self.buffer[idx + 1 : idx + 1 + size])
            self.buffer = self.buffer[idx + 1 + size :]

    def read_message(self, timeout: float | None = None) -> bytes:
        """One message in the framing the hellos negotiated."""
        return self.read_chunked(timeout) if self.chunked else self.read_eom(timeout)

    def wait_closed(self, timeout: float | None = None) -> bytes:
        """Read until the server closes the channel; return what came before.

        Raises TimeoutError when the connection is still open at the deadline.
        """
        deadline = self._deadline(timeout)
        with contextlib.suppress(Closed):
            while True:
                self._fill(deadline)
        rest, self.buffer = self.buffer, b""
        return rest

    # -- NETCONF -------------------------------------------------------------------
    def read_hello(self, timeout: float | None = None) -> etree._Element:
        """The server's hello (always end-of-message framed)."""
        hello = etree.fromstring(self.read_eom(timeout))
        self.server_capabilities = [
            (c.text or "").strip() for c in hello.iterfind(f"{NC}capabilities/{NC}capability")
        ]
        sid = hello.findtext(f"{NC}session-id")
        self.session_id = int(sid) if sid is not None and sid.strip().isdigit() else None
        return hello

    def hello(self, capabilities: Sequence[str] = (BASE_10, BASE_11)) -> etree._Element:
        """Exchange hellos; afterwards the framing is chunked if both offer base:1.1."""
        server = self.read_hello()
        self.send(frame_eom(hello_xml(capabilities)))
        self.chunked = BASE_11 in capabilities and BASE_11 in self.server_capabilities
        return server

    def send_message(self, message: bytes) -> None:
        self.send(frame_chunks(message) if self.chunked else frame_eom(message))

    def request(self, message: bytes, timeout: float | None = None) -> etree._Element:
        """Send one framed message and parse the one reply."""
        self.send_message(message)
        return etree.fromstring(self.read_message(timeout))

    def rpc(
        self, body: str, message_id: str | None = "1", timeout: float | None = None
    ) -> etree._Element:
        return self.request(rpc_xml(body, message_id), timeout)


def error_tags(reply: etree._Element) -> list[str]:
    return [e.findtext(f"{NC}error-tag") or "" for e in reply.iterfind(f"{NC}rpc-error")]


def is_ok(reply: etree._Element) -> bool:
    return reply.tag == f"{NC}rpc-reply" and reply.find(f"{NC}ok") is not None
