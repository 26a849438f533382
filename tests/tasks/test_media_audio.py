"""Audio tasks on real brokers: codecs, resampler, mixer, meter and scaler on known signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_media_rig import Rig

from tasks.media import (
    AudioDecoder,
    AudioEncoder,
    AudioMixer,
    AudioResampler,
    AudioVolumeMeter,
    AudioVolumeScaler,
    TestPattern,
)
from tasks.media.packets import EncodedPacket
from tasks.media.raw import to_float

TONE = {"video": False, "realtime": False, "frames": 15, "rate": 30}  # half a second of a 440 Hz tone


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


def rms(frames) -> float:
    samples = np.concatenate([to_float(f.value) for f in frames]).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


@pytest.mark.parametrize("codec", ["aac", "opus"])
async def test_audio_encode_decode_round_trip(rig, codec):
    packets, decoded = await rig.listen("packets"), await rig.listen("decoded")
    await rig.start(AudioDecoder, {"queue": 200}, inputs={"in": "packets"}, outputs={"out": "decoded"})
    await rig.start(AudioEncoder, {"codec": codec, "queue": 200}, inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.start(TestPattern, {**TONE, "amplitude": 0.5}, outputs={"audio": "raw"})
    # 24000 samples in; the encoder keeps its last partial frame until more comes
    frames = await rig.take(decoded, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 20000)
    first = EncodedPacket.from_value(rig.drain(packets)[0].value)
    assert first.kind == "audio" and first.codec == codec and first.keyframe and first.extradata
    assert (first.rate, first.channels) == (48000, 2)
    for frame in frames:
        assert frame.value.dtype == np.int16 and frame.value.shape[1] == 2
        assert frame.extra["sample_format"] == "s16" and frame.extra["rate"] == 48000
    steady = frames[len(frames) // 4 :]  # past the codec's start-up
    assert rms(steady) == pytest.approx(0.5 / math.sqrt(2), rel=0.1)


async def test_resampler_changes_rate_channels_and_format(rig):
    out = await rig.listen("out")
    await rig.start(AudioResampler, {"rate": 16000, "channels": 1, "sample_format": "flt", "queue": 200},
                    inputs={"in": "raw"}, outputs={"out": "out"})
    await rig.start(TestPattern, {**TONE, "amplitude": 0.5}, outputs={"audio": "raw"})
    frames = await rig.take(out, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 7900)
    assert all(f.extra["rate"] == 16000 and f.extra["sample_format"] == "flt" for f in frames)
    assert all(f.value.dtype == np.float32 and f.value.shape[1] == 1 for f in frames)
    assert [f.extra["pts"] for f in frames[1:]] == list(np.cumsum([len(f.value) for f in frames])[:-1])
    assert frames[0].extra["time_base"] == [1, 16000]
    # a tone well under 8 kHz survives; stereo to mono is swresample's L/sqrt(2) + R/sqrt(2)
    assert rms(frames[2:]) == pytest.approx(0.5 / math.sqrt(2) * math.sqrt(2), rel=0.05)


async def test_mixer_sums_its_inputs_with_gains(rig):
    out = await rig.listen("out")
    await rig.start(AudioMixer, {"gains": [1.0, 0.5], "channels": 1, "sample_format": "flt", "queue": 200},
                    inputs={"in0": "a", "in1": "b"}, outputs={"out": "out"})
    # in1 first, so that in0 (the master) finds its samples waiting
    b = await rig.start(TestPattern, {**TONE, "amplitude": 0.4, "frequency": 1000, "channels": 1},
                        outputs={"audio": "b"})
    await rig.finished(b)
    await rig.start(TestPattern, {**TONE, "amplitude": 0.4, "channels": 1}, outputs={"audio": "a"})
    frames = await rig.take(out, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 24000)
    mixed = np.concatenate([f.value for f in frames])
    assert mixed.shape == (24000, 1) and mixed.dtype == np.float32
    # two uncorrelated tones: powers add (0.4 and 0.2 peak)
    assert rms(frames) == pytest.approx(math.sqrt(0.4**2 / 2 + 0.2**2 / 2), rel=0.05)
    assert float(np.abs(mixed).max()) <= 0.6 + 1e-3


async def test_volume_meter_reads_known_levels(rig):
    rms_sub, peak_sub = await rig.listen("rms"), await rig.listen("peak")
    await rig.start(AudioVolumeMeter, {"queue": 200}, inputs={"in": "raw"}, outputs={"rms": "rms", "peak": "peak"})
    await rig.start(TestPattern, {**TONE, "amplitude": 0.5, "frequency": 500, "sample_format": "flt"},
                    outputs={"audio": "raw"})
    levels = [f.value for f in await rig.take(rms_sub, 25)]  # 20 ms frames hold 10 periods of 500 Hz
    peaks = [f.value for f in await rig.take(peak_sub, 25)]
    assert levels == pytest.approx([20 * math.log10(0.5 / math.sqrt(2))] * 25, abs=0.05)  # -9.03 dBFS
    assert peaks == pytest.approx([20 * math.log10(0.5)] * 25, abs=0.1)  # -6.02 dBFS


async def test_volume_meter_reads_silence_as_its_floor(rig):
    rms_sub = await rig.listen("rms")
    await rig.start(AudioVolumeMeter, {"floor_db": -90}, inputs={"in": "raw"}, outputs={"rms": "rms"})
    await rig.start(TestPattern, {**TONE, "amplitude": 0.0, "frames": 1}, outputs={"audio": "raw"})
    assert [f.value for f in await rig.take(rms_sub, 1)] == [-90.0]


async def test_volume_scaler_applies_its_gain_and_takes_new_ones(rig):
    out = await rig.listen("out")
    scaler = await rig.start(AudioVolumeScaler, {"gain_db": -6.0206, "queue": 200},
                             inputs={"in": "raw", "gain": "gain"}, outputs={"out": "out"})
    await rig.start(TestPattern, {**TONE, "frames": 3, "amplitude": 0.8}, outputs={"audio": "raw"})
    first = await rig.take(out, 5)
    assert rms(first) == pytest.approx(0.4 / math.sqrt(2), rel=0.01)
    assert first[0].extra["sample_format"] == "s16" and first[0].extra["rate"] == 48000
    from edge.frames import encode_frame

    await rig.bus.publish(rig.topic("gain"), encode_frame(6.0206))
    await rig.bus.publish(rig.topic("gain"), encode_frame("loud"))  # refused, counted
    await rig.start(TestPattern, {**TONE, "frames": 3, "amplitude": 0.25}, outputs={"audio": "raw"})
    again = await rig.take(out, 5)
    assert rms(again) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)
    assert scaler.in_metrics["gain"].errors == 1
