"""NETCONF over TLS (RFC 7589): the listener, the handshake, the session's stream.

The TLS side only authenticates: once the handshake is done and the
client's certificate has a name (``certname``), the connection becomes a
``Session`` of the same ``NetconfServer`` as SSH's (nf.northbound.server:
hello, RFC 6242 framing, rpcs, notifications, NACM, kill-session, the
ietf-netconf-monitoring counters), on a ``TlsLink``.

- TLS 1.2 or later (Python's ssl, OpenSSL), mutual: a client without a
  certificate the configured client CAs verify (unknown, expired, not
  yet valid, not for client use) fails the handshake; a verified one
  that no cert-to-name entry maps is closed before any NETCONF byte.
- Each connection does its handshake in a thread of its own within
  ``HANDSHAKE_TIMEOUT`` in total (not per read: a client that trickles
  bytes is cut off as surely as a silent one); the connections negotiating
  at once are capped per source address and overall, as for SSH.
- One SSL object must not be used by two threads at once (OpenSSL), but a
  subscribed session reads in its thread while its notifier writes in
  another: ``TlsStream`` runs the socket non-blocking, waits in select()
  without the lock and does each SSL read or write under it.
- Call home over TLS (nf.northbound.callhome) runs the same ``serve`` on a
  connection the daemon opened: the daemon is still the TLS server.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from typing import Any

from cryptography import x509

from nf.northbound.certname import Fingerprint, issuers, map_to_name
from nf.northbound.server import HANDSHAKE_TIMEOUT, Acceptor, NetconfServer, Stream, Wakeup
from nf.northbound.throttle import source_of
from nf.northbound.transports import TlsSettings, check_private_key

log = logging.getLogger(__name__)

RECORD = 4096
"""The most plaintext written in one TLS record.  ncclient's TLS client
reads 4096 bytes each time select() says its socket is readable: the rest
of a larger record stays in its SSL buffer, unseen by select(), and a reply
sent in 16 KiB records was never read whole (its <get> timed out).  4 KiB
records cost 29 bytes of framing each."""
TRANSPORT = "netconf-tls"
"""The ietf-netconf-monitoring transport identity of these sessions."""


def _no_password() -> bytes:
    raise ValueError("encrypted private keys are not supported (store it unencrypted, mode 0600)")


def server_context(settings: TlsSettings) -> tuple[ssl.SSLContext, list[x509.Certificate]]:
    """The server's TLS context and the certificates it trusts for clients;
    ValueError naming the file that cannot be used (never its content)."""
    check_private_key(settings.private_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(settings.certificate, settings.private_key, password=_no_password)
    except OSError as exc:  # SSLError is one: a bad PEM, a key not of the certificate
        raise ValueError(
            f"TLS certificate {settings.certificate} or its key {settings.private_key}: "
            f"{exc.strerror or getattr(exc, 'reason', None) or exc}"
        ) from exc
    try:
        ctx.load_verify_locations(cafile=str(settings.client_ca))
        anchors = x509.load_pem_x509_certificates(settings.client_ca.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"TLS client CA file {settings.client_ca}: "
            f"{getattr(exc, 'strerror', None) or getattr(exc, 'reason', None) or exc}"
        ) from exc
    return ctx, anchors


class TlsStream:
    """An SSLSocket as a session's stream, safe for one reader and one
    writer thread (see the module docstring); ``wake`` ends a blocked read."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.lock = threading.Lock()
        self._timeout: float | None = None
        self._wakeup = Wakeup()

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def _wait(self, want: str, deadline: float | None) -> None:
        """Until the socket is ready (``r``/``w``); TimeoutError at the
        deadline, EOFError once woken."""
        if self._wakeup.is_set:
            raise EOFError("closed")
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("timed out")
        sock = self.sock.fileno()
        readers = [self._wakeup.fd] + ([sock] if want == "r" else [])
        select.select(readers, [sock] if want == "w" else [], [], remaining)
        if self._wakeup.is_set:
            raise EOFError("closed")

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def recv(self, size: int) -> bytes:
        deadline = self._deadline()
        while True:
            if self._wakeup.is_set:
                raise EOFError("closed")
            with self.lock:
                try:
                    return self.sock.recv(size)
                except ssl.SSLWantReadError:
                    want = "r"
                except ssl.SSLWantWriteError:
                    want = "w"
            self._wait(want, deadline)

    def sendall(self, data: bytes) -> None:
        deadline = self._deadline()
        view = memoryview(data)
        while view:
            if self._wakeup.is_set:
                raise EOFError("closed")
            with self.lock:
                try:
                    sent = self.sock.send(view[:RECORD])
                except ssl.SSLWantWriteError:
                    sent, want = 0, "w"
                except ssl.SSLWantReadError:
                    sent, want = 0, "r"
            if sent:
                view = view[sent:]
            else:
                self._wait(want, deadline)

    def wake(self) -> None:
        """A read or write waiting in another thread ends (EOFError)."""
        self._wakeup.set()

    def close(self) -> None:
        self.wake()
        with contextlib.suppress(OSError):
            self.sock.close()


