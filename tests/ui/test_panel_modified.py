"""Modified markers on the editor's nodes changed since the last deploy, and the summary of what
Deploy will change (added, removed, restarted, moved tasks), as the agents will do it."""

from __future__ import annotations

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter

from edge.graph import EdgeSpec, parse_spec
from ui.deploy_plan import plan_deploy

DEPLOYED = {"id": "m", "tasks": [
    {"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 100}},
    {"id": "d", "type": "double", "agent": "a1"},
    {"id": "e", "type": "double", "agent": "a1"},
    {"id": "w", "type": "words", "agent": "a1"}],
    "edges": [{"from": "n.out", "to": "d.in"}]}


def spec(**changes):
    data = {**DEPLOYED, **changes}
    return parse_spec(data)


def test_the_plan_says_what_each_task_will_do():
    deployed = parse_spec(DEPLOYED)
    assert plan_deploy(deployed, deployed).summary() == "none: the draft is what runs"
    assert plan_deploy(deployed, deployed).modified == {}
    changed = spec(tasks=[
        {"id": "n", "type": "numbers", "agent": "a1", "config": {"interval_ms": 200}, "label": "source"},
        {"id": "d", "type": "double", "agent": "a1"},
        {"id": "e", "type": "double", "agent": "a2"},
        {"id": "x", "type": "double"}],
        edges=[{"from": "n.out", "to": "x.in"}])
    plan = plan_deploy(deployed, changed)
    assert plan.added == ["x"] and plan.removed == ["w"]
    # config restarts; an input's wire restarts its task, a wire from an output does not restart the source
    assert plan.restarted == {"n": "config interval_ms", "d": "its inputs' wires"}
    assert plan.moved == {"e": "a1 → a2"}
    assert plan.summary() == "1 added, 1 removed, 2 restarted, 1 moved"
    assert plan.modified == {"x": "new", "n": "config interval_ms (restarts)", "d": "its inputs' wires (restarts)",
                             "e": "a1 → a2 (moves)"}
    assert "+ task x (double)" in plan.lines and "- task w (words)" in plan.lines
    assert plan.task_lines()[:2] == ["+ start x (new)", "- stop w (removed)"]
    # a label, or a task left to placement where placement put it: no restart, nothing runs differently
    relabelled = spec(tasks=[{**t, "label": "L"} if t["id"] == "w" else {**t, "agent": None}
                             for t in DEPLOYED["tasks"]])
    plan = plan_deploy(deployed, relabelled)
    assert plan.no_restart == {"w": "label"} and not plan.restarted and not plan.moved
    assert plan.unchanged == ["n", "d", "e"]
    # a topic wire from an output changes what the task publishes on: it restarts
    topic = spec(edges=[*DEPLOYED["edges"], {"from": "w.out", "to": "topic:home/words"}])
    assert plan_deploy(deployed, topic).restarted == {"w": "its outputs' topics"}
    # nothing deployed: everything is new
    assert plan_deploy(None, deployed).added == ["n", "d", "e", "w"]


def graph_node(user, task):
    with user:
        graph = max(ElementFilter(marker="graph", only_visible=False), key=lambda e: e.id)
    return next(n for n in graph.nodes if n["id"] == task)


def texts(user, marker):
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    return [label.text for column in found[-1:] for label in column.default_slot.children]


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_markers_and_the_deploy_summary_in_the_editor(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1", "a2"):  # tasks pinned to each: both catalogs
        await until(lambda: {"a1", "a2"} <= set(panel().fleet.types().get("double", {}).get("agents", [])),
                    "both agents' types")
        await panel().controller.deploy(parse_spec(DEPLOYED))
        await user.open("/deployments/m/edit")
        await user.should_see("deployed: version 1", retries=50)
        await user.should_see("Changes: none: the draft is what runs")
        assert "modified" not in graph_node(user, "n")

        # change a config in the form, move a task, add one: each node is marked with what changed
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "n"})
        await user.should_see("task n")
        next(iter(user.find(marker="config-interval_ms").elements)).set_value(250)
        await until(lambda: graph_node(user, "n").get("modified") == "config interval_ms (restarts)", "n marked")
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "e"})
        await user.should_see("task e")
        next(iter(user.find(marker="run-on").elements)).set_value("a2")
        await until(lambda: graph_node(user, "e").get("modified") == "a1 → a2 (moves)", "e marked")
        user.find(marker="graph").trigger("connect", {"from": "n.out", "to": "e.in"})
        await until(lambda: graph_node(user, "e").get("modified") == "a1 → a2; its inputs' wires (moves)",
                    "e's wire")
        assert "modified" not in graph_node(user, "d") and "modified" not in graph_node(user, "w")
        await user.should_see("Changes: 1 restarted, 1 moved, 2 unchanged")
        assert texts(user, "deploy-tasks") == ["↻ restart n: config interval_ms",
                                               "→ move e: a1 → a2; its inputs' wires"]
        assert "task n: config interval_ms: 100 → 250" in texts(user, "deploy-lines")

        # deployed: the markers go, and the agents did what the summary said: n restarted (its counts
        # start again), d kept running (its counts go on)
        def frames(task, side, port):
            status = panel().fleet.statuses.get(("m", task))
            return (status.version, status.metrics.get(side, {}).get(port, {}).get("frames", 0)) if status else (0, 0)

        await until(lambda: frames("n", "outputs", "out")[1] > 20 and frames("d", "inputs", "in")[1] > 20,
                    "counts before", 30)
        n_before, d_before = frames("n", "outputs", "out")[1], frames("d", "inputs", "in")[1]
        user.find(marker="deploy").click()
        await user.should_see("deployed m version 2", retries=50)
        await until(lambda: not any("modified" in graph_node(user, t) for t in ("n", "d", "e", "w")), "no markers")
        await user.should_see("Changes: none: the draft is what runs")
        await until(lambda: frames("n", "outputs", "out")[0] == 2 and frames("d", "inputs", "in")[0] == 2,
                    "version 2 running", 30)
        assert frames("n", "outputs", "out")[1] < n_before  # restarted: counting again
        assert frames("d", "inputs", "in")[1] >= d_before  # untouched: still counting on
        await until(lambda: panel().fleet.statuses.get(("m", "e")) is not None
                    and panel().fleet.statuses[("m", "e")].agent == "a2", "e moved to a2", 30)

        # a draft that is no valid spec (here: a wire to a task that is not there) has no summary
        panel().drafts["m"].edges.append(EdgeSpec.model_validate({"from": "n.out", "to": "ghost.in"}))
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "w"})
        await user.should_see("task w")
        next(iter(user.find(marker="task-label").elements)).set_value("words")
        await user.should_see("Changes: unknown until the draft is a valid spec")
        await panel().controller.remove("m")
