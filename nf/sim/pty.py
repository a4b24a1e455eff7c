"""The pseudo-terminal a simulated device plays on, and the asyncio glue around it.

The simulator keeps the slave side open itself: with no opener of the slave,
Linux fails reads on the master with EIO, so a daemon closing and reopening
the port (a channel restarted by a commit) would end the simulator.  Bytes the
simulator writes while nobody reads wait in the pty's queue, and a full queue
blocks the writer (backpressure), as a real UART's flow control would.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import tty
from collections.abc import Callable
from pathlib import Path

#: Stop producing once this much output waits for the pty (a slow reader).
HIGH_WATER = 64 * 1024


class PtyDevice:
    """A raw pseudo-terminal: ``master`` is the simulated device's end,
    ``path`` the slave to give the daemon; ``link``, when given, is a
    symlink to ``path`` made now and removed by :meth:`close`."""

    def __init__(self, link: Path | None = None) -> None:
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                if link.is_symlink():
                    link.unlink()  # a stale link from a killed run; a real file is refused
            try:
                link.symlink_to(self.path)
            except OSError:
                self._close_fds()
                raise

    def _close_fds(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        if self.link is not None:
            with contextlib.suppress(OSError):
                if self.link.is_symlink() and os.readlink(self.link) == self.path:
                    self.link.unlink()
        self._close_fds()

    def __enter__(self) -> PtyDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PtyStream:
    """Non-blocking reads and queued writes on the master, driven by the
    event loop: ``on_data`` gets every chunk the daemon wrote to the port;
    :meth:`write` never blocks, the bytes wait in ``pending`` until the pty
    takes them."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fd: int, on_data: Callable[[bytes], None]
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._on_data = on_data
        self._pending = bytearray()
        self.rx_bytes = 0
        self.tx_bytes = 0
        loop.add_reader(fd, self._readable)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave opener: nothing to read now
                return
            raise
        self.rx_bytes += len(data)
        self._on_data(data)

    def write(self, data: bytes) -> None:
        if not data:
            return
        was_idle = not self._pending
        self._pending += data
        if was_idle:
            self._writable()

    def _writable(self) -> None:
        try:
            sent = os.write(self._fd, self._pending)
        except BlockingIOError:
            sent = 0
        self.tx_bytes += sent
        del self._pending[:sent]
        if self._pending:
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._loop.remove_writer(self._fd)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)


def announce(device: PtyDevice) -> None:
    """The first line of stdout: the device to configure; flushed, so that a
    script reading the pipe gets it at once."""
    print(device.path, flush=True)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (the simulator then exits with
    status 0); call it from the running loop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` comes first; True when it did."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