class TlsLink:
    """A session's TLS connection."""

    transport = TRANSPORT

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._stream = TlsStream(sock)
        self._done = threading.Lock()

    @property
    def stream(self) -> Stream:
        return self._stream

    def goodbye(self) -> None:
        """TLS has no exit status: the close_notify of hang_up says it all."""

    def hang_up(self, linger: float) -> None:
        """close_notify, then wait up to ``linger`` s for the client to close
        (dropping what it still sends: unread bytes make a reset), then close."""
        if not self._done.acquire(blocking=False):
            return
        stream = self._stream
        stream.wake()  # a reader of the session's ends now
        deadline = time.monotonic() + linger
        raw = stream.sock
        with contextlib.suppress(Exception), stream.lock:
            raw.unwrap()  # sends close_notify; the peer's answer is read below
        with contextlib.suppress(Exception):
            while (remaining := deadline - time.monotonic()) > 0:
                if not select.select([raw.fileno()], [], [], remaining)[0]:
                    break
                if not socket.socket.recv(raw, 64 * 1024):
                    break  # the client's EOF
        stream.close()


class TlsService(Acceptor):
    """NETCONF over TLS on ``listener`` (None: call home only), sessions of ``server``."""

    name = "tls-accept"

    def __init__(
        self, server: NetconfServer, settings: TlsSettings, listener: socket.socket | None
    ) -> None:
        super().__init__(listener)
        self.server = server
        self.settings = settings
        self.context, self.anchors = server_context(settings)

    def start(self) -> tuple[str, int] | None:
        """Start accepting; the bound (host, port), or None without a listener."""
        if self._socket is None:
            return None
        self._start()
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def _accepted(self, conn: socket.socket, addr: Any) -> None:
        throttle = self.server.throttle
        peer = f"{addr[0]}:{addr[1]}"
        source = source_of(str(addr[0]))
        if not throttle.connection_opened(source):
            with contextlib.suppress(OSError):
                conn.close()
            self._places.release()
            self.server.note(
                logging.WARNING,
                "TLS connection from %s closed: %d connections of %s negotiating already",
                peer,
                throttle.policy.max_unauthenticated,
                source,
            )
            return
        threading.Thread(
            target=self._connection, args=(conn, peer, source), name=f"tls-{peer}", daemon=True
        ).start()

    def _connection(self, conn: socket.socket, peer: str, source: str) -> None:
        try:
            accepted = self.handshake(conn, peer)
        finally:
            self.server.throttle.connection_done(source)
            self._places.release()
        if accepted is not None:
            self._run(*accepted, peer)

    def serve(self, conn: socket.socket, peer: str) -> bool:
        """Be the TLS server on ``conn`` (one this side opened: call home)
        and run its NETCONF session to the end; False when no session came
        of it (handshake failed, no name for the certificate)."""
        accepted = self.handshake(conn, peer)
        if accepted is None:
            return False
        return self._run(*accepted, peer)

    def _run(self, sock: ssl.SSLSocket, username: str, peer: str) -> bool:
        link = TlsLink(sock)
        session = self.server.open_session(link, username, peer)
        if session is None:  # stopping
            link.hang_up(0)
            return False
        session.run()
        return True

    def handshake(self, conn: socket.socket, peer: str) -> tuple[ssl.SSLSocket, str] | None:
        """The TLS handshake within HANDSHAKE_TIMEOUT and the client's user
        name; None (the connection closed, the reason logged) otherwise."""
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            log.info("TLS connection from %s dropped: %s", peer, exc)
            conn.close()
            return None
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        sock.setblocking(False)
        try:
            while True:
                want: tuple[list[ssl.SSLSocket], list[ssl.SSLSocket]]
                try:
                    sock.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    want = ([sock], [])
                except ssl.SSLWantWriteError:
                    want = ([], [sock])
                remaining = deadline - time.monotonic()
                if self._stopping.is_set() or self.server.stopping:
                    raise ConnectionAbortedError("server stopping")
                if remaining <= 0:
                    raise TimeoutError(f"no TLS handshake within {HANDSHAKE_TIMEOUT:.0f} s")
                select.select(*want, [], min(remaining, 0.5))
            der = sock.getpeercert(binary_form=True)
            if der is None:  # CERT_REQUIRED: cannot happen
                raise ssl.SSLError("no client certificate")
            client = x509.load_der_x509_certificate(der)
        except (OSError, ValueError) as exc:
            self.server.note(
                logging.WARNING,
                "TLS connection from %s refused: %s",
                peer,
                getattr(exc, "verify_message", None) or exc or type(exc).__name__,
            )
            with contextlib.suppress(OSError):
                sock.close()
            return None
        username = map_to_name(self.settings.cert_to_name, issuers(client, self.anchors))
        if username is None:
            self.server.note(
                logging.WARNING,
                "TLS connection from %s refused: certificate %s (sha256 %s) matches no "
                "cert-to-name entry",
                peer,
                client.subject.rfc4514_string(),
                Fingerprint.of(der),
            )
            with contextlib.suppress(OSError):
                sock.close()
            return None
        log.info(
            "TLS client %s from %s is user %r", client.subject.rfc4514_string(), peer, username
        )
        return sock, username
