"""Accepting TCP sessions: server mode, and the secondary port of any mode.

``admit`` is the decision (allowed-peer, busy, takeover) and is what the
in-memory harness of the tests calls; ``serve`` is the accept loop on a
real listener around it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from anyio.abc import SocketAttribute, SocketListener

from nf.protocol.arbitration import Role
from nf.runtime.session import Session

if TYPE_CHECKING:
    from nf.runtime.channel import ChannelRuntime

log = logging.getLogger(__name__)


class AllowedPeers:
    """The channel's ``allowed-peer`` prefixes (empty: everyone)."""

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

    def __init__(self, channel: ChannelRuntime, allowed: AllowedPeers, takeover: bool) -> None:
        self.channel = channel
        self.allowed = allowed
        self.takeover = takeover

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

    async def serve(self, listener: SocketListener, role: Role) -> None:
        """Accept on ``listener`` for ever (cancelled when the channel stops)."""
        loop = asyncio.get_running_loop()
        raw: socket.socket = listener.extra(SocketAttribute.raw_socket)
        while True:
            conn, remote = await loop.sock_accept(raw)
            session = self.admit(role, (str(remote[0]), int(remote[1])))
            if session is None:
                conn.close()
                continue
            try:
                # the session joins in connection_made, before this returns
                await loop.connect_accepted_socket(session.itself, conn)
            except OSError as exc:
                log.info("channel %s: accept %s: %s", self.channel.name, remote[0], exc)
                conn.close()
