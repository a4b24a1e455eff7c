"""UDP sockets of peer channels: a non-blocking socket driven by readiness.

anyio's ``UDPSocket`` (on asyncio) is not used for the relay because it
loses data silently, which SPEC §3 forbids: received datagrams wait in a
100-entry ring that drops the oldest when the serial port is slower than
the network, and a failed ``sendto`` (no route, wrong address family) is
handed to ``error_received`` and never raised.  Here the channel reads
every datagram as it arrives and drops (and counts, in bytes) what comes
while the serial port's write buffer is full, so the kernel's receive
buffer does not overflow, which Linux would count only in datagrams
(SO_MEMINFO; if the relay falls that far behind all the same, the
channel's last-error says how many); and a send that fails raises
``OSError`` for the channel to count.  Sending is synchronous
(``send_now``): the channel sends from the serial port's read callback
and keeps a backlog only while the socket buffer is full.

A peer channel whose listen address is one host address and that joins a
multicast group gets a second, receive-only socket bound to the group
address: on Linux a socket bound to a unicast address never receives
datagrams addressed to a group, and binding the main socket to 0.0.0.0
instead would receive unicast on every address of the host.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable

import anyio

RECEIVE_SIZE = 65536
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux
_SK_MEMINFO_DROPS = 8
"""Index of the socket's drop counter in SO_MEMINFO's u32 array."""


class Datagrams:
    """One bound UDP socket: ``receive`` used by one task, ``send_now`` on the loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._kernel_drops = 0
        """Datagrams the kernel dropped because the receive buffer was full
        (looked up whenever the socket has been read empty): the one loss
        the relay cannot count in bytes, so it is made visible instead."""

    async def receive(self, on_kernel_drops: Callable[[int], None]) -> tuple[bytes, str]:
        """The next datagram and its source address; ``on_kernel_drops`` is
        told the new total when the kernel's drop count has grown."""
        while True:
            try:
                data, address = self.sock.recvfrom(RECEIVE_SIZE)
            except (BlockingIOError, InterruptedError):
                self._look_up_drops(on_kernel_drops)
                await anyio.wait_readable(self.sock)
                continue
            except ConnectionRefusedError:  # an ICMP error queued on the socket
                continue
            return data, str(address[0])

    def _look_up_drops(self, on_kernel_drops: Callable[[int], None]) -> None:
        try:
            info = self.sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 4 * 16)
        except OSError:
            return
        if len(info) < 4 * (_SK_MEMINFO_DROPS + 1):
            return
        drops: int = struct.unpack_from("=I", info, 4 * _SK_MEMINFO_DROPS)[0]
        if drops != self._kernel_drops:
            self._kernel_drops = drops
            on_kernel_drops(drops)

    def send_now(self, data: bytes, host: str, port: int) -> bool:
        """Send one datagram without waiting: False when the socket buffer
        is full (wait for writability and retry); OSError when the kernel
        refuses it."""
        try:
            self.sock.sendto(data, (host, port))
        except (BlockingIOError, InterruptedError):
            return False
        return True

    def close(self) -> None:
        self.sock.close()


class JoinError(OSError):
    """IP_ADD_MEMBERSHIP failed: the socket is bound, the group cannot be
    joined on that interface (ENODEV: no interface has the address, or no
    route for the group).  Its own type so that the message says "join",
    not "bind"."""

    def __init__(self, exc: OSError, group: str, interface: str) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.group = group
        self.interface = interface

    def __str__(self) -> str:
        return (
            f"cannot join multicast group {self.group} on {self.interface}: "
            f"{self.strerror or self.errno}"
        )


def _join(sock: socket.socket, group: str, interface: str) -> None:
    membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface))
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError as exc:
        raise JoinError(exc, group, interface) from exc
    with contextlib.suppress(OSError):  # only this socket's groups, not the host's
        sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)


def bind_peer(address: str, port: int, group: str | None) -> Datagrams:
    """The socket a peer channel receives unicast/broadcast on and sends from.
    With ``group`` and a wildcard address it also joins the group (on the
    interface the routing table picks).  OSError if it cannot bind,
    JoinError (an OSError) if it cannot join."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if group:
            # several receivers of one group on one host need SO_REUSEADDR
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        if group:
            wildcard = address in ("0.0.0.0", "::")
            interface = "0.0.0.0" if wildcard else address
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            if wildcard:
                _join(sock, group, interface)
        return Datagrams(sock)
    except BaseException:
        sock.close()
        raise


def bind_group(address: str, port: int, group: str) -> Datagrams:
    """Receive-only socket for ``group``:``port``, joined on the interface
    that has ``address`` (a host address, not a wildcard); JoinError if it
    cannot join."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((group, port))
        _join(sock, group, address)
        return Datagrams(sock)
    except BaseException:
        sock.close()
        raise


def needs_group_socket(address: str, group: str | None) -> bool:
    return bool(group) and address not in ("0.0.0.0", "::")
