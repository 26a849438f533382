"""The deployments page: list with version and tasks running/total, create, edit, deploy, stop and
delete (confirmed), version history (when, from where, changes) with rollback."""

from __future__ import annotations

import re
import socket

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter, ui

from edge.controller import Controller
from edge.graph import EdgeSpec, parse_spec
from edge.settings import Settings
from ui.draft import Draft

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def spec(interval: int) -> dict:
    return {"id": "demo", "label": "Demo <i>graph</i>", "tasks": [
        {"id": "n", "type": "numbers", "config": {"interval_ms": interval}},
        {"id": "d", "type": "double"}], "edges": [{"from": "n.out", "to": "d.in"}]}


def text_of(user, marker):
    return next(iter(user.find(marker=marker).elements)).text


async def test_list_deploy_stop_history_rollback_delete(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        controller = panel().controller
        await controller.deploy(parse_spec(spec(100)))
        await controller.deploy(parse_spec(spec(200)))
        await user.open("/deployments")
        await user.should_see(marker="deployment-demo", retries=50)
        await user.should_see("Demo <i>graph</i>")  # a label is text, never markup
        await user.should_see("v2")
        await user.should_see("2/2 running", retries=200)
        assert text_of(user, "tasks-demo") == "2/2 running"

        # the history: both versions, the deployed one marked and not offered as a rollback; show one,
        # roll back to the first
        user.find(marker="history-demo").click()
        await user.should_see("Versions of demo")
        await user.should_see(marker="current-version")
        await user.should_not_see(marker="rollback-v2")
        user.find(marker="show-v1").click()
        await user.should_see("interval_ms: 100")
        user.find(marker="rollback-v1").click()
        await until(lambda: controller.fleet.deployments["demo"].version == 3, "version 3")
        assert controller.fleet.deployments["demo"].tasks[0].config == {"interval_ms": 100}
        assert user.notify.contains("rolled back demo: version 3 is the content of v1")
        await user.should_see("v3", retries=50)

        # stop, once confirmed: the spec goes, its versions stay, so it can be deployed again from the list
        user.find(marker="stop-demo").click()
        await user.should_see("Stop demo? Its agents stop its tasks")
        user.find(marker="cancel-stop").click()
        assert "demo" in controller.fleet.deployments
        user.find(marker="stop-demo").click()
        await user.should_see(marker="confirm-stop")
        user.find(marker="confirm-stop").click()
        await until(lambda: "demo" not in controller.fleet.deployments and not controller.fleet.tasks_of("demo"),
                    "demo stopped")
        await user.should_see("not running", retries=50)
        with user.scope(marker="deployment-demo"):
            await user.should_see("stopped")
        user.find(marker="deploy-demo").click()
        await until(lambda: "demo" in controller.fleet.deployments, "demo again")
        assert controller.fleet.deployments["demo"].version == 4
        await user.should_see("2/2 running", retries=200)

        # delete: stopped, and its saved versions gone
        user.find(marker="delete-demo").click()
        user.find(marker="confirm-delete").click()
        await until(lambda: "demo" not in controller.fleet.deployments, "demo deleted")
        assert controller.history.versions("demo") == []
        await user.should_not_see(marker="deployment-demo", retries=50)
        await user.should_see("no deployment yet")


async def test_create_refuses_bad_and_taken_ids_and_lists_drafts(user, panel_settings):
    await user.open("/deployments")
    user.find(marker="new").click()
    user.find(marker="new-id").type("bad id!")
    user.find(marker="create").click()
    assert user.notify.contains("letters, digits, - and _ only")
    for element in user.find(marker="new-id").elements:
        element.set_value("fresh")
    user.find(marker="create").click()
    await user.should_see("Add a task", retries=50)
    await user.open("/deployments")
    await user.should_see(marker="deployment-fresh")
    await user.should_see("never deployed")
    await user.should_see("0 tasks")
    user.find(marker="new").click()
    user.find(marker="new-id").type("fresh")
    user.find(marker="create").click()
    assert user.notify.contains("fresh exists already: edit it instead")
    # deploying an empty draft is refused by nobody: an empty graph runs nothing, and is listed
    user.find(marker="deploy-fresh").click()
    await until(lambda: "fresh" in panel().fleet.deployments, "the empty deployment")
    await user.should_see("0/0 running", retries=50)
    await panel().controller.remove("fresh")


async def test_history_says_when_and_from_where_and_what_changed(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "words" in panel().fleet.types(), "types")
        controller = panel().controller
        first = spec(100)
        first["tasks"].append({"id": "w", "type": "words", "config": {"word": "20 °C"}})
        await controller.deploy(parse_spec(first))
        # version 2 comes from somewhere else (a controller of its own, as the CLI is): the panel
        # records it in its history as it sees it on the broker
        other = Settings.model_validate({**panel_settings.model_dump(), "data_dir": tmp_path / "cli"})
        async with Controller(other, via="cli") as cli:
            await cli.deploy(parse_spec(spec(200)))
        await until(lambda: controller.history.versions("demo") == [1, 2], "version 2 in the panel's history")
        await user.open("/deployments")
        user.find(marker="history-demo").click()
        await user.should_see("Versions of demo")
        host = socket.gethostname()
        assert re.fullmatch(rf"deployed \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC from the CLI on {re.escape(host)}",
                            text_of(user, "origin-v2"))
        assert text_of(user, "origin-v1").endswith(f"UTC from the panel on {host}")
        with user:
            changes = [e.text for c in ElementFilter(marker="changes-v2") for e in c.descendants()
                       if isinstance(e, ui.label)]
        assert changes == ["changes since v1:", "- task w (words)", "task n: config interval_ms: 100 → 200"]
        await user.should_see("the first saved version")
        # the deployed version is marked and not offered as a rollback; the YAML reads as written
        with user.scope(marker="version-v2"):
            await user.should_see(marker="current-version")
        await user.should_not_see(marker="rollback-v2")
        user.find(marker="show-v1").click()
        yaml_text = text_of(user, "history-yaml")
        assert "word: 20 °C" in yaml_text and "\\xB0" not in yaml_text
        assert "°" in (panel_settings.data_dir / "controller" / "history" / "demo" / "v1.yaml").read_text()

        # a rollback is recorded as one, from the panel
        user.find(marker="rollback-v1").click()
        await until(lambda: controller.fleet.deployments["demo"].version == 3, "version 3")
        origin = controller.fleet.deployments["demo"].deployed
        assert origin is not None and (origin.via, origin.rollback_of, origin.replaced) == ("panel", 1, 2)
        user.find(marker="history-demo").click()
        await user.should_see(marker="origin-v3")
        assert text_of(user, "origin-v3").endswith(f"from the panel on {host} as a rollback to v1")
        await user.should_not_see(marker="rollback-v3")
        await user.should_see(marker="rollback-v2")
        await controller.remove("demo")


async def test_deleting_a_draft_logs_no_error(user, panel_settings):
    await user.open("/deployments")
    user.find(marker="new").click()
    user.find(marker="new-id").type("fresh")
    user.find(marker="create").click()
    await user.should_see("Add a task", retries=50)
    await user.open("/deployments")
    await user.should_see(marker="deployment-fresh")
    with user:
        timers = len(list(ElementFilter(kind=ui.timer, only_visible=False)))
    user.find(marker="delete-fresh").click()
    user.find(marker="confirm-delete").click()
    await user.should_not_see(marker="deployment-fresh", retries=50)
    assert "fresh" not in panel().drafts

    def closing_timers() -> int:
        with user:
            return len(list(ElementFilter(kind=ui.timer, only_visible=False))) - timers

    # the closed dialog's deferred deletion has run (its row went first): the fixture fails on an ERROR log
    await until(lambda: closing_timers() == 0, "the closed dialog's deletion to run")


async def test_a_refused_spec_is_listed_with_why(user, panel_settings, tmp_path):
    """An invalid retained spec is a row of the list saying why it is refused, not only an agent's log line;
    a deployed one whose newer spec is refused says so beside what keeps running."""
    from edge.frames import encode_value
    from edge.graph import encode_spec
    from edge.topics import Topics

    topics = Topics(panel_settings.namespace)
    bus = panel().bus
    await bus.publish(topics.deployment("broken"), encode_value({"id": "broken", "version": 2**8000, "tasks": []}),
                      qos=1, retain=True)
    await bus.publish(topics.deployment("kept"), encode_spec(parse_spec({"id": "kept", "tasks": []})), qos=1,
                      retain=True)
    await until(lambda: "kept" in panel().fleet.deployments, "kept deployed")
    await bus.publish(topics.deployment("kept"), encode_value({"id": "kept", "tasks": "abc"}), qos=1, retain=True)
    try:
        await until(lambda: {"broken", "kept"} <= set(panel().fleet.rejected), "both refused")
        await user.open("/deployments")
        await user.should_see(marker="deployment-broken", retries=50)
        await user.should_see("refused")
        assert text_of(user, "tasks-broken").startswith("spec refused: invalid deployment spec: version")
        await user.should_see(marker="deployment-kept")
        assert "new spec refused: invalid deployment spec: tasks" in text_of(user, "tasks-kept")
    finally:
        for dep in ("broken", "kept"):
            await bus.publish(topics.deployment(dep), b"", qos=1, retain=True)


def labels_in(user, marker):
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    assert found, f"no element marked {marker!r}"
    return [e.text for e in max(found, key=lambda e: e.id).descendants() if isinstance(e, ui.label)]


def visible_text(user, marker):
    """The text of an element while it is shown, else ""."""
    if not shown(user, marker):
        return ""
    with user:
        return max(ElementFilter(marker=marker, only_visible=False), key=lambda e: e.id).text


def shown(user, marker):
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    element = max(found, key=lambda e: e.id) if found else None
    return element is not None and element.visible and all(p.visible for p in element.ancestors())


async def test_undeployed_changes_of_a_draft_and_what_deploy_would_change(user, panel_settings, tmp_path):
    """The deploy summary of the editor, from the list: a draft that differs from what runs says so under
    its line, with the count line, and the summary on click; Deploy there deploys it, and the note goes."""
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        controller = panel().controller
        await controller.deploy(parse_spec(spec(100)))
        await user.open("/deployments")
        await user.should_see("2/2 running", retries=200)
        assert not shown(user, "undeployed-demo") and not shown(user, "deploy-demo")

        # opened in the editor, not changed: nothing to say
        draft = panel().draft("demo")
        await until(lambda: shown(user, "stop-demo"), "the row drawn")
        assert not shown(user, "undeployed-demo")

        # edited (as the editor does, maybe in another tab): a config and a new task
        draft.set_config("n", {"interval_ms": 250})
        draft.add_task("double", task_id="e")
        await until(lambda: shown(user, "undeployed-demo"), "the undeployed changes", 10)
        assert visible_text(user, "undeployed-demo") == "undeployed changes"
        assert visible_text(user, "changes-demo") == "Changes: 1 added, 1 restarted, 1 unchanged"
        assert shown(user, "deploy-demo")  # Deploy is offered for them
        user.find(marker="changes-demo").click()
        assert labels_in(user, "changes-list-demo")[:4] == [
            "What Deploy will do to the running tasks", "+ start e (new)", "↻ restart n: config interval_ms",
            "Changes, line by line"]
        assert "task n: config interval_ms: 100 → 250" in labels_in(user, "changes-list-demo")

        # a draft that is no valid spec: said, no summary
        draft.edges.append(EdgeSpec.model_validate({"from": "n.out", "to": "ghost.in"}))
        await until(lambda: visible_text(user, "changes-demo") == "Changes: unknown until the draft is a valid spec",
                    "the invalid draft", 10)
        assert visible_text(user, "undeployed-demo") == ("undeployed changes: the draft is not a valid spec "
                                                    "(open the editor)")
        draft.edges.pop()

        # deployed from elsewhere meanwhile: the note says the draft is based on an older version
        await controller.deploy(parse_spec(spec(300)))
        await until(lambda: visible_text(user, "undeployed-demo") == "undeployed changes, based on v1: v2 runs now",
                    "the stale draft", 10)

        # an unedited copy of an older version is no undeployed change (the editor says it is stale)
        panel().drafts["demo"] = Draft.from_spec(controller.history.get("demo", 1))
        await until(lambda: not shown(user, "undeployed-demo"), "no note for an unedited old copy", 10)

        # deployed over it from the editor's base: what runs is the draft, and the note goes
        panel().drafts.pop("demo")
        draft = panel().draft("demo")
        draft.add_task("double", task_id="e")
        await until(lambda: visible_text(user, "changes-demo") == "Changes: 1 added, 2 unchanged", "the new draft", 10)
        user.find(marker="deploy-demo").click()
        await until(lambda: controller.fleet.deployments["demo"].version == 3, "version 3")
        await until(lambda: not shown(user, "undeployed-demo"), "the note gone", 10)
        assert [t.id for t in controller.fleet.deployments["demo"].tasks] == ["n", "d", "e"]
        await until(lambda: not shown(user, "deploy-demo"), "deploy hidden again", 10)

        # a new deployment's draft: what Deploy would start
        panel().drafts["fresh"] = Draft(id="fresh")
        panel().drafts["fresh"].add_task("numbers", task_id="n")
        panel().changes.note("local", "fresh")
        await until(lambda: shown(user, "undeployed-fresh"), "the new deployment's note", 10)
        assert visible_text(user, "undeployed-fresh") == "not deployed yet"
        assert visible_text(user, "changes-fresh") == "New, to start: 1 added"

        # stopped: its draft is its last version (nothing to say) until it is edited
        await controller.remove("demo")
        await user.should_see("not running", retries=50)
        assert not shown(user, "undeployed-demo")
        panel().drafts["demo"].remove_task("e")
        await until(lambda: visible_text(user, "undeployed-demo") == "changed since v3", "the stopped one's changes",
                    10)
        assert visible_text(user, "changes-demo") == "New, to start: 2 added"
