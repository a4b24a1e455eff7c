"""FdLink on a real pseudo-terminal: what it reads reaches its sink whole and
in order, including a full read it holds back for the next one (the bulk
serial -> network path, see ``FdLink._read_ready``)."""

from __future__ import annotations

import asyncio
import fcntl
import termios
import time
from collections.abc import Callable, Iterator

import anyio
import pytest

import nf.runtime.serial as serial_module
from nf.model import SerialPortConfig
from nf.runtime.serial import FULL_READ, HOLD_TIME, FdLink, open_link
from tests.relayhelpers import pty_device, spy_tcsetattr, write_fd


class Sink:
    """A LinkSink that records what the link reports."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self.lost: list[str] = []

    def serial_received(self, data: bytes) -> None:
        self.chunks.append((time.monotonic(), data))

    def serial_sent(self, nbytes: int) -> None:
        pass

    def serial_pause_writing(self) -> None:
        pass

    def serial_resume_writing(self) -> None:
        pass

    def serial_lost(self, message: str) -> None:
        self.lost.append(message)

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


RING = 4095
"""What one read of a tty returns at most: its line-discipline buffer
(N_TTY_BUF_SIZE - 1), unless a refill lands during the read."""


def test_a_full_ring_is_a_full_read() -> None:
    assert FULL_READ <= RING


def port(device: str) -> SerialPortConfig:
    return SerialPortConfig("p", device, 115200, 8, "none", "1", "none", "rs232")


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    with pty_device() as dev:
        yield dev


def fd_link(device: str) -> FdLink:
    link = open_link(port(device))
    assert isinstance(link, FdLink)
    return link


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await asyncio.sleep(0.001)


def queued(link: FdLink) -> int:
    """Bytes in the tty's line-discipline buffer, ready for one read."""
    buf = fcntl.ioctl(link._fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, "little")


async def full_ring(master: int, link: FdLink, block: bytes) -> None:
    """Fill the tty's buffer before the link reads, so that its first read
    is one full read: the kernel moves written bytes into that buffer in
    pieces, and a read between two pieces would split it."""
    assert len(block) == RING
    write_fd(master, block)
    await until(lambda: queued(link) == RING)


