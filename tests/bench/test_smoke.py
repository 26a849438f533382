"""Each benchmark runs for a moment, so it cannot rot; its figures are not judged here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_bus_benchmark_runs_and_prints_its_ratio(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "bus.py"), "--rounds", "1", "--seconds", "0.15",
                          "--json", str(tmp_path / "bus.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0]
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1])
    assert float(lines[-1].split()[1]) > 0
    assert lines[-2] == "# edge.bus's default transport (auto) picked mqtt5 here: the ratio is edge.bus/mqtt5 / paho"
    rows = {line.split()[0]: line.split() for line in lines[2:-2]}
    assert set(rows) == {"edge.bus/mqtt5", "edge.bus/paho", "paho"}
    assert all(float(value) >= 0 for row in rows.values() for value in row[-7:])  # the seven columns
    assert (tmp_path / "bus.json").exists()


def test_cpu_benchmark_runs_and_prints_each_path():
    out = subprocess.run([sys.executable, str(BENCH / "cpu.py"), "--messages", "2000", "--rounds", "1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0]
    paths = {}
    for line in lines[1:]:
        match = re.fullmatch(r"(.+?) +(\d+\.\d\d) us/msg", line)
        assert match, line
        paths[match[1]] = float(match[2])
    assert set(paths) == {"frames only", "mqtt5", "mqtt5 + bus", "paho", "paho + bus"}
    assert all(value > 0 for value in paths.values())


def test_footprint_benchmark_runs_and_compares_with_a_baseline_in_the_same_run(tmp_path):
    """--baseline DIR runs that checkout's agent between the others; here the same code, so both agents load
    the same modules and the RSS ratio is 1 give or take the noise of a few pages. --settle 0.5: RSS read half a
    second after birth and after the 10 tasks run, not 3 s (the six waits were 18 of the test's 26 s)."""
    out = subprocess.run([sys.executable, str(BENCH / "footprint.py"), "--rounds", "1", "--settle", "0.5", "--json",
                          str(tmp_path / "fp.json"), "--baseline", str(BENCH.parent)],
                         capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0]
    assert re.fullmatch(r"agent birth after start +\d+\.\d\d s +\(target 1\.5 s: (met|missed)\)", lines[1])
    assert re.fullmatch(r"agent RSS idle +\d+\.\d MB +\(target 60 MB: (met|missed)\)", lines[2])
    assert re.fullmatch(r"agent RSS with 10 tasks +\d+\.\d MB +\([+-]\d+\.\d MB over idle\)", lines[3])
    assert lines[4].startswith("# without PyAV (the core install)")
    assert "round 1 (baseline)" in out.stderr
    assert re.fullmatch(r"# baseline .+: birth \d+\.\d\d s, RSS idle \d+\.\d MB, with 10 tasks \d+\.\d MB; "
                        r"this version / baseline: birth \d+\.\d\d, RSS idle \d+\.\d\d", lines[-1])
    import json

    result = json.loads((tmp_path / "fp.json").read_text())
    for summary in (result["summary"], result["core"]["summary"]):
        assert summary["rss_idle_mb"] > 0 and summary["birth_s"] > 0 and summary["rss_10_tasks_mb"] > 0
    assert set(result["met"]) == set(result["targets"]) == {"birth_s", "rss_idle_mb"}
    baseline = result["baseline"]
    assert len(baseline["rounds"]) == 1 and baseline["dir"] == str(BENCH.parent)
    assert 0.95 < baseline["ratios"]["rss_idle_mb"] < 1.05 and baseline["ratios"]["birth_s"] > 0


def test_soak_benchmark_runs(tmp_path):
    # 3 s at 100 frames/s, sampled every 0.5 s (was 9 s at 50/s): the same frames > 100, and samples after the warm-up
    out = subprocess.run([sys.executable, str(BENCH / "soak.py"), "--minutes", "0.05", "--warmup", "1", "--interval",
                          "0.5", "--rate", "100", "--json", str(tmp_path / "soak.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert "RSS" in out.stdout and "open fds" in out.stdout, out.stderr[-3000:]
    import json

    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["frames"] > 100 and set(result["statuses"].values()) == {"running"}
    assert sum(sample["t"] >= 1 for sample in result["samples"]) >= 3  # growth measured over more than one sample


def test_status_traffic_benchmark_runs_and_counts_the_neighbours_frames():
    """It loads its task types and its frame counter from the tests' files: a rename there breaks it."""
    out = subprocess.run([sys.executable, str(BENCH / "status_traffic.py"), "--tasks", "3", "--seconds", "1",
                          "--interval", "0.5"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    header, row = out.stdout.strip().splitlines()[-2:]
    assert header.split()[:3] == ["tasks", "start", "s"]
    figures = dict(zip(["tasks", "start_s", "alone", "during", "beside"], map(float, row.split()[:5]), strict=True))
    assert figures["tasks"] == 3 and figures["alone"] > 0 and figures["beside"] > 0  # the metronome's frames counted
