"""Accepting TCP sessions: server mode, and the secondary port of any mode.

``admit`` is the decision (allowed-peer, busy, takeover) and is what the
in-memory harness of the tests calls; ``listen`` accepts on a real
listener around it, in loop callbacks (no task per listener).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nf.protocol.arbitration import Role
from nf.runtime.session import Session

if TYPE_CHECKING:
    from nf.runtime.channel import ChannelRuntime

log = logging.getLogger(__name__)


class AllowedPeers:
    """The channel's ``allowed-peer`` prefixes (empty: everyone)."""

    __slots__ = ("_nets",)

    def __init__(self, prefixes: Sequence[str]) -> None:
        self._nets = [ipaddress.ip_network(p, strict=False) for p in prefixes]

    def __contains__(self, address: str) -> bool:
        if not self._nets:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 peer of a dual-stack (::) socket
        return any(ip in net for net in self._nets)


class Server:
    """Admits incoming connections to the channel, one session per role."""

    __slots__ = ("_listening", "allowed", "channel", "takeover")

    def __init__(self, channel: ChannelRuntime, allowed: AllowedPeers, takeover: bool) -> None:
        self.channel = channel
        self.allowed = allowed
        self.takeover = takeover
        self._listening: dict[int, tuple[socket.socket, Role]] = {}
        """The listeners accepted on, by fd."""

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def admit(self, role: Role, remote: tuple[str, int]) -> Session | None:
        """The session for a connection from ``remote`` to the port of
        ``role``, or None when it is refused (counted in sessions-refused).
        A session it takes over from is closed first, so two quick
        connections never both get one role."""
        channel = self.channel
        address = remote[0]
        if address not in self.allowed:
            channel.counters.sessions_refused += 1
            log.info("channel %s: refused %s (allowed-peer)", channel.name, address)
            return None
        existing = channel.session_of(role)
        if existing is not None:
            if not self.takeover:
                channel.counters.sessions_refused += 1
                log.info("channel %s: refused %s (busy)", channel.name, address)
                return None
            existing.close("taken over")
        return Session(channel, role, remote)

    def listen(self, raw: socket.socket, role: Role) -> None:
        """Accept on ``raw`` (a listening, non-blocking socket) from now
        until ``close``, in loop callbacks: an idle listener costs a
        registered fd, not a task waiting on it."""
        self._listening[raw.fileno()] = (raw, role)
        self._loop.add_reader(raw.fileno(), self._accept, raw, role)

    def close(self) -> None:
        """Stop accepting (the channel stops; it closes the listeners)."""
        for fd in self._listening:
            self._loop.remove_reader(fd)
        self._listening.clear()

    def _accept(self, raw: socket.socket, role: Role) -> None:
        """A connection is waiting: take it, and decide on it in the next
        loop iteration, as an accept task woken by this callback did (a
        session whose peer closed in this iteration has left by then, so
        a client that reconnects at once is not refused as busy).  The
        listener is not read until that connection is refused or has
        joined (``Session.connection_made``): the next one is admitted
        against it."""
        try:
            conn, remote = raw.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE and the like: as a failed accept task did
            self.close()
            self.channel.fail(exc)
            return
        conn.setblocking(False)
        self._loop.remove_reader(raw.fileno())
        self._loop.call_soon(
            self._admit_accepted, raw, role, conn, (str(remote[0]), int(remote[1]))
        )

    def _admit_accepted(
        self, raw: socket.socket, role: Role, conn: socket.socket, remote: tuple[str, int]
    ) -> None:
        if raw.fileno() not in self._listening:  # the channel stopped meanwhile
            conn.close()
            return
        session = self.admit(role, remote)
        if session is None:
            conn.close()
            self._resume(raw, role)
        elif not self.channel.spawn(self._connect, session, conn, raw, role):
            conn.close()

    def _resume(self, raw: socket.socket, role: Role) -> None:
        """Read the listener again, unless it was closed meanwhile."""
        if raw.fileno() in self._listening:
            self._loop.add_reader(raw.fileno(), self._accept, raw, role)

    async def _connect(
        self, session: Session, conn: socket.socket, raw: socket.socket, role: Role
    ) -> None:
        try:
            # the session joins in connection_made, before this returns
            await self._loop.connect_accepted_socket(session.itself, conn)
        except OSError as exc:
            log.info("channel %s: accept %s: %s", self.channel.name, session.remote[0], exc)
            conn.close()
        finally:
            self._resume(raw, role)
