"""Named streams between deployments, on real brokers."""

from __future__ import annotations

import contextlib

import pytest
from task_harness import namespace, running

from edge.errors import ConfigError
from edge.task import TaskContext
from edge.topics import Topics
from tasks.named import NamedInput, NamedOutput, namespace_of


async def test_a_stream_shared_by_name(broker):
    topics = namespace()
    async with running(NamedInput, broker.url, {"name": "cam-1"}, topics=topics, task_id="reader") as reader, \
            running(NamedOutput, broker.url, {"name": "cam-1"}, topics=topics, task_id="writer") as writer:
        assert topics.named("cam-1") == f"{topics.root}/named/cam-1"
        await flowing(writer, reader)
        await writer.feed("in", {"frame": 1}, ts=123)
        out = await next_real(reader)
        assert (out.value, out.ts) == ({"frame": 1}, 123)
        await writer.feed("in", None, paused=True, ts=124)
        assert (await reader.next()).extra == {"paused": True}
        await reader.bus.publish(topics.named("cam-1"), b"\xff not a frame")
        await reader.errors("out", 1)
        await writer.feed("in", "still here")
        assert (await reader.next()).value == "still here"


async def flowing(writer, reader) -> None:
    """Probe until the reader (which subscribes when it starts) gets frames."""
    for _ in range(50):
        await writer.feed("in", "probe")
        with contextlib.suppress(AssertionError):
            await reader.next(timeout=0.2)
            return
    raise AssertionError("the named stream never flowed")


async def next_real(h):
    while (frame := await h.next()).value == "probe":
        pass
    return frame


async def test_names_are_namespaced(broker):
    mine, theirs = namespace(), namespace()
    async with running(NamedInput, broker.url, {"name": "s"}, topics=mine) as reader, \
            running(NamedOutput, broker.url, {"name": "s"}, topics=theirs) as other, \
            running(NamedOutput, broker.url, {"name": "s"}, topics=mine, task_id="w") as writer:
        await other.feed("in", "other namespace")
        await other.processed("in", 1)
        await flowing(writer, reader)
        await other.feed("in", "other namespace")
        await other.processed("in", 2)
        await writer.feed("in", "mine")
        assert (await next_real(reader)).value == "mine"


def test_namespace_comes_from_the_context():
    topics = Topics("abc")
    wired = TaskContext(bus=None, instance_id="d/t", sources={"in": topics.stream("d", "src", "out")},  # type: ignore[arg-type]
                        targets={})
    assert namespace_of(wired).root == topics.root
    plain = TaskContext(bus=None, instance_id="d/t", sources={"in": "sensors/x"}, targets={})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot tell which namespace"):
        namespace_of(plain)
    plain.topics = Topics("given")  # type: ignore[attr-defined]  # the proposed TaskContext.topics
    assert namespace_of(plain).namespace == "given"
    with pytest.raises(ConfigError, match="stream name"):
        NamedOutput.validate_config({"name": "a/b"})
