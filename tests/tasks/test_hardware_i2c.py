"""i2c_read and i2c_write on a fake bus put in through the seam ``tasks.hardware.i2c.buses``."""

from __future__ import annotations

import pytest

pytest.importorskip("smbus2")

from hardware_fakes import FakeBuses

from edge.testing import run_task
from tasks.hardware import i2c
from tasks.hardware.i2c import I2cRead, I2cWrite, decode


@pytest.fixture
def fake(monkeypatch):
    buses = FakeBuses()
    monkeypatch.setattr(i2c, "buses", buses)
    return buses


@pytest.mark.parametrize(("data", "how", "order", "scale", "offset", "value"), [
    (b"\x01\x02", "unsigned", "big", 1, 0, 0x0102),
    (b"\x01\x02", "unsigned", "little", 1, 0, 0x0201),
    (b"\xff\xfe", "signed", "big", 1, 0, -2),
    (b"\x19\x00", "signed", "big", 1 / 256, 0, 25.0),
    (b"\x0a", "unsigned", "big", 0.5, -1, 4.0),
    (b"\x00\xff", "bytes", "big", 1, 0, b"\x00\xff"),
])
def test_decode(data, how, order, scale, offset, value):
    assert decode(data, decode=how, byte_order=order, scale=scale, offset=offset) == value


async def test_i2c_read_a_register_on_an_interval(fake):
    chip = fake.add(0x48)
    chip.registers[0:2] = b"\x19\x40"  # a TMP102: 25.25 °C
    config = {"address": 0x48, "reg": 0, "length": 2, "decode": "signed", "scale": 1 / 256,
              "interval_ms": 20}
    async with run_task(I2cRead, config) as run:
        assert (await run.next("out")).value == 25.25
        chip.registers[0:2] = b"\xe7\x00"  # -25 °C
        while (await run.next("out")).value != -25.0:
            pass
    assert fake.opened[0].closed


async def test_i2c_read_on_trigger_only_and_plain_bytes(fake):
    chip = fake.add(0x20, bus=3)
    chip.raw = b"\xde\xad\xbe"
    async with run_task(I2cRead, {"bus": 3, "address": 0x20, "length": 3, "decode": "bytes",
                                  "interval_ms": 0}) as run:
        await run.feed("trigger", 1)
        assert (await run.next("out")).value == b"\xde\xad\xbe"
        await run.feed("trigger", "anything triggers")
        assert (await run.next("out")).value == b"\xde\xad\xbe"
        assert run.frames("out") == []
    assert I2cRead.ports(I2cRead.validate_config({"decode": "bytes"})).outputs["out"].content == "bytes"


async def test_a_device_that_does_not_answer_is_counted_and_shown(fake):
    chip = fake.add(0x48)
    chip.fail = True
    async with run_task(I2cRead, {"address": 0x48, "reg": 1, "interval_ms": 0}) as run:
        await run.feed("trigger", 1)
        await run.feed("trigger", 1)
        while run.task.out_metrics["out"].errors < 2:
            await run.feed("trigger", 1)
        assert "0x48 on bus 1 failed" in run.task.problem and "Remote I/O error" in run.task.problem
        chip.fail = False
        chip.registers[1] = 7
        await run.feed("trigger", 1)
        assert (await run.next("out")).value == 7
        assert run.task.problem is None


async def test_a_bus_that_does_not_open_is_retried_not_a_crash(fake):
    fake.missing.add(1)
    fake.add(0x48).registers[0] = 9
    async with run_task(I2cRead, {"reg": 0, "interval_ms": 10}) as run:
        while run.task.problem is None:
            await run.feed("trigger", 1)  # nothing reads it yet: the task waits for its bus
        assert run.task.problem.startswith("cannot open /dev/i2c-1: ")
        fake.missing.clear()
        assert (await run.next("out")).value == 9  # the retry, 0.5 s later
        assert run.task.problem is None


async def test_i2c_write_registers_and_bytes(fake):
    chip = fake.add(0x40)
    async with run_task(I2cWrite, {"address": 0x40, "reg": 0x06, "length": 2, "byte_order": "little"}) as run:
        for value in (0x1234, 5.0, b"\x01\x02\x03", [255, 0], True):
            await run.feed("in", value)
        for bad in (70_000, -1, 1.5, "12", None, [256], [], b"", b"x" * 33, {"a": 1}):
            await run.feed("in", bad)
        await run.feed("in", 0x0102)
        while len(chip.writes) < 6:
            await run.feed("in", 0, paused=True)  # skipped; gives the task turns
        assert chip.writes == [(6, b"\x34\x12"), (6, b"\x05\x00"), (6, b"\x01\x02\x03"), (6, b"\xff\x00"),
                               (6, b"\x01\x00"), (6, b"\x02\x01")]
        assert run.task.in_metrics["in"].errors == 10


async def test_i2c_write_signed_without_register(fake):
    chip = fake.add(0x10)
    async with run_task(I2cWrite, {"address": 0x10, "length": 1, "signed": True}) as run:
        await run.feed("in", -2)
        await run.feed("in", 128)  # does not fit a signed byte
        await run.feed("in", 127)
        while len(chip.writes) < 2:
            await run.feed("in", 0, paused=True)
        assert chip.writes == [(None, b"\xfe"), (None, b"\x7f")]
        assert run.task.in_metrics["in"].errors == 1


async def test_a_write_that_fails_is_counted(fake):
    async with run_task(I2cWrite, {"address": 0x11}) as run:  # no chip there
        await run.feed("in", 1)
        while run.task.in_metrics["in"].errors < 1:
            await run.feed("in", 0, paused=True)
        assert "writing 1 byte(s) to 0x11 on bus 1 failed" in run.task.problem


@pytest.mark.parametrize(("config", "field"), [({"address": 0x78}, "address"), ({"address": 2}, "address"),
                                                ({"length": 33}, "length"), ({"reg": 256}, "reg"),
                                                ({"scale": float("nan")}, "scale"), ({"bus": -1}, "bus")])
def test_config_errors_name_the_field(config, field):
    problems = I2cRead.check(config)
    assert len(problems) == 1 and problems[0].startswith(f"config.{field}:")


def test_without_a_bus_the_types_are_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(i2c.I2CBuses, "dev", tmp_path)
    entry = I2cRead.describe()
    assert entry["available"] is False and entry["reason"].startswith(f"no I2C bus: no {tmp_path}/i2c-*")
    (tmp_path / "i2c-1").touch()
    assert I2cWrite.describe()["available"] is True
