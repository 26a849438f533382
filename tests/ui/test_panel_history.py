"""The editor's undo and redo, multi-select, copy and paste, comments and groups (``user`` fixture,
real agents): every kind of edit undoes and redoes, a config typed key by key is one step, several
nodes move and go together, a piece copied in one deployment pastes in another with its ids
renamed, and comments and groups are kept in the spec a real agent runs."""

from __future__ import annotations

import pytest
import yaml
from conftest import agents, new_deployment, panel, until
from nicegui.testing.user_interaction import UserInteraction

from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def newest(user, marker):
    return max(user.find(marker=marker).elements, key=lambda e: e.id)


def click(user, marker):
    """Click the newest element with that marker (a closed dialog lingers for a moment)."""
    UserInteraction(user, {newest(user, marker)}, None).click()


def graph(user):
    return newest(user, "graph")


def node_ids(user):
    return [n["id"] for n in graph(user).nodes]


def wires(user):
    return [e["key"] for e in graph(user).edges]


def key(user, name, *, ctrl=False, shift=False, clipboard=None):
    """An editing key pressed on the editor page, as the canvas component reports it (the browser test
    presses real keys)."""
    actions = {("z", True, False): "undo", ("z", True, True): "redo", ("y", True, False): "redo",
               ("c", True, False): "copy", ("x", True, False): "cut", ("v", True, False): "paste",
               ("Delete", False, False): "delete"}
    args = {"action": actions[name, ctrl, shift]}
    if clipboard is not None:  # a paste event carries the system clipboard's text
        args["text"] = clipboard
    user.find(marker="graph").trigger("key", args)


async def add(user, type_name, label):
    user.find(marker="add-type").click()
    user.find(f"{label} ({type_name})").click()
    user.find(marker="add").click()


async def test_every_edit_undoes_and_redoes(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "hist")
        draft = panel().drafts["hist"]
        assert not newest(user, "undo").enabled  # nothing to undo yet
        await add(user, "numbers", "Numbers")
        await add(user, "double", "Double")
        user.find(marker="graph").trigger("connect", {"from": "numbers1.out", "to": "double1.in"})
        assert wires(user) == ["numbers1.out->double1.in"]
        user.find(marker="graph").trigger("move", {"id": "double1", "x": 400, "y": 120})
        assert draft.positions["double1"] == (400, 120)

        # a config typed key by key is one step; so is a label
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "double1"})
        await user.should_see("task double1")
        factor = next(iter(user.find(marker="config-factor").elements))
        for value in (3, 30, 300):
            factor.set_value(value)
        assert draft.task("double1").config["factor"] == 300
        label = next(iter(user.find(marker="task-label").elements))
        for text in ("d", "do", "dou"):
            label.set_value(text)
        assert draft.task("double1").label == "dou"
        steps = len(draft.history)
        assert steps == 6  # add, add, connect, move, config, label

        # undo walks back through every kind of edit, the toolbar button and Ctrl+Z alike
        click(user, "undo")
        assert draft.task("double1").label is None
        key(user, "z", ctrl=True)
        assert "factor" not in draft.task("double1").config
        await user.should_see(marker="config-factor")
        assert next(iter(user.find(marker="config-factor").elements)).value != 300  # the form shows it too
        key(user, "z", ctrl=True)
        assert "double1" not in draft.positions
        key(user, "z", ctrl=True)
        assert wires(user) == []
        key(user, "z", ctrl=True)
        assert node_ids(user) == ["numbers1"]
        # redo: Ctrl+Shift+Z and Ctrl+Y
        key(user, "z", ctrl=True, shift=True)
        assert node_ids(user) == ["numbers1", "double1"]
        key(user, "y", ctrl=True)
        assert wires(user) == ["numbers1.out->double1.in"]
        click(user, "redo")
        click(user, "redo")
        click(user, "redo")
        assert draft.task("double1").label == "dou" and draft.task("double1").config["factor"] == 300
        assert not newest(user, "redo").enabled
        key(user, "y", ctrl=True)
        assert user.notify.contains("nothing to redo")

        # pin, remove and an import are steps too; a new edit drops what could be redone
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "numbers1"})
        await user.should_see("task numbers1")
        newest(user, "run-on").set_value("a1")
        assert draft.task("numbers1").agent == "a1"
        click(user, "remove-task")
        assert node_ids(user) == ["double1"] and wires(user) == []
        click(user, "undo")
        assert node_ids(user) == ["double1", "numbers1"] or set(node_ids(user)) == {"numbers1", "double1"}
        assert wires(user) == ["numbers1.out->double1.in"]
        click(user, "undo")
        assert draft.task("numbers1").agent is None
        click(user, "open-import")
        newest(user, "yaml").set_value("id: x\ntasks: [{id: only, type: numbers}]\n")
        click(user, "import-yaml")
        assert node_ids(user) == ["only"]
        assert not newest(user, "redo").enabled
        key(user, "z", ctrl=True)
        assert set(node_ids(user)) == {"numbers1", "double1"}


