"""GPIO pins with gpiozero: ``gpio_in`` (a pin's level), ``gpio_out`` (drive a pin), ``pwm_out`` (a duty cycle).

gpiozero finds the pins through its *pin factory*: lgpio on a Raspberry Pi (``pip install lgpio``,
or Raspberry Pi OS's ``python3-lgpio``), whatever ``GPIOZERO_PIN_FACTORY`` names, or the one a
program sets in ``gpiozero.Device.pin_factory`` (the tests set its ``MockFactory``, with
``MockPWMPin`` pins for ``pwm_out``). Where no factory loads (no GPIO chip), the three types are
listed as unavailable with gpiozero's reason, and the agent refuses to start them.

gpiozero calls an input's handlers from a thread of its own: the level is handed to the event
loop with ``call_soon_threadsafe`` into a bounded queue, so the loop never waits on a pin.
Setting an output is a register write: done on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import EdgeError
from edge.frames import now_ms
from edge.task import Task
from tasks._lazy import require
from tasks.base import NUMBER, BuiltinTask

if TYPE_CHECKING:
    import gpiozero

    from edge.settings import Settings
else:
    from tasks._lazy import lazy

    gpiozero = lazy("gpiozero")  # imported where a GPIO chip may be, or by the first pin claimed

require("gpiozero", hint="the GPIO task types (gpio_in, gpio_out, pwm_out) need gpiozero: "
                         "pip install 'edgetasks[gpio]' (or: pip install gpiozero)")

__all__ = ["TYPES", "GpioIn", "GpioOut", "PwmOut", "bcm_number"]

#: the GPIO of each pin of the Raspberry Pi's 40-pin header that is one (BOARD numbering)
HEADER: dict[int, int] = {3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
                          21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
                          36: 16, 37: 26, 38: 20, 40: 21}
MAX_BCM = 27
_NAME = re.compile(r"(GPIO|BCM|BOARD|J8:)?(\d{1,2})", re.I)
#: level changes of an input queued for the loop at most (a bouncing contact without bounce_ms): the oldest go
QUEUE = 1000


def bcm_number(pin: int | str) -> int:
    """The BCM number of ``pin``: 17, ``"17"``, ``"GPIO17"``, ``"BCM17"``, ``"BOARD11"`` or ``"J8:11"``;
    ValueError, naming what is accepted, if it is none of the header's GPIOs."""
    if isinstance(pin, bool):
        raise ValueError(f"{pin!r} is not a pin")
    match = _NAME.fullmatch(str(pin).strip())
    if match is not None:
        prefix, number = (match.group(1) or "").upper(), int(match.group(2))
        if prefix in ("BOARD", "J8:"):
            if number in HEADER:
                return HEADER[number]
            raise ValueError(f"header pin {number} is no GPIO (those are {', '.join(map(str, sorted(HEADER)))})")
        if number <= MAX_BCM:
            return number
    raise ValueError(f"{pin!r} is not a GPIO of the header: give a BCM number 0-{MAX_BCM} (17, \"GPIO17\", "
                     "\"BCM17\") or a header pin (\"BOARD11\", \"J8:11\")")


class PinError(EdgeError):
    """The pin factory refused a pin (in use by another task, not on this board)."""


class _PinConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: int | str = Field(default="GPIO17", description="the pin: a BCM number (17, \"GPIO17\", \"BCM17\") or a "
                                                          "header pin (\"BOARD11\", \"J8:11\")")

    @field_validator("pin", mode="before")
    @classmethod
    def _known_pin(cls, value: Any) -> Any:
        if not isinstance(value, int | str):
            raise ValueError(f"a pin is a number or a name, not {type(value).__name__}")
        bcm_number(value)
        return value


class _GpioTask(BuiltinTask):
    """What the three share: the category, the factory check, opening a device with a one-line error."""

    category = "hardware"

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        return factory_problem()

    def claim_pin(self, make: Any) -> Any:
        pin = f"GPIO{bcm_number(self.config.pin)}"
        try:
            return make(pin)
        except gpiozero.GPIOZeroError as exc:
            raise PinError(f"{self.type_name} cannot use {pin}: {exc}") from None


