"""Several dashboards per deployment, arranged in the panel and saved in the spec; the chart card's
window, legend and bounded points. Real agents run the specs (they accept the dashboards and
ignore them)."""

from __future__ import annotations

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter, ui

from edge.frames import encode_frame
from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

SPEC = {"id": "boards", "tasks": [
    {"id": "level", "type": "slider", "config": {"label": "Level", "max_value": 10}},
    {"id": "power", "type": "toggle", "config": {"label": "Power"}},
    {"id": "bar", "type": "value_bar", "config": {"label": "Bar", "max_value": 10}},
    {"id": "n", "type": "numbers", "config": {"interval_ms": 1000}}],
    "edges": [{"from": "level.out", "to": "bar.in"}]}


def found(user, marker):
    with user:
        return list(ElementFilter(marker=marker, only_visible=False))


def element(user, marker):
    elements = found(user, marker)
    assert elements, f"no element marked {marker!r}"
    return max(elements, key=lambda e: e.id)


def cards(user) -> list[str]:
    """The tasks of the cards drawn, in order."""
    board = element(user, "board")
    return [m.removeprefix("widget-") for child in board.default_slot.children
            for m in child._markers if m.startswith("widget-")]


async def test_dashboards_are_arranged_and_saved_in_the_spec(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1") as (agent,):
        await until(lambda: "slider" in panel().fleet.types(), "types")
        first = (await panel().controller.deploy(parse_spec(SPEC))).spec
        await until(lambda: agent.instances.get(("boards", "level")), "the slider runs")
        slider_task = agent.instances[("boards", "level")]
        draft = panel().draft("boards")  # the editor's copy, with a change of its own not deployed yet
        draft.set_label("bar", "my bar")

        # without dashboards in the spec: one, every dashboard task in spec order, no tabs
        await user.open("/deployments/boards/dashboard")
        await user.should_see(marker="widget-bar", retries=100)
        assert cards(user) == ["level", "power", "bar"] and not found(user, "tab-main")

        user.find(marker="arrange").click()
        await user.should_see(marker="save-layout")
        user.find(marker="wider-level").click()
        user.find(marker="taller-level").click()
        user.find(marker="later-level").click()
        assert cards(user) == ["power", "level", "bar"]
        assert "edge-w2" in element(user, "widget-level").classes and "edge-h2" in element(user, "widget-level").classes
        user.find(marker="earlier-power").click()  # the first already: nothing moves
        user.find(marker="narrower-power").click()  # 1 column already: stays
        element(user, "new-dashboard").set_value("Power room")
        user.find(marker="add-dashboard").click()
        await user.should_see(marker="tab-power_room")
        assert cards(user) == []  # the new dashboard is shown, empty
        assert element(user, "dashboard-note").text.startswith("no cards on Power room: arrange, then move")
        user.find(marker="tab-main").click()
        element(user, "move-to-power").set_value("power_room")
        assert cards(user) == ["level", "bar"]
        element(user, "dashboard-label").set_value("Controls")
        user.find(marker="save-layout").click()

        await until(lambda: panel().fleet.deployments["boards"].version == first.version + 1, "the new version")
        spec = panel().fleet.deployments["boards"]
        assert [d.model_dump(exclude_none=True) for d in spec.dashboards] == [
            {"id": "main", "label": "Controls", "cards": [{"task": "level", "w": 2, "h": 2},
                                                         {"task": "bar", "w": 1, "h": 1}]},
            {"id": "power_room", "label": "Power room", "cards": [{"task": "power", "w": 1, "h": 1}]}]
        assert spec.tasks == first.tasks and spec.edges == first.edges
        # the editor's draft took the layout and the new version as its base, and kept its own change
        assert draft.base == spec and draft.dashboards == spec.dashboards and not draft.stale(spec)
        assert draft.task("bar").label == "my bar" and draft.to_data()["dashboards"][1]["id"] == "power_room"
        # the agents run the new version, restarting nothing for a layout
        await until(lambda: agent.specs.get("boards") is not None
                    and agent.specs["boards"].version == spec.version, "the agent has the new version")
        assert agent.instances[("boards", "level")] is slider_task

        # the editor deploys its draft with the layout: its own change and the dashboards go out together
        await user.open("/deployments/boards/edit")
        await user.should_see(marker="deploy", retries=50)
        user.find(marker="deploy").click()
        await until(lambda: panel().fleet.deployments["boards"].version == spec.version + 1, "the editor's deploy")
        spec = panel().fleet.deployments["boards"]
        assert spec.task("bar").label == "my bar" and [d.id for d in spec.dashboards] == ["main", "power_room"]

        # each dashboard at its own address; the first is the default one; tabs between them
        await user.open("/deployments/boards/dashboard")
        await user.should_see(marker="widget-bar", retries=100)
        assert cards(user) == ["level", "bar"] and found(user, "tab-power_room")
        user.find(marker="tab-power_room").click()
        await user.should_see(marker="widget-power", retries=100)
        assert cards(user) == ["power"]
        await user.open("/deployments/boards/dashboard/power_room")
        await user.should_see(marker="widget-power", retries=100)
        await user.open("/deployments/boards/dashboard/nothing")
        await user.should_see("boards has no dashboard 'nothing'; its dashboards: main, power_room", retries=100)
        await user.open("/deployments/boards/dashboard/no%20such")
        await user.should_see("'no such' is not a dashboard id")

        # a dashboard task added since the layout was saved shows at the end of the first dashboard
        grown = spec.to_dict()
        grown.pop("deployed")
        grown["tasks"].append({"id": "extra", "type": "toggle"})
        await panel().controller.deploy(parse_spec(grown))
        await user.open("/deployments/boards/dashboard")
        await until(lambda: "widget-extra" in {m for e in found(user, "widget-extra") for m in e._markers},
                    "the new task's card", 30)
        assert cards(user) == ["level", "bar", "extra"]


async def test_a_layout_arranged_on_an_old_version_is_not_saved(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "slider" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/boards/dashboard")
        await user.should_see(marker="widget-bar", retries=100)
        user.find(marker="arrange").click()
        user.find(marker="wider-bar").click()
        other = panel().fleet.deployments["boards"].to_dict()
        other.pop("deployed")
        other["label"] = "deployed meanwhile"
        newer = (await panel().controller.deploy(parse_spec(other))).spec
        user.find(marker="save-layout").click()
        await user.should_see("the layout was not saved; arrange it again", retries=50)
        assert panel().fleet.deployments["boards"] == newer and not newer.dashboards


async def test_the_chart_card_picks_a_window_with_a_legend_and_bounded_points(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "plot" in panel().fleet.types(), "types")
        # the plot is pinned to an agent that is not there: the view drawn is the one published here
        await panel().controller.deploy(parse_spec({"id": "charts", "tasks": [
            {"id": "chart", "type": "plot", "agent": "nobody",
             "config": {"label": "Temperatures", "window_s": 3600, "series": ["in", "out"]}}]}))
        end = 1_700_000_000_000
        inside = [[end - 3_600_000 + i * 1800, float(i % 7)] for i in range(2001)]  # 2001 points over the hour
        view = {"kind": "plot", "label": "Temperatures", "window_ms": 3_600_000, "series": [
            {"input": "in", "label": "inside", "points": inside},
            {"input": "out", "label": "outside", "points": [[end - 30_000, -3.0], [end, -2.0]]}]}
        topic = panel().controller.topics.stream("charts", "chart", "view")
        await panel().bus.publish(topic, encode_frame(view, ts=end), qos=1, retain=True)

        await user.open("/deployments/charts/dashboard")
        await user.should_see(marker="widget-chart", retries=100)
        chart = next(e for e in element(user, "widget-chart").descendants() if isinstance(e, ui.echart))
        await until(lambda: len(chart.options["series"]) == 2, "the series")
        options = chart.options
        assert [s["name"] for s in options["series"]] == ["inside", "outside"]
        assert options["legend"]["type"] == "scroll" and options["xAxis"]["type"] == "time"
        assert options["xAxis"]["axisLabel"]["formatter"] == "{HH}:{mm}:{ss}"
        assert (options["xAxis"]["min"], options["xAxis"]["max"]) == (end - 3_600_000, end)
        drawn = options["series"][0]["data"]
        assert 300 <= len(drawn) <= 400 < len(inside)  # bounded, each slice its lowest and highest
        assert {p[1] for p in drawn} == {0.0, 6.0}
        window = element(user, "window-chart")
        assert window.options == {60_000: "1 min", 600_000: "10 min", 0: "all 1 h"} and window.visible

        window.set_value(60_000)
        await until(lambda: chart.options["xAxis"]["min"] == end - 60_000, "the last minute")
        last_minute = chart.options["series"][0]["data"]
        assert last_minute == [p for p in inside if p[0] >= end - 60_000]  # few enough: every one
        assert chart.options["series"][1]["data"] == [[end - 30_000, -3.0], [end, -2.0]]

        # arranging draws the cards again: the window picked stays
        user.find(marker="arrange").click()
        await user.should_see(marker="save-layout")
        await until(lambda: element(user, "window-chart").value == 60_000, "the window picked")
        chart = next(e for e in element(user, "widget-chart").descendants() if isinstance(e, ui.echart))
        await until(lambda: chart.options["xAxis"].get("min") == end - 60_000, "the last minute, still")
