"""The relay and chain benchmarks run for a moment, so they cannot rot; their figures are not judged here.

Node-RED and FastStream are left out (``--contenders``): CI needs neither npm nor a PyPI download.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"
SUMMARY_KEYS = {"msgs_per_s", "lost", "p50_ms", "p99_ms", "cpu_pct", "rss_mb", "cpu_us_per_msg", "cpu_pct_1k",
                "rss_median_mb", "broker_cpu_pct", "load_cpu_pct"}


def run(script: str, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(BENCH / script), "--rounds", "1", "--seconds", "0.15", *args],
                         capture_output=True, text=True, timeout=50, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "mosquitto" in lines[0]
    return lines


def rows(lines: list[str]) -> dict[tuple[str, str], list[str]]:
    """The table: (label, size) -> its eleven figures (``-`` where nothing was measured)."""
    header = next(i for i, line in enumerate(lines) if line.startswith("contender"))
    table = {}
    for line in lines[header + 1:]:
        if line.startswith("#"):
            break
        table[(line[:20].strip(), line[20:26].strip())] = line[26:].split()
    return table


def check_json(path: Path, contenders: set[str]) -> dict:
    result = json.loads(path.read_text())
    assert {"cores", "cpu", "python", "versions"} <= set(result["machine"])
    assert set(result["summary"]) == contenders
    for by_size in result["summary"].values():
        assert set(by_size) == {"64B", "1KiB"}
        for row in by_size.values():
            assert set(row) == SUMMARY_KEYS
            assert row["msgs_per_s"] > 0 and row["lost"] == 0 and row["p50_ms"] > 0 and row["rss_mb"] > 0
            assert row["broker_cpu_pct"] > 0 and row["load_cpu_pct"] > 0
    assert len(result["rounds"]) == 2 * len(contenders)
    for r in result["rounds"]:
        assert {"round", "contender", "size", "throughput", "latency"} <= set(r)
        assert r["throughput"]["received"] == r["throughput"]["sent"] > 0
        assert r["latency"]["procs"][0]["samples"] >= 1
    return result


def test_relay_benchmark_runs_and_prints_its_ratio(tmp_path):
    lines = run("relay.py", "--contenders", "agent,script,paho", "--json", str(tmp_path / "relay.json"))
    table = rows(lines)
    assert set(table) == {(label, size) for label in ("fn_task on agent", "fn_task script", "paho loop_start")
                          for size in ("64B", "1KiB")}
    for figures in table.values():
        assert len(figures) == 11 and all(float(value) >= 0 for value in figures)
    targets = [line for line in lines if line.startswith("# target ")]
    assert len(targets) == 4  # the ratio to Node-RED (not measured here), p50 for each size, RSS
    assert "not measured" in targets[0]
    assert lines[-2].startswith("# the ratio is fn_task on agent / paho loop_start, 64 B msgs/s (Node-RED was not run)")
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]) and float(lines[-1].split()[1]) > 0
    result = check_json(tmp_path / "relay.json", {"agent", "script", "paho"})
    assert result["bench"] == "relay"
    assert set(result["targets"]) == {t.removeprefix("# target ").split(":")[0] for t in targets}


def test_chain_benchmark_runs_and_prints_the_time_per_hop(tmp_path):
    lines = run("chain.py", "--layouts", "2agents", "--json", str(tmp_path / "chain.json"))
    table = rows(lines)
    assert set(table) == {("5 tasks on 2 agents", "64B"), ("5 tasks on 2 agents", "1KiB")}
    assert re.fullmatch(r"per hop \d+\.\d\d\d ms", lines[-1]) and float(lines[-1].split()[2]) > 0
    result = check_json(tmp_path / "chain.json", {"2agents"})
    assert result["bench"] == "chain" and result["hops"] == 5
    assert all(len(r["agents"]) == 2 and len(r["throughput"]["procs"]) == 2 for r in result["rounds"])
