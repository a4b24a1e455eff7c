"""Peer mode: serial frames as UDP datagrams to every destination, and
datagrams from allowed peers to the serial port.  No sessions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING

from nf.protocol.packing import Framer
from nf.runtime.server import AllowedPeers
from nf.runtime.udp import Datagrams

if TYPE_CHECKING:
    from nf.runtime.channel import ChannelRuntime

log = logging.getLogger(__name__)


class Peer:
    """The UDP side of a peer-mode channel: its serial data goes here
    (``serial_received``) instead of to sessions."""

    def __init__(
        self,
        channel: ChannelRuntime,
        udp: Datagrams | None,
        destinations: tuple[tuple[str, int], ...],
        allowed: AllowedPeers,
    ) -> None:
        self.channel = channel
        self.udp = udp
        self.destinations = destinations
        self.allowed = allowed
        self.framer: Framer = channel.new_framer()
        self._backlog: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self._waiting = False
        """The socket buffer is full: a writer callback waits for room."""

    # -- serial -> network -------------------------------------------------------------
    def serial_received(self, data: bytes) -> None:
        framer = self.framer
        self.send(framer.feed(data, self.channel.clock()))
        self.channel.wake_for(framer.deadline())

    def deadline(self) -> float | None:
        return self.framer.deadline()

    def flush_due(self, now: float) -> None:
        self.send(self.framer.flush_due(now))

    def send(self, frames: list[bytes]) -> None:
        """Each frame goes to every destination, and every datagram sent
        counts (as each TCP write of a session does)."""
        if self.udp is None or not frames:
            return
        for frame in frames:
            for destination in self.destinations:
                self._backlog.append((frame, destination))
        self._flush()

    def _flush(self) -> None:
        """Send the backlog; a full socket buffer holds the serial port's
        reading until the socket is writable again."""
        udp = self.udp
        backlog = self._backlog
        counters = self.channel.counters
        while backlog and udp is not None:
            frame, (host, port) = backlog[0]
            try:
                if not udp.send_now(frame, host, port):
                    if not self._waiting:
                        self._waiting = True
                        asyncio.get_running_loop().add_writer(udp.sock, self._flush)
                        self.channel.hold_serial()
                    return
            except OSError as exc:
                counters.dropped_bytes += len(frame)
                self.channel.last_error = f"send to {host}:{port}: {exc.strerror or exc}"
            else:
                counters.serial_to_net_bytes += len(frame)
                counters.serial_to_net_frames += 1
            backlog.popleft()
        if self._waiting and udp is not None:
            self._waiting = False
            asyncio.get_running_loop().remove_writer(udp.sock)
            self.channel.release_serial()

    # -- network -> serial -------------------------------------------------------------
    async def receive(self, udp: Datagrams) -> None:
        """Datagrams to the serial port, for ever.  A UDP sender cannot be
        slowed down, so reading goes on while the tty is full (WRITE_HIGH
        bytes waiting for it) and what arrives then is dropped and
        counted: left in the socket, the excess would overflow from the
        kernel's buffer uncounted (Linux counts those in datagrams, not
        bytes)."""
        while True:
            data, address = await udp.receive(self._kernel_dropped)
            self.datagram_received(data, address)

    def datagram_received(self, data: bytes, address: str) -> None:
        channel = self.channel
        if address not in self.allowed or channel.serial_full:
            channel.counters.dropped_bytes += len(data)
            return
        channel.write_serial(data)

    def _kernel_dropped(self, total: int) -> None:
        channel = self.channel
        channel.last_error = (
            f"the kernel dropped {total} datagrams in all: the UDP receive buffer overflowed"
        )
        log.warning("channel %s: %s", channel.name, channel.last_error)

    def close(self) -> None:
        """The channel stops: what is still waiting to be sent is dropped
        (counted)."""
        if self._waiting and self.udp is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_writer(self.udp.sock)
        self.channel.counters.dropped_bytes += sum(len(frame) for frame, _ in self._backlog)
        self._backlog.clear()
