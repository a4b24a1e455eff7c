"""NETCONF over the host's OpenSSH: the ``netconf`` subsystem of sshd.

Operators who want NETCONF on the system's sshd (its PAM, keys,
certificates, AllowGroups, audit log, port 830 beside 22) add to
``sshd_config``::

    Subsystem netconf /usr/local/bin/nf-subsystem /run/nf/netconf.sock

and run ``nf run --subsystem-socket /run/nf/netconf.sock``.  sshd
authenticates the user and starts ``nf-subsystem`` (nf.subsystem) as that
user, the SSH channel on its standard input and output.  The helper
connects to this socket and hands the control plane those two
descriptors (SCM_RIGHTS) and ``$SSH_CONNECTION``, then waits for the
control plane to close the connection.  The session's bytes never pass
through the helper: the control plane reads and writes sshd's pipes
itself, so a request costs what it costs behind any SSH server, without
a relay in between (yuma123's netconf-subsystem copies every byte).

- The session's user is the local account the helper runs as, by name:
  the kernel says which (SO_PEERCRED), not the helper.  NACM applies to
  that name as to any other.  An account named as nf's recovery user
  (admin) is refused: the recovery session is nf's own admin, not
  whoever has that name on the host.  Who may connect at all is the
  socket's mode: 0660, so the users sshd lets in need its group (make
  the socket's directory set-group-ID to that group).
- ``$SSH_CONNECTION`` only names the client's address in logs and RFC
  6470 events: it is what the helper says, the one thing here that is.
- The helper's connection is the session's: when the session ends the
  control plane closes it and the helper exits, so sshd sends the exit
  status and closes the channel; when the client goes away sshd closes
  the pipes, which ends the session.
- Everything above the byte stream (hello, framing, rpcs, notifications,
  NACM, monitoring, kill-session) is the server's (nf.northbound.server);
  the RFC 6022 transport is netconf-ssh, which it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import select
import socket
import stat
import struct
import threading
import time
from typing import Any

from nf.northbound.server import HANDSHAKE_TIMEOUT, Acceptor, NetconfServer, Stream, Wakeup
from nf.subsystem import GREETING

log = logging.getLogger(__name__)

MAX_GREETING = 1024


class PipeStream:
    """sshd's two descriptors (pipes or one socket) as a session's stream,
    safe for one reader and one writer thread: both run non-blocking and
    wait in select(), beside a pipe that ``wake`` writes to end a wait.
    Each read, write and close of a descriptor is done under its side's
    lock, and nothing touches a descriptor once it is closed: its number
    may already be another connection's."""

    def __init__(self, reading: int, writing: int) -> None:
        for fd in {reading, writing}:
            os.set_blocking(fd, False)
        self.reading = reading
        self.writing = writing
        self._timeout: float | None = None
        self._wakeup = Wakeup()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._output_ended = False
        self._closed = False

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def _wait(self, fd: int, write: bool, deadline: float | None) -> None:
        if self._wakeup.is_set:  # (its descriptors may be closed already)
            raise EOFError("closed")
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("timed out")
        readers = [self._wakeup.fd] if write else [self._wakeup.fd, fd]
        select.select(readers, [fd] if write else [], [], remaining)

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def recv(self, size: int) -> bytes:
        deadline = self._deadline()
        while True:
            with self._read_lock:
                if self._wakeup.is_set:
                    raise EOFError("closed")
                try:
                    return os.read(self.reading, size)
                except BlockingIOError:
                    pass
            self._wait(self.reading, False, deadline)

    def sendall(self, data: bytes) -> None:
        deadline = self._deadline()
        view = memoryview(data)
        while view:
            with self._write_lock:
                if self._wakeup.is_set or self._output_ended:
                    raise EOFError("closed")
                try:
                    view = view[os.write(self.writing, view) :]
                    continue
                except BlockingIOError:
                    pass
            self._wait(self.writing, True, deadline)

    def end_output(self) -> None:
        """The client's end of file (sshd's EOF on the channel): the write
        side shut down if it is a socket (sshd's socketpair, which the
        reading descriptor may be too), closed if a pipe."""
        with self._write_lock:
            if self._output_ended or self._closed:
                return
            self._output_ended = True
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.fstat(self.writing).st_mode):
                    with socket.socket(fileno=os.dup(self.writing)) as sock:
                        sock.shutdown(socket.SHUT_WR)
                else:
                    os.close(self.writing)
                    self.writing = -1

    def drain(self, linger: float) -> None:
        """Read and drop what the client still sends until it closes, for up
        to ``linger`` s (unread bytes are what make a reset)."""
        deadline = time.monotonic() + linger
        with contextlib.suppress(Exception):
            while (remaining := deadline - time.monotonic()) > 0:
                if not select.select([self.reading, self._wakeup.fd], [], [], remaining)[0]:
                    return
                with self._read_lock:
                    if self._wakeup.is_set or not os.read(self.reading, 64 * 1024):
                        return

    def wake(self) -> None:
        """A read or write waiting in another thread ends (EOFError)."""
        self._wakeup.set()

    def close(self) -> None:
        self.wake()
        with self._read_lock, self._write_lock:
            if self._closed:
                return
            self._closed = True
            for fd in {self.reading, self.writing} - {-1}:
                with contextlib.suppress(OSError):
                    os.close(fd)


