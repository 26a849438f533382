"""The supervision of one instance, in-process: what its status says across crashes (issue 22.4)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import pytest

import edge.instance
from edge.instance import ERRORS_KEPT, Assignment, Instance
from edge.task import Port, Task
from edge.testing import MemoryBus

TIMEOUT = 10.0


class Crasher(Task):
    """Sends two frames, then crashes with the number of its run: ``run 1``, ``run 2``, …"""

    outputs: ClassVar = {"out": Port(content="number")}
    runs = 0

    async def run(self) -> None:
        Crasher.runs += 1
        await self.send("out", 1)
        await self.send("out", 2)
        raise RuntimeError(f"run {Crasher.runs}")


@pytest.mark.expect_errors(r"\(crasher\) crashed")
async def test_the_status_keeps_the_last_crashes_and_counts_across_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge.instance, "BACKOFF_MIN", 0.001)
    monkeypatch.setattr(edge.instance, "BACKOFF_MAX", 0.001)
    Crasher.runs = 0
    crashes = ERRORS_KEPT + 3
    statuses: list[dict[str, Any]] = []
    assignment = Assignment(deployment="d", task="t", type="crasher", config={}, sources={},
                            targets={"out": ["d/t/out"]})
    async with MemoryBus() as bus:
        instance = Instance(assignment, Crasher, bus=bus, on_status=lambda i: statuses.append(i.status()))
        supervisor = asyncio.create_task(instance.supervise())
        try:
            async with asyncio.timeout(TIMEOUT):
                while instance.restarts < crashes:
                    await asyncio.sleep(0.001)
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
    status = instance.status()
    assert status["restarts"] >= crashes
    last = status["restarts"]
    # the last few crashes, oldest first, each with its time; the notice is the newest of them
    assert [e["error"] for e in status["errors"]] == [f"RuntimeError: run {n}" for n in range(last - ERRORS_KEPT + 1,
                                                                                                 last + 1)]
    assert all(isinstance(e["at"], int) for e in status["errors"])
    assert status["errors"][-1] == {"error": status["last_error"], "at": status["crashed_at"]}
    # the counters are the instance's, not the last run's: two frames a run
    assert status["metrics"]["outputs"]["out"]["frames"] >= 2 * last
    # a dismissal clears the notice, not the history
    assert instance.dismiss(status["crashed_at"])
    after = instance.status()
    assert (after["restarts"], after["last_error"], after["crashed_at"]) == (0, None, None)
    assert after["errors"] == status["errors"]
    assert any(s["errors"] for s in statuses)
