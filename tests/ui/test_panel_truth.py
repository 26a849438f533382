"""Nothing shows a dead task as running: after kill -9 of an agent, every page says ``agent
offline`` with how long, shows its metrics as last known, and its dashboard cards as stale; a
crash stays visible (restarts, last error, when) until a user dismisses it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import UI_TASKS, agents, element, panel, until
from nicegui import ElementFilter

from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

FLAKY_TASKS = str(Path(__file__).parents[1] / "flaky_tasks.py")
OFFLINE = re.compile(r"agent offline \d+ s")



def text(user, marker):
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    return max(found, key=lambda e: e.id).text if found else ""


def row(user, marker, key):
    return next((r for r in element(user, marker).rows if r["id"] == key), None)


def start_agent(settings, tmp_path, agent_id):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_BROKER=settings.broker_url.geturl(), EDGE_NAMESPACE=settings.namespace, EDGE_AGENT_ID=agent_id,
               EDGE_DATA_DIR=str(tmp_path / agent_id))
    return subprocess.Popen([sys.executable, "-m", "edge", "agent", "--tasks", UI_TASKS], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


SPEC = {"id": "doomed", "tasks": [
    {"id": "n", "type": "numbers", "agent": "dead", "config": {"interval_ms": 50}},
    {"id": "d", "type": "double", "agent": "dead"},
    {"id": "level", "type": "slider", "agent": "dead", "config": {"label": "Level", "default": 0.5}}],
    "edges": [{"from": "n.out", "to": "d.in"}]}


async def test_a_killed_agent_shows_offline_on_every_page(user, panel_settings, tmp_path):
    proc = start_agent(panel_settings, tmp_path, "dead")
    try:
        fleet = panel().fleet
        await until(lambda: "dead" in fleet.agents and fleet.agents["dead"].offers("slider")
                    and fleet.agents["dead"].offers("numbers"), "the agent and its catalog", 30)
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/doomed/dashboard")
        await until(lambda: text(user, "state-level") == "live", "the slider's card live", 30)
        await user.open("/deployments/doomed")
        await until(lambda: "3/3 running" in text(user, "summary"), "all running", 30)
        await until(lambda: "/s" in row(user, "tasks", "d")["inputs"][0]["text"], "a rate", 30)

        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        await until(lambda: not fleet.agents["dead"].online, "the will")

        # the running view, open meanwhile: no task running, each says agent offline with how long, no rates
        await until(lambda: text(user, "summary") == "version 1 · 0/3 running, 3 agent offline", "the summary")
        d = row(user, "tasks", "d")
        assert OFFLINE.fullmatch(d["state"]["text"]) and d["state"]["color"] == "blue-grey"
        assert "/s" not in d["inputs"][0]["text"] and d["inputs"][0]["text"].endswith("(last known)")
        assert "agent dead is offline; its last status said running" in d["error"]
        graph = element(user, "graph")
        assert {n["id"]: n["state"] for n in graph.nodes} == {"n": "agent-offline", "d": "agent-offline",
                                                               "level": "agent-offline"}

        # the dashboard: the card is stale, with why and its value's age
        await user.open("/deployments/doomed/dashboard")
        await until(lambda: text(user, "state-level").startswith("stale · agent offline "), "a stale card")
        assert re.fullmatch(r"stale · agent offline \d+ s · value \d+ (s|min) old", text(user, "state-level"))

        # the deployments list
        await user.open("/deployments")
        await user.should_see("0/3 running, 3 agent offline", retries=100)

        # the agents page: chips of offline tasks, CPU and memory as last known with their age
        await user.open("/")
        await until(lambda: row(user, "agents", "dead") is not None, "the agent's row")
        dead = row(user, "agents", "dead")
        assert dead["status"]["text"] == "offline"
        assert {c["color"] for c in dead["tasks"]} == {"blue-grey"}
        assert all(OFFLINE.search(c["title"]) for c in dead["tasks"])
        assert re.fullmatch(r"[\d.]+ % last known, \d+ (s|min) ago", dead["cpu"]["text"]), dead["cpu"]
        assert re.fullmatch(r"[\d.]+ MB last known, \d+ (s|min) ago", dead["rss"]["text"]), dead["rss"]
        assert dead["cpu"]["values"]  # the history stays drawn
    finally:
        proc.kill()
        proc.wait(5)


def forget_crash_logs(caplog):
    """The crash is logged at ERROR, as it should be: expected here, and nothing else."""
    records = caplog.get_records("call")
    crashes = [r for r in records if r.name == "edge.instance" and "crashed" in r.getMessage()]
    assert crashes
    records[:] = [r for r in records if r not in crashes]


@pytest.mark.expect_errors("flaky on purpose")
async def test_a_crash_notice_shows_until_dismissed(user, panel_settings, tmp_path, caplog):
    name = uuid.uuid4().hex
    async with agents(panel_settings, tmp_path, "a1", sources=(UI_TASKS, FLAKY_TASKS)):
        await until(lambda: "flaky" in panel().fleet.types(), "the flaky type")
        await panel().controller.deploy(parse_spec({"id": "shaky", "tasks": [
            {"id": "f", "type": "flaky", "agent": "a1", "config": {"name": name}},
            {"id": "n", "type": "numbers", "agent": "a1"}]}))
        await user.open("/deployments/shaky")
        await until(lambda: (r := row(user, "tasks", "f")) and r["state"]["text"] == "running"
                    and "restarted once" in r["error"], "the crash notice", 30)
        f = row(user, "tasks", "f")
        assert f["state"]["color"] == "amber" and f["restarts"] == "1"
        assert re.search(r"restarted once · last crash \d\d:\d\d:\d\d \(\d+ s ago\): RuntimeError: flaky on purpose",
                         f["error"]), f["error"]
        assert row(user, "tasks", "n")["state"]["color"] == "green"
        await until(lambda: text(user, "summary") == "version 1 · 2/2 running, 1 restarted", "the summary")
        assert "RuntimeError: flaky on purpose" in text(user, "notice-f")
        graph = element(user, "graph")
        assert {n["id"]: n["state"] for n in graph.nodes} == {"f": "restarted", "n": "running"}
        # the other pages say so too
        await user.open("/deployments")
        await user.should_see("2/2 running, 1 restarted", retries=100)
        await user.open("/")
        await until(lambda: row(user, "agents", "a1") and any(
            c["color"] == "amber" and "flaky on purpose" in c["title"] for c in row(user, "agents", "a1")["tasks"]),
            "the amber chip")

        # dismissed: the agent clears it, and every view goes back to plain running
        await user.open("/deployments/shaky")
        await user.should_see(marker="dismiss-f", retries=100)
        user.find(marker="dismiss-f").click()
        await until(lambda: panel().fleet.statuses[("shaky", "f")].crashed_at is None, "the agent to clear it")
        await until(lambda: row(user, "tasks", "f")["state"]["color"] == "green", "f green again")
        f = row(user, "tasks", "f")
        assert f["error"] == "" and f["restarts"] == "0"
        await until(lambda: text(user, "summary") == "version 1 · 2/2 running", "the summary without it")
        await user.should_not_see(marker="dismiss-f", retries=20)
    forget_crash_logs(caplog)
