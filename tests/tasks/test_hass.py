"""Dashboard tasks and agents as Home Assistant entities (``edge.hass``, ``tasks.hass``).

In memory: every kind's discovery config against Home Assistant's documented schema
(``hass_schema``), its state, its removal, commands as Home Assistant sends them (hostile ones
counted), Home Assistant's birth. Through real brokers: a deployed slider and toggle read and
driven by a plain paho client the way Home Assistant does it, and a killed agent going
unavailable by its link's will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hass_schema import problems
from hypothesis import example, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge.bus import Bus
from edge.desired import Removal, encode_record
from edge.errors import ConfigError
from edge.frames import Frame, decode_frame, decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.hass import HassLink, availability_will
from edge.host import Host
from edge.settings import load_settings
from edge.task import Task, TaskContext
from edge.testing import MemoryBus
from edge.topics import Topics, hass_status
from tasks.builtin import TYPES
from tasks.controls import RadioButtons, Slider, TextInput, Toggle
from tasks.dashboard import DashboardTask
from tasks.displays import Plot, StatusDisplay, TextDisplay, ValueBar
from tasks.hass import Rejected, parse_command

TIMEOUT = 10.0
PREFIX = "homeassistant"


async def until(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``condition`` until it is truthy (a deadline, not a sleep for state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)
    return result


def configs(bus: MemoryBus) -> dict[str, dict[str, Any]]:
    """The discovery configs retained on a memory bus, by topic."""
    return {topic: json.loads(bus.retained(topic) or b"") for topic in bus.retained_topics
            if topic.startswith(f"{PREFIX}/")}


@contextlib.asynccontextmanager
async def entity(task_type: type[Task], config: dict[str, Any], *, link: HassLink | None,
                 bus: MemoryBus) -> AsyncIterator[DashboardTask]:
    """Run a dashboard task as the agent runs it: ``set`` at its panel topic, its entity slot from ``link``."""
    topics = Topics("ns")
    ports = task_type.ports(task_type.validate_config(config))
    targets = {port: [topics.stream("dep", "knob", port)] for port in ports.outputs}
    context = TaskContext(bus=bus._as_bus, instance_id="dep/knob", sources={}, targets=targets,
                          hass=link.slot("dep", "knob") if link is not None else None)
    task = task_type(config, context=context)
    assert isinstance(task, DashboardTask)
    await task.open_inputs()
    runner = asyncio.get_running_loop().create_task(task.run())
    try:
        yield task
    finally:
        runner.cancel()
        await asyncio.wait({runner})
        await task.close()
        if not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]


@contextlib.asynccontextmanager
async def memory_link(**kwargs: Any) -> AsyncIterator[tuple[MemoryBus, HassLink]]:
    async with MemoryBus() as bus, HassLink(bus=bus._as_bus, topics=Topics("ns"), agent_id="pi", **kwargs) as link:
        yield bus, link


KINDS: list[tuple[type[Task], dict[str, Any], str, str]] = [
    (Slider, {"min_value": 10, "max_value": 30, "step": 0.5, "default": 20,
              "home_assistant": {"name": "Target", "unit": "°C", "device_class": "temperature",
                                 "icon": "mdi:thermometer"}}, "number", "20.0"),
    (Toggle, {"label": "Heater", "default": True, "home_assistant": True}, "switch", "ON"),
    (RadioButtons, {"options": ["eco", "comfort"], "default": 1, "home_assistant": {}}, "select", "comfort"),
    (TextInput, {"default": "hello", "max_length": 1000, "home_assistant": {}}, "text", "hello"),
    (StatusDisplay, {"home_assistant": {}}, "sensor", ""),
    (TextDisplay, {"home_assistant": {}}, "sensor", ""),
    (ValueBar, {"default": 3, "home_assistant": {"unit": "kW", "device_class": "power"}}, "sensor", "3.0"),
]


@pytest.mark.parametrize(("task_type", "config", "component", "state"), KINDS,
                         ids=[k[0].type_name for k in KINDS])
async def test_each_kind_is_a_documented_entity_removed_when_it_stops(task_type, config, component, state):
    async with memory_link() as (bus, link):
        async with entity(task_type, config, link=link, bus=bus):
            found = await until(lambda: {t: c for t, c in configs(bus).items() if f"/{component}/" in t
                                         and c.get("unique_id", "").startswith("edgetasks/ns/pi/dep/knob")},
                                f"the {component} config")
            [(topic, payload)] = found.items()
            assert problems(topic, payload) == []
            assert topic.startswith(f"{PREFIX}/{component}/edgetasks_ns/pi-dep-knob-")
            assert payload["state_topic"] == "edge/v1/ns/hass/dep/knob/state"
            assert payload["availability"] == [{"topic": "edge/v1/ns/agents/pi/hass/availability",
                                                "payload_available": "online", "payload_not_available": "offline"}]
            assert payload["device"]["identifiers"] == ["edgetasks/ns/pi"]
            assert payload["origin"]["name"] == "edgetasks"
            assert ("command_topic" in payload) == (component != "sensor")
            if state:
                await until(lambda: bus.retained(payload["state_topic"]) == state.encode(), f"state {state!r}")
            else:  # a display before its first value says nothing (Home Assistant shows "unknown")
                assert bus.retained(payload["state_topic"]) is None
        assert bus.retained(topic) is None and bus.retained(payload["state_topic"]) is None  # removed


def test_the_entity_fields_follow_the_config():
    from tasks.hass import entity_fields

    slider = Slider({"min_value": 0, "max_value": 1, "home_assistant": {"unit": "%"}})
    fields = entity_fields(slider.view(), slider.config.home_assistant).fields
    assert fields == {"min": 0.0, "max": 1.0, "step": 0.001, "mode": "slider", "unit_of_measurement": "%"}  # any value
    status = StatusDisplay({"levels": [{"min": 1, "text": "ok", "color": "green"},
                                       {"min": 2, "text": "ok", "color": "blue"}], "below_text": "low",
                            "home_assistant": {}})
    fields = status.home_assistant_entity(status.config.home_assistant).fields
    assert fields == {"device_class": "enum", "options": ["ok", "low"]}
    blank = StatusDisplay({"levels": [{"min": 1, "text": "", "color": "green"}], "below_text": "",
                           "home_assistant": {}})
    assert blank.home_assistant_entity(blank.config.home_assistant).fields == {}  # a plain sensor
    text = TextInput({"max_length": 10, "home_assistant": {}})
    assert text.home_assistant_entity(text.config.home_assistant).fields["max"] == 10


def test_the_option_is_validated_and_the_plot_has_none():
    assert Toggle.validate_config({"home_assistant": False}).home_assistant is None
    assert Toggle.validate_config({}).home_assistant is None
    for bad in ({"icon": "thermometer"}, {"colour": "red"}, {"device_class": "Temperature!"}):
        with pytest.raises(ConfigError, match="home_assistant"):
            Slider.validate_config({"home_assistant": bad})
    # the catalog's schema only says "object, boolean or null" (small: it is in every dashboard type's entry);
    # the agent's check names the field
    assert Slider.describe()["config_schema"]["properties"]["home_assistant"]["anyOf"][0] == {"type": "object"}
    problems_found = Slider.check({"home_assistant": {"icon": "x"}})
    assert any(line.startswith("config.home_assistant.icon:") for line in problems_found)
    with pytest.raises(ConfigError, match="home_assistant"):  # Home Assistant has no chart entity
        Plot.validate_config({"home_assistant": {}})


async def test_a_task_on_an_agent_without_the_link_publishes_nothing(caplog):
    async with MemoryBus() as bus, entity(Toggle, {"home_assistant": True}, link=None, bus=bus) as task:
        await until(lambda: bus.retained("edge/v1/ns/streams/dep/knob/view"), "the view")
        assert configs(bus) == {} and task.hass is None
    assert "EDGE_HASS_DISCOVERY" in caplog.text


async def test_commands_act_as_panel_changes_and_hostile_ones_are_counted():
    async with memory_link() as (bus, link), \
            bus.subscribe("edge/v1/ns/streams/dep/knob/+") as out, \
            entity(Slider, {"min_value": 0, "max_value": 30, "step": 0.5, "repeat_ms": 0,
                            "home_assistant": {}}, link=link, bus=bus) as slider:
        command, state = "edge/v1/ns/hass/dep/knob/set", "edge/v1/ns/hass/dep/knob/state"

        async def value_after(payload: bytes) -> float:
            while out.queued:  # what went out before this command
                out.get_nowait()
            await bus.publish(command, payload)
            while True:
                message = await asyncio.wait_for(out.get(), TIMEOUT)
                if message.topic.endswith("/out"):
                    return decode_frame(message.payload).value

        await until(lambda: bus.retained(state) == b"0.0", "the first state")
        assert await value_after(b"12.3") == 12.5  # the slider's own rounding to its step
        assert bus.retained(state) == b"12.5"
        assert decode_frame(bus.retained("edge/v1/ns/streams/dep/knob/view") or b"").value["value"] == 12.5
        assert await value_after(b" 99 ") == 30  # clamped, as from the panel
        hostile = [b"", b"abc", b"nan", b"inf", b"1e400", b"\xff\xfe", b"12,5", "٣".encode(), b"x" * 100_000]
        for payload in hostile:
            await bus.publish(command, payload)
        await until(lambda: slider.in_metrics["set"].errors == len(hostile), "every hostile command counted")
        assert slider.value == 30 and bus.retained(state) == b"30.0"
        assert slider.in_metrics["set"].frames == 2 + len(hostile)  # as the panel's frames are counted
        assert await value_after(b"1") == 1  # still alive


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
@example(payload=b"0\x1f")  # a blank to \s, not to float()
def test_any_command_payload_is_a_value_the_control_takes_or_refused(payload):
    for task in (Slider({"min_value": -5, "max_value": 5}), Toggle({}), RadioButtons({"options": ["a", "1"]}),
                 TextInput({})):
        try:
            value = parse_command(task.view(), payload)
        except Rejected as exc:
            assert str(exc)  # says why
            continue
        assert task.apply(Frame(value=value, ts=0))  # what is not refused here, the control takes
        assert task.in_metrics["set"].errors == 0


async def test_toggle_select_and_text_commands():
    command = "edge/v1/ns/hass/dep/knob/set"
    async with memory_link() as (bus, link):
        async with entity(Toggle, {"repeat_ms": 0, "home_assistant": {}}, link=link, bus=bus) as toggle:
            await until(lambda: toggle.hass is not None, "announced")
            for payload, value in [(b"ON", True), (b"OFF", False), (b"on", True)]:
                await bus.publish(command, payload)
                await until(lambda v=value: toggle.value is v, f"toggle {value}")
            await bus.publish(command, b"1")
            await until(lambda: toggle.in_metrics["set"].errors == 1, "a refused toggle command")
            assert bus.retained("edge/v1/ns/hass/dep/knob/state") == b"ON"
        async with entity(RadioButtons, {"options": ["a", "b", "c"], "home_assistant": {}}, link=link,
                          bus=bus) as radio:
            await until(lambda: radio.hass is not None, "announced")
            await bus.publish(command, b"c")
            await until(lambda: radio.selected == 2, "option c")
            await bus.publish(command, b"1")  # an index is the panel's, not Home Assistant's: it sends texts
            await until(lambda: radio.in_metrics["set"].errors == 1, "a refused select command")
            assert bus.retained("edge/v1/ns/hass/dep/knob/state") == b"c"
        async with entity(TextInput, {"max_length": 5, "home_assistant": {}}, link=link, bus=bus) as text:
            await until(lambda: text.hass is not None, "announced")
            await bus.publish(command, "héllo".encode())
            await until(lambda: text.value == "héllo", "the text")
            await bus.publish(command, b"too long")
            await until(lambda: text.in_metrics["set"].errors == 1, "a refused text")
            assert bus.retained("edge/v1/ns/hass/dep/knob/state") == "héllo".encode()


async def test_home_assistant_birth_and_reconnect_publish_everything_again():
    async with memory_link() as (bus, link), entity(Toggle, {"home_assistant": {}}, link=link, bus=bus):
        state = "edge/v1/ns/hass/dep/knob/state"
        await until(lambda: bus.retained(state) == b"OFF", "the state")
        before = configs(bus)
        assert len(before) == 2  # the toggle and the agent's connectivity
        for topic in [*before, state]:  # a broker that lost its retained messages
            await bus.publish(topic, b"", retain=True)
        assert configs(bus) == {}
        await bus.publish(hass_status(PREFIX), b"online")  # Home Assistant's birth
        await until(lambda: configs(bus) == before, "the configs again")
        assert bus.retained(state) == b"OFF" and link.births == 1
        await bus.publish(hass_status(PREFIX), b"offline")  # its will: nothing to do
        assert link.births == 1


async def test_a_slot_announced_again_or_as_another_component_keeps_one_entity():
    async with memory_link() as (bus, link):
        slot = link.slot("dep", "knob")
        slot.publish("switch", slot.config("switch", name="a", command=True, fields={}))
        slot.publish("switch", slot.config("switch", name="b", command=True, fields={}))  # the same entity, renamed
        assert [c["name"] for t, c in configs(bus).items() if "/switch/" in t] == ["b"]
        slot.publish("number", slot.config("number", name="c", command=True, fields={}))  # it became a number
        assert [t.split("/")[1] for t in configs(bus) if "-dep-knob-" in t] == ["number"]
        slot.remove()
        await bus.publish(hass_status(PREFIX), b"online")
        assert [t for t in configs(bus) if "-dep-knob-" in t] == []  # removed for good: not announced again


async def test_the_agent_health_entities():
    health = {"tasks_running": 2, "tasks_failed": 0, "errors": 1, "cpu_percent": 3.5, "rss_mb": 50.0}
    async with memory_link(health=lambda: health, health_keys=list(health)) as (bus, link), \
            bus.subscribe(Topics("ns").hass_health("pi")) as sub:
        found = configs(bus)
        assert len(found) == 6
        for topic, payload in found.items():
            assert problems(topic, payload) == [], topic
        [connectivity] = [c for t, c in found.items() if t.startswith(f"{PREFIX}/binary_sensor/")]
        assert connectivity["device_class"] == "connectivity" and "availability" not in connectivity  # off, not unknown
        assert connectivity["state_topic"] == link.availability and bus.retained(link.availability) == b"online"
        link.publish_health()
        assert json.loads((await asyncio.wait_for(sub.get(), TIMEOUT)).payload) == health
        templates = {c["value_template"] for t, c in found.items() if t.startswith(f"{PREFIX}/sensor/")}
        assert templates == {"{{ value_json.%s }}" % key for key in health}  # noqa: UP031
    assert bus.retained(link.availability) == b"offline"  # a clean stop says so


async def test_availability_follows_the_agents_own_connection():
    async with memory_link() as (bus, link):
        assert bus.retained(link.availability) == b"online"
        link.set_available(False)  # the agent's main connection is down, this one is up
        assert bus.retained(link.availability) == b"offline"
        await bus.publish(hass_status(PREFIX), b"online")  # a birth meanwhile does not make it available
        assert bus.retained(link.availability) == b"offline"
        link.set_available(True)
        assert bus.retained(link.availability) == b"online"


def test_prefix_setting_is_checked():
    assert load_settings(hass_prefix="ha/discovery").hass_prefix == "ha/discovery"
    for bad in ("", "home#", "a//b", "/ha"):
        with pytest.raises(ConfigError, match="EDGE_HASS_PREFIX"):
            load_settings(hass_prefix=bad)


# -- through real brokers, as Home Assistant does it -------------------------------------------------
class HomeAssistantClient:
    """A plain paho client doing what Home Assistant's MQTT integration does: subscribe to the
    discovery prefix, read configs, publish commands."""

    def __init__(self, url: Any) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ha-{uuid.uuid4().hex[:8]}")
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: self._acked.put(mid)
        self._acked: queue.Queue[int] = queue.Queue()
        self.host, self.port = url.host, url.port

    def __enter__(self) -> HomeAssistantClient:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str) -> None:
        """Subscribe, and wait for the broker's SUBACK (blocking: call it before the loop needs to run)."""
        _, mid = self.client.subscribe(topic, qos=1)
        while self._acked.get(timeout=TIMEOUT) != mid:
            pass

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT)

    async def until(self, predicate: Callable[[mqtt.MQTTMessage], bool], what: str) -> mqtt.MQTTMessage:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"Home Assistant did not see {what} within {TIMEOUT} s")
            with contextlib.suppress(queue.Empty):
                message = await asyncio.to_thread(self.messages.get, timeout=min(left, 0.5))
                if predicate(message):
                    return message


