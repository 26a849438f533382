"""bench/replicas.py runs for a moment on each broker, so it cannot rot: 1 and 2 replicas of the CPU-bound
task are measured, nothing is lost, duplicated or wrong. The ratio is not judged here (the machine is
shared); docs/benchmarks.md#replicas has the figure of a quiet run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_one_and_two_replicas_are_measured_and_every_frame_answered_once(tmp_path, broker):
    out = tmp_path / "replicas.json"
    run = subprocess.run([sys.executable, str(BENCH / "replicas.py"), "--rounds", "1", "--seconds", "0.5",
                          "--window", "4", "--broker", broker, "--json", str(out)],
                         capture_output=True, text=True, timeout=170, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    turns = [r for r in data["rounds"] if "replicas" in r]
    assert [r["replicas"] for r in turns] == [1, 2]
    for r in turns:
        assert r["frames"] > 0 and r["lost"] == 0 and r["duplicated"] == 0 and r["bad"] == 0, r
    assert data["ratio"] == round(data["summary"]["2"]["frames_per_s"] / data["summary"]["1"]["frames_per_s"], 2)
    # the broker shared the frames out: both replicas took some, on the two agents
    taken = data["summary"]["2"]["taken"]
    assert sorted(k.split("@")[1] for k in taken) == ["bench-a1", "bench-a2"] and min(taken.values()) > 0, taken
    assert [r["plain"] for r in data["rounds"] if "plain" in r] == [1, 2] and data["plain_ratio"] > 0
    lines = run.stdout.splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0]
    assert lines[-1] == f"ratio {data['ratio']}"
    assert any(line.startswith("# target: 2 replicas >= 1.6x") for line in lines)
    assert any(line.startswith("# plain processes, same turns:") for line in lines)
