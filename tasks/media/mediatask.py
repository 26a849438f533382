"""The base of the media tasks: lanes with drop policies, a codec thread, frames with control fields.

A :class:`MediaTask` has

* its inputs' **lanes**: the task's inbox (:mod:`edge._inbox`), with a lane per input whose
  drop policy suits what it carries (:meth:`MediaTask.make_lane`: the oldest raw frame or
  control value goes, encoded packets wait for the next keyframe). Each frame is parsed as it
  arrives (raw video, raw audio, encoded packet or a plain control value) and queued parsed;
* the task's own loop, :meth:`MediaTask.serve`, which takes items from the lanes and sends
  its results with :meth:`MediaTask.emit` (frames with control fields such as ``pixel_format``);
* a :class:`Worker`: one thread per task that runs every PyAV and big numpy call, so the
  event loop (and with it the MQTT connection and the lanes) never waits for a codec, and
  PyAV objects are only ever used by one thread. Closing runs the task's :meth:`release`
  in that thread after the job in flight, so a container is never closed under a muxer.

``dropped()`` (the ``dropped`` of the task's metrics) counts the lanes' drops and frames the
task could not send (too big for the broker, or a real-time source that fell behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from edge._groups import one_failure
from edge._inbox import Inbox, Lane, Policy
from edge.bus import Message
from edge.errors import FrameError
from edge.frames import Frame
from edge.task import Port, Task
from tasks._lazy import load, numpy
from tasks.media.packets import EncodedPacket, is_packet
from tasks.media.raw import RawAudio, RawVideo

__all__ = [
    "ANY_AUDIO",
    "ANY_VIDEO",
    "AUDIO_PACKETS",
    "MediaConfig",
    "MediaTask",
    "RAW_AUDIO",
    "RAW_VIDEO",
    "Received",
    "VIDEO_PACKETS",
    "Worker",
]

log = logging.getLogger("tasks.media")

R = TypeVar("R")
C = TypeVar("C")
Received = RawVideo | RawAudio | EncodedPacket | Frame

RAW_VIDEO = Port(content="video", codec="raw", extra={"packets": False})
RAW_AUDIO = Port(content="audio", codec="raw", extra={"packets": False})
VIDEO_PACKETS = Port(content="video", extra={"packets": True})
AUDIO_PACKETS = Port(content="audio", extra={"packets": True})
ANY_VIDEO = Port(content="video")
ANY_AUDIO = Port(content="audio")


class MediaConfig(BaseModel):
    """Settings every media task has."""

    model_config = ConfigDict(extra="forbid")

    queue: int = Field(default=4, ge=1, le=10_000,
                       description="items each input lane holds before its drop policy applies")


class Worker:
    """One thread for a task's codec work; ``close`` waits for the job in flight."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"media-{name}")

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        # shielded: a job that was submitted runs even if the caller is cancelled meanwhile (a
        # cancelled, not yet started job would silently lose its frame, e.g. one a muxer had taken)
        return await asyncio.shield(asyncio.wrap_future(self._pool.submit(fn, *args)))

    def close(self, last: Callable[[], object] | None = None) -> None:
        """Run ``last`` after the job in flight, then stop the thread (blocks until both are done)."""
        done = self._pool.submit(last) if last is not None else None
        self._pool.shutdown(wait=True)
        if done is not None and done.exception() is not None:
            log.error("%s: releasing failed: %r", self.name, done.exception(), exc_info=done.exception())


