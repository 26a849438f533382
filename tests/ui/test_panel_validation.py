"""The editor's Check and Deploy use the controller's one validation: a formula only the task's own
code can judge is reported (asked of a real agent), with every other problem, before anything is published."""

from __future__ import annotations

import pytest
from conftest import agents, panel, until

from edge.graph import parse_spec
from ui.draft import Draft

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

FORMULA_ERROR = ("error: task 'calc': config.formula: expected a number, a name or '(', found the end of the "
                 "formula (at position 11)")


async def test_check_and_deploy_list_the_formula_error_with_every_other_problem(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "a1" in panel().fleet.types().get("calculator", {}).get("agents", []), "the catalog")
        panel().drafts["calc"] = Draft.from_spec(parse_spec({"id": "calc", "tasks": [
            {"id": "calc", "type": "calculator", "config": {"formula": "a * (1.8 +"}},
            {"id": "more", "type": "calculator", "agent": "ghost", "config": {"formula": "a", "colour": "red"}}]}))
        await user.open("/deployments/calc/edit")
        user.find(marker="check").click()
        await user.should_see(FORMULA_ERROR, retries=50)
        await user.should_see("error: task 'more': config.colour: unknown field")
        await user.should_see("warning: task 'more': agent 'ghost' is not known to this broker")
        assert not user.notify.contains("no problems found")

        user.find(marker="deploy").click()
        await user.should_see("not deployed", retries=50)
        await user.should_see(FORMULA_ERROR)
        assert "calc" not in panel().fleet.deployments

        # fixed: Check finds only the warning, Deploy publishes and still shows it
        panel().drafts["calc"].set_config("calc", {"formula": "a * (1.8 + b)"})
        panel().drafts["calc"].set_config("more", {"formula": "a"})
        user.find(marker="check").click()
        await user.should_see("warnings", retries=50)
        user.find(marker="deploy").click()
        await user.should_see("deployed, with warnings", retries=50)
        await until(lambda: "calc" in panel().fleet.deployments, "the deployment")
        await panel().controller.remove("calc")
