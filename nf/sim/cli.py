"""``nf sim MODE``: argument parsing and the thin runners of each mode."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nf.sim import frames, nmea
from nf.sim.pty import HIGH_WATER, PtyDevice, PtyStream, announce, sleep_or_stop, stop_on_signals

Runner = Callable[[PtyDevice, argparse.Namespace], Coroutine[Any, Any, None]]


def _device_mode(runner: Runner) -> Callable[[argparse.Namespace], int]:
    """A mode that plays a device: make the pty (and --link), print its path
    first, run until a signal."""

    def run(args: argparse.Namespace) -> int:
        try:
            device = PtyDevice(Path(args.link) if args.link else None)
        except OSError as exc:
            print(f"nf sim: cannot create the device link {args.link}: {exc}", file=sys.stderr)
            return 1
        with device:
            announce(device)
            asyncio.run(runner(device, args))
        return 0

    return run


async def _echo(device: PtyDevice, args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = stop_on_signals()
    streams: list[PtyStream] = []
    streams.append(PtyStream(loop, device.master, lambda data: streams[0].write(data)))
    try:
        await stop.wait()
    finally:
        streams[0].close()


async def _nmea(device: PtyDevice, args: argparse.Namespace) -> None:
    """GGA and RMC every 1/--rate seconds, on a schedule that does not drift."""
    loop = asyncio.get_running_loop()
    stop = stop_on_signals()
    stream = PtyStream(loop, device.master, lambda data: None)  # commands are ignored
    start = nmea.Fix(
        datetime.now(UTC), args.lat, args.lon, args.speed, args.course, satellites=args.satellites
    )
    track = nmea.Track(start)
    period = 1 / args.rate
    tick = time.monotonic()
    try:
        while True:
            if stream.pending < HIGH_WATER:  # a stalled reader: skip, as a receiver would
                stream.write(track.sentences(datetime.now(UTC)))
            tick += period
            if await sleep_or_stop(stop, max(0.0, tick - time.monotonic())):
                return
    finally:
        stream.close()


async def _traffic(device: PtyDevice, args: argparse.Namespace) -> None:
    """Frames of --size bytes at --rate bytes/s; a slow reader pauses the
    generator (backpressure), never a gap in the sequence."""
    loop = asyncio.get_running_loop()
    stop = stop_on_signals()
    stream = PtyStream(loop, device.master, lambda data: None)
    pattern = frames.Pattern[args.pattern.upper()]
    pacer = frames.Pacer(args.rate, args.size, time.monotonic())
    seq = 0
    try:
        while not args.count or seq < args.count:
            if stream.pending < HIGH_WATER:
                for _ in range(pacer.due(time.monotonic())):
                    stream.write(frames.encode(seq, args.size, pattern))
                    seq += 1
                    if seq == args.count:
                        break
                wait = pacer.wait()
            else:
                wait = 0.01
            if await sleep_or_stop(stop, wait):
                break
        else:
            await stop.wait()  # --count sent: stay, a device that went quiet
    finally:
        stream.close()
        print(f"nf sim traffic: {seq} frames, {seq * args.size} bytes", file=sys.stderr)


async def _modbus(device: PtyDevice, args: argparse.Namespace) -> None:
    from nf.sim.modbus import serve

    await serve(device, args.unit, args.registers)


def _check(args: argparse.Namespace) -> int:
    from nf.sim.check import run_check

    return run_check(args)


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], Any]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _frame_size(text: str) -> int:
    size = int(text)
    if not frames.OVERHEAD <= size <= frames.MAX_FRAME:
        raise argparse.ArgumentTypeError(
            f"a frame is {frames.OVERHEAD} to {frames.MAX_FRAME} bytes: {text!r}"
        )
    return size


def _device_parser(
    modes: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    runner: Runner,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = modes.add_parser(name, help=help_text, description=help_text)
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="also make PATH a symlink to the pty (removed on exit), a stable name to configure",
    )
    parser.set_defaults(func=_device_mode(runner))
    return parser


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nf sim`` and its modes on the top-level parser."""
    sim = sub.add_parser(
        "sim",
        help="simulated serial devices on a pseudo-terminal; a traffic checker",
        description=(
            "Play a serial device on a pseudo-terminal. Every device mode prints the pty's "
            "path (the serial-port device to configure) as the first line of stdout "
            "and runs until SIGTERM or SIGINT (exit status 0). check reads what a "
            "traffic device sent, from the far side of a channel."
        ),
    )
    modes = sim.add_subparsers(dest="mode", required=True, metavar="MODE")
    _device_parser(modes, "echo", _echo, "write back every byte received")

    gps = _device_parser(
        modes, "nmea", _nmea, "a GPS receiver: NMEA 0183 $GPGGA and $GPRMC sentences"
    )
    gps.add_argument("--rate", type=_positive(float), default=1.0, help="fixes per second")
    gps.add_argument("--lat", type=float, default=48.1173, help="start latitude (degrees)")
    gps.add_argument("--lon", type=float, default=11.5167, help="start longitude (degrees)")
    gps.add_argument("--speed", type=float, default=5.0, help="knots")
    gps.add_argument("--course", type=float, default=84.4, help="degrees true")
    gps.add_argument("--satellites", type=int, default=8)

    traffic = _device_parser(
        modes,
        "traffic",
        _traffic,
        "a traffic generator: numbered, CRC-checked frames for nf sim check to verify",
    )
    traffic.add_argument(
        "--rate", type=_positive(float), default=9600.0, help="bytes per second (default 9600)"
    )
    traffic.add_argument(
        "--size",
        type=_frame_size,
        default=64,
        help=f"bytes per frame, one write each ({frames.OVERHEAD}-{frames.MAX_FRAME}; default 64)",
    )
    traffic.add_argument(
        "--pattern",
        choices=[p.name.lower() for p in frames.Pattern],
        default="counter",
        help="payload: counter bytes, pseudo-random bytes, or fixed 0x55",
    )
    traffic.add_argument(
        "--count", type=int, default=0, help="send this many frames, then stay quiet (0: no end)"
    )

    rtu = _device_parser(
        modes,
        "modbus",
        _modbus,
        "a Modbus RTU slave (pymodbus); holding register i holds 1000+i",
    )
    rtu.add_argument("--unit", type=int, default=1, help="slave address (default 1)")
    rtu.add_argument(
        "--registers", type=int, default=100, help="holding registers from address 0 (default 100)"
    )

    check = modes.add_parser(
        "check",
        help="read a traffic stream and count bytes, lost, reordered and duplicated frames",
        description=(
            "Read what nf sim traffic sent, from a TCP endpoint (--tcp HOST:PORT, e.g. a "
            "server channel) or a device or file (--device PATH), and verify every frame. "
            "Loss is counted from the first frame received. Stops at --until-seq, after "
            "--idle seconds without data, after --timeout seconds, at end of stream, or on "
            "SIGINT/SIGTERM, then prints the counts. Exit status: 0 when frames arrived and "
            "none was lost, reordered, duplicated or corrupt; 1 otherwise; 2 when the source "
            "cannot be opened."
        ),
    )
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--tcp", metavar="HOST:PORT", help="connect to this TCP endpoint")
    source.add_argument("--device", metavar="PATH", help="read this tty, pty or file")
    check.add_argument(
        "--until-seq",
        type=int,
        metavar="N",
        help="stop once frame N arrived (the sender's last with --count N+1); frames "
        "after the last received up to N count as lost",
    )
    check.add_argument(
        "--idle", type=_positive(float), default=2.0, help="seconds without data (default 2)"
    )
    check.add_argument("--timeout", type=_positive(float), help="seconds in all")
    check.add_argument("--json", action="store_true", help="one JSON object")
    check.set_defaults(func=_check)


def format_report(report: frames.Report, as_json: bool) -> str:
    if as_json:
        return json.dumps(report.as_dict(), sort_keys=True)
    return "\n".join(f"{name}: {value}" for name, value in report.as_dict().items())
