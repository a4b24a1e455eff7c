#!/usr/bin/env python3
"""Benchmark the plane boundary: how long a snapshot blocks the data plane's
event loop, and what the process boundary adds to a commit.

Two cases, each against a baseline run in the same invocation:

* snapshot blocking: an in-process RelayRuntime with N channels (default
  500), each a TCP server channel on its own pty with one connected
  session.  A probe task measures the longest stretch the event loop went
  without running it (the loop was blocked: no relay callback could run)
  while a SnapshotReply frame is produced.  Baseline: the snapshot read in
  one piece and encoded whole (as before slicing); measured: the data
  plane's ``snapshot_frame`` (channels read in slices of SNAPSHOT_SLICE;
  those read afresh encoded, the others' encodings reused).  Median and
  p99 over the repetitions of the per-snapshot longest block, and of the
  time to produce the whole frame.
* commit round trip: prepare + apply of a one-channel change (the
  channel's inactivity-timeout toggles, so the channel restarts with its
  listener and port handed over) through RemoteRuntime to a data-plane
  process, against the same change on an in-process RelayRuntime.  Median
  and p99 in ms; the ratio is the cost of the boundary.

    .venv/bin/python tools/bench_plane.py [--channels N] [--snapshots N] [--commits N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
from anyio.abc import SocketAttribute

from nf.model import ChannelConfig, PackingConfig, SerialPortConfig
from nf.plane.dataplane import DataPlane
from nf.plane.messages import SnapshotReply, encode
from nf.plane.remote import RemoteRuntime
from nf.runtime.document import DocumentPatch
from nf.runtime.relay import RelayRuntime
from nf.runtime.transaction import Delta, Runtime


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(label: str, base: list[float], ours: list[float], unit: str, scale: float) -> None:
    bm, om = statistics.median(base), statistics.median(ours)
    bp, op = percentile(base, 0.99), percentile(ours, 0.99)
    print(
        f"{label:<34} baseline median {bm * scale:8.3f} {unit} p99 {bp * scale:8.3f}"
        f" | measured median {om * scale:8.3f} {unit} p99 {op * scale:8.3f}"
        f" | ratio {om / bm:6.3f}"
    )


@contextlib.contextmanager
def ptys(n: int) -> Iterator[list[str]]:
    """``n`` pseudo-terminals; the benchmark holds the masters."""
    masters, paths = [], []
    try:
        for _ in range(n):
            master, slave = os.openpty()
            tty.setraw(master)
            os.set_blocking(master, False)
            paths.append(os.ttyname(slave))
            os.close(slave)
            masters.append(master)
        yield paths
    finally:
        for master in masters:
            os.close(master)


def port(name: str, device: str) -> SerialPortConfig:
    return SerialPortConfig(name, device, 115200, 8, "none", "1", "none", "rs232")


def channel(name: str, serial: str, tcp: int, inactivity: int = 0) -> ChannelConfig:
    return ChannelConfig(
        name, True, serial, "server", "127.0.0.1", tcp, None, (), None,
        PackingConfig(None, None, None), inactivity, 0, False, (),
    )  # fmt: skip


async def longest_block(produce: Callable[[], Awaitable[object]]) -> tuple[float, float, float]:
    """While ``produce`` runs: the longest stretch the loop did not run a
    probe task, in wall-clock time and in this thread's CPU time (what the
    loop itself spent, without the preemptions of a busy machine), and the
    total wall-clock time."""
    wall: list[float] = []
    cpu: list[float] = []
    done = False

    async def probe() -> None:
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not done:
            await asyncio.sleep(0)
            now, now_cpu = time.perf_counter(), time.thread_time()
            wall.append(now - last)
            cpu.append(now_cpu - last_cpu)
            last, last_cpu = now, now_cpu

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        await asyncio.sleep(0)
        start = time.perf_counter()
        await produce()
        total = time.perf_counter() - start
        done = True
    return max(wall), max(cpu), total


async def snapshot_case(n: int, reps: int) -> None:
    runtime = RelayRuntime()
    plane = DataPlane(runtime, pid=os.getpid(), started_at="")

    async def whole() -> bytearray:  # the baseline: one piece, encoded whole
        read = await runtime.read_states(budget=float("inf"))
        ports = {p.name: p for _, p in read.states}
        return encode(SnapshotReply(tuple(c for c, _ in read.states), tuple(ports.values())))

    with ptys(n) as devices:
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            delta = Delta(
                {f"p{i}": port(f"p{i}", d) for i, d in enumerate(devices)},
                {f"c{i}": channel(f"c{i}", f"p{i}", 0) for i in range(n)},
            )
            await (await runtime.prepare(delta, DocumentPatch.of_bytes(b""))).apply()
            clients = []
            for ch in runtime.channels.values():
                assert ch.res.listener is not None
                address = ch.res.listener.extra(SocketAttribute.local_address)
                clients.append(await anyio.connect_tcp(*address))
            await anyio.sleep(1)
            sessions = sum(len(c.sessions) for c in runtime.channels.values())
            frame = await plane.snapshot_frame()
            assert frame == await whole(), "the sliced frame differs from the whole one"
            print(f"snapshot: {n} channels, {sessions} sessions, frame {len(frame)} bytes")
            results: dict[str, tuple[list[float], list[float], list[float]]] = {
                "base": ([], [], []),
                "ours": ([], [], []),
            }
            for _ in range(reps):  # interleaved: noise hits both alike
                for key, produce in (("base", whole), ("ours", plane.snapshot_frame)):
                    for values, value in zip(
                        results[key], await longest_block(produce), strict=True
                    ):
                        values.append(value)
            base, ours = results["base"], results["ours"]
            row("snapshot: longest block, wall", base[0], ours[0], "ms", 1e3)
            row("snapshot: longest block, loop CPU", base[1], ours[1], "ms", 1e3)
            row("snapshot: time to the frame", base[2], ours[2], "ms", 1e3)
            for client in clients:
                await client.aclose()
            await runtime.shutdown()


async def commits(runtime: Runtime, device: str, tcp: int, count: int) -> list[float]:
    """Seconds per prepare+apply of a one-channel change."""
    await (
        await runtime.prepare(
            Delta({"p": port("p", device)}, {"c": channel("c", "p", tcp)}),
            DocumentPatch.of_bytes(b""),
        )
    ).apply()
    times = []
    for i in range(count):
        changed = dataclasses.replace(channel("c", "p", tcp), inactivity_timeout=(i + 1) % 2)
        start = time.perf_counter()
        await (
            await runtime.prepare(Delta({}, {"c": changed}), DocumentPatch.of_bytes(b"<doc/>"))
        ).apply()
        times.append(time.perf_counter() - start)
    await (
        await runtime.prepare(Delta({"p": None}, {"c": None}), DocumentPatch.of_bytes(b""))
    ).apply()
    return times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def commit_case(count: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="nfbench", dir="/tmp"))
    path = directory / "dataplane.sock"
    log = (directory / "dataplane.log").open("wb")
    command = [sys.executable, "-m", "nf.plane.dataplane", "--socket", str(path)]
    proc = subprocess.Popen([*command, "--log-level", "warning"], stdout=log, stderr=log)
    try:
        with ptys(1) as (device,):
            local = RelayRuntime()
            remote = RemoteRuntime(path)
            async with anyio.create_task_group() as tg:
                await tg.start(local.run)
                await tg.start(remote.run)
                await commits(remote, device, free_port(), 20)  # warm up both
                await commits(local, device, free_port(), 20)
                base: list[float] = []
                ours: list[float] = []
                for _ in range(10):  # interleaved rounds
                    base += await commits(local, device, free_port(), count // 10)
                    ours += await commits(remote, device, free_port(), count // 10)
                row("commit: prepare+apply, 1 channel", base, ours, "ms", 1e3)
                await local.shutdown()
                tg.cancel_scope.cancel()
    finally:
        proc.terminate()
        proc.wait(5)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=100)
    parser.add_argument("--commits", type=int, default=500)
    args = parser.parse_args()
    anyio.run(snapshot_case, args.channels, args.snapshots)
    anyio.run(commit_case, args.commits)


if __name__ == "__main__":
    main()
