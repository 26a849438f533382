"""serial_in and serial_out through a pty pair (pyserial opens the slave, the test talks through the master)."""

from __future__ import annotations

import pytest

pytest.importorskip("serial")

from hardware_fakes import FakeSerialDevice

from edge.testing import run_task
from tasks.hardware.serial_port import SerialIn, SerialOut, _Framer


@pytest.fixture
def device(tmp_path):
    fake = FakeSerialDevice(tmp_path)
    yield fake
    fake.close()


def test_framer_lines_delimiters_chunks():
    lines = _Framer(split=b"\n", max_frame=8, strip_cr=True)
    assert lines.feed(b"a\r\nb") == ([b"a"], 0)
    assert lines.feed(b"c\n" + b"x" * 20 + b"\nok\n") == ([b"bc", b"ok"], 1)
    assert lines.feed(b"y" * 9) == ([], 1)  # no end in sight: dropped
    chunks = _Framer(split=3, max_frame=8, strip_cr=False)
    assert chunks.feed(b"abcdefg") == ([b"abc", b"def"], 0)
    assert chunks.feed(b"hi") == ([b"ghi"], 0)
    pieces = _Framer(split=b"||", max_frame=8, strip_cr=False)
    assert pieces.feed(b"a||b|c||") == ([b"a", b"b|c"], 0)


async def test_serial_in_lines(device):
    async with run_task(SerialIn, {"port": str(device.path), "baudrate": 115200}) as run:
        await _until(lambda: run.task.connects == 1, run)  # pyserial empties the input when it opens a port
        device.write(b"$GPGGA,1*47\r\n$GPRMC")
        assert (await run.next("out")).value == "$GPGGA,1*47"
        device.write(b",2*00\n\xff\n")
        assert (await run.next("out")).value == "$GPRMC,2*00"
        assert (await run.next("out")).value == "\ufffd"  # not utf-8: replaced, not an error


async def test_serial_in_chunks_as_bytes_and_delimiters(device):
    async with run_task(SerialIn, {"port": str(device.path), "mode": "chunk", "chunk_size": 4,
                                   "decode": "bytes"}) as run:
        await _until(lambda: run.task.connects == 1, run)
        device.write(b"\x00\x01\x02\x03\x04\x05")
        assert (await run.next("out")).value == b"\x00\x01\x02\x03"
        device.write(b"\x06\x07")
        assert (await run.next("out")).value == b"\x04\x05\x06\x07"
    assert SerialIn.ports(SerialIn.validate_config({"decode": "bytes"})).outputs["out"].content == "bytes"


async def test_serial_in_delimiter_and_too_long_pieces(device):
    async with run_task(SerialIn, {"port": str(device.path), "mode": "delimiter", "delimiter": ";",
                                   "max_frame": 4}) as run:
        await _until(lambda: run.task.connects == 1, run)
        device.write(b"ab;toolong;cd;")
        assert [(await run.next("out")).value for _ in range(2)] == ["ab", "cd"]
        assert run.task.out_metrics["out"].errors == 1


async def test_serial_in_survives_an_unplug_and_reads_again(device):
    async with run_task(SerialIn, {"port": str(device.path)}) as run:
        await _until(lambda: run.task.connects == 1, run)
        device.write(b"before\n")
        assert (await run.next("out")).value == "before"
        device.unplug()
        await _until(lambda: run.task.problem is not None and "cannot open" in run.task.problem, run)
        assert str(device.path) in run.task.problem
        device.plug()
        await _until(lambda: run.task.connects == 2, run)
        assert run.task.problem is None
        device.write(b"after\n")
        assert (await run.next("out")).value == "after"
        assert not run.runner.done()


async def test_a_missing_port_is_reported_not_a_crash(tmp_path):
    async with run_task(SerialIn, {"port": str(tmp_path / "ttyNONE")}) as run:
        await _until(lambda: run.task.problem is not None, run)
        assert run.task.problem.startswith(f"cannot open {tmp_path / 'ttyNONE'}: ")
        assert "trying again in" in run.task.problem


async def test_serial_out_text_with_line_endings(device):
    async with run_task(SerialOut, {"port": str(device.path), "line_ending": "crlf"}) as run:
        await run.feed("in", "G28")
        await run.feed("in", 21.5)
        await run.feed("in", 7)
        assert await device.read(lambda d: d.count(b"\r\n") == 3) == b"G28\r\n21.5\r\n7\r\n"
        for bad in (b"\x00", None, [1], True, float("nan")):
            await run.feed("in", bad)
        await run.feed("in", "ok")
        assert await device.read(lambda d: d.endswith(b"\r\n")) == b"ok\r\n"
        assert run.task.in_metrics["in"].errors == 5


async def test_serial_out_bytes(device):
    async with run_task(SerialOut, {"port": str(device.path), "format": "bytes"}) as run:
        await run.feed("in", b"\x01\x02")
        await run.feed("in", [3, 255])
        await run.feed("in", "text")  # bytes only
        await run.feed("in", [256])
        await run.feed("in", b"\x04")
        assert await device.read(lambda d: len(d) >= 5) == b"\x01\x02\x03\xff\x04"
        assert run.task.in_metrics["in"].errors == 2


async def test_serial_out_drops_and_counts_while_unplugged_then_writes_again(device):
    async with run_task(SerialOut, {"port": str(device.path)}) as run:
        await run.feed("in", "one")
        assert await device.read(lambda d: d.endswith(b"\n")) == b"one\n"
        device.unplug()
        while run.task.in_metrics["in"].errors < 2:  # the first write fails, the next finds no port
            await run.feed("in", "lost")
            await _until(lambda: True, run)
        assert run.task.problem is not None and str(device.path) in run.task.problem
        device.plug()
        while True:  # reopened after its backoff (0.5 s, then 1 s, ...)
            await run.feed("in", "two")
            try:
                await device.read(lambda d: d.endswith(b"two\n"), timeout=0.2)
                break
            except AssertionError:
                continue
        assert run.task.problem is None and not run.runner.done()


@pytest.mark.parametrize(("config", "field"), [({"stopbits": 3}, "stopbits"), ({"bytesize": 9}, "bytesize"),
                                                ({"encoding": "klingon"}, "encoding"), ({"port": ""}, "port"),
                                                ({"port": "/dev/a\x00b"}, "port"), ({"baudrate": 0}, "baudrate"),
                                                ({"parity": "maybe"}, "parity")])
def test_config_errors_name_the_field(config, field):
    problems = SerialOut.check(config)
    assert len(problems) == 1 and problems[0].startswith(f"config.{field}:"), problems


def test_serial_types_are_available_without_a_device():
    """A port that is not there yet is the task's status, not the type's availability (USB comes and goes)."""
    assert SerialIn.describe()["available"] and SerialOut.describe()["available"]


async def _until(predicate, run, timeout: float = 10.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert not run.runner.done(), run.runner
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
