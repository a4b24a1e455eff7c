"""What an idle channel costs the data plane, counted (issue 12: 10 000
channels in one data plane).

An idle server channel whose port is open has one task (its ``run``): its
port and listener call back from the loop, and its timer task exists only
while a deadline does.  Its memory, as tracemalloc counts what starting it
allocated, stays under a bound well below what four tasks a channel cost.
Counted, not timed: these hold on a loaded machine.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import tracemalloc
from dataclasses import replace

import anyio

from nf.model import PackingConfig
from nf.runtime.document import DocumentPatch
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import Delta
from tests.planehelpers import serial_port, server_channel

CHANNELS = 40
BYTES_PER_CHANNEL = 20_000
"""Measured about 14 KB per loop:// server channel (4 KB of it pyserial's
loop port and its queue); with four tasks a channel it was about 30 KB."""


def delta(n: int, prefix: str = "c") -> Delta:
    return Delta(
        {f"{prefix}{i}": serial_port(f"{prefix}{i}", "loop://") for i in range(n)},
        {f"{prefix}{i}": server_channel(f"{prefix}{i}", f"{prefix}{i}", 0) for i in range(n)},
    )


async def receive(client: socket.socket) -> bytes:
    """What the channel sent, read without holding up its loop."""
    client.setblocking(False)
    with anyio.fail_after(5):
        while True:
            try:
                return client.recv(10)
            except BlockingIOError:
                await anyio.sleep(0.005)


async def settle() -> None:
    for _ in range(5):
        await anyio.sleep(0)


def test_an_idle_channel_has_one_task_and_a_bounded_footprint() -> None:
    async def main() -> None:
        runtime = RelayRuntime()
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            # a first commit pays what is paid once (worker threads, caches)
            await (
                await runtime.prepare(delta(10, "w"), DocumentPatch.of_bytes(b"<config/>"))
            ).apply()
            await settle()
            before = len(asyncio.all_tasks())
            gc.collect()
            tracemalloc.start()
            try:
                await (
                    await runtime.prepare(delta(CHANNELS), DocumentPatch.of_bytes(b"<config/>"))
                ).apply()
                await settle()
                gc.collect()
                allocated, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert len(asyncio.all_tasks()) - before == CHANNELS
            assert {ch.oper_status for ch in runtime.channels.values()} == {"listening"}
            assert allocated / CHANNELS < BYTES_PER_CHANNEL
            await runtime.shutdown()

    anyio.run(main)


def test_the_timer_task_lives_only_while_a_deadline_does() -> None:
    """A frame delay starts the timer task with the first byte held; when
    the frame has gone, the task ends and the channel is back to one."""

    async def main() -> None:
        runtime = RelayRuntime()
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            cfg = server_channel("c", "p", 0)
            cfg = replace(cfg, packing=PackingConfig(None, 20, None))
            tx = await runtime.prepare(
                Delta({"p": serial_port("p", "loop://")}, {"c": cfg}), DocumentPatch.of_bytes(b"")
            )
            await tx.apply()
            await settle()
            idle = len(asyncio.all_tasks())
            channel = runtime.channels["c"]
            listener = channel.res.listener
            assert listener is not None
            port = listener.getsockname()[1]
            client = socket.create_connection(("127.0.0.1", port))
            try:
                with anyio.fail_after(5):
                    while not channel.sessions:
                        await anyio.sleep(0.01)
                await settle()
                connected = len(asyncio.all_tasks())
                client.sendall(b"x")  # loop:// echoes it: held for the frame delay
                with anyio.fail_after(5):
                    while len(asyncio.all_tasks()) == connected:
                        await anyio.sleep(0.001)
                assert len(asyncio.all_tasks()) == connected + 1  # the timer task
                assert await receive(client) == b"x"
                with anyio.fail_after(5):
                    while len(asyncio.all_tasks()) != connected:
                        await anyio.sleep(0.01)
            finally:
                client.close()
            with anyio.fail_after(5):
                while channel.sessions:
                    await anyio.sleep(0.01)
            await settle()
            assert len(asyncio.all_tasks()) == idle
            await runtime.shutdown()

    anyio.run(main)
