"""The dashboard draws an audio_frequency_display as a live spectrum: a bar per band, from its retained views."""

from __future__ import annotations

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter, ui

from edge.graph import parse_spec

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

SPEC = {"id": "ears", "tasks": [
    {"id": "tone", "type": "test_pattern", "config": {"video": False, "frequency": 1414, "amplitude": 0.5}},
    {"id": "spectrum", "type": "audio_frequency_display",
     "config": {"label": "Room", "bands": 6, "min_freq": 125, "max_freq": 8000, "rate": 5}}],
    "edges": [{"from": "tone.audio", "to": "spectrum.in"}]}


def chart(user):
    with user:
        found = list(ElementFilter(marker="spectrum-spectrum", only_visible=False))
    return max(found, key=lambda e: e.id).options if found and isinstance(found[-1], ui.echart) else None


async def test_a_spectrum_card_shows_the_tone_in_its_band(user, panel_settings, tmp_path):
    pytest.importorskip("av")
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "audio_frequency_display" in set(panel().fleet.types()), "media types")
        await panel().controller.deploy(parse_spec(SPEC))
        await user.open("/deployments/ears/dashboard")
        await user.should_see(marker="widget-spectrum", retries=100)
        # bands 125-250-500-1k-2k-4k-8k, labelled by their centres; 1414 Hz (the 1k-2k band's centre) at half
        # scale reads -6 dB there, once the spectrum's window holds the tone only
        await until(lambda: (c := chart(user)) is not None and len(levels := c["series"][0]["data"]) == 6
                    and abs(levels[3] + 6.0) < 0.3, "the tone's bar", 30)
        options = chart(user)
        assert options["xAxis"]["data"] == ["177", "354", "707", "1.4k", "2.8k", "5.7k"]
        levels = options["series"][0]["data"]
        assert max(levels) == levels[3] and levels[0] < -40
        assert options["yAxis"]["min"] == -90
        await user.should_see("Room")
        await panel().controller.remove("ears")
        await user.should_see("ears is not deployed: its dashboard shows once it runs", retries=100)
