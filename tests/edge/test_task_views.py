"""What a task is shown as (edge/controller/views.py), against real brokers and real agents: a dead
agent's tasks are ``agent offline`` (kill -9, SIGTERM of a script agent), and a crash stays visible
until it is dismissed or the task has run cleanly for a while."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from flaky_tasks import Flaky

import edge.instance
from edge.controller import Controller, deployment_views, summarize, task_view
from edge.controller.views import format_age
from edge.errors import ConfigError
from edge.frames import encode_value
from edge.graph import parse_spec
from edge.host import Host
from edge.settings import load_settings

AGENT_TESTS = Path(__file__).parents[1] / "agent"
SAMPLES = str(AGENT_TESTS / "sample_tasks.py")
ADDER_SCRIPT = str(AGENT_TESTS / "adder_script.py")
TIMEOUT = 15.0


def flaky(name: str) -> dict[str, object]:
    """The config of a Flaky task that crashes once, after 5 frames 20 ms apart."""
    return {"name": name, "crash_after": 5, "interval_ms": 20}


def edge_env(broker, ns: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_BROKER=str(broker.url), EDGE_NAMESPACE=ns, EDGE_DATA_DIR=str(data_dir), **extra)
    return env


def edge_ls(what: str, env: dict[str, str]) -> list[list[str]]:
    out = subprocess.run([sys.executable, "-m", "edge", "ls", what], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return [re.split(r"\s{2,}", line.strip()) for line in out.stdout.splitlines()[1:]]


async def wait_online(controller: Controller, agent: str, type_name: str) -> None:
    await controller.fleet.wait_for(lambda f: agent in f.agents and f.agents[agent].online
                                    and f.agents[agent].offers(type_name), timeout=TIMEOUT)


def shown(controller: Controller, dep: str, task: str):
    return task_view(controller.fleet, dep, controller.fleet.deployments[dep].task(task))


async def test_a_killed_agent_s_tasks_show_agent_offline_with_how_long(broker, tmp_path):
    ns = f"ns{uuid.uuid4().hex[:8]}"
    settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "ctl")
    env = edge_env(broker, ns, tmp_path / "agent", EDGE_AGENT_ID="worker")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "agent", "--tasks", SAMPLES], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with Controller(settings) as controller:
            await wait_online(controller, "worker", "counter")
            await controller.deploy(parse_spec({"id": "demo", "tasks": [
                {"id": "count", "type": "counter", "agent": "worker", "config": {"interval_ms": 20}}]}))
            await controller.fleet.wait_for(
                lambda f: shown(controller, "demo", "count").metrics.get("outputs", {}).get("out", {}).get("rate"),
                timeout=TIMEOUT)
            view = shown(controller, "demo", "count")
            assert (view.state, view.label, view.current) == ("running", "running", True)
            assert summarize(controller.fleet, "demo").text == "1/1 running"

            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            await controller.fleet.wait_for(lambda f: not f.agents["worker"].online, timeout=TIMEOUT)
            view = shown(controller, "demo", "count")
            assert view.reported == "running"  # the retained status still says so: the view must not
            assert view.state == "agent offline" and not view.current
            assert re.fullmatch(r"agent offline \d+ s", view.label), view.label
            assert view.detail == "agent worker is offline; its last status said running"
            assert view.last_heard is not None  # how long: from when the agent was last heard of
            later = task_view(controller.fleet, "demo", controller.fleet.deployments["demo"].task("count"),
                              now=view.last_heard + 25_000)
            assert later.label == "agent offline 25 s" and later.offline_for == 25.0
            summary = summarize(controller.fleet, "demo")
            assert (summary.running, summary.offline, summary.text) == (0, 1, "0/1 running, 1 agent offline")

        ctl_env = edge_env(broker, ns, tmp_path / "ctl")
        [row] = edge_ls("tasks", ctl_env)
        assert row[0] == "demo/count" and re.fullmatch(r"agent offline \d+ s", row[3]), row
        [row] = edge_ls("deployments", ctl_env)
        assert row[:4] == ["demo", "1", "1", "0/1 (1 agent offline)"]
        [row] = edge_ls("agents", ctl_env)
        assert row[:2] == ["worker", "offline"] and row[-2:] == ["-", "-"]  # no CPU and memory as if current

        # someone clears the dead agent's retained state: its tasks' statuses still vouch for nothing
        async with Controller(settings) as controller:
            await controller.bus.publish(controller.topics.agent_state("worker"), b"", qos=1, retain=True)
            await controller.fleet.wait_for(lambda f: "worker" not in f.agents, timeout=TIMEOUT)
            view = shown(controller, "demo", "count")
            assert view.state == "agent offline" and view.reported == "running"
            assert view.detail == "agent worker has no state on the broker; its last status said running"
    finally:
        proc.kill()
        proc.wait(5)


async def test_a_script_agent_stopped_by_sigterm_shows_agent_offline(broker, tmp_path):
    ns = f"ns{uuid.uuid4().hex[:8]}"
    settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "ctl")
    env = edge_env(broker, ns, tmp_path / "script", EDGE_AGENT_ID="adder-1")
    proc = subprocess.Popen([sys.executable, ADDER_SCRIPT], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        async with Controller(settings) as controller:
            await wait_online(controller, "adder-1", "adder")
            await controller.deploy(parse_spec({"id": "sums", "tasks": [
                {"id": "add", "type": "adder", "agent": "adder-1"}]}))
            await controller.fleet.wait_for(lambda f: shown(controller, "sums", "add").state == "running",
                                            timeout=TIMEOUT)
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            await controller.fleet.wait_for(lambda f: not f.agents["adder-1"].online, timeout=TIMEOUT)
            [view] = deployment_views(controller.fleet, "sums")
            assert view.state == "agent offline" and view.label.startswith("agent offline ")
            assert not view.current and view.reported in ("running", "stopped")
            assert summarize(controller.fleet, "sums").running == 0
    finally:
        proc.kill()
        proc.wait(5)


async def test_pending_says_what_it_waits_for(broker, tmp_path):
    ns = f"ns{uuid.uuid4().hex[:8]}"
    settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "ctl")
    async with Controller(settings) as controller:
        spec = parse_spec({"id": "lonely", "tasks": [{"id": "t", "type": "counter", "agent": "nobody"}]})
        controller.fleet.deployments["lonely"] = spec  # as a spec on the broker would be: no agent reports
        [view] = deployment_views(controller.fleet, "lonely")
        assert (view.state, view.label, view.current) == ("pending", "pending", False)
        assert view.detail == "waiting for agent nobody, which has never announced itself"
        assert summarize(controller.fleet, "lonely").text == "0/1 running, 1 pending"


@pytest.mark.expect_errors("flaky on purpose")
async def test_a_crash_stays_visible_until_dismissed_from_any_controller(broker, tmp_path, caplog):
    ns = f"ns{uuid.uuid4().hex[:8]}"
    agent_settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "agent", agent_id="h1")
    settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "ctl")
    name = uuid.uuid4().hex
    async with Host(agent_settings, types=[Flaky], status_interval=0.2) as host, \
            Controller(settings) as panel_a, Controller(settings) as panel_b:
        await wait_online(panel_a, "h1", "flaky")
        after_crash: list[int] = []  # the frames of each status that says running with a crash notice

        def note(kind: str, key: str) -> None:
            status = panel_b.fleet.statuses.get(("dep", "f"))
            if kind == "status" and status is not None and status.state == "running" and status.crashed_at:
                after_crash.append(status.metrics.get("outputs", {}).get("out", {}).get("frames", -1))

        panel_b.fleet.on_change(note)
        await panel_a.deploy(parse_spec({"id": "dep", "tasks": [
            {"id": "f", "type": "flaky", "agent": "h1", "config": flaky(name)}]}))

        def restarted_and_counting(fleet) -> bool:
            status = fleet.statuses.get(("dep", "f"))
            frames = status.metrics.get("outputs", {}).get("out", {}).get("frames", 0) if status else 0
            return status is not None and status.state == "running" and status.crashed_at is not None \
                and frames > 5

        await panel_b.fleet.wait_for(restarted_and_counting, timeout=TIMEOUT)
        status = panel_b.fleet.statuses[("dep", "f")]
        # the notice stays though it runs again, and the counters carry over the crash: the first
        # status of the new run already counts the 5 frames sent before it
        assert after_crash[0] >= 5, after_crash
        assert status.restarts == 1 and status.last_error == "RuntimeError: flaky on purpose"
        assert status.errors == [("RuntimeError: flaky on purpose", status.crashed_at)]  # the crash history
        view = shown(panel_b, "dep", "f")
        assert view.state == "running" and view.error == ""
        assert view.notice is not None and view.notice.startswith("restarted once · last crash ")
        assert view.notice.endswith("ago): RuntimeError: flaky on purpose")
        assert summarize(panel_b.fleet, "dep").text == "1/1 running, 1 restarted"
        assert any("crashed" in r.getMessage() for r in caplog.records)

        # a dismissal of an earlier look does not hide a later crash
        instance = host.instances[("dep", "f")]
        assert instance.crashed_at is not None and not instance.dismiss(instance.crashed_at - 1)
        # garbage on the dismiss topic is counted and ignored
        errors = host.errors
        await panel_a.bus.publish(panel_a.topics.agent_dismiss("h1"), encode_value({"deployment": "dep"}), qos=1)
        await panel_a.bus.publish(panel_a.topics.agent_dismiss("h1"), b"\xff\x00", qos=1)

        assert await panel_a.dismiss("dep", "f") is True  # asked on one panel, gone on the other
        await panel_b.fleet.wait_for(lambda f: f.statuses[("dep", "f")].crashed_at is None, timeout=TIMEOUT)
        status = panel_b.fleet.statuses[("dep", "f")]
        assert (status.state, status.restarts, status.last_error) == ("running", 0, None)
        assert [error for error, _ in status.errors] == ["RuntimeError: flaky on purpose"]  # kept after a dismissal
        assert shown(panel_b, "dep", "f").notice is None
        assert host.errors == errors + 2
        assert await panel_a.dismiss("dep", "f") is False  # nothing left to dismiss


@pytest.mark.expect_errors("flaky on purpose")
async def test_the_notice_clears_itself_after_a_clean_run_and_waits_for_an_offline_agent(
        broker, tmp_path, monkeypatch):
    monkeypatch.setattr(edge.instance, "NOTICE_CLEARS_AFTER", 1.0)
    ns = f"ns{uuid.uuid4().hex[:8]}"
    agent_settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "agent", agent_id="h2")
    settings = load_settings(broker=str(broker.url), namespace=ns, data_dir=tmp_path / "ctl")
    name = uuid.uuid4().hex
    async with Controller(settings) as controller:
        async with Host(agent_settings, types=[Flaky], status_interval=0.2):
            await wait_online(controller, "h2", "flaky")
            await controller.deploy(parse_spec({"id": "dep", "tasks": [
                {"id": "f", "type": "flaky", "agent": "h2", "config": flaky(name)}]}))
            await controller.fleet.wait_for(
                lambda f: (s := f.statuses.get(("dep", "f"))) is not None and s.crashed_at is not None, TIMEOUT)
            await controller.fleet.wait_for(
                lambda f: (s := f.statuses[("dep", "f")]).crashed_at is None and s.state == "running", TIMEOUT)
            assert controller.fleet.statuses[("dep", "f")].restarts == 0
        # a crash notice on a task whose agent is gone cannot be dismissed: said, not silently lost
        name2 = uuid.uuid4().hex
        Flaky.crashed.discard(name2)
        async with Host(agent_settings, types=[Flaky], status_interval=0.2):
            await controller.deploy(parse_spec({"id": "dep", "tasks": [
                {"id": "f", "type": "flaky", "agent": "h2", "config": flaky(name2)}]}))
            await controller.fleet.wait_for(
                lambda f: (s := f.statuses.get(("dep", "f"))) is not None and s.crashed_at is not None
                and s.version == 2, TIMEOUT)
        await controller.fleet.wait_for(lambda f: not f.agents["h2"].online, TIMEOUT)
        with pytest.raises(ConfigError, match="agent h2 of dep/f is offline"):
            await controller.dismiss("dep", "f")


def test_ages_read_short():
    assert [format_age(s) for s in (-3, 0, 25.9, 59, 60, 3599, 3600, 86399, 86400 * 3)] == [
        "0 s", "0 s", "25 s", "59 s", "1 min", "59 min", "1 h", "23 h", "3 d"]