async def test_home_assistant_reads_and_drives_a_deployed_slider_and_toggle(broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    prefix = f"ha{uuid.uuid4().hex[:6]}"  # the brokers are shared between tests
    topics = Topics(ns)
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="pi", data_dir=tmp_path,
                             hass_discovery=True, hass_prefix=prefix)
    spec = {"id": "home", "tasks": [
        {"id": "target", "type": "slider", "agent": "pi",
         "config": {"min_value": 5, "max_value": 30, "step": 0.5, "default": 20, "repeat_ms": 0,
                    "home_assistant": {"name": "Target", "unit": "°C", "device_class": "temperature"}}},
        {"id": "heater", "type": "toggle", "agent": "pi", "config": {"repeat_ms": 0, "home_assistant": True}}]}
    async with Bus(str(broker.url)) as bus, Host(settings, types=TYPES, persist=False, status_interval=0.1) as host, \
            bus.subscribe(topics.stream("home", "target", "out")) as target_out, \
            bus.subscribe(topics.stream("home", "heater", "out")) as heater_out:
        with HomeAssistantClient(broker.url) as ha:
            ha.subscribe(f"{prefix}/#")
            await bus.publish(topics.deployment("home"), encode_spec(parse_spec(spec)), qos=1, retain=True)
            found: dict[str, dict[str, Any]] = {}
            while len(found) < 6:  # the slider, the toggle, the agent's connectivity and 3 health sensors
                message = await ha.until(lambda m: m.topic.endswith("/config") and m.payload, "the configs")
                found[message.topic] = json.loads(message.payload)
            for topic, payload in found.items():
                assert problems(topic, payload, prefix=prefix) == [], topic
            by_component = {topic.split("/")[1]: payload for topic, payload in found.items()}
            assert sorted(topic.split("/")[1] for topic in found) == [
                "binary_sensor", "number", "sensor", "sensor", "sensor", "switch"]
            number, switch = by_component["number"], by_component["switch"]
            assert (number["name"], number["min"], number["max"], number["step"]) == ("Target", 5, 30, 0.5)
            assert number["unit_of_measurement"] == "°C" and switch["name"] == "heater"
            # Home Assistant subscribes to the topics the configs name; retained, the state is there at once
            for config in (number, switch):
                ha.subscribe(config["state_topic"])
                ha.subscribe(config["availability"][0]["topic"])
            await ha.until(lambda m: m.topic == number["state_topic"] and m.payload == b"20.0", "the slider's state")
            await ha.until(lambda m: m.topic == switch["availability"][0]["topic"] and m.payload == b"online",
                           "the agent available")

            ha.publish(number["command_topic"], b"22.4")  # what Home Assistant sends for a number
            await ha.until(lambda m: m.topic == number["state_topic"] and m.payload == b"22.5", "the new state")
            while (value := decode_frame((await asyncio.wait_for(target_out.get(), TIMEOUT)).payload).value) != 22.5:
                assert value == 20  # the first value, before the command
            ha.publish(switch["command_topic"], b"ON")
            await ha.until(lambda m: m.topic == switch["state_topic"] and m.payload == b"ON", "the switch on")
            while decode_frame((await asyncio.wait_for(heater_out.get(), TIMEOUT)).payload).value != 1:
                pass

            async with bus.subscribe(topics.agent_metrics("pi")) as batches, asyncio.timeout(TIMEOUT):
                await bus.publish(topics.agent_metrics_request("pi"), b"")  # metrics go to a reader who asks
                for payload in (b"warm", b"\xff", b"nan"):  # hostile commands: counted in the agent's metrics
                    ha.publish(number["command_topic"], payload)
                while not any(entry["task"] == "target" and entry["deployment"] == "home"
                              and entry["metrics"].get("inputs", {}).get("set", {}).get("errors") == 3
                              for entry in decode_value((await batches.get()).payload)["tasks"]):
                    pass
            assert host.instances[("home", "target")].state == "running"

            # the panel's changes reach Home Assistant too
            await bus.publish(topics.stream("home", "heater", "set"), encode_frame(0))
            await ha.until(lambda m: m.topic == switch["state_topic"] and m.payload == b"OFF", "the panel's change")

            await bus.publish(topics.deployment("home"), encode_record(Removal(id="home", version=2)), qos=1,
                              retain=True)
            removed = set()
            while removed != {t for t in found if "/number/" in t or "/switch/" in t}:
                message = await ha.until(lambda m: m.topic in found and not m.payload, "the configs removed")
                removed.add(message.topic)
        with HomeAssistantClient(broker.url) as late:  # a Home Assistant starting now finds the agent's own only
            late.subscribe(f"{prefix}/#")
            await bus.publish(f"{prefix}/marker", b"end")
            seen = []
            while (message := await late.until(lambda m: True, "the marker")).topic != f"{prefix}/marker":
                seen.append(message.topic)
            assert sorted(t.split("/")[1] for t in seen) == ["binary_sensor", "sensor", "sensor", "sensor"]
    with HomeAssistantClient(broker.url) as after:  # the agent stopped cleanly: it said so itself
        after.subscribe(topics.hass_availability("pi"))
        message = await after.until(lambda m: True, "the availability")
        assert (message.payload, message.retain) == (b"offline", True)