def factory_problem() -> str | None:
    """None if gpiozero has a pin factory (it loads the default one the first time), else why not.

    Where no factory can work (no GPIO device file, none named in the environment), it says so without
    importing gpiozero: an agent on a machine without GPIO keeps its ~1.5 MB."""
    loaded = sys.modules.get("gpiozero")
    if loaded is not None and loaded.Device.pin_factory is not None:  # one a program set (the tests' mock)
        return None
    if loaded is None and not _may_have_gpio():
        return ("no GPIO pin factory: this device has no GPIO chip (no /dev/gpiochip*, /dev/gpiomem) "
                "(on a Raspberry Pi: pip install lgpio; or set GPIOZERO_PIN_FACTORY)")
    if gpiozero.Device.pin_factory is not None:
        return None
    try:
        with warnings.catch_warnings():  # gpiozero warns for every factory it falls back from
            warnings.simplefilter("ignore")
            gpiozero.Device.ensure_pin_factory()
    except Exception as exc:  # BadPinFactory, or what a named factory raised while loading
        return (f"no GPIO pin factory: {exc} (on a Raspberry Pi: pip install lgpio; or set GPIOZERO_PIN_FACTORY)")
    return None


def _may_have_gpio() -> bool:
    """Whether a pin factory might load here: a GPIO device file, or a factory (or a remote pigpio daemon)
    named in the environment."""
    if os.environ.get("GPIOZERO_PIN_FACTORY") or os.environ.get("PIGPIO_ADDR"):
        return True
    dev = Path("/dev")
    return (dev / "gpiomem").exists() or any(dev.glob("gpiochip*"))


class GpioIn(_GpioTask):
    """A pin's level as 0 or 1, sent when the task starts and on every change.

    `pull` sets the pin's pull resistor (`up` for a button to ground, the usual wiring: pressed
    reads 0, or 1 with `invert`); `none` for a pin a circuit drives. With `bounce_ms` (a
    mechanical contact bounces for a few ms) the task waits that long after a change and then
    sends the level the pin has settled on, if it differs from the last one sent.
    With `count` the task also counts edges (rising: 0 to 1, falling: 1 to 0, of the value sent)
    and sends the running count on `count` at each one.
    """

    label = "GPIO in"

    class Config(_PinConfig):
        pull: Literal["up", "down", "none"] = Field(default="up", description="the pin's pull resistor")
        invert: bool = Field(default=False, description="send 1 when the pin is low and 0 when it is high")
        bounce_ms: int = Field(default=0, ge=0, le=10_000,
                               description="after a change, wait this long and send the level the pin settled on "
                                           "(0: send every change)")
        count: Literal["none", "rising", "falling", "both"] = Field(
            default="none", description="count these edges of the value sent and send the count on `count`")

    outputs = {"out": NUMBER("level"), "count": NUMBER("edge count")}

    async def run(self) -> None:
        config: GpioIn.Config = self.config
        loop = asyncio.get_running_loop()
        levels: collections.deque[tuple[int, int]] = collections.deque(maxlen=QUEUE)
        changed = asyncio.Event()
        pull_up = {"up": True, "down": False, "none": None}[config.pull]
        flip = int(config.invert)

        def arrived(level: int, ts: int) -> None:  # on the loop
            if len(levels) == QUEUE:  # the oldest change goes: counted
                self.count_error(self.out_metrics["out"], "queue", "dropped a level change: %d waiting", QUEUE)
            levels.append((level ^ flip, ts))
            changed.set()

        def handler(level: int) -> Any:
            def on_change() -> None:  # in gpiozero's thread (or the caller's, for a mock pin driven on the loop)
                with contextlib.suppress(RuntimeError):  # the loop is closed: the task is gone
                    loop.call_soon_threadsafe(arrived, level, now_ms())
            return on_change

        device = self.claim_pin(lambda pin: gpiozero.DigitalInputDevice(
            pin, pull_up=pull_up, active_state=True if pull_up is None else None))
        bounce = config.bounce_ms / 1000
        try:
            # the level of an active pin: high, unless the pull-up made gpiozero take low for active
            active_level = 0 if pull_up else 1
            device.when_activated = handler(active_level)
            device.when_deactivated = handler(1 - active_level)
            last = int(bool(device.pin.state)) ^ flip
            await self.send("out", last)
            edges = 0
            while True:
                await changed.wait()
                if bounce:  # wait until the contact settles, then take the level it has (if it changed)
                    await asyncio.sleep(bounce)
                    levels.clear()
                    levels.append((int(bool(device.pin.state)) ^ flip, now_ms()))
                changed.clear()
                while levels:
                    level, ts = levels.popleft()
                    if level == last:
                        continue  # a change and its undoing between two reads of the queue
                    rising = level > last
                    last = level
                    await self.send("out", level, ts=ts)
                    if config.count in ("both", "rising" if rising else "falling"):
                        edges += 1
                        await self.send("count", edges, ts=ts)
        finally:
            device.close()


