"""The hardware types deployed by spec to a real agent runtime on a real broker, driven by a plain paho client.

The agent (an in-process :class:`edge.host.Host`, so the test can hold the other end of each fake)
runs with gpiozero's mock pin factory, a fake I2C bus through the seam, pty pairs for serial
ports and a fake w1 sysfs tree (``EDGE_W1_ROOT``). Frames go in and come out over MQTT through a
paho client of the test's own; pin states, bus writes and pty bytes are checked at the fakes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hardware_fakes import FakeBuses, FakeSerialDevice, hardware_types, mock_pins, w1_sensor
from paho.mqtt.enums import CallbackAPIVersion

from edge.bus import Bus
from edge.desired import Removal, encode_record
from edge.frames import decode_frame, decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.builtin import TYPES

HARDWARE = hardware_types()
pytestmark = pytest.mark.skipif(len(HARDWARE) < 7, reason="gpiozero, smbus2 and pyserial are needed")
TIMEOUT = 10.0


class Paho:
    """A plain paho client on its own network thread: publishes frames, collects what arrives."""

    def __init__(self, url: Any) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hw-{uuid.uuid4().hex[:10]}")
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.pending: dict[str, collections.deque[Any]] = {}  # frames by topic, not taken yet
        self.client.on_message = lambda _c, _u, message: self.received.put((message.topic, message.payload))
        self.client.connect(url.host, url.port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        done = queue.Queue[int]()
        self.client.on_subscribe = lambda *args: done.put(1)
        self.client.subscribe(topic, qos=1)
        done.get(timeout=TIMEOUT)

    def send(self, topic: str, value: Any) -> None:
        self.client.publish(topic, encode_frame(value), qos=1).wait_for_publish(TIMEOUT)

    async def value(self, topic: str, predicate: Callable[[Any], bool] = lambda v: True) -> Any:
        """The first frame's value on ``topic`` (from those not taken yet) for which ``predicate`` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        pending = self.pending.setdefault(topic, collections.deque())
        while True:
            while pending:
                if predicate(value := pending.popleft()):
                    return value
            remaining = deadline - loop.time()
            assert remaining > 0, f"no such frame on {topic} in time"
            try:
                got, payload = await asyncio.to_thread(self.received.get, timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if payload:
                self.pending.setdefault(got, collections.deque()).append(decode_frame(payload).value)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def namespace() -> Topics:
    return Topics(f"t{uuid.uuid4().hex[:10]}")


def topic(topics: Topics, name: str) -> str:
    """A plain topic of the test's own (no agent's): where paho feeds and reads."""
    return f"hw/{topics.namespace}/{name}"


@contextlib.asynccontextmanager
async def agent(broker: Any, tmp_path: Any, topics: Topics, tasks: list[dict[str, Any]],
                edges: list[dict[str, str]]) -> AsyncIterator[tuple[Host, Bus, Paho]]:
    """A runtime as agent ``pi`` with the hardware types, deployment ``hw`` applied to it, and a paho client."""
    settings = load_settings(broker=str(broker.url), namespace=topics.namespace, agent_id="pi",
                             data_dir=tmp_path / "data")
    spec = {"id": "hw", "tasks": [{"agent": "pi", **t} for t in tasks], "edges": edges}
    paho = Paho(broker.url)
    try:
        async with Bus(str(broker.url)) as bus, \
                Host(settings, types=[*TYPES, *HARDWARE], persist=False, status_interval=0.1) as host:
            paho.subscribe(topic(topics, "#"))
            await bus.publish(topics.deployment("hw"), encode_spec(parse_spec(spec)), qos=1, retain=True)
            yield host, bus, paho
            await bus.publish(topics.deployment("hw"), encode_record(Removal("hw", 1000)), qos=1, retain=True)
            async with asyncio.timeout(TIMEOUT):
                while host.instances:
                    await asyncio.sleep(0.02)
    finally:
        paho.close()


async def status(bus: Bus, topics: Topics, task: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async with bus.subscribe(topics.task_status("hw", task)) as sub, asyncio.timeout(TIMEOUT):
        while True:
            message = await sub.get()
            value = decode_value(message.payload) if message.payload else None
            if value is not None and predicate(value):
                return value


async def running(bus: Bus, topics: Topics, *tasks: str) -> None:
    for task in tasks:
        await status(bus, topics, task, lambda s: s["state"] == "running")


async def input_errors(bus: Bus, topics: Topics, task: str, port: str, count: int) -> None:
    """Until the agent's metrics batches say input ``port`` of ``task`` counted ``count`` errors."""
    async with bus.subscribe(topics.agent_metrics("pi")) as batches, asyncio.timeout(TIMEOUT):
        await bus.publish(topics.agent_metrics_request("pi"), b"")  # metrics go to a reader who asks
        while not any(entry["task"] == task and entry["metrics"].get("inputs", {}).get(port, {}).get("errors") == count
                      for entry in decode_value((await batches.get()).payload)["tasks"]):
            pass


async def until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        assert loop.time() < deadline, f"{what} did not happen in time"
        await asyncio.sleep(0.01)


async def test_a_button_lights_a_led_and_a_slider_dims_another(broker, tmp_path):
    topics = namespace()
    tasks = [{"id": "button", "type": "gpio_in", "config": {"pin": "GPIO17", "pull": "up", "invert": True,
                                                           "count": "rising"}},
             {"id": "led", "type": "gpio_out", "config": {"pin": "BOARD13"}},
             {"id": "dimmer", "type": "pwm_out", "config": {"pin": 18, "frequency_hz": 200}}]
    edges = [{"from": "button.out", "to": "led.in"}, {"from": "led.state", "to": f"topic:{topic(topics, 'led')}"},
             {"from": "button.count", "to": f"topic:{topic(topics, 'presses')}"},
             {"from": f"topic:{topic(topics, 'dim')}", "to": "dimmer.in"}]
    with mock_pins() as pins:
        async with agent(broker, tmp_path, topics, tasks, edges) as (host, bus, paho):
            await running(bus, topics, "button", "led", "dimmer")
            button, led, dimmer = pins.pin(17), pins.pin(27), pins.pin(18)
            await asyncio.to_thread(button.drive_low)  # pressed (to ground), from a thread as gpiozero's are
            assert await paho.value(topic(topics, "led"), lambda v: v == 1) == 1
            assert led.state == 1
            assert await paho.value(topic(topics, "presses")) == 1
            await asyncio.to_thread(button.drive_high)
            await paho.value(topic(topics, "led"), lambda v: v == 0)
            assert led.state == 0
            paho.send(topic(topics, "dim"), 0.4)
            await until(lambda: dimmer.state == 0.4, "the duty cycle set")
            assert dimmer.frequency == 200
            paho.send(topic(topics, "dim"), "bright")  # bad input: counted, the pin keeps its duty cycle
            await input_errors(bus, topics, "dimmer", "in", 1)
            assert dimmer.state == 0.4 and host.instances[("hw", "dimmer")].state == "running"
    assert led.function == "input"  # released when the deployment was removed


async def test_i2c_sensor_read_and_register_written(broker, tmp_path, monkeypatch):
    from tasks.hardware import i2c

    buses = FakeBuses()
    monkeypatch.setattr(i2c, "buses", buses)
    sensor, pwm = buses.add(0x48), buses.add(0x40)
    sensor.registers[0:2] = b"\x19\x40"  # 25.25 °C
    topics = namespace()
    tasks = [{"id": "temp", "type": "i2c_read",
              "config": {"address": 0x48, "reg": 0, "length": 2, "decode": "signed", "scale": 1 / 256,
                         "interval_ms": 50}},
             {"id": "servo", "type": "i2c_write", "config": {"address": 0x40, "reg": 6, "length": 2,
                                                             "byte_order": "little"}}]
    edges = [{"from": "temp.out", "to": f"topic:{topic(topics, 'temp')}"},
             {"from": f"topic:{topic(topics, 'servo')}", "to": "servo.in"}]
    async with agent(broker, tmp_path, topics, tasks, edges) as (_host, bus, paho):
        await running(bus, topics, "temp", "servo")
        assert await paho.value(topic(topics, "temp")) == 25.25
        sensor.fail = True  # the sensor stops answering: the status says so, the task runs on
        failing = await status(bus, topics, "temp", lambda s: bool(s.get("error")))
        assert failing["state"] == "running" and "0x48 on bus 1 failed" in failing["error"]
        sensor.fail = False
        sensor.registers[0:2] = b"\xff\x80"  # -0.5 °C
        assert await paho.value(topic(topics, "temp"), lambda v: v < 0) == -0.5
        await status(bus, topics, "temp", lambda s: s.get("error") is None)
        paho.send(topic(topics, "servo"), 1500)
        paho.send(topic(topics, "servo"), "wide")
        await input_errors(bus, topics, "servo", "in", 1)
        assert pwm.writes == [(6, (1500).to_bytes(2, "little"))]


async def test_a_gps_on_a_serial_port_unplugged_and_back(broker, tmp_path):
    gps, modem = FakeSerialDevice(tmp_path / "a"), FakeSerialDevice(tmp_path / "b")
    topics = namespace()
    tasks = [{"id": "gps", "type": "serial_in", "config": {"port": str(gps.path), "baudrate": 9600}},
             {"id": "modem", "type": "serial_out", "config": {"port": str(modem.path), "line_ending": "crlf"}}]
    edges = [{"from": "gps.out", "to": f"topic:{topic(topics, 'nmea')}"},
             {"from": f"topic:{topic(topics, 'at')}", "to": "modem.in"}]
    try:
        async with agent(broker, tmp_path, topics, tasks, edges) as (host, bus, paho):
            await running(bus, topics, "gps", "modem")
            reader = host.instances[("hw", "gps")]
            await until(lambda: reader.task is not None and reader.task.connects == 1, "the port opened")
            gps.write(b"$GPGGA,123519,4807.038,N*47\r\n")
            assert await paho.value(topic(topics, "nmea")) == "$GPGGA,123519,4807.038,N*47"
            gps.unplug()
            gone = await status(bus, topics, "gps", lambda s: "cannot open" in (s.get("error") or ""))
            assert gone["state"] == "running" and str(gps.path) in gone["error"]
            gps.plug()
            await status(bus, topics, "gps", lambda s: s.get("error") is None)
            await until(lambda: reader.task is not None and reader.task.connects == 2, "the port opened again")
            gps.write(b"$GPRMC,back*00\n")
            assert await paho.value(topic(topics, "nmea")) == "$GPRMC,back*00"
            paho.send(topic(topics, "at"), "AT+CSQ")
            assert await modem.read(lambda d: d.endswith(b"\r\n")) == b"AT+CSQ\r\n"
            assert reader.restarts == 0  # never a crash
    finally:
        gps.close()
        modem.close()


async def test_one_wire_sensors_from_a_fake_sysfs_tree(broker, tmp_path, monkeypatch):
    root = tmp_path / "w1"
    monkeypatch.setenv("EDGE_W1_ROOT", str(root))
    w1_sensor(root, "28-0316a2796bff", 21500)
    w1_sensor(root, "28-00000a1b2c3d", 18250, temperature_file=True)
    topics = namespace()
    tasks = [{"id": "all", "type": "one_wire_temperature", "config": {"interval_ms": 100}},
             {"id": "one", "type": "one_wire_temperature",
              "config": {"device": "28-00000a1b2c3d", "interval_ms": 100}}]
    edges = [{"from": "all.out", "to": f"topic:{topic(topics, 'all')}"},
             {"from": "one.out", "to": f"topic:{topic(topics, 'one')}"}]
    async with agent(broker, tmp_path, topics, tasks, edges) as (_host, bus, paho):
        await running(bus, topics, "all", "one")
        assert await paho.value(topic(topics, "all")) == {"28-0316a2796bff": 21.5, "28-00000a1b2c3d": 18.25}
        assert await paho.value(topic(topics, "one")) == 18.25
        w1_sensor(root, "28-0316a2796bff", 21500, crc_ok=False)
        bad = await status(bus, topics, "all", lambda s: "CRC check failed" in (s.get("error") or ""))
        assert bad["state"] == "running"
        assert await paho.value(topic(topics, "all"), lambda v: len(v) == 1) == {"28-00000a1b2c3d": 18.25}


async def test_a_type_whose_device_is_missing_is_listed_and_refused_with_the_reason(broker, tmp_path, monkeypatch):
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no_such_factory")
    monkeypatch.setenv("EDGE_W1_ROOT", str(tmp_path / "no-w1"))
    topics = namespace()
    tasks = [{"id": "led", "type": "gpio_out"}, {"id": "temp", "type": "one_wire_temperature"}]
    async with agent(broker, tmp_path, topics, tasks, []) as (host, bus, _paho):
        led = await status(bus, topics, "led", lambda s: s["state"] == "invalid")
        assert led["error"].startswith("task type 'gpio_out' is unavailable on agent pi: no GPIO pin factory:")
        temp = await status(bus, topics, "temp", lambda s: s["state"] == "invalid")
        assert temp["error"].startswith("task type 'one_wire_temperature' is unavailable on agent pi: no 1-Wire bus:")
        catalog = {entry["name"]: entry for entry in host.catalog()}
        assert catalog["pwm_out"]["available"] is False and "no_such_factory" in catalog["pwm_out"]["reason"]
        assert catalog["serial_in"]["available"] is True  # a serial port is looked for when the task runs
        assert Device.pin_factory is None


# -- a real agent process ---------------------------------------------------------------------------
def _agent_env(broker: Any, ns: str, data: Any, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "GPIOZERO_"))}
    env.update(EDGE_BROKER=str(broker.url), EDGE_NAMESPACE=ns, EDGE_DATA_DIR=str(data), **extra)
    return env


