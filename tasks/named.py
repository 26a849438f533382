"""Named streams: a stream one deployment publishes under a name and others read by that name.

A named stream lives on ``edge/v1/{namespace}/named/{name}`` (``Topics.named``) and carries
ordinary frames. The namespace comes from the runtime: ``TaskContext.topics`` once it provides
one, until then from the stream topics the instance is wired with (every deployed task's outputs
publish on ``edge/v1/{namespace}/streams/...``, and so do the task outputs its inputs read).
"""

from __future__ import annotations

from itertools import chain

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import ConfigError, FrameError
from edge.frames import decode_frame
from edge.task import TaskContext
from edge.topics import Topics, is_stream_topic, validate_id
from edge.topics import namespace_of as topics_namespace
from tasks.base import ANY, BuiltinTask, is_pause, log

__all__ = ["NamedInput", "NamedOutput", "namespace_of"]


def namespace_of(context: TaskContext) -> Topics:
    """The namespace the instance runs in (see the module docstring)."""
    topics = getattr(context, "topics", None)
    if isinstance(topics, Topics):
        return topics
    for topic in chain(chain.from_iterable(context.targets.values()), context.sources.values()):
        namespace = topics_namespace(topic)
        if namespace is not None and is_stream_topic(topic):
            return Topics(namespace)
    raise ConfigError(f"{context.instance_id}: cannot tell which namespace this instance runs in (it is wired to "
                      "no edgetasks stream topic and the runtime gives no TaskContext.topics)", field="namespace")


class _NamedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="shared", description="the stream's name, unique in the namespace: "
                                                    "1 to 64 of A-Z a-z 0-9 _ -")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_id(value, "stream name")


class NamedOutput(BuiltinTask):
    """Publish a stream under a name, for `named_input` tasks of any deployment in the namespace to read.

    Frames (pause frames too) go out unchanged but for their sequence numbers. Give each name one
    `named_output`: two publishing under one name interleave. A named stream exists while its
    `named_output` runs; readers simply receive nothing meanwhile.
    """

    category = "connections"

    Config = _NamedConfig
    inputs = {"in": ANY("stream")}

    async def run(self) -> None:
        context = self._ctx()
        topic = namespace_of(context).named(self.config.name)
        async for frame in self.receive("in"):
            try:
                await self.publish(topic, frame.value, ts=frame.ts, paused=is_pause(frame))
            except FrameError as exc:  # cannot happen for a value that was decoded; counted all the same
                self.reject("in", f"cannot re-encode: {exc}")


class NamedInput(BuiltinTask):
    """Read a stream some `named_output` publishes under a name, in this or another deployment.

    The frames come out on `out` with their values and timestamps. A payload on the named topic
    that is not a frame is counted as an error (on `out`, as this task has no input) and skipped.
    """

    category = "connections"

    Config = _NamedConfig
    outputs = {"out": ANY("stream")}

    async def run(self) -> None:
        context = self._ctx()
        topic = namespace_of(context).named(self.config.name)
        log.info("%s: reading the named stream %r on %s", self.instance_id, self.config.name, topic)
        async with context.bus.subscribe(topic, maxsize=context.queue_size) as messages:
            async for message in messages:
                try:
                    frame = decode_frame(message.payload, max_size=context.max_payload)
                except FrameError as exc:
                    self.reject("out", f"not a frame on {topic}: {exc}")
                    continue
                await self.send("out", frame.value, ts=frame.ts, paused=is_pause(frame))
