"""``nf sim check``: the blocking reader around :class:`nf.sim.frames.Checker`."""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import stat
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from types import FrameType

from nf.sim.frames import Checker

Read = Callable[[], bytes]  # b"" at end of stream


class _Stopped(Exception):
    """SIGINT or SIGTERM: stop reading and report."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[tuple[int, Read]]:
    """The source's fd (to wait on) and its read."""
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--tcp wants HOST:PORT, got {args.tcp!r}")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
            sock.setblocking(False)
            yield sock.fileno(), lambda: sock.recv(65536)
        return
    fd = os.open(args.device, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        if os.isatty(fd):
            tty.setraw(fd, termios.TCSANOW)
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        yield (-1 if regular else fd), lambda: os.read(fd, 65536)
    finally:
        os.close(fd)


def check(fd: int, read: Read, checker: Checker, args: argparse.Namespace) -> None:
    """Feed ``checker`` until a stop condition (see ``nf sim check --help``);
    ``fd`` -1 is a regular file, read to its end without waiting."""
    start = time.monotonic()
    last_data = start
    while args.until_seq is None or not checker.reached(args.until_seq):
        now = time.monotonic()
        limits = [last_data + args.idle]
        if args.timeout:
            limits.append(start + args.timeout)
        left = min(limits) - now
        if left <= 0:
            return
        if fd >= 0 and not select.select([fd], [], [], left)[0]:
            continue
        try:
            data = read()
        except BlockingIOError:
            continue
        except OSError:  # EIO: a pty's other side closed; ECONNRESET
            return
        if not data:
            return
        last_data = time.monotonic()
        checker.feed(data)


def run_check(args: argparse.Namespace) -> int:
    from nf.sim.cli import format_report

    checker = Checker()
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.suppress(_Stopped), _open(args) as (fd, read):
            check(fd, read, checker, args)
    except (OSError, ValueError) as exc:
        print(f"nf sim check: cannot read {args.tcp or args.device}: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    checker.decoder.finish()
    if args.until_seq is not None:
        checker.sequence.expect_up_to(args.until_seq)
    report = checker.report()
    print(format_report(report, args.json), flush=True)
    return 0 if report.clean else 1
