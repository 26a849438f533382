"""The editor draws an instance's own ports and redraws them as its config changes (edge.ports): a
calculator's inputs are its formula's variables, a switch has ``inputs`` pairs; a wire to a port
that a config change took away stays, is drawn as missing and is named in a warning line."""

from __future__ import annotations

import pytest
from conftest import agents, new_deployment, panel, until
from nicegui import ui

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def graph(user):
    return max(user.find(marker="graph").elements, key=lambda e: e.id)


def node(user, node_id):
    return next(n for n in graph(user).nodes if n["id"] == node_id)


def ports(user, node_id, side="inputs"):
    return [p["name"] for p in node(user, node_id)[side]]


async def add(user, type_name, label):
    user.find(marker="add-type").click()
    user.find(f"{label} ({type_name})").click()
    user.find(marker="add").click()


def field(user, name):
    return next(iter(user.find(marker=f"config-{name}").elements))


async def test_ports_follow_the_config_as_it_is_edited(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "calculator" in panel().fleet.types() and "numbers" in panel().fleet.types(), "types")
        await new_deployment(user, "ports")
        await add(user, "numbers", "Numbers")
        await add(user, "calculator", "Calculator")
        assert ports(user, "calculator1") == ["a"]  # the default formula's variable

        user.find(marker="graph").trigger("select", {"kind": "node", "id": "calculator1"})
        await user.should_see("task calculator1")
        field(user, "formula").set_value("p * q")
        await until(lambda: ports(user, "calculator1") == ["p", "q"], "the formula's variables as inputs")
        user.find(marker="graph").trigger("connect", {"from": "numbers1.out", "to": "calculator1.q"})
        assert [e["key"] for e in graph(user).edges] == ["numbers1.out->calculator1.q"]
        user.find(marker="graph").trigger("connect", {"from": "numbers1.out", "to": "calculator1.a"})
        await user.should_see("calculator1.a: task type 'calculator' has no input 'a' with this config (it has: p, q)")

        # the formula no longer names q: the wire stays, drawn to a missing port, and a warning says so
        field(user, "formula").set_value("p + 1")
        await until(lambda: ports(user, "calculator1") == ["p", "q"] and node(user, "calculator1")["inputs"][1].get(
            "missing"), "q drawn as missing")
        await user.should_see("warning: wire numbers1.out → calculator1.q: calculator1 (calculator) has no input 'q' "
                              "with its config (it has: p): delete the wire or change the config")
        assert [e["key"] for e in graph(user).edges] == ["numbers1.out->calculator1.q"]
        field(user, "formula").set_value("p * q * r")
        await until(lambda: ports(user, "calculator1") == ["p", "q", "r"] and not any(
            p.get("missing") for p in node(user, "calculator1")["inputs"]), "q back")
        await user.should_not_see("warning: wire numbers1.out")

        await add(user, "switch", "Switch")
        assert ports(user, "switch1") == [*(f"in{k}" for k in range(4)), *(f"control{k}" for k in range(4))]
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "switch1"})
        await user.should_see("task switch1")
        field(user, "inputs").set_value(2)
        await until(lambda: ports(user, "switch1") == ["in0", "in1", "control0", "control1"], "two pairs")


async def test_the_types_page_says_which_ports_follow_the_config(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await user.open("/types")
        await user.should_see(marker="type-switch", retries=200)
        with user.scope(marker="type-switch"):
            await user.should_see("ports from the config (above: those of the default config)")
            await user.should_see("inputs `in<k>`, k from 0 below `inputs`")
            await user.should_see("inputs `control<k>`, k from 0 below `inputs`")


async def test_python_code_is_edited_in_a_code_editor_and_its_ports_follow_its_lists(user, panel_settings, tmp_path):
    settings = panel_settings.model_copy(update={"allow_code": True})
    async with agents(settings, tmp_path, "a1"):
        await until(lambda: panel().fleet.types().get("python", {}).get("agents"), "the python type, offered")
        await new_deployment(user, "code")
        await add(user, "python", "Python function")
        assert ports(user, "python1") == ["in"] and ports(user, "python1", "outputs") == ["out"]
        user.find(marker="graph").trigger("select", {"kind": "node", "id": "python1"})
        await user.should_see("task python1")
        editor = field(user, "code")
        assert isinstance(editor, ui.codemirror) and "def process(value, port, state, config):" in editor.value
        field(user, "outputs").set_value('["low", "high"]')
        await until(lambda: ports(user, "python1", "outputs") == ["low", "high"], "the outputs of the config")
        # a syntax error is a config error, shown as the agent's validation says it
        editor.set_value("def process(value):\n    return (\n")
        user.find(marker="check").click()
        await user.should_see("error: task 'python1': config.code: line 2: '(' was never closed", retries=50)
