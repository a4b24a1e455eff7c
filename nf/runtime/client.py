"""Client mode: one outgoing TCP session, reconnected with backoff."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

from nf.protocol.arbitration import Role
from nf.protocol.backoff import Backoff
from nf.runtime.session import Session

if TYPE_CHECKING:
    from nf.runtime.channel import ChannelRuntime

CONNECT_TIMEOUT = 10.0
"""A connect attempt that gets no answer fails after this long."""


class Client:
    """Keeps the primary session of a client-mode channel connected."""

    def __init__(self, channel: ChannelRuntime, destination: tuple[str, int]) -> None:
        self.channel = channel
        self.destination = destination

    async def run(self) -> None:
        """Connect, wait for the session to end, back off, again (for ever)."""
        loop = asyncio.get_running_loop()
        host, port = self.destination
        backoff = Backoff()
        delay = 0.0  # the first attempt at once
        while True:
            if delay:
                await anyio.sleep(delay)
            session = Session(self.channel, Role.PRIMARY, (host, port))
            try:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    await loop.create_connection(session.itself, host, port)
            except OSError as exc:  # TimeoutError included
                reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or exc
                self.channel.last_error = f"connect to {host}:{port}: {reason}"
                delay = backoff.next()
                continue
            backoff.reset()
            await session.closed.wait()
            delay = backoff.next()  # after a disconnect: 1 s, then doubling
