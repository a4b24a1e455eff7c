"""Smoke tests of the relay benchmarks' comparison with a base build.

tools/bench_relay.py with ``--base``, ``--instances`` and ``--cases``, and
tools/bench_datapath.py: they run, compare the builds they were given and
print what the comparison rests on.  Not the timings (a shared, noisy
machine).  The base build is a copy of this tree's ``nf`` package marked
so that a daemon that imported this tree instead (``python -m nf`` run
from the checkout finds ``./nf`` first) gives itself away.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = "bench-base-build"


def base_tree(tmp_path: Path) -> Path:
    """A copy of this tree's nf package whose daemon writes MARK to stderr at start."""
    tree = tmp_path / "base"
    shutil.copytree(
        ROOT / "nf", tree / "nf", symlinks=False, ignore=shutil.ignore_patterns("__pycache__")
    )
    main = tree / "nf" / "__main__.py"
    main.write_text(f"import sys\nprint({MARK!r}, file=sys.stderr)\n" + main.read_text())
    return tree


@pytest.mark.slow
def test_bench_relay_base_instances_and_cases(tmp_path: Path) -> None:
    tree = base_tree(tmp_path)
    base = f"env PYTHONPATH={tree} {sys.executable} -m nf"
    cmd = [sys.executable, str(ROOT / "tools" / "bench_relay.py"), "--quick", "--reps", "2"]
    cmd += ["--channels", "3", "--cases", "multi", "--instances", "2", "--no-bare"]
    cmd += ["--no-baselines", "--keep", "--base", base]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode in (0, 1), shown  # 1: targets of the skipped cases fail
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric "))
    assert header.split()[2:5] == ["ours", "base", "/base"], shown
    multi = next(line for line in lines if line.startswith("3 ch round trips/s"))
    assert float(multi.split()[4]) > 0, shown  # the ours / base ratio
    bulk = next(line for line in lines if line.startswith("bulk echo"))
    assert bulk.split()[3:5] == ["-", "-"], shown  # not run (--cases)
    paired = lines.index("ours / base by repetition (ratio of values measured back to back):")
    row = lines[paired + 1].split("(")[0].split()
    assert row[:4] == ["3", "ch", "round", "trips/s"], shown
    assert len(row[4:]) == 2 and all(float(r) > 0 for r in row[4:]), shown  # two repetitions
    assert any("2 instances of ours and base" in line for line in lines), shown
    kept = Path(next(line for line in lines if line.startswith("kept ")).split()[1])
    try:
        # each base instance ran the copy, though started from the checkout
        for k in range(2):
            assert MARK in (kept / f"base{k}.log").read_text(), shown
            assert MARK not in (kept / f"ours{k}.log").read_text(), shown
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_bench_datapath_against_a_base_tree(tmp_path: Path) -> None:
    tree = base_tree(tmp_path)
    cmd = [sys.executable, str(ROOT / "tools" / "bench_datapath.py"), "--base", str(tree)]
    cmd += ["--runs", "2", "--samples", "5", "--batch", "50"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, shown
    lines = proc.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    for build in ("ours", "base"):
        assert len(rows[build]) == 3 + 2, shown  # median, p99, two runs
        assert all(float(v) > 0 for v in rows[build][1:]), shown
    assert lines[4].startswith("ours / base: "), shown
