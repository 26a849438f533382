"""bench/scale.py runs a tiny fleet end to end and prints each figure with its target (issue 20).

Figures are not judged (the machine is shared): the run completes, lists every agent, and reports
every figure the targets name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_a_tiny_fleet_is_measured_against_every_target(tmp_path):
    out = tmp_path / "scale.json"
    run = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--agents", "6", "--procs", "2", "--tasks", "4",
                          "--task-agents", "2", "--rounds", "1", "--no-browser", "--brokers", "mosquitto",
                          "--idle", "5.5", "--json", str(out)],
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    summary, targets = data["summary"], data["targets"]
    assert set(targets) == {"listed_s", "birth_lag_max_s", "cold_listed_s", "ls_agents_s", "rss_mb",
                            "deploy_running_s", "remove_cleared_s", "idle_msgs_per_agent_5s"}
    assert data["rounds"][0]["ls_listed"] == 6
    assert 0 <= summary["birth_lag_median_s"] <= summary["birth_lag_max_s"] < 120
    assert all(key in summary for key in targets)
    assert data["rounds"][0]["listed_at_synced"] == 6 and data["rounds"][0]["cold_listed"] == 6
    assert summary["idle_msgs_per_agent_5s"] > 0  # 5.5 s: every agent's 5 s heartbeat at least once
    assert data["args"]["catalog"] == "full"
    printed = run.stdout
    for label in ("agents listed after go", "within, of its birth", "cold controller lists them all after",
                  "`edge ls agents` lists them all after", "controller RSS",
                  "tasks on 2 agents running after", "idle control traffic", "statuses cleared after removal"):
        line = next(line for line in printed.splitlines() if label in line)
        assert "(target " in line, line


def test_a_cold_controller_is_timed_against_a_retained_fleet(tmp_path):
    out = tmp_path / "cold.json"
    run = subprocess.run([sys.executable, str(BENCH / "scale_cold.py"), "--agents", "30", "--rounds", "1",
                          "--json", str(out)], capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    summaries = json.loads(out.read_text())["summary"]
    assert set(summaries) == {"inline", "shared"}  # both catalog forms, in turn
    for summary in summaries.values():
        assert summary["listed_at_synced"] == 30 and summary["cold_listed_s"] >= summary["cold_synced_s"]
    # one shared copy of the ~80 KB entries, not 30
    assert summaries["shared"]["retained_mb"] * 10 < summaries["inline"]["retained_mb"]
    assert "(target 10 s: " in run.stdout and "(target 400 MB: " in run.stdout


def test_a_fleet_of_light_agents_and_real_ones_is_measured(tmp_path):
    """20 light agents (bench/light_agents.py) beside 2 real ones that run the deployment: all listed, by the
    running and a cold controller; go-to-listed is the births' pacing, so the per-agent lag is what is judged."""
    out = tmp_path / "scale.json"
    run = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--agents", "2", "--procs", "1", "--light", "20",
                          "--light-procs", "2", "--birth-rate", "100", "--catalog", "shared", "--tasks", "4",
                          "--task-agents", "2", "--rounds", "1", "--no-browser", "--brokers", "mosquitto",
                          "--idle", "6.5", "--json", str(out)],
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    summary, targets, first = data["summary"], data["targets"], data["rounds"][0]
    assert "listed_s" not in targets and "birth_lag_max_s" in targets
    assert first["listed_at_synced"] == 22 and first["cold_listed"] == 22 and first["ls_listed"] == 22
    assert summary["listed_s"] >= 9 / 50  # 10 agents a process at 50/s each: the last born 0.18 s after go
    assert first["light_agents"] == first["light_started"] == first["light_connects"] == 20
    assert first["light_losses"] == 0 and first["light_connect_failures"] == 0
    assert first["light_states"] >= 20  # 6.5 s idle: every light agent's 6 s heartbeat at least once
    assert summary["listed_sims_cpu_s"] > 0 and summary["listed_broker_cpu_s"] >= 0
    for kind in ("light", "real"):  # the lag of each kind of agent apart: a real one's includes its own start
        assert 0 <= summary[f"birth_lag_{kind}_median_s"] <= summary[f"birth_lag_{kind}_max_s"] \
            <= summary["birth_lag_max_s"]
    assert {"deploy_cpu_s", "deploy_real_cpu_s", "deploy_light_cpu_s", "deploy_broker_cpu_s"} <= set(summary)
    assert summary["idle_msgs_per_agent_5s"] > 0 and "deploy_running_s" in summary
    printed = run.stdout
    assert "22 agents (2 real, 20 light born at 100/s, document once)" in printed
    assert "(births paced at 100/s: not a target)" in printed
    assert "20 connects for 20, 0 connections lost, 0 failed" in printed
    line = next(line for line in printed.splitlines() if "within, of its birth" in line)
    assert "(target 5 s: " in line
