"""Smoke test of tools/bench_idle.py: tiny parameters, both device types.

It checks that the benchmark runs, adds and removes the idle channels and
prints a row per case; not the timings (a shared, noisy machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_idle_prints_a_row_per_case() -> None:
    cmd = [sys.executable, str(ROOT / "tools" / "bench_idle.py"), "--channels", "5"]
    cmd += ["--rounds", "2", "--round-trips", "20", "--interval", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100, cwd=ROOT)
    shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, shown
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("idle channels"))
    rows = [line.split() for line in lines[header + 1 :] if line.strip()]
    # none: measured before each case of each round (2 x 2 x 20)
    assert [r[:-7] for r in rows] == [["none"], ["5", "x", "loop"], ["5", "x", "pty"]], shown
    assert [int(r[-7]) for r in rows] == [80, 40, 40], shown
    assert rows[0][-1] == "-" and {r[-1] for r in rows[1:]} <= {"PASS", "FAIL"}
    for r in rows:
        median, p99, top = map(float, r[-6:-3])
        assert 0 < median <= p99 <= top, shown
