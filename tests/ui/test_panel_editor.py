"""The graph editor: create, add tasks, config forms with validation, wiring (and refusals),
pinning, YAML export and import, deploying (and the controller's refusals); a version deployed
elsewhere while a draft is edited (banner, diffs, reload, overwrite only when confirmed); the page
of a deployment that does not exist."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid

import pytest
import yaml
from conftest import agents, new_deployment, panel, until
from nicegui import ElementFilter, ui
from nicegui.elements.upload_files import SmallFileUpload

from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def graph(user):
    return newest(user, "graph")


def marked(user, marker):
    with user:
        return list(ElementFilter(marker=marker, only_visible=False))


def newest(user, marker):
    """The newest element with that marker (a closed dialog lingers for a moment)."""
    return max(user.find(marker=marker).elements, key=lambda e: e.id)


def node_ids(user):
    return [n["id"] for n in graph(user).nodes]


async def add(user, type_name, label):
    user.find(marker="add-type").click()
    user.find(f"{label} ({type_name})").click()
    user.find(marker="add").click()


async def test_build_configure_wire_pin_and_deploy(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1", "a2"):
        await until(lambda: {"a1", "a2"} <= set(panel().fleet.types().get("numbers", {}).get("agents", [])), "types")
        await new_deployment(user, "demo")
        assert panel().drafts["demo"].tasks == []
        await add(user, "numbers", "Numbers")
        await add(user, "double", "Double")
        await add(user, "words", "Words")
        assert node_ids(user) == ["numbers1", "double1", "words1"]

        # a compatible wire is drawn; an input fed twice and incompatible metadata are refused, with why
        user.find(marker="graph").trigger("connect", {"from": "numbers1.out", "to": "double1.in"})
        assert [e["key"] for e in graph(user).edges] == ["numbers1.out->double1.in"]
        user.find(marker="graph").trigger("connect", {"from": "words1.out", "to": "double1.in"})
        await user.should_see("input double1.in is fed by numbers1.out already: delete that wire first")
        await add(user, "double", "Double")
        user.find(marker="graph").trigger("connect", {"from": "words1.out", "to": "double2.in"})
        await user.should_see("edge words1.out -> double2.in: incompatible (content: 'text' != 'number')")
        assert user.notify.contains("cannot connect words1.out → double2.in")
        assert len(graph(user).edges) == 1

        # select a node: its form comes from the config schema and says what is wrong, field by field
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "double1"})
        await user.should_see("task double1")
        factor = next(iter(user.find(marker="config-factor").elements))
        factor.set_value(-1)
        await user.should_see("Factor must be > 0")
        factor.set_value(2000)
        await user.should_see("Factor must be ≤ 1000")
        tags = next(iter(user.find(marker="config-tags").elements))
        tags.set_value('["a", "b", "c", "d"]')
        await user.should_see("Tags takes at most 3 items")
        tags.set_value("[not json")
        await user.should_see("not valid JSON")
        user.find(marker="deploy").click()
        await user.should_see("fix the config first")
        assert "demo" not in panel().fleet.deployments
        tags.set_value('["a"]')
        factor.set_value(3)
        next(iter(user.find(marker="config-mode").elements)).set_value('"add"')
        await until(lambda: panel().drafts["demo"].task("double1").config == {"factor": 3, "mode": "add",
                                                                                "tags": ["a"]}, "the config")
        # pin a task; the others are left to placement
        next(iter(user.find(marker="run-on").elements)).set_value("a2")
        assert panel().drafts["demo"].task("double1").agent == "a2"

        # remove what is not needed: a wire, then tasks
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "double2"})
        user.find(marker="remove-task").click()
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "words1"})
        user.find(marker="remove-task").click()
        assert node_ids(user) == ["numbers1", "double1"]

        user.find(marker="deploy").click()
        await user.should_see("placement: numbers1 on a1, double1 on a2", retries=50)
        assert user.notify.contains("deployed demo version 1")
        spec = panel().fleet.deployments["demo"]
        assert [(t.id, t.agent, t.config) for t in spec.tasks] == [
            ("numbers1", "a1", {}), ("double1", "a2", {"factor": 3, "mode": "add", "tags": ["a"]})]
        await until(lambda: all(s.state == "running" for s in panel().fleet.tasks_of("demo"))
                    and len(panel().fleet.tasks_of("demo")) == 2, "both tasks running")

        # export: the YAML a user would write
        user.find(marker="export").click()
        exported = yaml.safe_load((await user.download.next()).content)
        assert exported["id"] == "demo" and exported["edges"] == [{"from": "numbers1.out", "to": "double1.in"}]
        assert [t["id"] for t in exported["tasks"]] == ["numbers1", "double1"]
        await panel().controller.remove("demo")


async def test_import_yaml_wires_and_deploy_errors(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "imp")
        await user.should_see("not deployed")
        spec = {"id": "elsewhere", "label": "Imported", "tasks": [
            {"id": "src", "type": "numbers", "config": {"interval_ms": 50}},
            {"id": "x", "type": "nope"}], "edges": [{"from": "src.out", "to": "x.in"}]}
        user.find(marker="open-import").click()
        upload = newest(user, "import")
        await upload.handle_uploads([SmallFileUpload("graph.yaml", "application/yaml", yaml.safe_dump(spec).encode())])
        await user.should_see("Imported", retries=20)  # the label field
        assert user.notify.contains("imported 2 tasks and 1 wires (the file's id elsewhere is replaced by imp)")
        assert node_ids(user) == ["src", "x"] and graph(user).edges[0]["key"] == "src.out->x.in"
        await until(lambda: not marked(user, "import"), "the closed dialog to go")
        # the node of an unknown type still shows its wired port, and the controller's refusal is listed
        x = next(n for n in graph(user).nodes if n["id"] == "x")
        assert [p["name"] for p in x["inputs"]] == ["in"]
        user.find(marker="deploy").click()
        await user.should_see("task 'x': unknown task type 'nope'", retries=50)
        await user.should_see("task 'x': no online agent offers type 'nope'")
        assert "imp" not in panel().fleet.deployments
        user.find(marker="check").click()
        await user.should_see("task 'x': unknown task type 'nope'")

        # a wire is deleted by selecting it; paste replaces the whole graph
        user.find(marker="graph").trigger("select", {"kind": "edge", "id": "src.out->x.in"})
        user.find(marker="delete-wire").click()
        assert graph(user).edges == []
        user.find(marker="open-import").click()
        text = newest(user, "yaml")
        text.set_value("id: imp\ntasks: [{id: only, type: numbers}]\nedges: []\n")
        user.find(marker="import-yaml").click()
        assert node_ids(user) == ["only"]
        await until(lambda: not marked(user, "yaml"), "the closed dialog to go")
        user.find(marker="open-import").click()
        newest(user, "yaml").set_value(
            "id: imp\ntasks: [{id: a, type: numbers}, {id: a, type: numbers}]\n")
        user.find(marker="import-yaml").click()
        await user.should_see("task id 'a' is used twice")
        assert node_ids(user) == ["only"]
        user.find(marker="deploy").click()
        await until(lambda: "imp" in panel().fleet.deployments, "the deployment")
        assert [t.id for t in panel().fleet.deployments["imp"].tasks] == ["only"]
        # revert drops the draft: the editor shows what is deployed
        panel().drafts["imp"].tasks.clear()
        user.find(marker="revert").click()
        await user.open("/deployments/imp/edit")
        assert node_ids(user) == ["only"]
        await panel().controller.remove("imp")


async def cli_deploy(panel_settings, tmp_path, spec: dict) -> str:
    """``edge deploy`` in a process of its own, with its own data dir: a deploy the panel did not make."""
    path = tmp_path / f"cli-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update({"EDGE_BROKER": panel_settings.broker, "EDGE_NAMESPACE": panel_settings.namespace,
                "EDGE_DATA_DIR": str(tmp_path / "cli")})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "edge", "deploy", str(path), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def graph_spec(interval: int, *, words: bool = False) -> dict:
    tasks = [{"id": "n", "type": "numbers", "config": {"interval_ms": interval}}, {"id": "d", "type": "double"}]
    edges = [{"from": "n.out", "to": "d.in"}]
    if words:
        tasks.append({"id": "w", "type": "words", "config": {"word": "20 °C"}})
        edges = []
    return {"id": "demo", "tasks": tasks, "edges": edges}


def texts(user, marker):
    with user:
        return [label.text for e in ElementFilter(marker=marker) for label in e.descendants()
                if isinstance(label, ui.label)]


async def test_a_version_deployed_elsewhere_is_shown_and_never_silently_undone(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "words" in panel().fleet.types(), "types")
        fleet = panel().fleet
        await panel().controller.deploy(parse_spec(graph_spec(100)))
        await user.open("/deployments/demo/edit")
        await user.should_see("deployed: version 1")
        await user.should_not_see(marker="stale-title")
        next(iter(user.find(marker="deployment-label").elements)).set_value("Mine")  # an edit of our own

        # the CLI deploys version 2 while the editor is open: the editor says so, live, with what differs
        await cli_deploy(panel_settings, tmp_path, graph_spec(200, words=True))
        await user.should_see(marker="stale-title", retries=100)
        title = next(iter(user.find(marker="stale-title").elements)).text
        assert title.startswith("Version 2 of demo was deployed ")
        assert f"from the CLI on {socket.gethostname()}" in title and "based on version 1" in title
        await user.should_see("deployed: version 2")
        theirs = texts(user, "stale-theirs")
        assert theirs == ["+ task w (words)", "task n: config interval_ms: 100 → 200", "- wire n.out → d.in"]
        mine = texts(user, "stale-mine")
        assert mine == ['label "" → "Mine"', "- task w (words)", "task n: config interval_ms: 200 → 100",
                        "+ wire n.out → d.in"]

        # Deploy asks first, naming the version it replaces; cancelled, nothing is published
        user.find(marker="deploy").click()
        await user.should_see("Deploy over version 2?")
        assert texts(user, "overwrite-diff") == mine
        user.find(marker="cancel-overwrite").click()
        await until(lambda: not marked(user, "confirm-overwrite"), "the closed dialog to go")
        assert fleet.deployments["demo"].version == 2
        # the deployments list does not deploy a stale draft either: it says why
        from ui.pages.deployments import deploy_draft

        with user:
            problems = await deploy_draft(panel(), panel().drafts["demo"])
        assert problems and "version 2 of demo was deployed" in problems[0]
        assert fleet.deployments["demo"].version == 2

        # confirmed: the draft replaces version 2, and the banner goes
        user.find(marker="deploy-over").click()
        await user.should_see(marker="confirm-overwrite")
        user.find(marker="confirm-overwrite").click()
        await until(lambda: fleet.deployments["demo"].version == 3, "version 3")
        v3 = fleet.deployments["demo"]
        assert v3.label == "Mine" and v3.task("n").config == {"interval_ms": 100} and [t.id for t in v3.tasks] == [
            "n", "d"]
        assert v3.deployed is not None and v3.deployed.via == "panel" and v3.deployed.replaced == 2
        await user.should_not_see(marker="stale-title", retries=50)

        # another CLI deploy; reload takes it: the editor then shows version 4's values, no banner
        await cli_deploy(panel_settings, tmp_path, graph_spec(300))
        await user.should_see(marker="stale-title", retries=100)
        assert texts(user, "stale-theirs") == ['label "Mine" → ""', "task n: config interval_ms: 100 → 300"]
        user.find(marker="reload-deployed").click()
        assert "demo" not in panel().drafts
        await user.open("/deployments/demo/edit")
        await user.should_see("deployed: version 4")
        await user.should_not_see(marker="stale-title")
        assert panel().drafts["demo"].task("n").config == {"interval_ms": 300}
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "n"})
        await user.should_see("task n")
        assert next(iter(user.find(marker="config-interval_ms").elements)).value == 300
        await panel().controller.remove("demo")


async def test_a_new_draft_for_an_id_deployed_meanwhile_is_stale(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "demo")
        await cli_deploy(panel_settings, tmp_path, graph_spec(100))
        await user.should_see(marker="stale-title", retries=100)
        assert "based on nothing deployed (a new draft)" in next(iter(user.find(marker="stale-title").elements)).text
        assert texts(user, "stale-mine") == ["- task n (numbers)", "- task d (double)", "- wire n.out → d.in"]
        user.find(marker="deploy").click()
        await user.should_see("Deploy over version 1?")
        await panel().controller.remove("demo")


async def test_an_unknown_deployment_is_not_found_and_can_be_created(user, panel_settings):
    await user.open("/deployments/typo/edit")
    await user.should_see("There is no deployment typo")
    assert "typo" not in panel().drafts and "typo" not in panel().known_deployments()
    await user.should_not_see("Add a task")
    user.find(marker="create-it").click()
    await user.should_see("New deployment")
    assert next(iter(user.find(marker="new-id").elements)).value == "typo"
    user.find(marker="create").click()
    await user.should_see("Add a task", retries=50)
    assert panel().drafts["typo"].tasks == []
