"""The deployments page: list with version and tasks running/total, create, edit, deploy, stop and
delete (confirmed), version history (when, from where, changes) with rollback."""

from __future__ import annotations

import re
import socket

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter, ui

from edge.controller import Controller
from edge.graph import parse_spec
from edge.settings import Settings

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