async def test_multi_select_moves_and_deletes_together(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "many")
        draft = panel().drafts["many"]
        for _ in range(3):
            await add(user, "double", "Double")
        user.find(marker="graph").trigger("connect", {"from": "double1.out", "to": "double2.in"})
        user.find(marker="graph").trigger("connect", {"from": "double2.out", "to": "double3.in"})
        # a rubber band or shift-clicks select several (ids the graph does not have are ignored)
        user.find(marker="graph").trigger("selectmany", {"ids": ["double1", "double2", "nope", 5]})
        await user.should_see("2 nodes selected")
        assert graph(user).multi == ["double1", "double2"]
        user.find(marker="graph").trigger("movemany", {"moves": [{"id": "double1", "x": 10, "y": 20},
                                                                 {"id": "double2", "x": 250, "y": 20},
                                                                 {"id": "nope", "x": 1, "y": 1},
                                                                 {"id": "double3", "x": "far", "y": 0}]})
        assert draft.positions == {"double1": (10, 20), "double2": (250, 20)}
        click(user, "delete-selection")
        assert node_ids(user) == ["double3"] and wires(user) == []
        assert user.notify.contains("deleted 2 nodes")
        # one step brings both back, with their wires; one more undoes the move of both
        click(user, "undo")
        assert node_ids(user) == ["double1", "double2", "double3"]
        assert wires(user) == ["double1.out->double2.in", "double2.out->double3.in"]
        click(user, "undo")
        assert draft.positions == {}
        # the Delete key deletes the selection
        user.find(marker="graph").trigger("selectmany", {"ids": ["double3"]})
        key(user, "Delete")
        assert node_ids(user) == ["double1", "double2"]


