"""audio_output against real ALSA PCMs with no sound card: ``file`` (writes what it plays to a file)
and ``null``, from the system's ALSA configuration (Debian: libasound2-data, which the test script
installs); through a real broker from a test pattern's tone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_media_rig import Rig, wait_for

from tasks.media import AudioOutput, TestPattern
from tasks.media.errors import DeviceNotFoundError

TONE = {"video": False, "realtime": False, "frames": 15, "rate": 30, "amplitude": 0.5}  # 0.5 s, 440 Hz, 48 kHz stereo
ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


@pytest.fixture
def alsa() -> None:
    if not ALSA_CONF.is_file():  # fail, never skip: scripts/test.sh installs it
        pytest.fail("the system's ALSA configuration is missing: apt-get install -y libasound2-data")


@pytest.fixture
async def rig(broker, alsa):
    async with Rig(broker.url) as rig:
        yield rig


def pcm_file(path: Path) -> str:
    return f"file:FILE={path},FORMAT=raw"


async def test_a_tone_is_played_whole_on_an_alsa_file_pcm(rig, tmp_path):
    out = tmp_path / "played.raw"
    player = await rig.start(AudioOutput, {"device": pcm_file(out), "queue": 64}, inputs={"in": "raw"})
    await rig.start(TestPattern, TONE, outputs={"audio": "raw"})
    await wait_for(lambda: player.played >= 24000)
    await rig.stop(player)  # closes the PCM: what it held is written
    samples = np.fromfile(out, np.int16).reshape(-1, 2).astype(np.float64) / 32768
    assert len(samples) == player.played == 24000 and player.dropped() == 0
    assert np.sqrt(np.mean(samples[2000:] ** 2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(samples[:, 0]))
    assert np.argmax(spectrum) * 48000 / len(samples) == pytest.approx(440, abs=3)


async def test_the_configured_rate_and_channels_are_what_the_device_gets(rig, tmp_path):
    out = tmp_path / "played.raw"
    player = await rig.start(AudioOutput, {"device": pcm_file(out), "rate": 16000, "channels": 1, "queue": 64},
                             inputs={"in": "raw"})
    await rig.start(TestPattern, TONE, outputs={"audio": "raw"})
    await wait_for(lambda: player.played >= 7900)  # 0.5 s at 16 kHz, less what the resampler still holds
    await rig.stop(player)
    samples = np.fromfile(out, np.int16).astype(np.float64) / 32768
    assert len(samples) == player.played
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / len(samples) == pytest.approx(440, abs=4)


async def test_the_null_pcm_takes_everything(rig):
    player = await rig.start(AudioOutput, {"device": "null", "queue": 64}, inputs={"in": "raw"})
    await rig.start(TestPattern, TONE, outputs={"audio": "raw"})
    await wait_for(lambda: player.played >= 24000)
    assert player.dropped() == 0


async def test_a_pcm_alsa_does_not_know_is_a_device_error_naming_it(rig):
    player = await rig.start(AudioOutput, {"device": "no_such_pcm"}, inputs={"in": "raw"})
    await rig.start(TestPattern, TONE, outputs={"audio": "raw"})
    with pytest.raises(DeviceNotFoundError, match=r"^audio output 'no_such_pcm' \(alsa\) cannot be opened: "
                                                  r"Input/output error \(`aplay -L` lists the ALSA PCMs\)$"):
        await rig.finished(player)
    with pytest.raises(DeviceNotFoundError):
        await rig.stop(player)


def test_an_output_this_ffmpeg_lacks_is_named_with_those_it_has():
    [line] = AudioOutput.check({"format": "sndio"})
    assert line.startswith("config.format: this agent's FFmpeg has no 'sndio' audio output; its audio outputs: ")
    assert "alsa" in line
    assert AudioOutput.check({"format": "alsa", "device": "hw:1"}) == []
    assert AudioOutput.check({"format": "al sa"})[0].startswith("config.format: ")
