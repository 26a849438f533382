"""mqtt_in / mqtt_out against both brokers, in every payload format."""

from __future__ import annotations

import contextlib
import json
import uuid

import numpy as np
import pytest
from task_harness import running

from edge.bus import Bus
from edge.errors import ConfigError
from edge.frames import decode_frame, decode_value, encode_frame, encode_value
from tasks.bridges import MqttIn, MqttOut
from tasks.payloads import PayloadError, decode_payload, encode_payload, extract, parse_path


def base() -> str:
    return f"test/bridges/{uuid.uuid4().hex[:10]}"


async def flowing(h, topic: str, payload: bytes):
    """Publish a probe until mqtt_in (which subscribes when it starts) passes one on; read the rest with
    :func:`skip`, as more probes may still come."""
    for _ in range(50):
        await h.bus.publish(topic, payload)
        with contextlib.suppress(AssertionError):
            return await h.next(timeout=0.2)
    raise AssertionError("mqtt_in never received anything")


async def skip(h, probe, port: str = "out"):
    """The next frame whose value is not ``probe``."""
    while (frame := await h.next(port)).value == probe:
        pass
    return frame


async def test_mqtt_in_json_with_a_path_and_wildcards(broker):
    root = base()
    config = {"topic": f"{root}/+/SENSOR", "format": "json", "path": "ENERGY.Power", "with_topic": True}
    async with running(MqttIn, broker.url, config) as h:
        await flowing(h, f"{root}/probe/SENSOR", b'{"ENERGY": {"Power": 0}}')
        await h.bus.publish(f"{root}/plug1/SENSOR", json.dumps({"Time": "x", "ENERGY": {"Power": 42.5}}).encode())
        out = await skip(h, 0)
        assert out.value == 42.5
        topic = await skip(h, f"{root}/probe/SENSOR", "topic")
        assert (topic.value, topic.ts) == (f"{root}/plug1/SENSOR", out.ts)
        await h.bus.publish(f"{root}/plug2/SENSOR", b'{"ENERGY": {}}')  # no Power: an error, skipped
        await h.bus.publish(f"{root}/plug2/SENSOR", b"not json")
        await h.bus.publish(f"{root}/plug2/other", b'{"ENERGY": {"Power": 1}}')  # not matched
        await h.bus.publish(f"{root}/plug2/SENSOR", b'{"ENERGY": {"Power": 7}}')
        assert (await h.next()).value == 7
        assert h.task.out_metrics["out"].errors == 2


@pytest.mark.parametrize(("fmt", "payload", "expected"), [
    ("text", "21.5 °C".encode(), "21.5 °C"),
    ("raw", b"\x00\xffbytes", b"\x00\xffbytes"),
    ("cbor", encode_value({"temp": [1, 2.5]}), {"temp": [1, 2.5]}),
    ("frame", encode_frame("framed", ts=777), "framed"),
    ("json", b"[1, true, null]", [1, True, None]),
])
async def test_mqtt_in_formats(broker, fmt, payload, expected):
    topic = base()
    async with running(MqttIn, broker.url, {"topic": topic, "format": fmt}) as h:
        await flowing(h, topic, payload)
        await h.bus.publish(topic, payload)
        out = await h.next()
        assert out.value == expected
        if fmt == "frame":
            assert out.ts == 777


async def test_mqtt_in_bad_payloads_are_counted(broker):
    topic = base()
    async with running(MqttIn, broker.url, {"topic": topic, "format": "cbor"}) as h:
        await flowing(h, topic, encode_value(0))
        await h.bus.publish(topic, b"\xff\xff")
        await h.bus.publish(topic, encode_value("fine"))
        assert (await skip(h, 0)).value == "fine"
        assert h.task.out_metrics["out"].errors == 1


async def test_mqtt_in_counts_a_value_too_deep_to_send_as_a_frame(broker):
    """A CBOR payload nested as deep as a reader takes (64 levels) is one level too deep once it is a frame's
    value: counted on ``out``, and the task goes on (the hostile corpus found it crashing the task)."""
    import cbor2

    deep: object = 1
    for _ in range(64):
        deep = [deep]
    topic = base()
    async with running(MqttIn, broker.url, {"topic": topic, "format": "cbor"}) as h:
        await flowing(h, topic, encode_value(0))
        await h.bus.publish(topic, cbor2.dumps(deep))
        await h.bus.publish(topic, encode_value("fine"))
        assert (await skip(h, 0)).value == "fine"
        assert h.task.out_metrics["out"].errors == 1


async def test_mqtt_in_retained_messages(broker):
    topic = base()
    async with Bus(str(broker.url)) as bus:
        await bus.publish(f"{topic}/state", b'{"state": "ON"}', qos=1, retain=True)
        await bus.publish(f"{topic}/gone", b"", qos=1, retain=True)  # a deletion: nothing retained
        async with running(MqttIn, broker.url, {"topic": f"{topic}/+", "path": "state"}) as h:
            assert (await h.next()).value == "ON"  # a device's last state comes at once
        async with running(MqttIn, broker.url, {"topic": f"{topic}/+", "skip_retained": True}) as h:
            assert (await flowing(h, f"{topic}/live", b"1")).value == 1
            assert {f.value for f in h.drain()} <= {1}  # only live ones: never the retained state
            assert h.task.out_metrics["out"].frames >= 1 and h.task.out_metrics["out"].errors == 0
        await bus.publish(f"{topic}/state", b"", qos=1, retain=True)