class SubsystemLink:
    """A session on sshd's channel, with the helper's connection, whose
    close is the helper's cue to exit."""

    transport = "netconf-ssh"

    def __init__(self, stream: PipeStream, helper: socket.socket) -> None:
        self._stream = stream
        self.helper = helper
        self._ended = threading.Lock()
        self._hung_up = threading.Lock()

    @property
    def stream(self) -> Stream:
        return self._stream

    def goodbye(self) -> None:
        """End of file to the client; sshd's exit status follows the helper's exit."""
        if self._ended.acquire(blocking=False):
            self._stream.end_output()

    def hang_up(self, linger: float) -> None:
        """Read (and drop) what the client still sends until it closes, for
        up to ``linger`` s, then close everything: the helper exits."""
        if not self._hung_up.acquire(blocking=False):
            return
        self.goodbye()
        self._stream.drain(linger)
        self._stream.close()
        with contextlib.suppress(OSError):
            self.helper.close()


def _received(conn: socket.socket) -> tuple[str, list[int]]:
    """The helper's message: ``$SSH_CONNECTION`` and the two descriptors
    (reading, writing); ValueError for anything else (any descriptors
    that came are closed)."""
    data, fds, flags, _ = socket.recv_fds(conn, MAX_GREETING, 2)
    try:
        if flags & socket.MSG_CTRUNC:
            raise ValueError("more descriptors than two")
        if len(fds) != 2:
            raise ValueError(f"{len(fds)} descriptors instead of 2")
        if not data.startswith(GREETING) or not data.endswith(b"\n"):
            raise ValueError("not an nf-subsystem greeting")
        for fd in fds:
            mode = os.fstat(fd).st_mode
            # a terminal when the client asked sshd for one (scrapli's
            # ``ssh -tt``): nf-subsystem made it raw, a plain byte pipe
            if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
                raise ValueError("a descriptor that is not a pipe, socket or terminal")
        return data[len(GREETING) : -1].decode("utf-8", "replace"), fds
    except (ValueError, OSError):
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


def _peer(ssh_connection: str) -> str:
    """``client-address:port`` from ``$SSH_CONNECTION`` (client address,
    client port, server address, server port); ``local`` without it."""
    fields = ssh_connection.split()
    if len(fields) == 4 and fields[1].isdigit():
        return f"{fields[0]}:{fields[1]}"
    return "local"


def peer_user(conn: socket.socket) -> str:
    """The name of the account the process at the other end runs as
    (SO_PEERCRED); KeyError when it has none."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return pwd.getpwuid(uid).pw_name


class SubsystemService(Acceptor):
    """Sessions handed over by nf-subsystem on ``listener`` (a Unix socket)."""

    name = "subsystem-accept"

    def __init__(self, server: NetconfServer, listener: socket.socket) -> None:
        super().__init__(listener)
        self.server = server

    def start(self) -> str:
        """Start accepting; the socket's path."""
        self._start()
        return str(self._socket.getsockname()) if self._socket is not None else ""

    def _accepted(self, conn: socket.socket, addr: Any) -> None:
        threading.Thread(
            target=self._connection, args=(conn,), name="subsystem", daemon=True
        ).start()

    def _connection(self, conn: socket.socket) -> None:
        try:
            accepted = self._accept(conn)
        finally:
            self._places.release()
        if accepted is None:
            return
        link, username, peer = accepted
        session = self.server.open_session(link, username, peer)
        if session is None:  # stopping
            link.hang_up(0)
            return
        session.run()

    def _accept(self, conn: socket.socket) -> tuple[SubsystemLink, str, str] | None:
        """Who is at the other end and what it hands over, within
        HANDSHAKE_TIMEOUT; None (the reason logged, and told the helper,
        which prints it) otherwise.  The helper's message is read before
        anything is refused: closing on unread bytes would reset the
        connection, and the helper would not hear why."""
        conn.settimeout(HANDSHAKE_TIMEOUT)
        fds: list[int] = []
        try:
            ssh_connection, fds = _received(conn)
            username = peer_user(conn)
            if username == self.server.context.recovery_user:
                raise ValueError(
                    f"{username} is nf's own recovery user (never restricted by NACM), "
                    "not a login of this host"
                )
        except (OSError, ValueError, KeyError) as exc:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            reason = "an account without a name" if isinstance(exc, KeyError) else str(exc)
            self.server.note(logging.WARNING, "subsystem connection refused: %s", reason)
            with contextlib.suppress(OSError):
                conn.sendall(f"refused: {reason}\n".encode())
            with contextlib.suppress(OSError):
                conn.close()
            return None
        conn.settimeout(None)
        reading, writing = fds
        return SubsystemLink(PipeStream(reading, writing), conn), username, _peer(ssh_connection)
