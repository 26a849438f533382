"""Stand-ins for the hardware the hardware task types use, so their tests run on any machine.

* GPIO: gpiozero's own ``MockFactory`` with ``MockPWMPin`` pins (input, output and PWM), set as
  ``gpiozero.Device.pin_factory`` for the block (:func:`mock_pins`);
* I2C: :class:`FakeBuses` in place of ``tasks.hardware.i2c.buses``, with chips whose registers
  a test sets and reads (:class:`FakeChip`);
* serial: a pty pair (:class:`FakeSerialDevice`): the task opens a symlink to the slave, the test
  talks through the master; ``unplug``/``plug`` make the device vanish and come back under the
  same name, like a USB adapter behind ``/dev/serial/by-id``;
* 1-Wire: a folder laid out like ``/sys/bus/w1/devices`` (:func:`w1_sensor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT = 10.0


# -- GPIO ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def mock_pins() -> Iterator[Any]:
    """gpiozero's MockFactory (PWM-capable pins) as the pin factory for the block."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


# -- I2C -------------------------------------------------------------------------------------------
@dataclass
class FakeChip:
    """A device on a fake bus: 256 registers, the bytes a plain read returns, every write seen."""

    registers: bytearray = field(default_factory=lambda: bytearray(256))
    raw: bytes = b"\x00"
    writes: list[tuple[int | None, bytes]] = field(default_factory=list)
    fail: bool = False  # no answer (a NACK): OSError 121

    def check(self) -> None:
        if self.fail:
            raise OSError(121, "Remote I/O error")


class FakeBus:
    def __init__(self, buses: FakeBuses, number: int) -> None:
        self.buses, self.number, self.closed = buses, number, False

    def chip(self, address: int) -> FakeChip:
        chip = self.buses.chips.get((self.number, address))
        if chip is None:
            raise OSError(121, "Remote I/O error")
        chip.check()
        return chip

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        return list(self.chip(i2c_addr).registers[register:register + length])

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        chip = self.chip(i2c_addr)
        chip.registers[register:register + len(data)] = bytes(data)
        chip.writes.append((register, bytes(data)))

    def i2c_rdwr(self, *messages: Any) -> None:
        import ctypes

        from smbus2.smbus2 import I2C_M_RD

        for message in messages:
            chip = self.chip(message.addr)
            if message.flags & I2C_M_RD:
                data = chip.raw[:message.len].ljust(message.len, b"\x00")
                ctypes.memmove(message.buf, data, message.len)
            else:
                chip.writes.append((None, bytes(message)))

    def close(self) -> None:
        self.closed = True


class FakeBuses:
    """In place of ``tasks.hardware.i2c.buses``: chips by (bus, address); ``missing`` buses do not open."""

    def __init__(self) -> None:
        self.chips: dict[tuple[int, int], FakeChip] = {}
        self.missing: set[int] = set()
        self.opened: list[FakeBus] = []

    def problem(self) -> str | None:
        return None

    def open(self, bus: int) -> FakeBus:
        if bus in self.missing:
            raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{bus}")
        opened = FakeBus(self, bus)
        self.opened.append(opened)
        return opened

    def add(self, address: int, *, bus: int = 1) -> FakeChip:
        chip = self.chips[(bus, address)] = FakeChip()
        return chip


# -- serial ----------------------------------------------------------------------------------------
class FakeSerialDevice:
    """A serial device on a pty pair; ``path`` is a symlink to the current slave (what the task opens)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "ttyFAKE0"
        self.master = -1
        self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # raw from the start: what the test writes before the task opens it stays as it is
        os.set_blocking(self.master, False)
        link = self.path.with_suffix(".new")
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(self.slave))
        link.replace(self.path)

    def unplug(self) -> None:
        """The device goes away: the task's reads fail, and the name leads nowhere."""
        self.path.unlink(missing_ok=True)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def read(self, until: Callable[[bytes], bool], timeout: float = TIMEOUT) -> bytes:
        """What the task wrote, read until ``until(data)`` holds."""
        data = b""
        deadline = time.monotonic() + timeout
        while not until(data):
            if time.monotonic() > deadline:
                raise AssertionError(f"the task wrote only {data!r}")
            try:
                data += os.read(self.master, 4096)
            except BlockingIOError:
                await asyncio.sleep(0.01)
        return data

    @contextlib.contextmanager
    def draining(self) -> Iterator[None]:
        """Read and drop what the task writes, in a thread, for the block (a device that keeps up)."""
        import select
        import threading

        stop = threading.Event()
        master = self.master

        def drain() -> None:
            while not stop.is_set():
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(master, 1 << 16)

        thread = threading.Thread(target=drain, name="fake-serial-drain", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()


# -- 1-Wire ----------------------------------------------------------------------------------------
def w1_slave(millis: int, *, crc_ok: bool = True) -> str:
    """A ``w1_slave`` file's text as the kernel writes it."""
    return (f"72 01 4b 46 7f ff 0e 10 57 : crc=57 {'YES' if crc_ok else 'NO'}\n"
            f"72 01 4b 46 7f ff 0e 10 57 t={millis}\n")


def w1_sensor(root: Path, sensor: str, millis: int | None = None, *, crc_ok: bool = True,
              temperature_file: bool = False) -> Path:
    """A sensor folder under ``root``, reading ``millis`` m°C (through ``temperature`` or ``w1_slave``)."""
    folder = root / sensor
    folder.mkdir(parents=True, exist_ok=True)
    if millis is not None:
        if temperature_file:
            (folder / "temperature").write_text(f"{millis}\n")
        else:
            (folder / "w1_slave").write_text(w1_slave(millis, crc_ok=crc_ok))
    return folder


# -- the types ---------------------------------------------------------------------------------------
def hardware_types() -> list[Any]:
    """The types of the gpio, i2c and serial entry points whose library is installed (one_wire is a builtin)."""
    import importlib

    found: list[Any] = []
    for module in ("tasks.hardware.gpio", "tasks.hardware.i2c", "tasks.hardware.serial_port"):
        try:
            found += importlib.import_module(module).TYPES
        except ModuleNotFoundError:
            continue
    return found


@contextlib.contextmanager
def hardware_for(type_name: str, config: dict[str, Any], folder: Path) -> Iterator[dict[str, Any]]:
    """The fakes a hardware type needs, set up for the block; yields ``config`` with the fake's port or
    address filled in (an unknown type: nothing set up, ``config`` as it is)."""
    if type_name in ("gpio_in", "gpio_out", "pwm_out"):
        with mock_pins():
            yield config
    elif type_name in ("i2c_read", "i2c_write"):
        from tasks.hardware import i2c

        buses = FakeBuses()
        buses.add(0x48).raw = b"\x12"
        previous, i2c.buses = i2c.buses, buses  # type: ignore[assignment]
        try:
            yield {"address": 0x48, **config}
        finally:
            i2c.buses = previous
    elif type_name in ("serial_in", "serial_out"):
        device = FakeSerialDevice(folder)
        try:
            with device.draining():
                yield {**config, "port": str(device.path)}
        finally:
            device.close()
    else:
        yield config
