"""The ``schedule`` task type: frames at cron expressions or times of day, in a time zone (croniter).

The target of the ``schedule`` entry point of ``edgetasks.tasks``: without croniter it fails to
load, and the agent lists ``schedule`` as unavailable with the reason (``pip install
'edgetasks[flow]'``). The wall clock is :attr:`Schedule.clock`, so tests put a clock of their own
there and run a year of schedule in milliseconds.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from edge.task import Port, Task
from tasks._lazy import require
from tasks.base import ANY, BuiltinTask, content_of

if TYPE_CHECKING:
    import croniter as cron
else:
    from tasks._lazy import lazy

    cron = lazy("croniter")  # imported by the first expression checked

require("croniter", hint="the schedule task type needs croniter: pip install 'edgetasks[flow]' "
                         "(or: pip install croniter)")

__all__ = ["TYPES", "Clock", "Schedule", "WallClock", "next_moment"]

LOCALTIME: Final = Path("/etc/localtime")
#: a moment missed by more than this (the machine slept, its clock was set forward) is skipped, not sent late
LATE: Final = timedelta(seconds=10)
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class Clock(Protocol):
    """Where a schedule reads the time and waits for a moment."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, moment: datetime) -> None:
        """Return at ``moment`` (or soon after)."""
        ...


class WallClock:
    """The machine's clock; a wait wakes at least every minute to read it again (a clock set by NTP, a sleep)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        # short sleeps on purpose: the loop's monotonic clock does not follow the wall clock being set
        while (left := (moment - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, 60.0))


def zone_of(name: str) -> tzinfo:
    """The time zone ``name``: 'local' (the system's, from /etc/localtime; UTC without one), 'UTC' or an IANA name."""
    if name == "local":
        if LOCALTIME.exists():
            with LOCALTIME.open("rb") as file:
                return ZoneInfo.from_file(file, key="localtime")
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use 'local', 'UTC' or an IANA name such as "
                         "'Europe/Berlin'") from None


def _expression(text: str) -> str:
    """A cron expression as croniter takes it (seconds first when it has six fields); ValueError if invalid."""
    fields = text.split()
    if not text.startswith("@") and len(fields) not in (5, 6):
        raise ValueError(f"{text!r}: a cron expression has 5 fields (minute hour day month weekday), or 6 with "
                         "seconds first")
    try:
        cron.croniter(text, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True).get_next(datetime)
    except cron.CroniterError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    return text


def _time_of_day(text: str) -> str:
    """``HH:MM[:SS]`` as a six-field cron expression."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no time of day: use HH:MM or HH:MM:SS (24 hours)")
    hour, minute, second = match.groups()
    return f"{int(second or 0)} {int(minute)} {int(hour)} * * *"


def next_moment(expressions: list[str], after: datetime, zone: tzinfo) -> datetime:
    """The first moment after ``after`` that one of the cron ``expressions`` names, in ``zone``."""
    start = after.astimezone(zone)
    return min(cron.croniter(e, start, second_at_beginning=True).get_next(datetime) for e in expressions)


class Schedule(BuiltinTask):
    """Send a value at the moments of cron expressions or times of day, in a time zone.

    `cron` takes expressions of five fields (minute hour day-of-month month day-of-week:
    `30 7 * * 1-5` is 7:30 on weekdays) or six with seconds first (`*/10 * * * * *`: every ten
    seconds), and `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`; `times` takes times of
    day (`07:30`, `18:00:15`), every day. They are read in `timezone` (an IANA name like
    `Europe/Berlin`, `UTC`, or `local`: the agent's), so 7:30 stays 7:30 across daylight saving
    time. Each frame carries `value` and the scheduled moment as its timestamp. A moment missed
    by more than 10 s (the device slept, its clock was set forward) is skipped, not sent late.
    Needs croniter (`pip install 'edgetasks[flow]'`); without it the agent lists `schedule` as
    unavailable.
    """

    category = "timing"

    #: where the schedule reads the time (tests put a clock of their own here)
    clock: ClassVar[Clock] = WallClock()

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        cron: list[str] = Field(default_factory=lambda: ["* * * * *"], max_length=64,
                                description="cron expressions: 5 fields, or 6 with seconds first; @hourly, @daily, …")
        times: list[str] = Field(default_factory=list, max_length=64, description="times of day, HH:MM or HH:MM:SS")
        timezone: str = Field(default="local", max_length=100,
                              description="'local' (the agent's time zone), 'UTC' or an IANA name like 'Europe/Berlin'")
        value: JsonValue = Field(default=1, description="the value of each frame (any JSON value)")

        @field_validator("cron")
        @classmethod
        def _cron(cls, value: list[str]) -> list[str]:
            return [_expression(text) for text in value]

        @field_validator("times")
        @classmethod
        def _times(cls, value: list[str]) -> list[str]:
            for text in value:
                _time_of_day(text)
            return value

        @field_validator("timezone")
        @classmethod
        def _zone(cls, value: str) -> str:
            zone_of(value)
            return value

        @model_validator(mode="after")
        def _some(self) -> Schedule.Config:
            if not self.cron and not self.times:
                raise ValueError("set cron or times: the schedule has no moment")
            return self

    outputs = {"out": ANY("value")}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        return content_of(config.value)

    async def run(self) -> None:
        config: Schedule.Config = self.config
        zone = zone_of(config.timezone)
        expressions = [*config.cron, *map(_time_of_day, config.times)]
        clock = self.clock
        moment = next_moment(expressions, clock.now(), zone)
        while True:
            await clock.sleep_until(moment)
            now = clock.now()
            if now - moment <= LATE:
                await self.send_or_count("out", "out", config.value, ts=_ms(moment))
            else:
                self.warn("late", "skipped the moment %s: it is %s now", moment.isoformat(), now.isoformat())
            moment = next_moment(expressions, max(now, moment), zone)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


TYPES: list[type[Task]] = [Schedule]
