"""Smoke test of tools/bench_isolation.py: tiny parameters, every phase, table and JSON.

It checks that the benchmark runs and that each load really loaded the
daemon; not the timings (a shared, noisy machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "bench_isolation.py"
PHASES = ["idle", "get", "commit", "login", "bigedit"]


@pytest.mark.slow
@pytest.mark.xdist_group("busy")  # loads both CPUs: never beside another of the group
@pytest.mark.timing  # alone: under the other workers' load the login phase's
# one-second window may see no scrypt-checked login finish
def test_bench_isolation_prints_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    # 200 round trips every 5 ms: each probing window lasts over a second, so it
    # holds at least one of the once-a-second big edits
    cmd = [sys.executable, str(TOOL), "--channels", "5", "--round-trips", "200"]
    cmd += ["--interval", "5", "--storm-sources", "64", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100, cwd=ROOT)
    shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, shown

    lines = proc.stdout.splitlines()
    header = next((line for line in lines if line.startswith("phase ")), None)
    assert header is not None and "p99/idle" in header, shown
    for phase in PHASES:
        assert any(line.split()[:2] == [phase, "200"] for line in lines), shown
    assert any(line in ("overall: PASS", "overall: FAIL") for line in lines), shown

    doc = json.loads(out.read_text())
    assert doc["channels"] == 5 and doc["round_trips"] == 200
    by_phase = {p["phase"]: p for p in doc["phases"]}
    assert list(by_phase) == PHASES
    for name, p in by_phase.items():
        assert p["round_trips"] == 200
        assert 0 < p["median_ms"] <= p["p99_ms"] <= p["max_ms"], p
        assert p["load_errors"] == 0, p
        assert (p["passed"] is None) == (name == "idle"), p
        assert p["ops"] >= (0 if name == "idle" else 1), p
        stalls = p["notes"]["slowest 1%"]  # where the slowest round trips' time went
        assert stalls["round trips"] == 2 and stalls["ms"] > 0, p
        for thread in ("prober", "data plane", "device"):
            assert stalls[f"{thread} ran"] >= 0 and stalls[f"{thread} waited"] >= 0, p
        assert stalls["data plane ran"] > 0, p  # it relayed each of them
    assert by_phase["idle"]["p99_ratio"] == 1.0
    for p in by_phase.values():  # socat, the control relay, probed in the same ticks
        c = p["control"]
        assert 0 < c["median_ms"] <= c["p99_ms"] <= c["max_ms"], p
    assert by_phase["idle"]["control"]["p99_ratio"] == 1.0
    assert "socat p99" in header, shown
    assert by_phase["login"]["notes"]["failed-password-logins"] >= 1
    assert doc["passed"] == all(by_phase[n]["passed"] for n in PHASES[1:])


@pytest.mark.timing  # alone: under four workers no commit may fit the probing window
@pytest.mark.xdist_group("busy")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_bench_isolation_places_the_link_with_the_data_plane(tmp_path: Path) -> None:
    """--data-plane-cpus auto: nf's data plane, the prober and the echo device
    on the last CPU; the control plane and the load's clients on the others."""
    cpus = sorted(os.sched_getaffinity(0))
    cmd = [sys.executable, str(TOOL), "--channels", "2", "--round-trips", "200"]
    cmd += ["--phases", "idle,commit", "--data-plane-cpus", "auto", "--json", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    doc = json.loads(proc.stdout)
    link, rest = [cpus[-1]], cpus[:-1]
    assert doc["cpus"] == {
        "prober": link,
        "device": link,
        "load": rest,
        "daemon": {"nf": cpus, "nf.plane.dataplane": link, "nf.plane.control": rest},
        "control": link,  # socat and its echo device, where the data plane is
    }
    assert doc["phases"][1]["ops"] >= 1 and doc["phases"][1]["load_errors"] == 0