async def test_copy_and_paste_within_and_across_deployments(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "one")
        await add(user, "numbers", "Numbers")
        await add(user, "double", "Double")
        await add(user, "double", "Double")
        user.find(marker="graph").trigger("connect", {"from": "numbers1.out", "to": "double1.in"})
        user.find(marker="graph").trigger("connect", {"from": "double1.out", "to": "double2.in"})
        user.find(marker="graph").trigger("move", {"id": "numbers1", "x": 0, "y": 0})
        user.find(marker="graph").trigger("move", {"id": "double1", "x": 300, "y": 0})
        click(user, "paste")
        assert user.notify.contains("nothing copied yet")
        # copy two of three: the wire between them is kept, the one to double2 is not
        user.find(marker="graph").trigger("selectmany", {"ids": ["numbers1", "double1"]})
        key(user, "c", ctrl=True)
        assert user.notify.contains("copied 2 tasks")
        key(user, "v", ctrl=True)
        assert user.notify.contains("pasted 2 tasks: numbers2, double3")
        draft = panel().drafts["one"]
        assert [t.id for t in draft.tasks] == ["numbers1", "double1", "double2", "numbers2", "double3"]
        assert wires(user) == ["numbers1.out->double1.in", "double1.out->double2.in", "numbers2.out->double3.in"]
        assert draft.positions["numbers2"] == (40, 40) and draft.positions["double3"] == (340, 40)
        assert graph(user).multi == ["numbers2", "double3"]  # the pasted piece is selected, to move it
        click(user, "undo")
        assert len(draft.tasks) == 3

        # in another deployment's editor (another page): the same clipboard, ids renamed where taken
        await new_deployment(user, "two")
        await add(user, "double", "Double")
        key(user, "v", ctrl=True)
        other = panel().drafts["two"]
        assert [t.id for t in other.tasks] == ["double1", "numbers1", "double2"]
        assert wires(user) == ["numbers1.out->double2.in"]
        # the system clipboard's text (copied in another panel) pastes when it is a piece of a graph;
        # other text there (a URL) leaves the session's clipboard to paste
        key(user, "v", ctrl=True, clipboard="tasks: [{id: numbers1, type: numbers}]\n")
        assert user.notify.contains("pasted 1 task: numbers2")
        key(user, "v", ctrl=True, clipboard="https://example.com/not-a-graph")
        assert [t.id for t in other.tasks][-2:] == ["numbers3", "double3"]
        click(user, "undo")
        click(user, "undo")
        assert [t.id for t in other.tasks] == ["double1", "numbers1", "double2"]
        # text copied elsewhere pastes too; what is not a piece of a graph is refused, nothing changed
        click(user, "paste-yaml")
        newest(user, "paste-text").set_value("tasks: [{id: double1, type: double, config: {factor: 2}}]\n"
                                             "edges: [{from: 'topic:in/x', to: double1.in}]\n")
        click(user, "paste-apply")
        assert other.task("double3").config == {"factor": 2}
        assert "topic:in/x->double3.in" in wires(user)
        click(user, "paste-yaml")
        newest(user, "paste-text").set_value("tasks: [{id: 'bad id', type: double}]")
        click(user, "paste-apply")
        assert user.notify.contains("not pasted")
        assert len(other.tasks) == 4


