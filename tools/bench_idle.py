#!/usr/bin/env python3
"""Benchmark what idle channels cost the relays: relay 1-byte RTT through one
echo channel alone, and with N idle channels of a device type beside it.

One ``nf run`` booted with the echo channel only (a TCP server channel on a
pty whose master a device process of this benchmark echoes: the real relay
path, tty and all).  Then, in each round, for each device type: a commit
adds N idle channels (TCP servers that no client connects to) on N serial
ports of that type, the round trips are measured, and a commit removes
them again; the round's baseline (no idle channel) is measured between.
Rounds alternate the cases so that a noisy machine hits all of them alike;
the figures are over all rounds.  Device types:

* ``loop``: ``loop://`` (pyserial's loopback URL; in memory);
* ``pty``: pseudo-terminals held open by a second device process (as a
  tty of a real serial card: nothing ever arrives).

Target (issue: scale, point 3): with 1000 idle channels of any device
type, the p99 stays within 1.2x of the one-channel figure.

    .venv/bin/python tools/bench_idle.py [--channels N] [--devices loop,pty]
        [--rounds N] [--round-trips N] [--interval MS] [--nf CMD]

All traffic stays on 127.0.0.0/8; channel ports are free ports found by
binding port 0 (a small race with other programs, which makes the commit
fail and the benchmark stop with the reply).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_relay
from bench_isolation import p99, paced_round_trips
from bench_netconf import COMMIT, RawSession, check, edit

PASSWORD = bench_relay.PASSWORD
ROOT = bench_relay.ROOT
TARGET_RATIO = 1.2
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def add_idle(devices: list[str], ports: list[int]) -> bytes:
    body = "".join(
        f"<serial-port><name>idle{i}</name><device>{d}</device></serial-port>"
        for i, d in enumerate(devices)
    ) + "".join(
        f"<channel><name>idle{i}</name><serial-port>idle{i}</serial-port><mode>server</mode>"
        f"<listen><address>{bench_relay.HOST}</address><port>{p}</port></listen></channel>"
        for i, p in enumerate(ports)
    )
    return edit(body)


def remove_idle(n: int) -> bytes:
    body = "".join(
        f'<channel xmlns:nc="{NC}" nc:operation="remove"><name>idle{i}</name></channel>'
        f'<serial-port xmlns:nc="{NC}" nc:operation="remove"><name>idle{i}</name></serial-port>'
        for i in range(n)
    )
    return edit(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000, help="idle channels (default 1000)")
    parser.add_argument("--devices", default="loop,pty", help="device types (default loop,pty)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--round-trips", type=int, default=1000, help="round trips per case and round"
    )
    parser.add_argument("--interval", type=float, default=2.0, help="ms between round trips")
    parser.add_argument("--nf", help="command that runs nf (default: .venv/bin/nf)")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.devices.split(",") if k.strip()]
    if not kinds or set(kinds) - {"loop", "pty"} or args.channels < 1 or args.rounds < 1:
        parser.error("--devices from loop,pty; --channels and --rounds positive")
    nf = shlex.split(args.nf) if args.nf else [str(ROOT / ".venv" / "bin" / "nf")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    ptys = bench_relay.Device(args.channels) if "pty" in kinds else None
    server = bench_relay.start_ours(tmp, 1, nf, "nf")
    samples: dict[str, list[float]] = {"none": []}
    commit_s: dict[str, list[float]] = {}
    try:
        sock = server.connect(0)
        session = RawSession(server.netconf_port, "admin", PASSWORD, timeout=300)
        interval = args.interval / 1e3
        paced_round_trips([sock], 100, interval)  # warm up
        for r in range(args.rounds):
            for kind in kinds:
                samples["none"] += paced_round_trips([sock], args.round_trips, interval)[0]
                devices = ptys.paths if kind == "pty" and ptys else ["loop://"] * args.channels
                t0 = time.perf_counter()
                check(session.rpc(add_idle(devices, bench_relay.free_ports(args.channels))))
                check(session.rpc(COMMIT), want_ok=True)
                commit_s.setdefault(kind, []).append(time.perf_counter() - t0)
                time.sleep(0.5)  # the new channels settle (listeners, ports opened)
                samples.setdefault(kind, []).extend(
                    paced_round_trips([sock], args.round_trips, interval)[0]
                )
                check(session.rpc(remove_idle(args.channels)))
                check(session.rpc(COMMIT), want_ok=True)
                time.sleep(0.5)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        session.close()
    finally:
        server.close()
        if ptys is not None:
            ptys.close()
        shutil.rmtree(tmp, ignore_errors=True)
    base = p99(samples["none"])
    print(
        f"relay 1-byte RTT (ms) through one echo channel, {args.rounds} rounds, every "
        f"{args.interval} ms; beside it: nothing, or {args.channels} idle channels"
    )
    print(
        f"{'idle channels':<22}{'n':>6}{'median':>9}{'p99':>9}{'max':>9}{'p99/none':>10}"
        f"{'commit s':>10}  verdict"
    )
    for kind, values in samples.items():
        ratio = p99(values) / base
        label = "none" if kind == "none" else f"{args.channels} x {kind}"
        verdict = "-" if kind == "none" else ("PASS" if ratio <= TARGET_RATIO else "FAIL")
        commit = f"{statistics.median(commit_s[kind]):10.2f}" if kind in commit_s else f"{'-':>10}"
        print(
            f"{label:<22}{len(values):>6}{statistics.median(values) * 1e3:9.3f}"
            f"{p99(values) * 1e3:9.3f}{max(values) * 1e3:9.3f}{ratio:10.2f}{commit}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
