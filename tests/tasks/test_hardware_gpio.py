"""gpio_in, gpio_out and pwm_out on gpiozero's mock pins (tasks/hardware/gpio.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("gpiozero")

from hardware_fakes import mock_pins

from edge.errors import ConfigError
from edge.testing import run_task
from tasks.hardware import gpio
from tasks.hardware.gpio import GpioIn, GpioOut, PwmOut, bcm_number


@pytest.fixture
def pins():
    with mock_pins() as factory:
        yield factory


@pytest.mark.parametrize(("pin", "bcm"), [(17, 17), ("17", 17), ("GPIO17", 17), ("bcm4", 4), ("BOARD11", 17),
                                          ("J8:40", 21), (0, 0), ("GPIO27", 27)])
def test_pin_names(pin, bcm):
    assert bcm_number(pin) == bcm


@pytest.mark.parametrize("pin", [28, -1, "GPIO99", "BOARD1", "J8:6", "led", "", True, "GPIO 17x"])
def test_a_pin_that_is_no_gpio_is_a_one_line_config_error(pin):
    with pytest.raises(ConfigError) as info:
        GpioOut.validate_config({"pin": pin})
    assert "\n" not in str(info.value) and "pin" in str(info.value)
    assert GpioOut.check({"pin": pin})[0].startswith("config.pin")


async def test_gpio_in_sends_the_level_at_start_and_on_changes(pins):
    async with run_task(GpioIn, {"pin": "GPIO17", "pull": "up"}) as run:
        assert (await run.next("out")).value == 1  # pulled up: high
        pin = pins.pin(17)
        pin.drive_low()
        assert (await run.next("out")).value == 0
        pin.drive_high()
        assert (await run.next("out")).value == 1
        assert run.frames("count") == []  # no counting unless asked


async def test_gpio_in_pull_down_and_invert(pins):
    async with run_task(GpioIn, {"pin": 22, "pull": "down", "invert": True}) as run:
        assert (await run.next("out")).value == 1  # pulled down (low), inverted
        pins.pin(22).drive_high()
        assert (await run.next("out")).value == 0


async def test_gpio_in_without_pull_reads_what_drives_it(pins):
    async with run_task(GpioIn, {"pin": 5, "pull": "none"}) as run:
        first = (await run.next("out")).value
        pins.pin(5).drive_high() if first == 0 else pins.pin(5).drive_low()
        assert (await run.next("out")).value == 1 - first


@pytest.mark.parametrize(("mode", "expected"), [("rising", [1, 2]), ("falling", [1, 2]), ("both", [1, 2, 3, 4])])
async def test_gpio_in_counts_edges(pins, mode, expected):
    async with run_task(GpioIn, {"pin": 17, "pull": "down", "count": mode}) as run:
        assert (await run.next("out")).value == 0
        pin = pins.pin(17)
        for _ in range(2):
            pin.drive_high()
            await run.next("out")
            pin.drive_low()
            await run.next("out")
        assert [f.value for f in run.frames("count")] == expected


async def test_gpio_in_takes_changes_from_another_thread(pins):
    """gpiozero calls its handlers from its own threads: the levels still arrive, in order."""
    async with run_task(GpioIn, {"pin": 17, "pull": "down", "count": "rising"}) as run:
        assert (await run.next("out")).value == 0
        pin = pins.pin(17)

        def toggle() -> None:
            for _ in range(50):
                pin.drive_high()
                pin.drive_low()

        worker = threading.Thread(target=toggle)
        worker.start()
        await asyncio.to_thread(worker.join)
        counts = []
        while not counts or counts[-1] < 50:
            counts.append((await run.next("count")).value)
        assert counts == list(range(1, 51))


async def test_gpio_in_bounce_time_sends_the_settled_level(pins):
    async with run_task(GpioIn, {"pin": 17, "pull": "down", "bounce_ms": 100, "count": "both"}) as run:
        assert (await run.next("out")).value == 0
        pin = pins.pin(17)
        pin.drive_high()  # a bouncing contact that settles high
        pin.drive_low()
        pin.drive_high()
        assert (await run.next("out")).value == 1
        pin.drive_low()  # bounces, then settles low
        pin.drive_high()
        pin.drive_low()
        pin.drive_high()
        pin.drive_low()
        assert (await run.next("out")).value == 0
        assert [f.value for f in run.frames("count")] == [1, 2] and run.frames("out") == []


async def test_gpio_out_drives_the_pin(pins):
    async with run_task(GpioOut, {"pin": "GPIO27", "initial": True}) as run:
        assert (await run.next("state")).value == 1
        pin = pins.pin(27)
        assert pin.state == 1
        for value, state in [(0, 0), (0.75, 1), (0.5, 0), (True, 1), (False, 0)]:
            await run.feed("in", value)
            assert (await run.next("state")).value == state
            assert pin.state == state
        await run.feed("in", "on")  # not a number: counted, the pin stays
        await run.feed("in", 1)
        assert (await run.next("state")).value == 1
        assert run.task.in_metrics["in"].errors == 1
    assert pins.pin(27).function == "input"  # released when the task stops


async def test_gpio_out_active_low(pins):
    async with run_task(GpioOut, {"pin": 27, "active_high": False}) as run:
        await run.next("state")
        pin = pins.pin(27)
        assert pin.state == 1  # off is high
        await run.feed("in", 1)
        await run.next("state")
        assert pin.state == 0


async def test_a_pin_in_use_is_a_one_line_error(pins):
    async with run_task(GpioOut, {"pin": 27}) as first:
        await first.next("state")
        with pytest.raises(gpio.PinError, match=r"^gpio_out cannot use GPIO27: pin GPIO27 is already in use"):
            async with run_task(GpioOut, {"pin": "BOARD13"}) as second:
                await second.next("state")


async def test_pwm_out_sets_the_duty_cycle_and_frequency(pins):
    async with run_task(PwmOut, {"pin": 18, "frequency_hz": 500, "initial": 0.25}) as run:
        assert (await run.next("duty")).value == 0.25
        pin = pins.pin(18)
        assert pin.frequency == 500 and pin.state == 0.25
        await run.feed("in", 0.6)
        assert (await run.next("duty")).value == 0.6
        assert pin.state == 0.6
        for bad in (1.5, -0.1, "half", None):
            await run.feed("in", bad)
        await run.feed("in", 1)
        assert (await run.next("duty")).value == 1
        assert pin.state == 1 and run.task.in_metrics["in"].errors == 4


async def test_pause_frames_leave_the_outputs_alone(pins):
    async with run_task(GpioOut, {"pin": 27}) as run, run_task(PwmOut, {"pin": 18}) as pwm:
        await run.next("state")
        await pwm.next("duty")
        await run.feed("in", 1)
        await pwm.feed("in", 0.5)
        await run.next("state")
        await pwm.next("duty")
        await run.feed("in", 0, paused=True)
        await pwm.feed("in", 0, paused=True)
        await run.feed("in", 1)
        await pwm.feed("in", 0.5)
        assert (await run.next("state")).value == 1 and (await pwm.next("duty")).value == 0.5
        assert pins.pin(27).state == 1 and pins.pin(18).state == 0.5


def test_without_a_pin_factory_the_types_are_unavailable_with_the_reason(monkeypatch):
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no_such_factory")
    entry = GpioIn.describe()
    assert entry["available"] is False
    assert "no GPIO pin factory" in entry["reason"] and "no_such_factory" in entry["reason"]
    assert Device.pin_factory is None


def test_with_the_mock_factory_from_the_environment_they_are_available(monkeypatch):
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    try:
        assert all(t.describe()["available"] for t in gpio.TYPES)
        assert type(Device.pin_factory).__name__ == "MockFactory"
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.close()


def test_catalog_entries(pins):
    entries = {t.type_name: t.describe() for t in gpio.TYPES}
    assert set(entries) == {"gpio_in", "gpio_out", "pwm_out"}
    assert all(e["category"] == "hardware" and e["available"] and "reason" not in e for e in entries.values())
    assert entries["gpio_in"]["outputs"]["out"] == {"content": "number"}
    assert entries["pwm_out"]["config_schema"]["properties"]["frequency_hz"]["description"]