# the hardware modules named too: an install whose entry points predate them still offers their types
_AGENT = [sys.executable, "-m", "edge", "agent", "--tasks", "tasks.hardware.gpio", "--tasks",
          "tasks.hardware.serial_port"]


async def test_an_agent_process_with_gpiozero_s_mock_factory_from_its_environment(broker, tmp_path):
    """`edge agent` with GPIOZERO_PIN_FACTORY=mock (PWM pins) and EDGE_W1_ROOT set: the controller sees the
    types available, deploys them, and frames fed by paho come back out; another agent without a pin
    factory offers them as unavailable, and the controller refuses to place them there."""
    from edge.controller import Controller
    from edge.errors import SpecError

    root = tmp_path / "w1"
    w1_sensor(root, "28-0316a2796bff", 4500, temperature_file=True)
    modem = FakeSerialDevice(tmp_path / "tty")
    topics = namespace()
    pi = subprocess.Popen([*_AGENT], env=_agent_env(
        broker, topics.namespace, tmp_path / "pi", EDGE_AGENT_ID="pi", GPIOZERO_PIN_FACTORY="mock",
        GPIOZERO_MOCK_PIN_CLASS="mockpwmpin", EDGE_W1_ROOT=str(root)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = subprocess.Popen([*_AGENT], env=_agent_env(
        broker, topics.namespace, tmp_path / "bare", EDGE_AGENT_ID="bare", GPIOZERO_PIN_FACTORY="no_such_factory",
        EDGE_W1_ROOT=str(tmp_path / "none")), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paho = Paho(broker.url)
    settings = load_settings(broker=str(broker.url), namespace=topics.namespace, data_dir=tmp_path / "ctl")
    try:
        paho.subscribe(topic(topics, "#"))
        async with Controller(settings) as controller:
            await controller.fleet.wait_for(
                lambda f: all(a in f.agents and f.agents[a].online and f.agents[a].types for a in ("pi", "bare")),
                timeout=TIMEOUT)
            offered = {t["name"]: t for t in controller.fleet.agents["bare"].types}
            assert offered["gpio_out"]["available"] is False and "no_such_factory" in offered["gpio_out"]["reason"]
            assert offered["one_wire_temperature"]["available"] is False
            assert all(controller.fleet.agents["pi"].offers(name)
                       for name in ("gpio_in", "gpio_out", "pwm_out", "serial_out", "one_wire_temperature"))
            with pytest.raises(SpecError) as refused:
                await controller.deploy(parse_spec({"id": "nowhere", "tasks": [
                    {"id": "led", "type": "gpio_out", "agent": "bare"}]}))
            assert any("unavailable" in line and "no_such_factory" in line for line in refused.value.errors), \
                refused.value.errors
            await controller.deploy(parse_spec({"id": "hw", "tasks": [
                {"id": "led", "type": "gpio_out", "agent": "pi", "config": {"pin": "GPIO27"}},
                {"id": "fan", "type": "pwm_out", "agent": "pi", "config": {"pin": "GPIO18"}},
                {"id": "modem", "type": "serial_out", "agent": "pi", "config": {"port": str(modem.path)}},
                {"id": "water", "type": "one_wire_temperature", "agent": "pi", "config": {"interval_ms": 100}}],
                "edges": [
                    {"from": f"topic:{topic(topics, 'switch')}", "to": "led.in"},
                    {"from": "led.state", "to": f"topic:{topic(topics, 'led')}"},
                    {"from": f"topic:{topic(topics, 'speed')}", "to": "fan.in"},
                    {"from": "fan.duty", "to": f"topic:{topic(topics, 'fan')}"},
                    {"from": f"topic:{topic(topics, 'say')}", "to": "modem.in"},
                    {"from": "water.out", "to": f"topic:{topic(topics, 'water')}"}]}))
            await controller.fleet.wait_for(
                lambda f: all((s := f.statuses.get(("hw", t))) is not None and s.state == "running"
                              for t in ("led", "fan", "modem", "water")), timeout=TIMEOUT)
            assert await paho.value(topic(topics, "water")) == {"28-0316a2796bff": 4.5}
            paho.send(topic(topics, "switch"), 1)
            assert await paho.value(topic(topics, "led"), lambda v: v == 1) == 1
            paho.send(topic(topics, "speed"), 0.7)
            assert await paho.value(topic(topics, "fan"), lambda v: v == 0.7) == 0.7
            paho.send(topic(topics, "say"), "hello")
            assert await modem.read(lambda d: d.endswith(b"\n")) == b"hello\n"
    finally:
        paho.close()
        for proc in (pi, bare):
            proc.send_signal(signal.SIGINT)
        for proc in (pi, bare):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        modem.close()