class GpioOut(_GpioTask):
    """Drive a pin: on while the control value on `in` is above 0.5, off otherwise.

    On is the pin high (low with `active_high: false`, for a relay board that switches on a low
    input). The pin starts at `initial` when the task starts; when the task stops, gpiozero
    releases the pin (it becomes an input again). Each value applied is sent on `state` (1 on,
    0 off). Pause frames are skipped: the pin keeps its state.
    """

    label = "GPIO out"

    class Config(_PinConfig):
        initial: bool = Field(default=False, description="on when the task starts")
        active_high: bool = Field(default=True, description="on is the pin high (false: on is low)")

    inputs = {"in": NUMBER("control")}
    outputs = {"state": NUMBER("state")}

    async def run(self) -> None:
        config: GpioOut.Config = self.config
        device = self.claim_pin(lambda pin: gpiozero.OutputDevice(pin, active_high=config.active_high,
                                                           initial_value=config.initial))
        try:
            await self.send("state", int(config.initial))
            async for frame in self.receive("in"):
                if frame.paused:
                    continue
                on = self.flag("in", frame)
                if on is None:
                    continue
                device.on() if on else device.off()
                await self.send("state", int(on), ts=frame.ts)
        finally:
            device.close()


class PwmOut(_GpioTask):
    """A PWM signal on a pin: the duty cycle is the number on `in`, from 0 (off) to 1 (on all the time).

    Dims a LED, sets a motor's speed through a driver. A number outside 0..1 is an input error
    (scale a 0..100 slider with a calculator first). Each duty cycle applied is sent on `duty`.
    Pause frames are skipped. On a Raspberry Pi the PWM is timed in software by lgpio, which is
    fine for LEDs and motors, not for servos.
    """

    label = "PWM out"

    class Config(_PinConfig):
        frequency_hz: float = Field(default=100.0, gt=0, le=100_000, description="the PWM frequency")
        initial: float = Field(default=0.0, ge=0, le=1, description="the duty cycle when the task starts")
        active_high: bool = Field(default=True, description="on is the pin high (false: the signal is inverted)")

    inputs = {"in": NUMBER("duty cycle")}
    outputs = {"duty": NUMBER("duty cycle")}

    async def run(self) -> None:
        config: PwmOut.Config = self.config
        device = self.claim_pin(lambda pin: gpiozero.PWMOutputDevice(pin, active_high=config.active_high,
                                                              initial_value=config.initial,
                                                              frequency=config.frequency_hz))
        try:
            await self.send("duty", config.initial)
            async for frame in self.receive("in"):
                if frame.paused:
                    continue
                duty = self.number("in", frame)
                if duty is None:
                    continue
                if not 0 <= duty <= 1:
                    self.reject("in", f"a duty cycle is from 0 to 1, got {duty}")
                    continue
                device.value = duty
                await self.send("duty", duty, ts=frame.ts)
        finally:
            device.close()


#: the types of the ``gpio`` entry point
TYPES: list[type[Task]] = [GpioIn, GpioOut, PwmOut]
