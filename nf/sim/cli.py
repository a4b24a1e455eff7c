"""``nf sim MODE``: argument parsing and the thin runners of each mode."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from nf.sim.pty import PtyDevice, PtyStream, announce, until_stopped


def _open_device(args: argparse.Namespace) -> PtyDevice | None:
    try:
        return PtyDevice(Path(args.link) if args.link else None)
    except OSError as exc:
        print(f"nf sim: cannot create the device link {args.link}: {exc}", file=sys.stderr)
        return None


async def _echo(device: PtyDevice) -> None:
    loop = asyncio.get_running_loop()
    streams: list[PtyStream] = []
    stream = PtyStream(loop, device.master, lambda data: streams[0].write(data))
    streams.append(stream)
    try:
        await until_stopped()
    finally:
        stream.close()


def _run_echo(args: argparse.Namespace) -> int:
    device = _open_device(args)
    if device is None:
        return 1
    with device:
        announce(device)
        asyncio.run(_echo(device))
    return 0


def _add_link(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="also make PATH a symlink to the pty (removed on exit), a stable name to configure",
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nf sim`` and its modes on the top-level parser."""
    sim = sub.add_parser(
        "sim",
        help="simulated serial devices on a pseudo-terminal (echo, ...)",
        description=(
            "Play a serial device on a pseudo-terminal. Every mode prints the pty's "
            "path (the serial-port device to configure) as the first line of stdout "
            "and runs until SIGTERM or SIGINT (exit status 0)."
        ),
    )
    modes = sim.add_subparsers(dest="mode", required=True, metavar="MODE")
    echo = modes.add_parser("echo", help="write back every byte received")
    _add_link(echo)
    echo.set_defaults(func=_run_echo)
