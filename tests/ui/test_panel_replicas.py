"""A task with replicas in the panel: its node says ``x2`` and where each replica runs, its status line
each replica's state, the task table a row per replica; the agents page a chip per replica."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import UI_TASKS, agents, element, new_deployment, panel, until

from edge.controller.views import TaskView
from edge.graph import parse_spec
from ui.node_status import LastValue, replicas_status

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

REPLICA_TASKS = str(Path(__file__).parents[1] / "edge" / "replica_tasks.py")
SPEC = {"id": "rep", "tasks": [{"id": "n", "type": "numbers", "config": {"interval_ms": 50}},
                               {"id": "w", "type": "stamp", "replicas": 2}],
        "edges": [{"from": "n.out", "to": "w.in"}]}



def rows(user):
    return {r["id"]: r for r in element(user, "tasks").rows}


async def test_running_view_shows_each_replica(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1", "a2", sources=(UI_TASKS, REPLICA_TASKS)):
        await until(lambda: {"a1", "a2"} <= {a for a, i in panel().fleet.agents.items() if i.online and i.types},
                    "both agents")
        result = await panel().controller.deploy(parse_spec(SPEC))
        assert result.spec.task("w").agents == ("a2", "a1")  # n went to a1 first: w.0 to the emptier a2
        await user.open("/deployments/rep")
        await until(lambda: [r["state"]["text"] for k, r in sorted(rows(user).items())] == ["running"] * 3,
                    "n, w.0 and w.1 running", 30)
        table = rows(user)
        assert sorted(table) == ["n", "w.0", "w.1"]
        assert (table["w.0"]["agent"], table["w.1"]["agent"]) == ("a2", "a1")
        assert table["w.0"]["outputs"][0]["value"] == "w.out:out"  # the one stream of the task, to inspect
        graph = element(user, "graph")
        node = next(n for n in graph.nodes if n["id"] == "w")
        assert node["subtitle"] == "stamp x2 @ a2, a1"
        await until(lambda: graph.statuses.get("w", {}).get("text", "").startswith("x2 · running"), "x2 running")
        assert graph.statuses["w"]["tone"] == "ok"
        await user.should_see("3/3 running")
        # the agents page: a chip per replica, on its agent
        await user.open("/")

        def chips(agent_id):
            agent_row = next((r for r in element(user, "agents").rows if r["id"] == agent_id), None)
            return sorted(c["text"] for c in agent_row["tasks"]) if agent_row else None

        await until(lambda: chips("a1") == ["rep/n", "rep/w.1"] and chips("a2") == ["rep/w.0"], "a chip per replica")


def view(key: str, state: str, error: str | None = None) -> TaskView:
    from edge.controller.fleet import TaskStatus

    status = TaskStatus(deployment="d", task=key, state=state, agent="a1", type="stamp", version=1, ts=1,
                        restarts=0, error=error, metrics={}, last_error=None, crashed_at=None, errors=[],
                        metrics_ts=1)
    return TaskView(deployment="d", task=key, type="stamp", agent="a1", state=state, status=status, agent_known=True,
                    last_heard=None, now=2, of="w", replicas=2)


def test_a_node_with_replicas_says_each_replicas_state_and_the_worst_tone():
    value = LastValue("42", 0.0)
    ok = replicas_status([view("w.0", "running"), view("w.1", "running")], value)
    assert (ok.text, ok.tone) == ("x2 · running · 42", "ok")
    bad = replicas_status([view("w.0", "running"), view("w.1", "failed", "boom")], value)
    assert (bad.text, bad.tone) == ("x2: running, failed · failed: boom", "error")
    starting = replicas_status([view("w.0", "starting"), view("w.1", "running")], value)
    assert (starting.text, starting.tone) == ("x2: starting, running · starting", "warn")


async def test_the_editor_sets_replicas_of_a_stateless_task_only(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1", sources=(UI_TASKS, REPLICA_TASKS)):
        await until(lambda: "stamp" in panel().fleet.types(), "types")
        await new_deployment(user, "ed")
        for type_name, label in (("stamp", "Stamp"), ("numbers", "Numbers")):
            user.find(marker="add-type").click()
            user.find(f"{label} ({type_name})").click()
            user.find(marker="add").click()
        graph = element(user, "graph")
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "stamp1"})
        field = element(user, "replicas")
        for hostile in (0, 65, 2.5, None):  # not a whole number from 1 to 64: ignored
            field.set_value(hostile)
        assert panel().drafts["ed"].task("stamp1").replicas == 1
        field.set_value(3)
        await until(lambda: panel().drafts["ed"].task("stamp1").replicas == 3, "3 replicas in the draft")
        await until(lambda: next(n for n in graph.nodes if n["id"] == "stamp1")["subtitle"] == "stamp x3 · any agents",
                    "x3 on the node")
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "numbers1"})  # not stateless: no field
        await user.should_see("task numbers1")
        await user.should_not_see(marker="replicas")
