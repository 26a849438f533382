"""The one send path (Task.send, Task.publish): seq per output, extra fields, retained frames, limits;
Task.warn's rate limit; a task group's one failure raised as itself. In memory: a recording bus."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from edge._groups import one_failure
from edge.errors import FrameError
from edge.frames import decode_frame
from edge.task import Port, Task, TaskContext


class RecordingBus:
    """What Task.send needs of a bus: publish, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int, bool]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))

    def frames(self, topic: str) -> list[Any]:
        return [decode_frame(payload) for t, payload, _, _ in self.sent if t == topic]


class TwoOutputs(Task):
    outputs = {"a": Port(content="number"), "b": Port(content="number", qos=1)}


def make(task_type: type[Task] = TwoOutputs, *, max_payload: int = 1024) -> tuple[Task, RecordingBus]:
    bus = RecordingBus()
    targets = {port: [f"t/{port}", f"t/{port}2"] for port in task_type.outputs}
    context = TaskContext(bus=bus, instance_id="d/t", sources={}, targets=targets,  # type: ignore[arg-type]
                          max_payload=max_payload)
    return task_type(context=context), bus


async def test_seq_counts_per_output_from_0_once_per_frame_that_goes_out():
    task, bus = make()
    await task.send("a", 1, ts=10)
    await task.send("b", 2, ts=11)
    await task.send("a", 3, ts=12)
    with pytest.raises(FrameError):
        await task.send("a", object(), ts=13)  # cannot be encoded: nothing goes out, no seq is used
    with pytest.raises(FrameError, match="payload limit"):
        await task.send("a", b"x" * 2000, ts=14)  # too large: likewise
    await task.send("a", 4, ts=15)
    assert [(f.seq, f.value) for f in bus.frames("t/a")] == [(0, 1), (1, 3), (2, 4)]
    assert bus.frames("t/a") == bus.frames("t/a2")  # the same frame to every target
    assert [(f.seq, f.value) for f in bus.frames("t/b")] == [(0, 2)]
    assert task.out_metrics["a"].frames == 3 and task.out_metrics["a"].last_ts == 15
    assert {qos for topic, _, qos, _ in bus.sent if topic.startswith("t/b")} == {1}  # the port's QoS


async def test_extra_fields_paused_and_retained_frames():
    task, bus = make()
    await task.send("a", 1, ts=5, extra={"pixel_format": "rgb24"}, paused=True, qos=1, retain=True)
    await task.send("a", 2)  # ts: now
    first, second = bus.frames("t/a")
    assert first.extra.get("pixel_format") == "rgb24" and first.paused
    assert not second.paused and second.ts > 5 and task.out_metrics["a"].last_ts == second.ts
    assert [(qos, retain) for topic, _, qos, retain in bus.sent if topic == "t/a"] == [(1, True), (0, False)]


async def test_publish_counts_seq_per_topic_apart_from_the_outputs():
    task, bus = make()
    await task.send("a", 1)
    for value in (1, 2):
        await task.publish("a", value)  # a topic named like a port: its own counter, no port metrics
    await task.publish("n/x", 3)
    assert [f.seq for f in bus.frames("a")] == [0, 1] and [f.seq for f in bus.frames("n/x")] == [0]
    assert task.out_metrics["a"].frames == 1


async def test_warnings_of_an_instance_are_rate_limited_per_key(caplog):
    task, _ = make()
    caplog.set_level(logging.WARNING, "edge.task")
    for _ in range(5):
        task.count_error(task.out_metrics["a"], "a", "bad value %r", 7)
    task.warn("other", "something else")
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.task"]
    assert lines == ["d/t: bad value 7 (1 error(s) so far; repeats logged at most every 10 s)",
                     "d/t: something else"]
    assert task.out_metrics["a"].errors == 5
    assert task.instance_id == "d/t" and TwoOutputs().instance_id == "two_outputs"


async def test_one_failure_of_a_task_group_is_raised_as_itself():
    async def fail(exc: Exception) -> None:
        raise exc

    with pytest.raises(KeyError), one_failure():
        async with asyncio.TaskGroup() as group:
            group.create_task(fail(KeyError("k")))
            group.create_task(asyncio.Event().wait())
    with pytest.raises(ExceptionGroup) as several, one_failure():
        async with asyncio.TaskGroup() as group:
            group.create_task(fail(KeyError("k")))
            group.create_task(fail(ValueError("v")))
    assert len(several.value.exceptions) == 2


async def test_a_media_task_sends_through_the_same_path_and_counter(caplog):
    from tasks.media.mediatask import RAW_VIDEO, MediaTask

    class Source(MediaTask):
        outputs = {"out": RAW_VIDEO}

    task, bus = make(Source)
    assert await task.emit("out", 1, ts=1, extra={"width": 2})  # type: ignore[attr-defined]
    await task.send("out", 2, ts=2)
    caplog.set_level(logging.WARNING, "tasks.media")
    for _ in range(3):
        assert not await task.emit("out", b"x" * 2000, ts=3)  # type: ignore[attr-defined]
    assert await task.emit("out", 4, ts=4)  # type: ignore[attr-defined]
    assert [(f.seq, f.value) for f in bus.frames("t/out")] == [(0, 1), (1, 2), (2, 4)]
    assert bus.frames("t/out")[0].extra.get("width") == 2
    assert task.not_sent == 3 and task.dropped() == 3  # type: ignore[attr-defined]
    warnings = [r.getMessage() for r in caplog.records if r.name == "tasks.media"]
    assert len(warnings) == 1 and "exceeds the 1024-byte payload limit" in warnings[0]
