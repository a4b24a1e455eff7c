"""One TCP session of a channel: the asyncio protocol of its socket transport.

A session knows its channel only through the channel's public interface
(``join``, ``gone``, ``apply``, ``hold_serial``/``release_serial``, the
RFC 2217 ``port_state``/``may_control``/``set_line``/``purge``, the
``arbiter``, ``counters`` and ``clock`` attributes): the channel owns the
routing, the session only reports what its transport does.

On a channel with ``rfc2217``, the session is a Telnet session with the
COM-PORT-OPTION: what it reads goes through its ``ComPortServer``
(nf.protocol.telnet) first, which hands back the data for the arbiter and
the commands for the channel, in stream order; what it sends is escaped by
the channel (``ChannelRuntime._send_frame``), after packing, so a frame
boundary never splits an escape.  The mode
objects (``nf.runtime.server``, ``nf.runtime.client``) create sessions; the
in-memory harness of the tests (tests/channelpair.py) drives them with a
fake transport.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import TYPE_CHECKING

import anyio

from nf.protocol.arbitration import Role
from nf.protocol.telnet import ComPortServer, PortState, Purge, Reply, Suspend

if TYPE_CHECKING:
    from nf.runtime.channel import ChannelRuntime

_TCPI_BYTES_ACKED = 120
"""Offset of tcpi_bytes_acked (u64) in Linux's struct tcp_info (since 4.1)."""


def bytes_acked(transport: asyncio.BaseTransport) -> int | None:
    """Bytes of ours the peer's TCP acknowledged, or None where the kernel
    does not tell."""
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCPI_BYTES_ACKED + 8:
        return None
    acked: int = struct.unpack_from("=Q", info, _TCPI_BYTES_ACKED)[0]
    return acked


class Session(asyncio.Protocol):
    """One TCP session: the asyncio protocol of its socket transport.

    It is created before the connection exists (so the accept loop can
    refuse or take over first) and joins its channel in ``connection_made``.
    """

    def __init__(self, channel: ChannelRuntime, role: Role, remote: tuple[str, int]) -> None:
        self.channel = channel
        self.id = 0
        self.role = role
        self.remote = remote
        self.connected_at = ""
        self.framer = channel.new_framer()
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.last_activity = channel.clock()
        self.close_reason = "closed by peer"
        self.transport: asyncio.Transport | None = None
        self.joined = False
        """In the channel's sessions and known to the arbiter."""
        self.holding = False
        """Its socket buffer is full: it holds the serial port's reading."""
        self.closed = anyio.Event()
        self._acked_at_start = 0
        self.telnet: ComPortServer | None = ComPortServer() if channel.cfg.rfc2217 else None
        """The RFC 2217 side of the session (None: raw bytes)."""
        self.suspended = False
        """An RFC 2217 client asked us to stop sending (FLOWCONTROL-SUSPEND)."""

    def itself(self) -> Session:
        """The protocol factory that hands asyncio this made-in-advance session."""
        return self

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._acked_at_start = bytes_acked(transport) or 0  # a client's SYN counts as one
        self.channel.join(self)

    def data_received(self, data: bytes) -> None:
        if not self.joined:
            return
        self.rx_bytes += len(data)
        channel = self.channel
        self.last_activity = now = channel.clock()
        telnet = self.telnet
        if telnet is None:
            channel.apply(channel.arbiter.from_net(self.role, data, now))
            return
        state, may = channel.port_state, channel.may_control(self)
        for action in telnet.receive(data, state, may, self._set_line):
            if type(action) is bytes:
                channel.apply(channel.arbiter.from_net(self.role, action, now))
            elif isinstance(action, Reply):
                self.send_telnet(action.data)
            elif isinstance(action, Purge):
                channel.purge(self, action.receive, action.transmit)
            elif isinstance(action, Suspend):
                self.suspend(action.on)

    def _set_line(self, state: PortState) -> PortState:
        """An RFC 2217 client's change, made by the channel; what is in effect."""
        return self.channel.set_line(self, state)

    def send_telnet(self, data: bytes) -> None:
        """Telnet negotiation and COM-PORT-OPTION replies: not serial data."""
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            self.tx_bytes += len(data)

    def suspend(self, on: bool) -> None:
        """FLOWCONTROL-SUSPEND/RESUME: hold the port's reading, as a full
        socket buffer does (``pause_writing``), until the client resumes."""
        if on != self.suspended:
            self.suspended = on
            if on:
                self.channel.hold_serial()
            else:
                self.channel.release_serial()

    def eof_received(self) -> bool:
        return False  # the peer is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            if self.close_reason == "closed by peer":
                self.close_reason = f"connection lost: {exc}"
            if self.joined:
                self.channel.counters.dropped_bytes += self.unacknowledged()
        self.channel.gone(self)
        self.closed.set()

    def unacknowledged(self) -> int:
        """Bytes handed to this connection that its peer never acknowledged.

        When a connection fails (reset, timed out), asyncio discards what it
        still buffered and the kernel what it still queued; neither says
        how much.  What the peer's TCP acknowledged is known (TCP_INFO, the
        socket is still open here), so the loss is what was handed over
        minus that.
        """
        transport = self.transport
        acked = bytes_acked(transport) if transport is not None else None
        if acked is None:
            return 0
        return max(0, self.tx_bytes - (acked - self._acked_at_start))

    def pause_writing(self) -> None:
        if self.joined and not self.holding:
            self.holding = True
            self.channel.hold_serial()

    def resume_writing(self) -> None:
        if self.holding:
            self.holding = False
            self.channel.release_serial()

    # -------------------------------------------------------------------------------
    def close(self, reason: str) -> None:
        """End the session now (flushing its last frame, bounded)."""
        self.close_reason = reason
        self.channel.gone(self)
