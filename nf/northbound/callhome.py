"""NETCONF call home (RFC 8071): the daemon connects out to its managers.

For each ``[[call-home]]`` manager of the transport file a thread opens a
TCP connection to it and then plays the server's part on it, as if the
manager had connected: the SSH server (host key, password or public-key
login of ``users.json``) or the TLS server (certificate, cert-to-name),
then the same NETCONF session as on the listeners.

When to dial is ``Schedule`` (pure, tested on its own):

- ``persistent``: at once at start, again one second after a session
  ends, and after a failed attempt (refused, unreachable, handshake or
  login failed) with a delay doubling from 1 s to ``reconnect-max``
  (nf.protocol.backoff, as a client channel's reconnects);
- ``periodic``: at start and then every ``period`` seconds from it; an
  attempt that fails waits for the next period, and a session still open
  at a period's start is left alone (the manager ends it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Callable

from nf.northbound.server import NetconfServer
from nf.northbound.transports import CallHome
from nf.protocol.backoff import Backoff

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""A manager that does not answer the TCP connection within this has failed."""


class Schedule:
    """The delays between call-home attempts of one manager (pure)."""

    def __init__(
        self, connection: str, period: float, reconnect_max: float, start: float = 1.0
    ) -> None:
        self.connection = connection
        self.period = period
        self._backoff = Backoff(min(start, reconnect_max), reconnect_max)
        self._anchor: float | None = None

    def first(self, now: float) -> float:
        """The delay before the first attempt (none), made at ``now``."""
        self._anchor = now
        return 0.0

    def _next_period(self, now: float) -> float:
        anchor = now if self._anchor is None else self._anchor
        periods = math.floor((now - anchor) / self.period) + 1
        delay = anchor + periods * self.period - now
        # rounding may put "now" on the boundary itself: that one is past
        return delay if delay > self.period * 1e-6 else delay + self.period

    def failed(self, now: float) -> float:
        """The attempt made before ``now`` came to no session."""
        if self.connection == "periodic":
            return self._next_period(now)
        return self._backoff.next()

    def ended(self, now: float) -> float:
        """A session ran and ended at ``now``."""
        if self.connection == "periodic":
            return self._next_period(now)
        self._backoff.reset()
        return self._backoff.next()


Serve = Callable[[socket.socket, str], bool]
"""Run the server's side of a session on a connection to a manager, to its
end; False when no session came of it."""


class CallHomeClient:
    """One manager, dialled from a thread of its own."""

    def __init__(self, target: CallHome, server: NetconfServer, serve: Serve) -> None:
        self.target = target
        self.server = server
        self.serve = serve
        self._stopping = threading.Event()
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"call-home-{target.name}", daemon=True
        )
        self.sessions = 0
        """Sessions that ran (for tests and the log)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop dialling; a connection being negotiated is cut (a session in
        progress is the server's to close)."""
        self._stopping.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float = 2.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        target = self.target
        schedule = Schedule(target.connection, target.period, target.reconnect_max)
        delay = schedule.first(time.monotonic())
        failing = False
        while not self._stopping.wait(delay):
            started = time.monotonic()
            try:
                served, why = self._attempt()
            except Exception:  # never let one manager's thread die
                log.exception("%s failed", target)
                served, why = False, "internal error"
            if self._stopping.is_set():
                return
            now = time.monotonic()
            if served:
                self.sessions += 1
                failing = False
                delay = schedule.ended(now)
                log.info("%s: session ended; next attempt in %.1f s", target, delay)
                continue
            delay = schedule.failed(now)
            level = logging.INFO if failing else logging.WARNING
            failing = True
            log.log(
                level,
                "%s: no session (%s, after %.1f s); next attempt in %.1f s",
                target,
                why,
                now - started,
                delay,
            )

    def _attempt(self) -> tuple[bool, str]:
        target = self.target
        try:
            conn = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            return False, exc.strerror or str(exc) or type(exc).__name__
        conn.settimeout(None)
        with self._lock:
            self._conn = conn
        peer = f"{target.host}:{target.port}"
        log.info("%s: connected", target)
        try:
            if self._stopping.is_set():
                return False, "stopping"
            served = self.serve(conn, peer)
        finally:
            with self._lock:
                self._conn = None
            with contextlib.suppress(OSError):
                conn.close()
        return served, "handshake or login failed; see above"
