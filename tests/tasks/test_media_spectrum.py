"""audio_frequency_display: band levels of known tones, its view on a real broker (retained, of the
protocol's model, cleared when it stops), and its catalog entry as a dashboard type."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from test_media_rig import Rig

from edge.protocol import SpectrumView, ViewFrame
from tasks.media import AudioFrequencyDisplay, TestPattern
from tasks.media.spectrum import Spectrum, band_edges

TONE = {"video": False, "realtime": True, "frames": 30, "rate": 30, "amplitude": 0.5}  # 1 s of 440 Hz, paced


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


def sine(frequency: float, amplitude: float, count: int = 8192, rate: int = 48000) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(count) / rate)


def test_a_full_scale_sine_reads_0_db_in_its_band_and_silence_the_floor():
    edges = band_edges(8, 125, 32000, "log")  # 125 250 500 1k 2k 4k 8k 16k 32k... up to 24k here
    spectrum = Spectrum(size=4096, rate=48000, edges=band_edges(7, 125, 16000, "log"), floor_db=-120)
    assert len(edges) == 9 and edges[0] == pytest.approx(125) and edges[-1] == pytest.approx(32000)
    spectrum.add(sine(1414, 1.0))  # the middle (geometric) of the 1k-2k band
    levels = spectrum.levels()
    assert levels[3] == pytest.approx(0, abs=0.05)
    assert all(level < -40 for i, level in enumerate(levels) if i not in (3,))
    spectrum.add(sine(1414, 0.01))
    assert spectrum.levels()[3] == pytest.approx(-40, abs=0.05)
    spectrum.add(np.zeros(4096))
    assert spectrum.levels() == [-120] * 7


def test_linear_bands_and_bands_narrower_than_a_bin():
    assert list(band_edges(4, 0.0 + 100, 500, "linear")) == [100, 200, 300, 400, 500]
    spectrum = Spectrum(size=256, rate=48000, edges=band_edges(16, 50, 200, "log"), floor_db=-90)
    assert all(stop == start + 1 for start, stop in spectrum.slices)  # 187.5 Hz bins: each band takes one
    spectrum.add(sine(100, 1.0, 256))
    assert len(spectrum.levels()) == 16


async def test_a_tone_shows_in_its_band_on_the_retained_view_and_the_levels(rig):
    view, levels = await rig.listen("view"), await rig.listen("levels")
    config = {"bands": 4, "min_freq": 100, "max_freq": 1600, "fft_size": 8192, "rate": 30, "label": "Mic"}
    display = await rig.start(AudioFrequencyDisplay, config, inputs={"in": "raw"},
                              outputs={"view": "view", "levels": "levels"})
    await rig.start(TestPattern, TONE, outputs={"audio": "raw"})
    # once the ring holds the tone whole: 440 Hz at amplitude 0.5 reads -6 dB in the 400-800 Hz band
    frames = await rig.take(view, 0, until=lambda fs: bool(fs) and abs(fs[-1].value["levels"][2] + 6.02) < 0.2)
    frame = frames[-1]
    parsed = ViewFrame.model_validate({**frame.extra, "ts": frame.ts, "seq": frame.seq, "value": frame.value}).value
    assert isinstance(parsed, SpectrumView) and parsed.kind == "audio_frequency_display" and parsed.label == "Mic"
    assert parsed.edges == [100, 200, 400, 800, 1600] and parsed.rate == 48000 and parsed.floor_db == -90
    assert parsed.levels[2] == max(parsed.levels) and parsed.levels[0] < -40
    numbers = await rig.take(levels, 1)
    assert isinstance(numbers[0].value, list) and len(numbers[0].value) == 4

    late = await rig.listen("view")  # the view is retained: a panel that loads now gets the last one
    [retained] = await rig.take(late, 1)
    assert retained.value["kind"] == "audio_frequency_display"
    await rig.stop(display)  # and cleared when it stops: no view, not running
    async with asyncio.timeout(10):
        while (await late.get()).payload != b"":
            pass


def test_its_catalog_entry_marks_it_a_dashboard_type():
    entry = AudioFrequencyDisplay.describe()
    assert entry["dashboard"] == "audio_frequency_display"
    assert entry["outputs"]["view"]["content"] == "view" and entry["inputs"]["in"]["content"] == "audio"
    assert AudioFrequencyDisplay.check({"min_freq": 2000, "max_freq": 1000}) == [
        "config: min_freq (2000) must be below max_freq (1000)"]
    assert AudioFrequencyDisplay.check({"fft_size": 1000})[0].startswith("config.fft_size: ")
    assert math.isfinite(AudioFrequencyDisplay.Config().floor_db)
