"""I2C with smbus2: ``i2c_read`` (registers or bytes of a device, decoded) and ``i2c_write``.

A bus is ``/dev/i2c-<bus>`` (bus 1 on a Raspberry Pi, turned on with ``raspi-config`` or
``dtparam=i2c_arm=on``). Each transfer runs in a worker thread (``asyncio.to_thread``) holding
that bus's lock, so the loop never waits on the bus and two tasks on one bus never interleave a
register write and its read. Where no ``/dev/i2c-*`` exists the two types are listed as
unavailable with the reason.

The seam for tests (and for other ways to reach a bus): :data:`buses`, an :class:`I2CBuses`
that says whether buses exist and opens one; a test replaces it
(``monkeypatch.setattr(tasks.hardware.i2c, "buses", FakeBuses())``) with one whose ``open`` returns
an object with smbus2's ``read_i2c_block_data``, ``write_i2c_block_data``, ``i2c_rdwr`` and ``close``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from edge.frames import Frame, now_ms
from edge.task import Task
from tasks._lazy import require
from tasks.base import ANY, BuiltinTask, as_number
from tasks.hardware._retry import open_device

if TYPE_CHECKING:
    import smbus2

    from edge.settings import Settings
else:
    from tasks._lazy import lazy

    smbus2 = lazy("smbus2")  # imported when a bus is first opened

require("smbus2", hint="the I2C task types (i2c_read, i2c_write) need smbus2: pip install 'edgetasks[i2c]' "
                       "(or: pip install smbus2)")

__all__ = ["TYPES", "I2CBuses", "I2cRead", "I2cWrite", "buses", "decode"]

#: most bytes of one transfer (an SMBus block)
MAX_BYTES = 32
DAY_MS = 86_400_000


class BusLike(Protocol):
    """What the tasks use of an ``smbus2.SMBus``."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...
    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...
    def close(self) -> None: ...


class I2CBuses:
    """The machine's I2C buses: ``/dev/i2c-<n>`` through smbus2."""

    dev = Path("/dev")

    def problem(self) -> str | None:
        """None if the machine has an I2C bus, else why the types are unavailable."""
        if any(self.dev.glob("i2c-*")):
            return None
        return (f"no I2C bus: no {self.dev}/i2c-* (on a Raspberry Pi: turn I2C on with raspi-config, or "
                "dtparam=i2c_arm=on in config.txt)")

    def open(self, bus: int) -> BusLike:
        return smbus2.SMBus(bus)