def pattern(n: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


def test_short_reads_go_out_at_once(pty: tuple[int, str]) -> None:
    master, device = pty

    async def main() -> None:
        link, sink = fd_link(device), Sink()
        async with anyio.create_task_group() as tg:
            link.start(sink, tg)
            sent = time.monotonic()
            write_fd(master, b"request")
            await until(lambda: sink.data == b"request")
            # a short read is never held: it is there long before HOLD_TIME
            # would have let it go (the loop polls every millisecond)
            assert len(sink.chunks) == 1
            assert link._held is None
            assert sink.chunks[0][0] - sent < 0.5
            link.close()

    anyio.run(main)


def test_a_lone_full_read_is_held_then_let_go(
    pty: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, device = pty
    block = pattern(RING)
    hold = 0.2  # long enough to observe, whatever the machine's jitter
    monkeypatch.setattr(serial_module, "HOLD_TIME", hold)

    async def main() -> None:
        link, sink = fd_link(device), Sink()
        async with anyio.create_task_group() as tg:
            await full_ring(master, link, block)
            link.start(sink, tg)
            await until(lambda: link._held is not None or sink.chunks)
            held_at = time.monotonic()
            assert link._held == block and not sink.chunks
            # the burst ended at the buffer boundary: nothing follows, the
            # timer lets it go, whole
            await until(lambda: sink.chunks)
            assert sink.data == block and len(sink.chunks) == 1 and link._held is None
            assert hold * 0.9 <= sink.chunks[0][0] - held_at < hold + 2.0
            link.close()

    anyio.run(main)


def test_a_bulk_stream_arrives_whole_and_in_order_with_reads_paired(pty: tuple[int, str]) -> None:
    master, device = pty
    stream = pattern(64 * RING + 1234)

    async def main() -> None:
        link, sink = fd_link(device), Sink()
        async with anyio.create_task_group() as tg:
            link.start(sink, tg)
            await anyio.to_thread.run_sync(write_fd, master, stream)
            await until(lambda: len(sink.data) >= len(stream))
            assert sink.data == stream
            # a held read went out joined with its successor (how often
            # depends on how the kernel splits its refills)
            assert max(len(c) for _, c in sink.chunks) >= 2 * RING
            link.close()

    anyio.run(main)


def test_a_held_read_survives_a_handover_and_is_counted_when_discarded(
    pty: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, device = pty
    block = pattern(RING)

    async def main() -> None:
        link, first, second = fd_link(device), Sink(), Sink()
        async with anyio.create_task_group() as tg:
            # make the hold last: a timer far away (the test hands over meanwhile)
            monkeypatch.setattr(serial_module, "HOLD_TIME", 60.0)
            await full_ring(master, link, block)
            link.start(first, tg)
            await until(lambda: link._held is not None)
            monkeypatch.setattr(serial_module, "HOLD_TIME", HOLD_TIME)
            link.stop()  # the channel is replaced in a commit
            assert first.data == b""
            link.start(second, tg)  # its successor gets the held bytes
            await until(lambda: second.data == block)
            # a port closed while holding counts what it held
            link.stop()
            link._held = b"x" * 10
            assert link.discard() == 10 and link._held is None
            link.close()

    anyio.run(main)


def test_a_failure_relays_the_held_read_before_reporting_the_loss(
    pty: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, device = pty
    block = pattern(RING)

    async def main() -> None:
        link, sink = fd_link(device), Sink()
        async with anyio.create_task_group() as tg:
            monkeypatch.setattr(serial_module, "HOLD_TIME", 60.0)
            await full_ring(master, link, block)
            link.start(sink, tg)
            await until(lambda: link._held is not None)
            link._fail("gone")  # what a failed read or write does
            assert sink.data == block and sink.lost == ["gone"]
            assert link.discard() == 0
            link.close()

    anyio.run(main)


CMSPAR = getattr(termios, "CMSPAR", 0o10000000000)  # Linux; absent from some Pythons
SIZES = {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}
PARITY_FLAGS = {
    "none": 0,
    "even": termios.PARENB,
    "odd": termios.PARENB | termios.PARODD,
    "mark": termios.PARENB | termios.PARODD | CMSPAR,
    "space": termios.PARENB | CMSPAR,
}


@pytest.mark.parametrize("parity", sorted(PARITY_FLAGS))
@pytest.mark.parametrize("bits", sorted(SIZES))
def test_data_bits_and_parity_are_asked_of_the_kernel(
    pty: tuple[int, str], monkeypatch: pytest.MonkeyPatch, bits: int, parity: str
) -> None:
    """A pty forces 8 data bits and no parity on whatever it is told, so
    these two are checked on the tcsetattr call itself (recorded on its way
    to the real one), where a UART driver would take them."""
    _, device = pty
    calls = spy_tcsetattr(monkeypatch)
    cfg = SerialPortConfig("p", device, 19200, bits, parity, "1", "none", "rs232")
    link = open_link(cfg)
    try:
        assert calls, "the port was configured through tcsetattr"
        cflag = calls[-1][2]
        assert isinstance(cflag, int)
        assert cflag & termios.CSIZE == SIZES[bits]
        assert cflag & (termios.PARENB | termios.PARODD | CMSPAR) == PARITY_FLAGS[parity]
        assert calls[-1][4] == calls[-1][5] == termios.B19200
    finally:
        link.close()


def test_a_termios_error_while_opening_is_a_port_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tty that fails its termios calls while pyserial opens it (it went
    away) is a PortError naming the device, retried by the channel, not an
    internal error (termios.error is not an OSError)."""
    import serial

    class Gone(serial.Serial):  # type: ignore[misc]
        def open(self) -> None:
            raise termios.error(5, "Input/output error")

    monkeypatch.setattr(serial_module.serial, "serial_for_url", lambda *a, **k: Gone())
    cfg = SerialPortConfig("p", "/dev/ttyGONE", 9600, 8, "none", "1", "none", "raw")
    with pytest.raises(serial_module.PortError, match="cannot open /dev/ttyGONE"):
        open_link(cfg)
