"""The schedule task type: cron expressions and times of day in a time zone, on a clock of the test's own.

:attr:`Schedule.clock` is replaced by a clock that jumps to each moment the task waits for, so a
week of schedule runs in milliseconds; one test uses the wall clock with a seconds field.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from edge.frames import now_ms
from edge.testing import run_task
from tasks.schedule import Schedule, WallClock


class JumpingClock:
    """Jumps to each moment waited for (``late`` after it), ``moments`` times; then waits forever."""

    def __init__(self, start: datetime, moments: int, late: timedelta = timedelta(0)) -> None:
        self.time = start
        self.left = moments
        self.late = late

    def now(self) -> datetime:
        return self.time

    async def sleep_until(self, moment: datetime) -> None:
        if self.left == 0:
            await asyncio.Event().wait()
        self.left -= 1
        self.time = moment + self.late


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%a %m-%d %H:%M:%S")


async def _stamps(monkeypatch, config, count: int, start: datetime, late: timedelta = timedelta(0)) -> list[str]:
    monkeypatch.setattr(Schedule, "clock", JumpingClock(start, count, late))
    async with run_task(Schedule, config) as run:
        frames = [await run.next("out") for _ in range(count)]
        assert all(f.value == config.get("value", 1) for f in frames)
        return [_utc(f.ts) for f in frames]


async def test_cron_in_a_time_zone_keeps_local_time_across_daylight_saving(monkeypatch):
    start = datetime(2026, 3, 26, 0, 0, tzinfo=UTC)  # a Thursday; Berlin goes to summer time on Sunday the 29th
    stamps = await _stamps(monkeypatch, {"cron": ["30 7 * * 1-5"], "timezone": "Europe/Berlin",
                                         "value": {"wake": True}}, 4, start)
    assert stamps == ["Thu 03-26 06:30:00", "Fri 03-27 06:30:00", "Mon 03-30 05:30:00", "Tue 03-31 05:30:00"]


async def test_times_of_day_and_cron_together_each_moment_once(monkeypatch):
    start = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    stamps = await _stamps(monkeypatch, {"cron": ["0 8 * * *"], "times": ["08:00", "18:30:15"], "timezone": "UTC"},
                           4, start)
    assert stamps == ["Mon 06-01 08:00:00", "Mon 06-01 18:30:15", "Tue 06-02 08:00:00", "Tue 06-02 18:30:15"]


async def test_a_seconds_field_comes_first(monkeypatch):
    start = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    stamps = await _stamps(monkeypatch, {"cron": ["*/20 * * * * *"], "timezone": "UTC"}, 3, start)
    assert stamps == ["Thu 01-01 00:00:20", "Thu 01-01 00:00:40", "Thu 01-01 00:01:00"]


async def test_a_moment_missed_by_far_is_skipped_not_sent_late(monkeypatch, caplog):
    monkeypatch.setattr(Schedule, "clock", JumpingClock(datetime(2026, 1, 1, tzinfo=UTC), 3, timedelta(seconds=30)))
    async with run_task(Schedule, {"cron": ["@hourly"], "timezone": "UTC"}) as run:
        async with asyncio.timeout(5):
            while run.task.clock.left:  # type: ignore[attr-defined]
                await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        assert run.frames("out") == []
    assert "skipped the moment 2026-01-01T01:00:00+00:00" in caplog.text


async def test_on_the_wall_clock():
    assert isinstance(Schedule.clock, WallClock)
    async with run_task(Schedule, {"cron": ["* * * * * *"], "value": "tick"}) as run:  # every second
        before = now_ms()
        frame = await run.next("out", timeout=3)
        assert frame.value == "tick" and frame.ts % 1000 == 0 and before - 1000 < frame.ts <= now_ms()


def test_config_errors_are_one_line_each():
    assert Schedule.check({"cron": ["61 * * * *", "* * *"], "times": ["7:5"], "timezone": "Mars/Base"}) == [
        "config.cron: '61 * * * *': [61 * * * *] is not acceptable, out of range",
        "config.times: '7:5' is no time of day: use HH:MM or HH:MM:SS (24 hours)",
        "config.timezone: unknown time zone 'Mars/Base': use 'local', 'UTC' or an IANA name such as 'Europe/Berlin'"]
    assert Schedule.check({"cron": []}) == ["config: set cron or times: the schedule has no moment"]
    assert Schedule.check({"cron": ["0 0 31 2 *"]})[0].startswith("config.cron: '0 0 31 2 *': failed to find")
    assert Schedule.check({"timezone": "local", "times": ["23:59:59"]}) == []


def test_without_croniter_the_module_says_how_to_install_it():
    code = "import sys; sys.modules['croniter'] = None; import tasks.schedule"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert "ModuleNotFoundError: No module named 'croniter': the schedule task type needs croniter: pip install " \
           "'edgetasks[flow]'" in out.stderr


def test_the_entry_point_is_declared():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["edgetasks.tasks"]["schedule"] == "tasks.schedule:TYPES"
    assert any(dep.startswith("croniter") for dep in project["optional-dependencies"]["flow"])
    assert "flow" in project["optional-dependencies"]["all"][0]


def test_an_agent_without_croniter_lists_schedule_as_unavailable_with_the_hint():
    """Through the entry point, as an agent finds it (``pip install -e .`` registers it)."""
    code = ("import sys; sys.modules['croniter'] = None\n"
            "from agent.registry import discover\n"
            "registry = discover()\n"
            "assert 'schedule' not in registry.types and 'calculator' in registry.types, sorted(registry.types)\n"
            "print(registry.unavailable['schedule'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "the schedule task type needs croniter: pip install 'edgetasks[flow]'" in out.stdout


def test_output_metadata_follows_the_value():
    def meta(value: object) -> dict[str, object]:
        return Schedule.ports(Schedule.validate_config({"value": value})).outputs["out"].metadata()

    assert (meta(21.5), meta(True), meta("ON"), meta({"a": 1})) == (
        {"content": "number"}, {"content": "number"}, {"content": "text"}, {"any": True})
