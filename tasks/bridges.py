"""Bridges to plain MQTT: read or write any topic in the payload formats other systems use.

This is how a graph talks to Zigbee2MQTT (``zigbee2mqtt/<device>`` JSON, ``.../set`` to command),
Tasmota (``tele/<device>/SENSOR`` JSON, ``cmnd/<device>/POWER`` text) or Home Assistant's MQTT
entities. The bridges use the agent's own connection (``TaskContext.bus``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import BusError, FrameError
from edge.frames import encode_value, now_ms
from edge.topics import validate_filter, validate_topic
from tasks.base import ANY, TEXT, BuiltinTask, as_number, is_pause, log
from tasks.payloads import Format, PayloadError, decode_payload, encode_payload, extract, parse_path

__all__ = ["MqttIn", "MqttOut"]

_FORMAT_HELP = ("json (UTF-8 JSON), text (UTF-8), raw (bytes), cbor (plain CBOR) or frame (an edgetasks "
                "frame, its timestamp kept)")


class MqttIn(BuiltinTask):
    """Read any MQTT topic (wildcards allowed) into a stream: JSON, text, raw bytes, CBOR or frames.

    Each message becomes a frame on `out`, timestamped on arrival (a `frame` payload keeps its
    own). With `path`, the value is picked out of the decoded document: `temperature`,
    `ENERGY.Power`, `data[0].value`, `["key.with.dots"]`. A payload that does not decode, or in
    which the path finds nothing, is counted as an error (on `out`: this task has no input) and
    skipped. Retained messages come too (a device's last state), except empty ones (a deletion)
    or all of them with `skip_retained`. With `with_topic`, `topic` carries each message's topic,
    sent just before its value with the same timestamp.
    """

    category = "connections"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        topic: str = Field(default="sensors/#", description="the topic or filter (+ and # allowed) to read")
        format: Format = Field(default="json", description=f"how payloads are decoded: {_FORMAT_HELP}")
        path: str = Field(default="", max_length=1000,
                          description="where the value is in the decoded document, e.g. ENERGY.Power (empty: all)")
        qos: int = Field(default=0, ge=0, le=2, description="MQTT QoS of the subscription")
        skip_retained: bool = Field(default=False, description="ignore retained messages")
        with_topic: bool = Field(default=False, description="send each message's topic on the topic output")

        @field_validator("topic")
        @classmethod
        def _topic(cls, value: str) -> str:
            return validate_filter(value)

        @field_validator("path")
        @classmethod
        def _path(cls, value: str) -> str:
            parse_path(value)
            return value

    outputs = {"out": ANY("value"), "topic": TEXT("topic")}

    async def run(self) -> None:
        config: MqttIn.Config = self.config
        context = self._ctx()
        steps = parse_path(config.path)
        log.info("%s: reading %s (%s)", self.instance_id, config.topic, config.format)
        async with context.bus.subscribe(config.topic, qos=config.qos, maxsize=context.queue_size) as messages:
            async for message in messages:
                if message.retain and (config.skip_retained or not message.payload):
                    continue
                try:
                    value, ts = decode_payload(message.payload, config.format, max_size=context.max_payload)
                    value = extract(value, steps)
                except PayloadError as exc:
                    self.reject("out", f"{message.topic}: {exc}")
                    continue
                ts = now_ms() if ts is None else ts
                if config.format == "json" and not _carried(value):
                    self.reject("out", f"{message.topic}: the JSON holds text that is not Unicode (a lone surrogate)")
                    continue
                try:
                    if config.with_topic:
                        await self.send("topic", message.topic, ts=ts)
                    await self.send("out", value, ts=ts)
                except FrameError as exc:  # a payload nested as deep as a reader takes, one level more as a frame
                    self.reject("out", f"{message.topic}: the value cannot be sent as a frame: {exc}")


class MqttOut(BuiltinTask):
    """Write a stream to any MQTT topic as JSON, text, raw bytes, CBOR or frames.

    Each frame's value becomes one message on `topic`. `key` wraps it as `{key: value}` (JSON and
    CBOR), for commands such as Zigbee2MQTT's `{"brightness": 128}`; `on_value` / `off_value`
    replace a number first (on above 0.5), e.g. with `ON` / `OFF` for a Tasmota relay. `text`
    sends text as it is and anything else as JSON text (`21.5`, `true`); `raw` sends bytes as
    they are and text as UTF-8. A value the format cannot carry (bytes as JSON, a number as raw)
    is an input error. Pause frames are not sent.
    """

    category = "connections"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        topic: str = Field(default="actuators/out", description="the topic to write (no wildcards)")
        format: Format = Field(default="json", description=f"how values are encoded: {_FORMAT_HELP}")
        key: str = Field(default="", max_length=200, description="send {key: value} instead of the value (json, cbor)")
        on_value: Any = Field(default=None, description="sent instead of a number above 0.5 (null: the number)")
        off_value: Any = Field(default=None, description="sent instead of a number up to 0.5 (null: the number)")
        qos: int = Field(default=0, ge=0, le=2, description="MQTT QoS of the messages")
        retain: bool = Field(default=False, description="publish retained (the broker keeps the last one)")

        @field_validator("topic")
        @classmethod
        def _topic(cls, value: str) -> str:
            return validate_topic(value)

    inputs = {"in": ANY("value")}

    async def run(self) -> None:
        config: MqttOut.Config = self.config
        context = self._ctx()
        mapped = config.on_value is not None or config.off_value is not None
        async for frame in self.receive("in"):
            if is_pause(frame):
                continue
            value = frame.value
            number = as_number(value) if mapped else None
            if number is not None:
                replacement = config.on_value if number > 0.5 else config.off_value
                value = value if replacement is None else replacement
            try:
                payload = encode_payload(value, config.format, key=config.key, ts=frame.ts)
                await context.bus.publish(config.topic, payload, qos=config.qos, retain=config.retain)
            except (PayloadError, BusError) as exc:
                self.reject("in", f"cannot publish on {config.topic}: {exc}")


def _carried(value: Any) -> bool:
    """Whether a frame can carry ``value`` (JSON escapes can make text no UTF-8 can encode)."""
    try:
        encode_value(value)
    except FrameError:
        return False
    return True