#: where the tasks get their buses (tests replace it)
buses = I2CBuses()
_locks: dict[int, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock(bus: int) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(bus, threading.Lock())


def decode(data: bytes, *, decode: str, byte_order: Literal["big", "little"], scale: float,
           offset: float) -> float | int | bytes:
    """``data`` as the config says: the bytes themselves, or an integer of them times ``scale`` plus ``offset``."""
    if decode == "bytes":
        return data
    number = int.from_bytes(data, byte_order, signed=decode == "signed")
    if scale == 1 and offset == 0:
        return number
    return number * scale + offset


class _Device(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bus: int = Field(default=1, ge=0, le=255, description="the bus: /dev/i2c-<bus> (1 on a Raspberry Pi)")
    address: int = Field(default=0x48, ge=0x03, le=0x77, description="the device's 7-bit address (0x48 is 72)")
    reg: int | None = Field(default=None, ge=0, le=255,
                            description="the register to read or write (null: plain bytes, no register)")
    length: int = Field(default=1, ge=1, le=MAX_BYTES, description="bytes per read, or per encoded number written")
    byte_order: Literal["big", "little"] = Field(default="big", description="the order of a number's bytes")


class _I2cTask(BuiltinTask):
    category = "hardware"

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        return buses.problem()

    async def open_bus(self) -> BusLike:
        """The configured bus, opened in a worker thread; until it opens, the task's problem says why."""
        number = self.config.bus
        return await open_device(self, lambda: asyncio.to_thread(buses.open, number), f"/dev/i2c-{number}")

    async def transfer(self, bus: BusLike, work: Any) -> Any:
        """``work(bus)`` in a worker thread holding the bus's lock."""
        lock = _lock(self.config.bus)

        def locked() -> Any:
            with lock:
                return work(bus)

        return await asyncio.to_thread(locked)


class I2cRead(_I2cTask):
    """Read bytes from an I2C device every `interval_ms`, and whenever a frame comes on `trigger`.

    With a register `reg`, `length` bytes from it (an SMBus block read); without, `length` bytes as
    the device sends them. `decode` makes a number of them (unsigned or signed, in `byte_order`),
    times `scale` plus `offset` (a TMP102's 12 bits: `length: 2`, `scale: 0.00390625` gives °C in
    steps of 1/16); `bytes` sends the bytes. A read that fails (the device does not answer) is
    counted as an error on `out` and logged, the task's status shows it until a read succeeds, and
    the next one is tried at its time. Until the bus opens, the status says why, and the task tries
    again (after 0.5 s, then twice as long each time up to 30 s).
    """

    label = "I2C read"

    class Config(_Device):
        decode: Literal["unsigned", "signed", "bytes"] = Field(default="unsigned", description="what to send")
        scale: float = Field(default=1.0, allow_inf_nan=False, description="multiply the number by this")
        offset: float = Field(default=0.0, allow_inf_nan=False, description="then add this")
        interval_ms: int = Field(default=1000, ge=0, le=DAY_MS,
                                 description="time between reads (0: only when a frame comes on trigger)")

    inputs = {"trigger": ANY("trigger")}
    outputs = {"out": ANY("value")}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Any) -> dict[str, Any]:
        return {"content": "bytes" if config.decode == "bytes" else "number"}

    async def run(self) -> None:
        config: I2cRead.Config = self.config
        bus = await self.open_bus()
        try:
            async with asyncio.TaskGroup() as group:
                if config.interval_ms:
                    group.create_task(self._every(bus, config.interval_ms / 1000))
                async for frame in self.receive("trigger"):
                    if not frame.paused:
                        await self._read(bus)
        finally:
            bus.close()

    async def _every(self, bus: BusLike, interval: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self._read(bus)
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def _read(self, bus: BusLike) -> None:
        config: I2cRead.Config = self.config
        address, register, length = config.address, config.reg, config.length

        def read(bus: BusLike) -> bytes:
            if register is not None:
                return bytes(bus.read_i2c_block_data(address, register, length))
            message = smbus2.i2c_msg.read(address, length)
            bus.i2c_rdwr(message)
            return bytes(message)

        ts = now_ms()
        try:
            data = await self.transfer(bus, read)
        except OSError as exc:
            self.problem = f"reading {length} byte(s) from 0x{address:02x} on bus {config.bus} failed: {exc}"
            self.count_error(self.out_metrics["out"], "read", "%s", self.problem)
            return
        self.problem = None
        await self.send("out", decode(data, decode=config.decode, byte_order=config.byte_order, scale=config.scale,
                                      offset=config.offset), ts=ts)


class I2cWrite(_I2cTask):
    """Write each frame on `in` to an I2C device: to its register `reg`, or as plain bytes.

    A frame's value is bytes (sent as they are), a list of byte values 0..255, or an integer,
    encoded in `length` bytes (`signed` or not, in `byte_order`). Anything else, and an integer
    that does not fit, is an input error. A write that fails is counted as an error on `in` too.
    Pause frames are skipped.
    """

    label = "I2C write"

    class Config(_Device):
        signed: bool = Field(default=False, description="encode integers as signed (two's complement)")

    inputs = {"in": ANY("value")}

    def encode(self, frame: Frame) -> bytes | None:
        config: I2cWrite.Config = self.config
        value = frame.value
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, list) and all(type(b) is int and 0 <= b <= 255 for b in value):
            data = bytes(value)
        else:
            number = as_number(value)
            if number is None or number != int(number):
                self.reject("in", "expected bytes, a list of byte values or an integer")
                return None
            try:
                data = int(number).to_bytes(config.length, config.byte_order, signed=config.signed)
            except OverflowError:
                self.reject("in", f"{int(number)} does not fit in {config.length} "
                                  f"{'signed' if config.signed else 'unsigned'} byte(s)")
                return None
        if not 1 <= len(data) <= MAX_BYTES:
            self.reject("in", f"writes {len(data)} bytes: 1 to {MAX_BYTES} at a time")
            return None
        return data

    async def run(self) -> None:
        config: I2cWrite.Config = self.config
        address, register = config.address, config.reg
        bus = await self.open_bus()
        try:
            async for frame in self.receive("in"):
                if frame.paused or (data := self.encode(frame)) is None:
                    continue

                def write(bus: BusLike, data: bytes = data) -> None:
                    if register is not None:
                        bus.write_i2c_block_data(address, register, list(data))
                    else:
                        bus.i2c_rdwr(smbus2.i2c_msg.write(address, data))

                try:
                    await self.transfer(bus, write)
                except OSError as exc:
                    self.problem = f"writing {len(data)} byte(s) to 0x{address:02x} on bus {config.bus} failed: {exc}"
                    self.count_error(self.in_metrics["in"], "write", "%s", self.problem)
                    continue
                self.problem = None
        finally:
            bus.close()


#: the types of the ``i2c`` entry point
TYPES: list[type[Task]] = [I2cRead, I2cWrite]