@pytest.mark.parametrize(("config", "values", "expected"), [
    ({"format": "json", "key": "brightness"}, [128], [b'{"brightness":128}']),
    ({"format": "text", "on_value": "ON", "off_value": "OFF"}, [1, 0, True, "TOGGLE"],
     [b"ON", b"OFF", b"ON", b"TOGGLE"]),
    ({"format": "text"}, [21.5, "é", {"a": 1}], [b"21.5", "é".encode(), b'{"a":1}']),
    ({"format": "raw"}, [b"\x01\x02", "text"], [b"\x01\x02", b"text"]),
    ({"format": "json"}, [np.arange(3, dtype=np.int16)], [b"[0,1,2]"]),
])
async def test_mqtt_out_formats(broker, config, values, expected):
    topic = base()
    async with running(MqttOut, broker.url, {"topic": topic, **config}) as h, h.bus.subscribe(topic) as sub:
        for value in values:
            await h.feed("in", value)
        got = [(await sub.get()).payload for _ in expected]
        assert got == expected


async def test_mqtt_out_cbor_frame_qos_retain_and_bad_values(broker):
    topic = base()
    config = {"topic": topic, "format": "cbor", "key": "v", "qos": 1, "retain": True}
    async with running(MqttOut, broker.url, config) as h, h.bus.subscribe(topic) as sub:
        await h.feed("in", [1, 2])
        assert decode_value((await sub.get()).payload) == {"v": [1, 2]}
    async with Bus(str(broker.url)) as late, late.subscribe(topic) as sub:  # retained: a late reader gets it
        assert decode_value((await sub.get()).payload) == {"v": [1, 2]}
        await late.publish(topic, b"", qos=1, retain=True)
    async with running(MqttOut, broker.url, {"topic": topic, "format": "frame"}) as h, h.bus.subscribe(topic) as sub:
        await h.feed("in", "stamped", ts=4242)
        frame = decode_frame((await sub.get()).payload)
        assert (frame.value, frame.ts) == ("stamped", 4242)
    async with running(MqttOut, broker.url, {"topic": topic, "format": "json"}) as h, h.bus.subscribe(topic) as sub:
        await h.feed("in", b"bytes")  # no JSON form: an input error
        await h.feed("in", float("nan"))
        await h.feed("in", None, paused=True)  # not sent
        await h.feed("in", "ok")
        assert (await sub.get()).payload == b'"ok"'
        assert h.task.in_metrics["in"].errors == 2


async def test_a_round_trip_through_plain_mqtt(broker):
    topic = base()
    async with running(MqttIn, broker.url, {"topic": topic, "format": "json", "path": "data[1]"}) as reader, \
            running(MqttOut, broker.url, {"topic": topic, "format": "json", "key": "data"}) as writer:
        for _ in range(50):  # until the reader is subscribed
            await writer.feed("in", [0, "probe"])
            with contextlib.suppress(AssertionError):
                await reader.next(timeout=0.2)
                break
        await writer.feed("in", [0, {"deep": True}])
        while (value := (await reader.next()).value) == "probe":
            pass
        assert value == {"deep": True}


def test_payload_helpers():
    assert parse_path("$.a.b[2][\"c.d\"]") == ["a", "b", 2, "c.d"]
    assert parse_path("") == [] and parse_path("$") == []
    assert extract({"a": [0, {"b": 5}]}, parse_path("a[1].b")) == 5
    assert extract({"0": "key"}, parse_path("[0]")) == "key"
    for bad in ("a..b", "[x]", "a[", 'a["b'):
        with pytest.raises(ValueError, match="invalid path"):
            parse_path(bad)
    with pytest.raises(PayloadError, match=r"no a\[5\]"):
        extract({"a": [1]}, parse_path("a[5]"))
    with pytest.raises(PayloadError, match="has no members"):
        extract({"a": 1}, parse_path("a.b"))
    with pytest.raises(PayloadError, match="UTF-8"):
        decode_payload(b"\xff", "text", max_size=100)
    with pytest.raises(PayloadError, match="not JSON"):
        decode_payload(b"{", "json", max_size=100)
    with pytest.raises(PayloadError, match="nested too deeply"):
        decode_payload(b"[" * 100_000, "json", max_size=10**6)
    with pytest.raises(PayloadError):
        decode_payload(encode_value("x" * 200), "cbor", max_size=100)
    with pytest.raises(PayloadError, match="raw payloads"):
        encode_payload(1, "raw")
    with pytest.raises(PayloadError, match="cannot encode as cbor"):
        encode_payload(object(), "cbor")


def test_configs_are_checked():
    for task_type, bad, message in [(MqttIn, {"topic": "a/#/b"}, "'#' must be"), (MqttIn, {"path": "a..b"}, "path"),
                                    (MqttIn, {"format": "xml"}, "format"), (MqttIn, {"qos": 3}, "qos"),
                                    (MqttOut, {"topic": "a/+"}, "wildcards"), (MqttOut, {"topic": ""}, "empty")]:
        with pytest.raises(ConfigError, match=message):
            task_type.validate_config(bad)
