"""Serial ports as async byte links, through pyserial.

Two adapters behind one interface:

* ``FdLink``: devices with a file descriptor (ttys, ptys).  pyserial opens
  the port and applies the line settings; then the fd is made non-blocking
  and read with ``anyio.wait_readable`` and large ``os.read`` calls, so the
  hot path does no per-byte Python work and never blocks the event loop.
* ``ThreadLink``: pyserial URL handlers without a file descriptor
  (``loop://``, ``socket://``, ``rfc2217://``), driven from worker threads.

Opening happens in ``open_link`` (called from a worker thread during a
commit's prepare phase), so a port that cannot be opened fails the commit
before anything running changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import termios
from typing import Protocol

import anyio
import serial
import serial.rs485
from anyio import to_thread

from nf.config.model import SerialPortConfig

READ_SIZE = 65536
_PARITY = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "mark": serial.PARITY_MARK,
    "space": serial.PARITY_SPACE,
}
_STOP_BITS = {
    "1": serial.STOPBITS_ONE,
    "1.5": serial.STOPBITS_ONE_POINT_FIVE,
    "2": serial.STOPBITS_TWO,
}


class PortError(Exception):
    """The serial port failed or vanished."""


class Link(Protocol):
    device: str

    async def read(self) -> bytes:
        """Some bytes (never empty); raises PortError when the port is gone."""

    async def write(self, data: bytes) -> None:
        """All of ``data``; raises PortError when the port is gone."""

    def close(self) -> None: ...


def _configure(port: serial.SerialBase, cfg: SerialPortConfig) -> None:
    port.baudrate = cfg.baud_rate
    port.bytesize = cfg.data_bits
    port.parity = _PARITY[cfg.parity]
    port.stopbits = _STOP_BITS[cfg.stop_bits]
    port.rtscts = cfg.flow_control == "rts-cts"
    port.xonxoff = cfg.flow_control == "xon-xoff"
    if cfg.line_mode == "rs485":
        # RTS-controlled direction, as the driver implements it
        port.rs485_mode = serial.rs485.RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)


def open_link(cfg: SerialPortConfig) -> Link:
    """Open and configure the port (blocking: call from a worker thread)."""
    try:
        port = serial.serial_for_url(cfg.device, do_not_open=True)
        _configure(port, cfg)
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open {cfg.device}: {exc}") from exc
    try:
        fd = port.fileno()
    except (AttributeError, NotImplementedError, OSError, serial.SerialException):
        port.timeout = 0.05
        return ThreadLink(cfg.device, port)
    return FdLink(cfg.device, port, fd)


class FdLink:
    """A tty or pty read and written through its non-blocking fd."""

    def __init__(self, device: str, port: serial.SerialBase, fd: int) -> None:
        self.device = device
        self._port = port
        self._fd = fd
        os.set_blocking(fd, False)

    async def read(self) -> bytes:
        # pyserial sets VMIN=0/VTIME=0: an empty read means "nothing yet".
        # Only an fd that keeps reporting readable with nothing to read has
        # hung up (a pty whose far end closed reports EIO instead).
        empty = 0
        while True:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                data = b""
            except OSError as exc:  # EIO: the pty's other end closed, or the device went away
                raise PortError(f"{self.device}: {os.strerror(exc.errno or errno.EIO)}") from exc
            if data:
                return data
            if empty >= 3:
                raise PortError(f"{self.device}: hang-up")
            await anyio.wait_readable(self._fd)
            empty += 1 if self._readable_empty() else 0

    def _readable_empty(self) -> bool:
        """After a readiness wake-up: is there really nothing to read?"""
        try:
            buf = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
            return int.from_bytes(buf, "little") == 0
        except OSError:
            return True

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            except OSError as exc:
                raise PortError(f"{self.device}: {os.strerror(exc.errno or errno.EIO)}") from exc
            view = view[written:]

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()


class ThreadLink:
    """A pyserial URL port without a file descriptor, used from worker threads."""

    def __init__(self, device: str, port: serial.SerialBase) -> None:
        self.device = device
        self._port = port
        self._write_lock = anyio.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def _threads(self) -> anyio.CapacityLimiter:
        """This link's own worker threads (one reading, one writing).

        anyio's default limiter has 40 tokens for the whole process: a
        thousand URL ports would take turns reading, and a cancelled read
        keeps its token until pyserial's timeout, so stops would queue.
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)
        return self._limiter

    def _read_blocking(self) -> bytes:
        first = self._port.read(1)  # waits up to port.timeout
        if not first:
            return b""
        waiting: int = getattr(self._port, "in_waiting", 0)
        return first + (self._port.read(min(waiting, READ_SIZE)) if waiting else b"")

    async def read(self) -> bytes:
        while True:
            try:
                data = await to_thread.run_sync(
                    self._read_blocking, abandon_on_cancel=True, limiter=self._threads()
                )
            except (serial.SerialException, OSError) as exc:
                raise PortError(f"{self.device}: {exc}") from exc
            if data:
                return bytes(data)

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            try:
                await to_thread.run_sync(self._port.write, data, limiter=self._threads())
            except (serial.SerialException, OSError) as exc:
                raise PortError(f"{self.device}: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()
