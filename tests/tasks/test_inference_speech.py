"""The speech tasks on real brokers: text -> text_to_speech -> speech_recognition -> text, voice activity,
and what each does with input it cannot use."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from test_media_rig import Rig

from edge.errors import ConfigError
from edge.frames import encode_frame
from tasks.inference.asr import SpeechRecognition
from tasks.inference.tts import TextToSpeech
from tasks.inference.vad import VoiceActivity

GRAMMAR = """#JSGF V1.0;
grammar home;
public <command> = turn (on | off) the (kitchen | bedroom | hall) light;
"""
SAID = "turn on the kitchen light"


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


async def say(rig: Rig, topic: str, text: object, ts: int = 1_000_000) -> None:
    await rig.bus.publish(rig.topic(topic), encode_frame(text, ts=ts))


async def test_the_same_words_come_back_through_the_broker(rig):
    heard, partial, speech = await rig.listen("heard"), await rig.listen("partial"), await rig.listen("speech")
    await rig.start(SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR},
                    inputs={"in": "speech"}, outputs={"text": "heard", "partial": "partial"})
    await rig.start(TextToSpeech, {}, inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", SAID)
    [final] = await rig.take(heard, 1)
    assert final.value == SAID
    assert final.extra["final"] is True
    # its times are on the audio's timeline: the text frame's ts, plus where in the audio the words are
    audio = rig.drain(speech)
    assert audio[0].ts == 1_000_000 and audio[0].extra["rate"] == 22050 and audio[0].value.dtype == np.int16
    assert 1_000_000 <= final.ts < final.extra["end_ts"] <= audio[-1].ts + 100
    assert [w["word"] for w in final.extra["words"]] == SAID.split()
    starts = [w["start_ts"] for w in final.extra["words"]]
    assert starts == sorted(starts) and final.ts <= starts[0]
    assert final.extra["words"][-1]["end_ts"] <= final.extra["end_ts"]
    # partial hypotheses came first, each a prefix of what was said (a later one may take back a word), each
    # different from the one before, up to the whole sentence
    partials = rig.drain(partial)
    texts = [f.value for f in partials]
    assert len(texts) >= 3 and all(SAID.startswith(t) for t in texts) and texts[-1] == SAID
    assert all(a != b for a, b in itertools.pairwise(texts))
    assert {f.ts for f in partials} == {final.ts} and not any(f.extra["final"] for f in partials)


async def test_two_utterances_keep_one_timeline_and_a_resampled_rate(rig):
    heard, speech = await rig.listen("heard"), await rig.listen("speech")
    # utterances end at their trailing silence, never on the wall clock (idle_ms): a loaded machine's stall
    # in the middle of the audio's burst must not cut "turn off the hall light" short
    await rig.start(SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR, "partial_results": False,
                                        "idle_ms": 10_000},
                    inputs={"in": "speech"}, outputs={"text": "heard", "partial": "partial"})
    # a voice and a pause a recognizer starting afresh hears reliably: 300 ms of silence is just the endpointer's
    # window, and eSpeak NG's variation from call to call made "turn off" with en-us+m3 come out as "turn on"
    await rig.start(TextToSpeech, {"sample_rate": 16000, "rate": 160, "voice": "en-us+f3", "silence_ms": 500},
                    inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", "turn off the hall light", ts=5000)
    await say(rig, "text", "turn on the bedroom light", ts=5001)  # spoken after the first one, not over it
    frames = await rig.take(heard, 2)
    assert [f.value for f in frames] == ["turn off the hall light", "turn on the bedroom light"]
    assert frames[0].extra["end_ts"] <= frames[1].ts
    audio = rig.drain(speech)
    assert {f.extra["rate"] for f in audio} == {16000}
    pts = [f.extra["pts"] for f in audio]
    assert pts == sorted(pts) and pts[0] == 0
    assert sum(len(f.value) for f in audio) == pts[-1] + len(audio[-1].value)


async def test_keyword_mode_spots_a_phrase_in_other_speech(rig):
    heard = await rig.listen("heard")
    await rig.start(SpeechRecognition, {"mode": "keywords", "keywords": ["kitchen light"], "keyword_threshold": 1e-60},
                    inputs={"in": "speech"}, outputs={"text": "heard"})
    await rig.start(TextToSpeech, {}, inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", "please could you turn on the kitchen light now")
    [final] = await rig.take(heard, 1)
    assert "kitchen light" in final.value


async def test_an_utterance_ends_when_the_audio_stops_coming(rig):
    """No trailing silence (a source that stopped mid-word): idle_ms ends the utterance."""
    heard = await rig.listen("heard")
    await rig.start(SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR, "idle_ms": 200},
                    inputs={"in": "speech"}, outputs={"text": "heard"})
    await rig.start(TextToSpeech, {"silence_ms": 0}, inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", SAID)
    [final] = await rig.take(heard, 1)
    assert final.value == SAID


async def test_voice_activity_follows_speech(rig):
    probability, speaking = await rig.listen("probability"), await rig.listen("speaking")
    await rig.start(VoiceActivity, {}, inputs={"in": "speech"},
                    outputs={"probability": "probability", "speaking": "speaking"})
    await rig.start(TextToSpeech, {"silence_ms": 1500}, inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", SAID, ts=2_000_000)
    switches = await rig.take(speaking, 2)
    assert [f.value for f in switches] == [True, False]
    assert 2_000_000 <= switches[0].ts < switches[1].ts
    values = [f.value for f in rig.drain(probability)]
    assert max(values) > 0.9 and min(values) < 0.1 and all(0 <= v <= 1 for v in values)


async def test_stereo_float_audio_at_48k_is_converted_for_the_engines(rig):
    """What a microphone sends (48 kHz stereo float) is heard as well as 16 kHz mono."""
    speech_16k, heard = await rig.listen("speech"), await rig.listen("heard")
    await rig.start(TextToSpeech, {"sample_rate": 48000, "frame_samples": 4800}, inputs={"in": "text"},
                    outputs={"out": "speech"})
    await rig.start(SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR},
                    inputs={"in": "stereo"}, outputs={"text": "heard"})
    await say(rig, "text", SAID)
    frames = await rig.take(speech_16k, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 48000 * 1.5)
    for frame in frames:
        mono = frame.value.astype(np.float32) / 32768
        await rig.bus.publish(rig.topic("stereo"), encode_frame(
            np.repeat(mono, 2, axis=1), ts=frame.ts, extra={"rate": 48000, "sample_format": "flt"}))
    [final] = await rig.take(heard, 1)
    assert final.value == SAID


async def test_text_it_cannot_speak_is_counted_not_spoken(rig):
    speech = await rig.listen("speech")
    tts = await rig.start(TextToSpeech, {"max_chars": 50}, inputs={"in": "text"}, outputs={"out": "speech"})
    for bad in (42, ["a"], "x" * 51, None):
        await say(rig, "text", bad)
    await say(rig, "text", "   ")  # blank: nothing to say, no error
    await say(rig, "text", "hello")
    first = await rig.take(speech, 1)
    assert first[0].value.shape[1] == 1
    assert tts.in_metrics["in"].errors == 4



async def test_a_voice_espeak_lacks_stops_the_task_at_once_with_a_one_line_reason(rig):
    tts = await rig.start(TextToSpeech, {"voice": "xx-nowhere"}, inputs={"in": "text"}, outputs={"out": "speech"})
    assert await rig.failure(tts, ConfigError) == "eSpeak NG has no voice 'xx-nowhere' (try en-us, en, de, fr, es)"


@pytest.mark.parametrize(("config", "reason"), [
    ({"mode": "grammar", "grammar": "public <x> = turn on;"}, "the grammar does not parse as JSGF"),
    ({"mode": "grammar", "grammar": "#JSGF V1.0;\ngrammar g;\npublic <x> = florbnik zzq;\n"},
     "uses a word the en-us dictionary lacks"),
    ({"mode": "keywords", "keywords": ["hello florbnik"]}, "the en-us dictionary lacks florbnik"),
])
async def test_a_search_pocketsphinx_cannot_take_stops_the_task_with_a_one_line_reason(rig, config, reason):
    asr = await rig.start(SpeechRecognition, config, inputs={"in": "speech"}, outputs={"text": "heard"})
    failure = await rig.failure(asr, ConfigError)
    assert reason in failure and "\n" not in failure


@pytest.mark.parametrize("task_type", [SpeechRecognition, VoiceActivity])
async def test_audio_no_engine_can_take_is_counted_and_the_stream_goes_on(rig, task_type):
    """Valid raw audio frames that libswresample cannot convert: a rate it runs out of memory on, 64 channels."""
    task = await rig.start(task_type, {}, inputs={"in": "audio"}, outputs={})
    for samples, rate in ((np.zeros((10, 1), np.int16), 2**31 - 1), (np.zeros((4, 64), np.uint8), 8000),
                          (np.zeros((10, 1), np.int16), 999)):
        await rig.bus.publish(rig.topic("audio"), encode_frame(samples, extra={"rate": rate}))
    await rig.bus.publish(rig.topic("audio"), encode_frame(np.full((480, 2), np.nan, np.float32),
                                                           extra={"rate": 48000}))  # silence to the engines
    await wait_until(lambda: task.in_metrics["in"].errors == 3 and task.in_metrics["in"].frames == 4)
    rig.check()


async def wait_until(predicate, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_the_language_model_hears_open_speech_weakly_but_as_words(rig):
    """No grammar: the bundled general model. It hears something, in dictionary words with their times
    (eSpeak NG's "turn on the kitchen light" is not what it makes of it: docs/inference.md)."""
    heard = await rig.listen("heard")
    await rig.start(SpeechRecognition, {"mode": "language_model"}, inputs={"in": "speech"}, outputs={"text": "heard"})
    await rig.start(TextToSpeech, {}, inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", SAID)
    [final] = await rig.take(heard, 1)
    assert final.value and final.extra["final"] is True
    assert " ".join(w["word"] for w in final.extra["words"]) == final.value


async def test_a_far_future_text_neither_breaks_nor_pushes_the_timeline(rig):
    """A text at the last ts a frame carries is refused (counted); one an hour ahead is spoken, and the
    next text at its own time is not pushed after it."""
    speech = await rig.listen("speech")
    tts = await rig.start(TextToSpeech, {"silence_ms": 0}, inputs={"in": "text"}, outputs={"out": "speech"})
    await say(rig, "text", "on", ts=2**63 - 1)
    await say(rig, "text", "on", ts=10_000_000 + 7_200_000)
    await say(rig, "text", "off", ts=10_000_000)
    frames = await rig.take(speech, 0, until=lambda fs: any(f.ts < 10_000_000 + 7_200_000 for f in fs))
    assert min(f.ts for f in frames) == 10_000_000
    assert tts.in_metrics["in"].errors == 1
