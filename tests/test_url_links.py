"""The links of pyserial URL ports: ``loop://`` in memory (LoopLink) and
``socket://`` on its socket's fd (FdLink).  Both must cost nothing while
idle: no thread and no wake-up per port (issue: scale, point 3)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import anyio
import pytest

from nf.runtime.serial import WRITE_HIGH, FdLink, LoopLink, open_link
from tests.test_serial_link import Sink, pattern, port, until


class FlowSink(Sink):
    """A Sink that also records the write-side flow control and bytes sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.flow: list[str] = []

    def serial_sent(self, nbytes: int) -> None:
        self.sent += nbytes

    def serial_pause_writing(self) -> None:
        self.flow.append("pause")

    def serial_resume_writing(self) -> None:
        self.flow.append("resume")


def loop_link() -> LoopLink:
    link = open_link(port("loop://"))
    assert isinstance(link, LoopLink)
    return link


def test_loop_reads_back_what_is_written_in_order() -> None:
    async def main() -> None:
        link, sink = loop_link(), FlowSink()
        async with anyio.create_task_group() as tg:
            link.start(sink, tg)
            block = pattern(200_000)
            for i in range(0, len(block), 1000):
                link.write(block[i : i + 1000])
            assert sink.data == b""  # read back in a later callback, not inside write
            await until(lambda: len(sink.data) == len(block))
            assert sink.data == block and sink.sent == len(block)
            link.close()

    anyio.run(main)


def test_loop_flow_control_and_handover_lose_nothing() -> None:
    async def main() -> None:
        link, first, second = loop_link(), FlowSink(), FlowSink()
        async with anyio.create_task_group() as tg:
            link.start(first, tg)
            link.pause_reading()  # the network side is slow
            block = pattern(WRITE_HIGH + 1000)
            link.write(block)
            await asyncio.sleep(0.01)
            assert first.data == b"" and first.flow == ["pause"]
            link.resume_reading()
            await until(lambda: first.data == block)
            assert first.flow == ["pause", "resume"]
            # bytes in the loop when the channel is replaced go to its successor
            link.pause_reading()
            link.write(b"handed over")
            link.stop()
            link.start(second, tg)
            await until(lambda: second.data == b"handed over")
            # and bytes in the loop when the port goes are counted
            link.stop()
            link.write(b"x" * 10)
            assert link.discard() == 10
            link.close()

    anyio.run(main)


def test_idle_url_ports_start_no_thread_and_wake_nothing() -> None:
    """200 idle loop:// links and one socket:// link: no thread is started,
    and the event loop sleeps (a loop that polled them would run its
    callbacks thousands of times a second)."""

    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as server:
            url = f"socket://127.0.0.1:{server.getsockname()[1]}"
            before = threading.active_count()
            links = [loop_link() for _ in range(200)]
            sock_link = await anyio.to_thread.run_sync(open_link, port(url))
            assert isinstance(sock_link, FdLink)
            peer, _ = server.accept()
            with peer:
                async with anyio.create_task_group() as tg:
                    sinks = [Sink() for _ in links]
                    for link, sink in zip(links, sinks, strict=True):
                        link.start(sink, tg)
                    sock_sink = Sink()
                    sock_link.start(sock_sink, tg)
                    loop = asyncio.get_running_loop()
                    iterations = 0
                    original = loop._run_once  # type: ignore[attr-defined]

                    def counted() -> None:
                        nonlocal iterations
                        iterations += 1
                        original()

                    loop._run_once = counted  # type: ignore[attr-defined]
                    await asyncio.sleep(0.5)
                    loop._run_once = original  # type: ignore[attr-defined]
                    assert iterations < 20, iterations
                    # (anyio's worker threads, if any, were started before)
                    assert threading.active_count() <= before + 1
                    # and they still work: the socket's far end echoes
                    sock_link.write(b"ping")
                    assert await anyio.to_thread.run_sync(peer.recv, 4) == b"ping"
                    peer.sendall(b"pong")
                    await until(lambda: sock_sink.data == b"pong")
                    links[0].write(b"loop")
                    await until(lambda: sinks[0].data == b"loop")
                    for link in links:
                        link.close()
                    sock_link.close()

    anyio.run(main)


def test_a_socket_port_whose_peer_closes_is_lost() -> None:
    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as server:
            url = f"socket://127.0.0.1:{server.getsockname()[1]}"
            link = await anyio.to_thread.run_sync(open_link, port(url))
            peer, _ = server.accept()
            sink = Sink()
            async with anyio.create_task_group() as tg:
                link.start(sink, tg)
                peer.sendall(b"last words")
                peer.close()
                start = time.monotonic()
                await until(lambda: sink.lost)
                assert sink.data == b"last words"
                assert sink.lost == [f"{url}: hang-up"]
                assert time.monotonic() - start < 1
                link.close()

    anyio.run(main)


@pytest.mark.parametrize("url", ["loop://", "loop://?logging=debug"])
def test_loop_urls_open_as_loop_links(url: str) -> None:
    assert isinstance(open_link(port(url)), LoopLink)