AGENT_CMD = [sys.executable, "-m", "edge", "agent"]


async def test_a_killed_agent_goes_unavailable_by_its_link_will(broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    availability = Topics(ns).hass_availability("ha-kill")
    assert availability_will(Topics(ns), "ha-kill").topic == availability
    env = {**os.environ, "EDGE_BROKER": str(broker.url), "EDGE_AGENT_ID": "ha-kill", "EDGE_NAMESPACE": ns,
           "EDGE_DATA_DIR": str(tmp_path), "EDGE_HASS_DISCOVERY": "true"}
    with HomeAssistantClient(broker.url) as ha:
        ha.subscribe(availability)
        proc = subprocess.Popen(AGENT_CMD, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await ha.until(lambda m: m.topic == availability and m.payload == b"online", "the agent online")
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 5)
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await ha.until(lambda m: m.topic == availability and m.payload == b"offline", "the will")
            assert loop.time() - killed_at < 3.0  # the broker saw the socket close: the will, not a keep-alive
        finally:
            proc.kill()
            proc.wait(5)
    with HomeAssistantClient(broker.url) as later:  # retained: a Home Assistant starting later knows too
        later.subscribe(availability)
        message = await later.until(lambda m: m.topic == availability, "the retained availability")
        assert message.payload == b"offline" and message.retain


async def retained_under(url: Any, pattern: str, marker: str) -> dict[str, bytes]:
    """What a client subscribing now gets retained under ``pattern`` (until ``marker``, which it publishes)."""
    with HomeAssistantClient(url) as client:
        client.subscribe(pattern)
        client.publish(marker, b"end")
        seen: dict[str, bytes] = {}
        while (message := await client.until(lambda m: True, "the marker")).topic != marker:
            seen[message.topic] = message.payload
        return seen


async def test_a_broker_that_lost_its_retained_messages_gets_them_again(tmp_path):
    from edge.broker import MosquittoBroker, free_port

    port = free_port()
    settings = load_settings(broker=f"mqtt://127.0.0.1:{port}", namespace="hass", agent_id="pi", data_dir=tmp_path,
                             hass_discovery=True)
    spec = {"id": "home", "tasks": [{"id": "heater", "type": "toggle", "agent": "pi",
                                     "config": {"default": True, "home_assistant": True}}]}
    state = Topics("hass").hass_state("home", "heater")

    async def announced(url: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:  # the agent reconnects at its own pace: look again until it has published
            seen = await retained_under(url, "#", f"{PREFIX}/marker")
            if seen.get(state) == b"ON" and sum(t.startswith(f"{PREFIX}/switch/") for t in seen) == 1:
                return
            assert loop.time() < deadline, f"not announced again: {sorted(seen)}"

    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(MosquittoBroker(port=port, data_dir=tmp_path / "first"))
        host = await stack.enter_async_context(Host(settings, types=TYPES, persist=False, status_interval=0.1))
        async with Bus(str(first.url)) as bus:
            await bus.publish(Topics("hass").deployment("home"), encode_spec(parse_spec(spec)), qos=1, retain=True)
        await announced(first.url)
        await first.__aexit__(None, None, None)  # the broker goes away, and one that holds nothing comes
        fresh = await stack.enter_async_context(MosquittoBroker(port=port, data_dir=tmp_path / "second"))
        await announced(fresh.url)  # the agent reconnected to it and said it all again
        await host.__aexit__(None, None, None)  # a clean stop: the task's entity goes, the agent is offline
        seen = await retained_under(fresh.url, "#", f"{PREFIX}/marker")
        assert not any(t.startswith(f"{PREFIX}/switch/") for t in seen) and state not in seen
        assert seen[Topics("hass").hass_availability("pi")] == b"offline"
        assert any(t.startswith(f"{PREFIX}/binary_sensor/") for t in seen)  # the agent's device stays