async def test_comments_and_groups_are_kept_in_the_spec_a_real_agent_runs(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1") as (a1,):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "marks")
        draft = panel().drafts["marks"]
        await add(user, "numbers", "Numbers")
        await add(user, "double", "Double")
        user.find(marker="graph").trigger("connect", {"from": "numbers1.out", "to": "double1.in"})
        # a comment: added, typed (one step), moved, shown on the canvas
        click(user, "add-note")
        await user.should_see(marker="note-text")
        for text in ("sou", "source feeds", "source feeds the doubler"):
            newest(user, "note-text").set_value(text)
        assert [n.text for n in draft.notes] == ["source feeds the doubler"]
        await user.should_see("source feeds the doubler")
        user.find(marker="graph").trigger("notemove", {"id": "note1", "x": 500, "y": -80})
        assert (draft.notes[0].x, draft.notes[0].y) == (500, -80)
        click(user, "undo")
        click(user, "undo")
        assert draft.notes[0].text == "a comment"
        click(user, "redo")
        click(user, "redo")
        # a group of the selected tasks, labelled and coloured
        user.find(marker="graph").trigger("selectmany", {"ids": ["numbers1", "double1"]})
        newest(user, "group-label").set_value("pipeline")
        click(user, "group-selection")
        assert [(g.label, g.tasks) for g in draft.groups] == [("pipeline", ["numbers1", "double1"])]
        assert graph(user).groups[0]["label"] == "pipeline"
        newest(user, "group-color").set_value("green")
        assert draft.groups[0].color == "#43a047"
        # a task leaves the group, and joins it again from a selection
        newest(user, "group-tasks").set_value(["numbers1"])
        assert draft.groups[0].tasks == ["numbers1"]
        user.find(marker="graph").trigger("selectmany", {"ids": ["double1"]})
        await user.should_see("1 node selected")
        click(user, "join-group-button")
        assert draft.groups[0].tasks == ["numbers1", "double1"]
        # what the browser sends is checked: junk moves nothing and breaks nothing
        for junk in ({"id": "note1", "x": "1e9", "y": 0}, {"id": "nope", "x": 1, "y": 1}, {"x": 1}, [],
                     {"id": "note1", "x": float("nan"), "y": 0}):
            user.find(marker="graph").trigger("notemove", junk)
        user.find(marker="graph").trigger("notemove", {"id": "note1", "x": 10**12, "y": -(10**12)})
        assert (draft.notes[0].x, draft.notes[0].y) == (1_000_000, -1_000_000)  # kept within the canvas
        for junk in ({"action": "format-disk"}, {"action": ["undo"]}, "undo", {"action": "paste", "text": 5}):
            user.find(marker="graph").trigger("key", junk)
        user.find(marker="graph").trigger("select", {"kind": "group", "id": "nope"})
        user.find(marker="graph").trigger("select", {"kind": "note", "id": "nope"})
        user.find(marker="graph").trigger("select", {"kind": ["node"], "id": {"a": 1}})
        user.find(marker="graph").trigger("select", {"kind": "node", "id": ["double1"]})
        assert draft.groups[0].tasks == ["numbers1", "double1"]
        user.find(marker="graph").trigger("notemove", {"id": "note1", "x": 500, "y": -80})

        # deployed: the spec keeps them, the agent runs the tasks and ignores them
        user.find(marker="deploy").click()
        await until(lambda: "marks" in panel().fleet.deployments, "the deployment")
        spec = panel().fleet.deployments["marks"]
        assert [n.text for n in spec.notes] == ["source feeds the doubler"]
        assert spec.groups[0].tasks == ["numbers1", "double1"]
        await until(lambda: len(panel().fleet.tasks_of("marks")) == 2
                    and all(s.state == "running" for s in panel().fleet.tasks_of("marks")), "both tasks running")

        await until(lambda: a1.specs.get("marks") == spec, "the agent to hold the spec with them")
        # a changed comment redeploys without restarting anything: agents ignore comments
        running = dict(a1.instances)
        user.find(marker="graph").trigger("select", {"kind": "note", "id": "note1"})
        newest(user, "note-text").set_value("later: feed b from the sensors")
        await until(lambda: newest(user, "deploy-summary").text == "Changes: 2 unchanged, 1 comment or group change",
                    "the summary to say what Deploy changes")
        user.find(marker="deploy").click()
        await until(lambda: panel().fleet.deployments["marks"].version == 2, "version 2")
        await until(lambda: a1.specs["marks"].version == 2, "the agent to have version 2")
        assert a1.specs["marks"].notes[0].text == "later: feed b from the sensors"
        assert a1.instances == running and all(a1.instances[k] is v for k, v in running.items())
        spec = panel().fleet.deployments["marks"]

        # export keeps them; a task removed leaves its group; an import brings them back
        exported = parse_spec(yaml.safe_load(draft.to_yaml()))
        assert exported.notes == spec.notes and exported.groups == spec.groups
        text = draft.to_yaml()
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "double1"})
        click(user, "remove-task")
        assert draft.groups[0].tasks == ["numbers1"]
        user.find(marker="graph").trigger("select", {"kind": "group", "id": "group1"})
        click(user, "delete-group")
        user.find(marker="graph").trigger("select", {"kind": "note", "id": "note1"})
        click(user, "delete-note")
        assert draft.groups == [] and draft.notes == []
        click(user, "open-import")
        newest(user, "yaml").set_value(text)
        click(user, "import-yaml")
        assert draft.groups == list(spec.groups) and draft.notes == list(spec.notes)
