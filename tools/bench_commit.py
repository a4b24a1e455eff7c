#!/usr/bin/env python3
"""Benchmark one-leaf edit-config + commit at 10 channels: this build against another.

Starts ``nf run`` twice on loopback ports, booted from the same 10-channel
configuration (loop:// serial ports, TCP server channels): this tree, and
the build of a git revision (``--base``, default ``main``) extracted with
``git archive`` into a temporary directory and run with the same Python
(``PYTHONPATH``).  Each sample is edit-config of one channel's keepalive in
the candidate (toggled, so every commit changes something and goes through
validate, diff, prepare and apply) followed by <commit>, timed by the raw
client of ``bench_netconf.py`` over SSH.  The two daemons are measured in
alternating rounds, so machine noise falls on both alike; the report gives
median and p99 per build, the ratio of medians and their difference.

    .venv/bin/python tools/bench_commit.py [--base REV] [--rounds N] [--per-round N]
        [--no-pin] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_netconf import (
    CLIENT_CPU,
    COMMIT,
    ROOT,
    RawSession,
    Result,
    Server,
    keepalive,
    ms,
    ours,
    timed,
)


def extract(revision: str, into: Path) -> Path:
    """The ``nf`` package of ``revision``, as a directory to put on PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "nf"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@contextlib.contextmanager
def daemon(tmp: Path, pin: bool, source: Path | None, port_base: int) -> Iterator[Server]:
    """``nf run`` of this tree (``source`` None) or of the package under ``source``."""
    tmp.mkdir(parents=True, exist_ok=True)
    nf = None if source is None else ["env", f"PYTHONPATH={source}", sys.executable, "-m", "nf"]
    with ours(tmp, pin, nf, port_base) as server:
        yield server


def round_of(session: RawSession, count: int, start: int, result: Result) -> None:
    for i in range(start, start + count):
        te, _ = timed(session, keepalive(30 + i % 2), want_ok=True)
        tc, _ = timed(session, COMMIT, want_ok=True)
        result.samples.append(te + tc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare with (main)")
    parser.add_argument("--rounds", type=int, default=20, help="alternations (20)")
    parser.add_argument("--per-round", type=int, default=25, help="edit+commits per round (25)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed edit+commits first (20)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    tmp = Path(tempfile.mkdtemp(prefix="bench-commit-"))
    try:
        source = extract(args.base, tmp / "base-src")
        results = {"this": Result(), args.base: Result()}
        with (
            daemon(tmp / "this", pin, None, 20000) as this,
            daemon(tmp / "base", pin, source, 20100) as base,
            contextlib.closing(this.connect()) as this_session,
            contextlib.closing(base.connect()) as base_session,
        ):
            sessions = {"this": this_session, args.base: base_session}
            for session in sessions.values():
                round_of(session, args.warmup, 0, Result())
            for r in range(args.rounds):
                order = list(sessions) if r % 2 == 0 else list(reversed(sessions))
                for name in order:
                    round_of(sessions[name], args.per_round, r * args.per_round, results[name])
                print(f"[{time.strftime('%H:%M:%S')}] round {r + 1}/{args.rounds}", file=sys.stderr)
        print()
        print(
            f"one-leaf edit-config + commit at 10 channels, {args.rounds} x {args.per_round} "
            f"alternating; pinning: {'on' if pin else 'off'}; latencies in ms"
        )
        print(f"{'build':<12} {'n':>5} {'median':>8} {'p99':>8} {'min':>8}")
        for name, r in results.items():
            print(
                f"{name:<12} {len(r.samples):>5} {ms(r.median()):>8} {ms(r.p99()):>8} "
                f"{ms(min(r.samples)):>8}"
            )
        this_r, base_r = results["this"], results[args.base]
        print(
            f"ratio this/{args.base} of medians: {this_r.median() / base_r.median():.3f}; "
            f"difference: {(this_r.median() - base_r.median()) * 1e3:+.3f} ms (median), "
            f"{(this_r.p99() - base_r.p99()) * 1e3:+.3f} ms (p99)"
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
