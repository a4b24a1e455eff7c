#!/usr/bin/env python3
"""Benchmark the config core: parse + validate a datastore of N channels.

Baseline, in the same invocation: yanglint (libyang, C) validating the same
file, process start included (that is how operators run it).  Prints median
and p99 per size and the ratio ours/yanglint.

    .venv/bin/python tools/bench_config.py [--sizes 10,100,1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nf.config import load_document, validate  # noqa: E402
from nf.config.diff import diff  # noqa: E402
from nf.schema import default_schema  # noqa: E402

NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"


def config(n: int) -> str:
    """N serial ports and N channels, cycling through the three modes."""
    ports, channels = [], []
    for i in range(n):
        ports.append(f"<serial-port><name>p{i}</name><device>/dev/ttyS{i}</device></serial-port>")
        mode = ("server", "client", "peer")[i % 3]
        body = f"<mode>{mode}</mode>"
        if mode == "server":
            body += f"<listen><port>{10000 + i}</port></listen>"
            if i % 2:
                body += f"<secondary><port>{30000 + i}</port></secondary>"
        elif mode == "client":
            body += (
                f"<destination><address>127.0.0.1</address><port>{20000 + i}</port></destination>"
            )
        else:
            body += (
                f"<listen><port>{10000 + i}</port></listen>"
                f"<destination><address>127.0.0.1</address><port>{20000 + i}</port></destination>"
            )
        channels.append(
            f"<channel><name>c{i}</name><serial-port>p{i}</serial-port>{body}</channel>"
        )
    return f'<serial-over-ip xmlns="{NS}">{"".join(ports)}{"".join(channels)}</serial-over-ip>'


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    schema = default_schema()
    yanglint = shutil.which("yanglint")
    module = ROOT / "yang" / "nf-serial-over-ip.yang"
    print(
        f"{'channels':>8} {'ours med':>10} {'ours p99':>10} {'diff med':>10} "
        f"{'yanglint med':>13} {'yl p99':>10} {'ours/yl':>8}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        text = config(n)
        tree, errors = load_document(text, schema)
        errors += validate(tree, schema)
        assert not errors, errors[:3]
        ours, diffs, theirs = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            tree, errors = load_document(text, schema)
            errors += validate(tree, schema)
            ours.append(time.perf_counter() - t0)
            other = load_document(text, schema)[0]  # equal, not shared: full compare
            t0 = time.perf_counter()
            diff(tree, other, schema)
            diffs.append(time.perf_counter() - t0)
        if yanglint:
            with tempfile.NamedTemporaryFile("w", suffix=".xml") as f:
                f.write(text)
                f.flush()
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    subprocess.run(
                        [yanglint, "-t", "config", "-p", str(module.parent), str(module), f.name],
                        check=True,
                        capture_output=True,
                    )
                    theirs.append(time.perf_counter() - t0)
        om, op = stats(ours)
        dm, _ = stats(diffs)
        if theirs:
            ym, yp = stats(theirs)
            print(
                f"{n:>8} {om * 1e3:>8.1f}ms {op * 1e3:>8.1f}ms {dm * 1e3:>8.1f}ms "
                f"{ym * 1e3:>11.1f}ms {yp * 1e3:>8.1f}ms {om / ym:>8.2f}"
            )
        else:
            print(f"{n:>8} {om * 1e3:>8.1f}ms {op * 1e3:>8.1f}ms {dm * 1e3:>8.1f}ms  (no yanglint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