class MediaTask(Task):
    """Base of the media tasks; subclasses implement :meth:`serve` (and maybe :meth:`release`)."""

    category = "media"
    logger = log

    #: inputs whose lanes drop the oldest item whatever they carry (mixers, meters, audio packets)
    drop_oldest: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: BaseModel | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._lanes: Inbox[Received] | None = None
        #: frames this task produced but could not send (oversize, a source that fell behind)
        self.not_sent = 0
        self.worker: Worker | None = None

    @property
    def lanes(self) -> Inbox[Received]:
        """The inputs' lanes (the task's inbox, once its inputs are open)."""
        if self._lanes is None:
            raise RuntimeError(f"{self.instance_id}: the inputs are not open yet")
        return self._lanes

    def make_lane(self, port: str, meta: Port) -> Lane[Received]:
        """Input ``port``'s lane: ``queue`` items, the drop policy its content needs."""
        queue = int(getattr(self.config, "queue", 4))
        if meta.content not in ("video", "audio"):
            return self.lane(max(queue, 16))  # control values: small and rare
        if port in self.drop_oldest or meta.extra.get("packets") is False:
            return self.lane(queue)
        return self.lane(queue, Policy.KEYFRAME)

    def lane(self, maxlen: int, policy: Policy = Policy.OLDEST) -> Lane[Received]:
        """A lane of ``maxlen`` items, stale after the runtime's age limit (``EDGE_QUEUE_AGE``) if any.
        A media lane is bounded by items, not bytes: ``queue`` items of at most ``EDGE_MAX_PAYLOAD``."""
        age = self.context.queue_age if self.context is not None else None
        return Lane(maxlen=maxlen, max_age=age, policy=policy)

    def input_lane(self, port: str) -> Lane[Received]:
        return self.make_lane(port, self.inputs[port])

    async def open_inputs(self) -> Inbox[Received]:
        self._lanes = await super().open_inputs()
        return self._lanes

    def taker(self, inbox: Inbox[Any], port: str) -> Callable[[Message], object]:
        """Parse each frame as it arrives and queue what it holds in the port's lane."""
        take = self._taker(inbox, port)
        return lambda message: take(message, len(message.payload))

    def local_taker(self, inbox: Inbox[Any], port: str) -> Callable[[Frame, int], object]:
        """The same for a frame handed over in-process (edge.local)."""
        return self._taker(inbox, port)

    def _taker(self, inbox: Inbox[Any], port: str) -> Callable[[Message | Frame, int], None]:
        decode, parse, counts = self._decode, self.parse, self.in_metrics[port]

        def take(message: Message | Frame, size: int) -> None:
            gaps = counts.gaps
            frame = decode(port, message)  # counts the frames lost before this one (stream inputs)
            if frame is None:
                return
            try:
                item = parse(port, frame)
            except FrameError as exc:
                counts.errors += 1
                self.warn(f"{port}:bad", "dropped a bad frame on input %r: %s", port, exc)
                return
            keyframe = not isinstance(item, EncodedPacket) or item.keyframe
            inbox.push(port, item, size=size, keyframe=keyframe, gap=counts.gaps != gaps)
        return take

    def dropped(self) -> int:
        return super().dropped() + self.not_sent

    # -- running --------------------------------------------------------------------------------
    async def run(self) -> None:
        self.worker = Worker(self.instance_id)
        try:
            # one failure is reported as itself (the status shows "DeviceNotFoundError: …", not a group)
            with one_failure():
                # numpy is imported (once per process) in the worker thread, not on the event loop by the
                # first frame parsed: an agent that runs no media task never loads it
                await self.work(load, numpy)
                if self.context is not None:
                    await self.open_inputs()
                await self.serve()
        finally:
            self.worker.close(self.release)

    async def serve(self) -> None:
        """The task's loop: read ``self.lanes``, do the work in ``self.work``, ``emit`` results."""
        raise NotImplementedError

    def release(self) -> None:
        """Close codecs and containers; runs in the worker thread when the task stops."""

    async def work(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` in the task's worker thread."""
        assert self.worker is not None, "work() is for use inside run()"
        return await self.worker.run(fn, *args)

    async def ahead(self, started: AsyncIterator[tuple[C, asyncio.Future[R]]],
                    send: Callable[[C, R], Awaitable[None]], *, depth: int = 2) -> None:
        """Send the results of work started ahead, in the order it was started, for as long as the task runs.

        ``started`` yields each batch's context with its work already started (``asyncio.ensure_future(
        self.work(...))``), and ``send(context, result)`` sends what it made: the worker goes on with the next
        batch while the event loop sends the last one's frames (when each waited for the other, a task spent
        the time of both per batch). At most ``depth`` batches wait to be sent; work not sent when the task
        stops is cancelled, and waited for (a job the worker began finishes)."""
        waiting: asyncio.Queue[tuple[C, asyncio.Future[R]]] = asyncio.Queue(maxsize=depth)

        async def take() -> None:
            async for context, work in started:
                try:
                    await waiting.put((context, work))
                except BaseException:
                    work.cancel()
                    raise

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(take(), name=f"{self.instance_id}:ahead")
                while True:
                    context, work = await waiting.get()
                    await send(context, await work)
        finally:
            while not waiting.empty():
                _, left = waiting.get_nowait()
                left.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await left

    def parse(self, port: str, frame: Frame) -> Received:
        """What a frame on ``port`` holds: a packet map, a raw frame, or (control inputs) the frame."""
        content = self.inputs[port].content
        if content not in ("video", "audio"):
            return frame
        if is_packet(frame.value):
            packet = EncodedPacket.from_value(frame.value)
            return packet.with_ts(frame.ts)
        if self.inputs[port].extra.get("packets") is True:
            raise FrameError(f"input {port!r} takes encoded packets, got {type(frame.value).__name__}")
        return RawVideo.from_frame(frame) if content == "video" else RawAudio.from_frame(frame)

    # -- sending --------------------------------------------------------------------------------
    async def emit(self, port: str, value: Any, *, ts: int, extra: dict[str, Any] | None = None) -> bool:
        """:meth:`send` a frame with control fields on output ``port``; False (counted in ``not_sent``)
        if it could not be sent (too big for the broker)."""
        try:
            await self.send(port, value, ts=ts, extra=extra)
        except FrameError as exc:
            self.not_sent += 1
            self.warn(f"{port}:size", "%s: encode the video, or make it smaller; dropped", exc)
            return False
        return True
