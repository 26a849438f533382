"""Shared helpers of the media tests (no tests here): run media tasks wired to topics on a real broker.

A :class:`Rig` is one bus and a unique topic prefix; ``start`` runs a task instance wired
like the runtime wires it (``TaskContext``), ``listen`` subscribes before anything is sent,
``take`` waits for frames with a deadline, and leaving the rig stops every task (and fails
the test if one of them crashed).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from edge.bus import Bus, Subscription
from edge.frames import Frame, decode_frame
from edge.task import Task, TaskContext

TIMEOUT = 15.0


class Rig:
    def __init__(self, url: Any, *, files_dir: Path | None = None) -> None:
        self.bus = Bus(url, client_id=f"media-test-{uuid.uuid4().hex[:8]}")
        self.files_dir = files_dir  # the agent's files folder, for tasks that read or write files
        self.prefix = f"mediatest/{uuid.uuid4().hex[:10]}"
        self._running: list[tuple[Task, asyncio.Future[None]]] = []

    async def __aenter__(self) -> Rig:
        await self.bus.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        failures = []
        for task, runner in reversed(self._running):
            failure = await self._stop(task, runner)
            if failure is not None:
                failures.append(failure)
        self._running.clear()
        await self.bus.__aexit__(None, None, None)
        if failures and exc[0] is None:
            raise failures[0]

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def start(self, task_type: type[Task], config: Mapping[str, Any] | None = None, *,
                    inputs: Mapping[str, str] | None = None, outputs: Mapping[str, str] | None = None,
                    queue_size: int = 1000, max_payload: int = 16 * 1024 * 1024) -> Any:
        """Run an instance: ``inputs``/``outputs`` map its ports to topic names under the prefix."""
        name = f"{task_type.type_name}-{uuid.uuid4().hex[:6]}"
        ctx = TaskContext(bus=self.bus, instance_id=name,
                          sources={port: self.topic(t) for port, t in (inputs or {}).items()},
                          targets={port: [self.topic(t)] for port, t in (outputs or {}).items()},
                          queue_size=queue_size, max_payload=max_payload, files_dir=self.files_dir)
        task = task_type(dict(config or {}), context=ctx)
        await task.open_inputs()
        runner = asyncio.ensure_future(task.run())
        self._running.append((task, runner))
        return task

    async def stop(self, task: Task) -> None:
        """Stop one task now (its release runs: a container gets its trailer); raise if it crashed."""
        for i, (candidate, runner) in enumerate(self._running):
            if candidate is task:
                del self._running[i]
                failure = await self._stop(task, runner)
                if failure is not None:
                    raise failure
                return
        raise AssertionError(f"{task} is not running in this rig")

    @staticmethod
    async def _stop(task: Task, runner: asyncio.Future[None]) -> BaseException | None:
        runner.cancel()
        try:
            await runner
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            return exc
        finally:
            await task.close()
        return None

    async def finished(self, task: Task, timeout: float = TIMEOUT) -> None:
        """Wait until a task's run() returns by itself (a source that ran out)."""
        runner = next(r for t, r in self._running if t is task)
        async with asyncio.timeout(timeout):
            await asyncio.shield(runner)

    async def failure(self, task: Task, kind: type[Exception]) -> str:
        """The error ``task`` stopped with by itself (not restarted: its status would say this), a ``kind``."""
        with contextlib.suppress(kind):
            await self.finished(task)
        try:
            await self.stop(task)
        except kind as exc:
            return str(exc)
        raise AssertionError(f"{task} stopped without a {kind.__name__}")

    def check(self) -> None:
        """Raise the exception of a task that crashed."""
        for _task, runner in self._running:
            if runner.done() and not runner.cancelled() and runner.exception() is not None:
                raise runner.exception()  # type: ignore[misc]

    async def listen(self, name: str) -> Subscription:
        return await self.bus.subscribe(self.topic(name), maxsize=100_000)

    async def take(self, sub: Subscription, count: int, *, timeout: float = TIMEOUT,
                   until: Callable[[list[Frame]], bool] | None = None) -> list[Frame]:
        """``count`` frames from ``sub`` (or until ``until(frames)``), failing after ``timeout``."""
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while len(frames) < count if until is None else not until(frames):
                try:
                    async with asyncio.timeout(0.5):
                        message = await sub.get()
                except TimeoutError:
                    self.check()
                    continue
                frames.append(decode_frame(message.payload))
        return frames

    @staticmethod
    def drain(sub: Subscription) -> list[Frame]:
        out = []
        while sub.queued:
            out.append(decode_frame(sub.get_nowait().payload))
        return out


async def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def make_media_file(path: Path, *, frames: int = 30, rate: int = 30, width: int = 160, height: int = 120,
                    audio: bool = True, video: bool = True, tone: float = 440.0) -> None:
    """A small file with an h264 video track (a moving bar) and/or an aac (or pcm for .wav) tone."""
    with av.open(str(path), "w") as out:
        vstream = out.add_stream("libx264", rate=rate) if video else None
        if vstream is not None:
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.options = {"preset": "ultrafast"}
        astream = None
        if audio:
            astream = out.add_stream("pcm_s16le" if path.suffix == ".wav" else "aac", rate=48000)
            astream.layout = "stereo"  # type: ignore[union-attr]
        if vstream is not None:
            for i in range(frames):
                image = np.zeros((height, width, 3), np.uint8)
                image[:, (i * 4) % width : (i * 4) % width + 8] = 255
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, rate)
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if astream is not None:
            total = round(frames / rate * 48000)
            t = np.arange(total) / 48000
            tone_samples = (0.5 * np.sin(2 * np.pi * tone * t) * 32767).astype(np.int16)
            stereo = np.repeat(tone_samples[:, None], 2, axis=1)
            for start in range(0, total, 1024):
                chunk = stereo[start : start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1).copy(), format="s16", layout="stereo")
                frame.sample_rate = 48000
                frame.pts = start
                frame.time_base = Fraction(1, 48000)
                out.mux(astream.encode(frame))  # type: ignore[arg-type]
            out.mux(astream.encode(None))


def probe(path: Path | bytes) -> dict[str, Any]:
    """What a file holds, read back with PyAV: per stream type, codec, frames decoded, duration (s)."""
    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    info: dict[str, Any] = {}
    with av.open(source) as container:
        for stream in container.streams:
            info[stream.type] = {"codec": stream.codec_context.name, "frames": 0, "samples": 0,
                                 "first": None, "last": None}
        for frame in container.decode(*container.streams):
            entry = info["video" if isinstance(frame, av.VideoFrame) else "audio"]
            entry["frames"] += 1
            if isinstance(frame, av.AudioFrame):
                entry["samples"] += frame.samples
            if frame.time is not None:
                entry["first"] = frame.time if entry["first"] is None else min(entry["first"], frame.time)
                entry["last"] = frame.time if entry["last"] is None else max(entry["last"], frame.time)
    return info
