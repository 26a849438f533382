"""Tasks that keep their own time: a pulse source, a repeater, a detector of arriving messages."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.frames import Frame, now_ms
from edge.task import Port
from tasks.base import ANY, NUMBER, BuiltinTask, is_pause

__all__ = ["MessageDetector", "PulseGenerator", "Repeater"]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class PulseGenerator(BuiltinTask):
    """Send a frame every interval: the current timestamp, a fresh id, or a count.

    The first pulse goes out when the task starts. Pulses keep to the schedule (no drift); a
    tick missed because the machine was busy is skipped, not sent late in a burst.
    """

    category = "timing"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        interval_ms: int = Field(default=1000, ge=1, le=DAY_MS, description="time between pulses")
        message: Literal["timestamp", "id", "count"] = Field(
            default="timestamp",
            description="the value of each pulse: its timestamp (ms since the epoch), a random id (text) or "
                        "a count from 0")

    outputs = {"out": ANY("pulse")}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        return {"content": "text" if config.message == "id" else "number"}

    async def run(self) -> None:
        config: PulseGenerator.Config = self.config
        loop = asyncio.get_running_loop()
        interval = config.interval_ms / 1000
        next_at = loop.time()
        count = 0
        while True:
            ts = now_ms()
            value: int | str = ts if config.message == "timestamp" else count if config.message == "count" \
                else uuid.uuid4().hex
            await self.send("out", value, ts=ts)
            count += 1
            next_at += interval
            now = loop.time()
            if next_at < now:  # missed ticks: skip them
                next_at += (now - next_at) // interval * interval + interval
            await asyncio.sleep(next_at - now)


class Repeater(BuiltinTask):
    """Re-send the latest value at a fixed rate, e.g. to keep a slow stream alive for a consumer.

    The first frame is sent at once and starts the schedule; from then on every tick sends the
    newest value received (with the time of sending as its timestamp), so a new value waits for
    the next tick. A pause frame on `in` is passed on and stops the repeating until the next
    value; so does a value older than `max_age_ms`, when set.
    """

    category = "timing"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        rate: float = Field(default=10.0, gt=0, le=1000, description="frames per second")
        max_age_ms: int = Field(default=0, ge=0, le=DAY_MS,
                                description="stop repeating a value received longer ago than this (0: never)")

    inputs = {"in": ANY("input")}
    outputs = {"out": ANY("output")}

    async def run(self) -> None:
        config: Repeater.Config = self.config
        loop = asyncio.get_running_loop()
        latest: Frame | None = None
        arrived = 0.0
        have_value = asyncio.Event()

        async def read() -> None:
            nonlocal latest, arrived
            async for frame in self.receive("in"):
                if is_pause(frame):
                    latest = None
                    have_value.clear()
                    await self.send("out", frame.value, ts=frame.ts, paused=True)
                else:
                    latest, arrived = frame, loop.time()
                    have_value.set()

        async def tick() -> None:
            nonlocal latest
            period = 1 / config.rate
            max_age = config.max_age_ms / 1000 or None
            while True:
                await have_value.wait()
                next_at = loop.time()
                while latest is not None:
                    if max_age is not None and loop.time() - arrived > max_age:
                        latest = None
                        have_value.clear()
                        break
                    await self.send("out", latest.value)
                    next_at = max(next_at + period, loop.time())
                    await asyncio.sleep(next_at - loop.time())

        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(tick())


class MessageDetector(BuiltinTask):
    """Tell whether a stream is flowing: 1 when frames arrive, 0 after `timeout_ms` without one.

    Sends 0 when it starts, 1 on the first frame (and after a silence), 0 when no frame came for
    `timeout_ms` or a pause frame came. With `repeat_ms` the current signal is also re-sent at
    that interval. Any value counts as a frame.
    """

    category = "timing"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        timeout_ms: int = Field(default=1000, ge=1, le=HOUR_MS, description="silence after which the signal is 0")
        repeat_ms: int = Field(default=0, ge=0, le=HOUR_MS,
                               description="re-send the current signal at this interval (0: only on changes)")

    inputs = {"in": ANY("input")}
    outputs = {"out": NUMBER("signal")}

    async def run(self) -> None:
        config: MessageDetector.Config = self.config
        loop = asyncio.get_running_loop()
        timeout = config.timeout_ms / 1000
        repeat = config.repeat_ms / 1000 or None
        signal = 0
        last = 0.0
        next_repeat: float | None = None

        async def emit(value: int) -> None:
            nonlocal signal, next_repeat
            signal = value
            await self.send("out", value)
            next_repeat = None if repeat is None else loop.time() + repeat

        await emit(0)
        while True:
            deadlines = [t for t in (last + timeout if signal else None, next_repeat) if t is not None]
            try:
                async with asyncio.timeout_at(min(deadlines) if deadlines else None):
                    frame = await self.recv("in")
            except TimeoutError:
                if signal and loop.time() >= last + timeout:
                    await emit(0)
                elif next_repeat is not None and loop.time() >= next_repeat:
                    await emit(signal)
                continue
            if is_pause(frame):
                if signal:
                    await emit(0)
                continue
            last = loop.time()
            if not signal:
                await emit(1)
