"""1-Wire temperature sensors (DS18B20 and kin) through the Linux w1 sysfs files: ``one_wire_temperature``.

The kernel's w1 driver (``dtoverlay=w1-gpio`` on a Raspberry Pi) lists each sensor as a folder
``/sys/bus/w1/devices/<family>-<serial>``. A sensor is read from its ``temperature`` file
(millidegrees, newer kernels) or else its ``w1_slave`` file (two lines: the scratchpad with
``crc=.. YES`` or ``NO``, then ``t=<millidegrees>``). A read takes the sensor's conversion time
(750 ms at 12 bits), so it runs in a worker thread. The folder is the setting ``EDGE_W1_ROOT``
(default ``/sys/bus/w1/devices``; tests point it at a fake tree); where it does not exist the
type is listed as unavailable with the reason. No library: a built-in.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge.errors import ConfigError, EdgeError
from edge.settings import Settings, load_settings
from edge.task import Task
from tasks.base import ANY, BuiltinTask

__all__ = ["OneWireTemperature", "read_sensor", "sensors", "w1_root"]

#: the families of temperature sensors: DS18S20, DS1822, DS18B20, MAX31850, DS28EA00
FAMILIES = ("10", "22", "28", "3b", "42")
_ID = re.compile(r"[0-9a-f]{2}-[0-9a-f]{12}")
#: what a DS18B20 reads before its first conversion: a sign that the conversion failed (bad power)
POWER_ON = 85_000
DAY_MS = 86_400_000


class SensorError(EdgeError):
    """One sensor's read failed: a bad CRC, a missing file, a reading that is no number."""


def w1_root() -> Path:
    """The w1 devices folder, from the setting ``EDGE_W1_ROOT``."""
    return load_settings().w1_root


def sensors(root: Path) -> list[str]:
    """The ids of the temperature sensors under ``root``, sorted."""
    try:
        return sorted(p.name for p in root.iterdir() if _ID.fullmatch(p.name) and p.name[:2] in FAMILIES)
    except OSError:
        return []


def read_sensor(folder: Path) -> float:
    """A sensor's temperature in °C; :class:`SensorError` with the reason if it cannot be read."""
    try:
        simple = folder / "temperature"
        if simple.exists():
            text = simple.read_text(encoding="ascii", errors="replace").strip()
            millis = _millis(text, simple)
        else:
            millis = _from_w1_slave((folder / "w1_slave").read_text(encoding="ascii", errors="replace"), folder)
    except OSError as exc:
        raise SensorError(f"cannot read {folder.name}: {exc.strerror or exc}") from None
    if millis == POWER_ON:
        raise SensorError(f"{folder.name} reads 85 °C, its power-on value: the conversion did not run "
                          "(check its power and pull-up)")
    return millis / 1000


def _millis(text: str, path: Path) -> int:
    if not re.fullmatch(r"-?\d{1,7}", text):
        raise SensorError(f"{path} holds no temperature: {text[:40]!r}")
    return int(text)


def _from_w1_slave(text: str, folder: Path) -> int:
    lines = text.strip().splitlines()
    if len(lines) < 2 or "crc=" not in lines[0]:
        raise SensorError(f"{folder.name}: unexpected w1_slave content {text[:80]!r}")
    if not lines[0].rstrip().endswith("YES"):
        raise SensorError(f"{folder.name}: CRC check failed (a bad contact or a long cable)")
    match = re.search(r"t=(-?\d{1,7})\s*$", lines[1])
    if match is None:
        raise SensorError(f"{folder.name}: no t= in {lines[1][:80]!r}")
    return int(match.group(1))


class OneWireTemperature(BuiltinTask):
    """Temperatures of 1-Wire sensors (DS18B20 and kin) in °C, every `interval_ms`.

    With a `device` id (`28-0316a2796bff`, as listed in /sys/bus/w1/devices) the task sends that
    sensor's temperature as a number; without, a map of every sensor found (id: °C) per round,
    sensors that fail left out. A failed read (a CRC "NO", the 85 °C power-on value, a sensor
    gone) is counted as an error on `out`, logged, and shown in the task's status until a round
    succeeds; the next round tries again.
    """

    label = "1-Wire temperature"

    category = "hardware"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        device: str = Field(default="", pattern=r"^([0-9a-f]{2}-[0-9a-f]{12})?$",
                            description="the sensor's id (28-...); empty: every sensor, as a map id: °C")
        interval_ms: int = Field(default=10_000, ge=100, le=DAY_MS, description="time between reads")

    outputs = {"out": ANY("temperature (°C)")}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Any) -> dict[str, Any]:
        return {"content": "number", "unit": "°C"} if config.device else declared.metadata()

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        try:
            root = settings.w1_root if settings is not None else w1_root()
        except ConfigError as exc:
            return str(exc)
        if not root.is_dir():
            return (f"no 1-Wire bus: {root} does not exist (on a Raspberry Pi: dtoverlay=w1-gpio in "
                    "config.txt; elsewhere: set EDGE_W1_ROOT)")
        return None

    async def run(self) -> None:
        config: OneWireTemperature.Config = self.config
        root = w1_root()
        loop = asyncio.get_running_loop()
        interval = config.interval_ms / 1000
        next_at = loop.time()
        while True:
            await self._round(root)
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def _round(self, root: Path) -> None:
        device = self.config.device

        def read_all() -> tuple[dict[str, float], list[str]]:
            ids = [device] if device else sensors(root)
            values, problems = {}, []
            for sensor in ids:
                try:
                    values[sensor] = read_sensor(root / sensor)
                except SensorError as exc:
                    problems.append(str(exc))
            if not ids:
                problems.append(f"no temperature sensor in {root}")
            return values, problems

        values, problems = await asyncio.to_thread(read_all)
        for line in problems:
            self.count_error(self.out_metrics["out"], line.split(":", 1)[0], "%s", line)
        self.problem = "; ".join(problems)[:500] or None
        if device:
            if device in values:
                await self.send("out", values[device])
        elif values:
            await self.send("out", values)


#: for tasks/builtin.py
TYPES: list[type[Task]] = [OneWireTemperature]
