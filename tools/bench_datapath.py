#!/usr/bin/env python3
"""The relay's per-chunk Python cost, without sockets or ptys, against a base build.

``bench_relay`` measures the whole path (kernel, three processes, a busy
machine): a change of a few percent in the channel code is lost in its
noise, and one daemon process can be 10% faster than another of the same
build.  This measures only what the channel code does per chunk, in one
process: a ``ChannelRuntime`` in server mode with one joined ``Session``,
a serial link and a socket transport that only count, and per round trip
the two calls the event loop makes for a 64-byte echo: the session's
``data_received`` (network -> serial) and the channel's
``serial_received`` (serial -> network).  Only the public entry points of
both layouts are used (the Session class lives in nf.runtime.session since
the channel refactor, in nf.runtime.channel before it), so a tree exported
from an older commit runs it too.

Each build runs in a subprocess of its own (``PYTHONPATH=TREE``, safe path)
and the subprocesses alternate, ``--runs`` each; a run times ``--samples``
batches of ``--batch`` round trips.  Printed: ns per round trip (median and
p99 over all batches of a build) and the ratio ours/base of the medians,
also per pair of runs back to back.

    .venv/bin/python tools/bench_datapath.py [--base TREE] [--runs N]
        [--samples N] [--batch N] [--size BYTES]

``TREE`` is a directory holding an ``nf`` package, e.g. from
``git archive REV nf yang | tar -x -C TREE``.  Without ``--base`` only this
build is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure(samples: int, batch: int, size: int) -> list[float]:
    """In this process (the build on sys.path): ns per round trip, per batch."""
    import asyncio

    import anyio

    from nf.config.model import ChannelConfig, PackingConfig, SerialPortConfig
    from nf.protocol.arbitration import Role
    from nf.runtime.channel import ChannelRuntime, Resources

    try:
        from nf.runtime.session import Session
    except ImportError:  # before the channel refactor
        from nf.runtime.channel import Session  # type: ignore[attr-defined]

    class Link:
        """A serial link that takes every write at once."""

        device = "memory"
        warning = None

        def __init__(self) -> None:
            self.written = 0

        def start(self, sink: Any, tg: Any) -> None: ...
        def stop(self) -> None: ...
        def pause_reading(self) -> None: ...
        def resume_reading(self) -> None: ...
        def discard(self) -> int:
            return 0

        def close(self) -> None: ...
        def write(self, data: bytes) -> None:
            self.written += len(data)

    class Transport(asyncio.Transport):
        """A socket transport whose writes always fit."""

        def __init__(self) -> None:
            super().__init__()
            self.written = 0

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.written += len(data)

        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

        def pause_reading(self) -> None: ...
        def resume_reading(self) -> None: ...

    cfg = ChannelConfig(
        name="c",
        enabled=True,
        serial_port="p",
        mode="server",
        listen_address="127.0.0.1",
        listen_port=None,
        secondary=None,
        destinations=(),
        multicast_group=None,
        packing=PackingConfig(None, None, None),
        inactivity_timeout=0,
        keepalive=0,
        takeover=False,
        allowed_peers=(),
    )
    port = SerialPortConfig("p", "memory", 115200, 8, "none", "1", "none", "rs232")
    result: list[float] = []

    async def main() -> None:
        link = Link()
        channel = ChannelRuntime(cfg, port, Resources(link=link), lambda kind, info: None)  # type: ignore[arg-type]
        session = Session(channel, Role.PRIMARY, ("127.0.0.1", 1))
        transport = Transport()
        session.connection_made(transport)
        data_received, serial_received = session.data_received, channel.serial_received
        chunk = bytes(i % 256 for i in range(size))
        clock = time.perf_counter_ns
        for _ in range(samples // 10):  # warm-up (specialization, caches)
            for _ in range(batch):
                data_received(chunk)
                serial_received(chunk)
        for _ in range(samples):
            t0 = clock()
            for _ in range(batch):
                data_received(chunk)
                serial_received(chunk)
            result.append((clock() - t0) / batch)
        expected = (samples + samples // 10) * batch * size
        if link.written != expected or transport.written != expected:
            raise RuntimeError(f"relayed {link.written}/{transport.written} of {expected} bytes")

    anyio.run(main)
    return result


def run_build(tree: Path, args: argparse.Namespace) -> list[float]:
    """One run of ``tree``'s build in a subprocess: ns per round trip, per batch."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONSAFEPATH="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"]
    cmd += ["--samples", str(args.samples), "--batch", str(args.batch), "--size", str(args.size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"bench_datapath: the build in {tree} failed:\n{proc.stderr}")
    values: list[float] = json.loads(proc.stdout)
    return values


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", type=Path, help="a tree with another build's nf package")
    parser.add_argument("--runs", type=int, default=6, help="subprocess runs per build")
    parser.add_argument("--samples", type=int, default=200, help="timed batches per run")
    parser.add_argument("--batch", type=int, default=2000, help="round trips per batch")
    parser.add_argument("--size", type=int, default=64, help="bytes per chunk")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.samples, args.batch, args.size)))
        return 0
    builds = [("ours", ROOT)] + ([("base", args.base.resolve())] if args.base else [])
    for name, tree in builds:
        if not (tree / "nf" / "runtime" / "channel.py").exists():
            parser.error(f"{name}: no nf/runtime/channel.py under {tree}")
    per_run: dict[str, list[float]] = {name: [] for name, _ in builds}
    every: dict[str, list[float]] = {name: [] for name, _ in builds}
    for run in range(args.runs):
        order = builds if run % 2 == 0 else builds[::-1]  # neither always first
        for name, tree in order:
            values = run_build(tree, args)
            per_run[name].append(statistics.median(values))
            every[name] += values
    print(
        f"bench_datapath: {args.size}-byte chunks, one round trip = data_received + "
        f"serial_received; {args.runs} runs x {args.samples} batches x {args.batch} per build"
    )
    print(f"{'build':<6} {'median ns':>10} {'p99 ns':>10}  per run (median ns)")
    for name, _ in builds:
        runs = " ".join(f"{v:.0f}" for v in per_run[name])
        med, p99 = statistics.median(every[name]), percentile(every[name], 0.99)
        print(f"{name:<6} {med:>10.0f} {p99:>10.0f}  {runs}")
    if args.base:
        ratio = statistics.median(every["ours"]) / statistics.median(every["base"])
        pairs = [o / b for o, b in zip(per_run["ours"], per_run["base"], strict=True)]
        print(
            f"ours / base: {ratio:.3f} (per pair of runs: "
            + " ".join(f"{r:.3f}" for r in pairs)
            + ")"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
