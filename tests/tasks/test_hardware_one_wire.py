"""one_wire_temperature on a fake w1 sysfs tree (EDGE_W1_ROOT pointed at a temp folder)."""

from __future__ import annotations

import pytest
from hardware_fakes import w1_sensor

from edge.settings import load_settings
from edge.testing import run_task
from tasks.builtin import TYPES
from tasks.hardware.one_wire import OneWireTemperature, SensorError, read_sensor, sensors

A, B = "28-0316a2796bff", "28-00000a1b2c3d"


@pytest.fixture
def w1(tmp_path, monkeypatch):
    root = tmp_path / "w1"
    root.mkdir()
    monkeypatch.setenv("EDGE_W1_ROOT", str(root))
    return root


def test_the_setting_and_its_default(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGE_W1_ROOT", raising=False)
    assert str(load_settings().w1_root) == "/sys/bus/w1/devices"
    monkeypatch.setenv("EDGE_W1_ROOT", str(tmp_path))
    assert load_settings().w1_root == tmp_path


def test_read_sensor_files(w1):
    assert read_sensor(w1_sensor(w1, A, 23125)) == 23.125
    assert read_sensor(w1_sensor(w1, B, -10062, temperature_file=True)) == -10.062
    with pytest.raises(SensorError, match="CRC check failed"):
        read_sensor(w1_sensor(w1, "28-000000000001", 20000, crc_ok=False))
    with pytest.raises(SensorError, match="85 °C, its power-on value"):
        read_sensor(w1_sensor(w1, "28-000000000002", 85000))
    with pytest.raises(SensorError, match="cannot read 28-000000000003"):
        read_sensor(w1_sensor(w1, "28-000000000003"))
    (w1_sensor(w1, "28-000000000004") / "temperature").write_text("garbage\n")
    with pytest.raises(SensorError, match="holds no temperature"):
        read_sensor(w1 / "28-000000000004")
    (w1 / "w1_bus_master1").mkdir()  # the bus master's folder is no sensor
    (w1 / "01-000000000005").mkdir()  # nor is another family (a DS2401 id chip)
    assert sensors(w1) == sorted([A, B, *(f"28-00000000000{k}" for k in range(1, 5))])


async def test_one_sensor_on_an_interval(w1):
    w1_sensor(w1, A, 21500)
    async with run_task(OneWireTemperature, {"device": A, "interval_ms": 100}) as run:
        assert (await run.next("out")).value == 21.5
        w1_sensor(w1, A, 22000)
        while (await run.next("out")).value != 22.0:
            pass
    ports = OneWireTemperature.ports(OneWireTemperature.validate_config({"device": A}))
    assert ports.outputs["out"].metadata() == {"content": "number", "unit": "°C"}


async def test_every_sensor_as_a_map_and_crc_errors_counted(w1):
    w1_sensor(w1, A, 21500)
    w1_sensor(w1, B, 19000, temperature_file=True)
    async with run_task(OneWireTemperature, {"interval_ms": 100}) as run:
        assert (await run.next("out")).value == {A: 21.5, B: 19.0}
        w1_sensor(w1, A, 21500, crc_ok=False)
        while (await run.next("out")).value != {B: 19.0}:  # the bad one is left out
            pass
        assert run.task.out_metrics["out"].errors >= 1
        assert run.task.problem == f"{A}: CRC check failed (a bad contact or a long cable)"
        w1_sensor(w1, A, 21000)
        while (await run.next("out")).value != {A: 21.0, B: 19.0}:
            pass
        assert run.task.problem is None


async def test_a_missing_sensor_is_an_error_not_a_crash(w1):
    async with run_task(OneWireTemperature, {"device": A, "interval_ms": 100}) as run:
        while run.task.out_metrics["out"].errors < 2:
            await _turn()
        assert run.task.problem.startswith(f"cannot read {A}")
        w1_sensor(w1, A, 1000)
        assert (await run.next("out")).value == 1.0


def test_unavailable_without_the_w1_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_W1_ROOT", str(tmp_path / "absent"))
    entry = OneWireTemperature.describe()
    assert entry["available"] is False
    assert entry["reason"].startswith(f"no 1-Wire bus: {tmp_path / 'absent'} does not exist")
    monkeypatch.setenv("EDGE_W1_ROOT", str(tmp_path))
    assert OneWireTemperature.describe()["available"] is True


def test_a_builtin_in_the_hardware_category():
    assert OneWireTemperature in TYPES and OneWireTemperature.category == "hardware"
    assert OneWireTemperature.check({"device": "28-XYZ"})[0].startswith("config.device:")
    assert OneWireTemperature.check({"interval_ms": 10})[0].startswith("config.interval_ms:")


async def _turn() -> None:
    import asyncio

    await asyncio.sleep(0.02)
