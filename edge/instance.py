"""One running task instance, supervised: started, restarted with backoff, reported.

States (published retained at ``{root}/deployments/{dep}/status/{task}``)::

    pending   known but not started yet
    starting  being created, or waiting out a backoff before a restart
    running   run() is executing
    failed    run() raised 3 times in a row (the runtime keeps retrying, with backoff up to 30 s)
    stopped   run() returned, or the instance was stopped
    invalid   the config failed validation, or this agent cannot run the type

A crash (an exception out of ``run()``) is logged with its traceback, counted in ``restarts``
and followed by a restart after 0.5 s, doubling to 30 s; a run that lasted over 30 s resets the
backoff. An invalid config is not retried: a new spec version is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.bus import Bus
from edge.errors import ConfigError
from edge.frames import now_ms
from edge.task import Task, TaskContext

__all__ = ["Assignment", "Instance"]

log = logging.getLogger("edge.instance")

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
FAILED_AFTER = 3
STABLE_AFTER = 30.0


@dataclass(frozen=True)
class Assignment:
    """What one instance should be: everything that, when it changes, restarts the instance."""

    deployment: str
    task: str
    type: str
    config: dict[str, Any]
    sources: dict[str, str]
    targets: dict[str, list[str]]
    version: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return (self.deployment, self.task)

    def same_as(self, other: Assignment) -> bool:
        """Equal in all that matters to the running instance (the spec version alone is not)."""
        return (self.type, self.config, self.sources, self.targets) == (
            other.type, other.config, other.sources, other.targets)


class Instance:
    """Supervises one task instance; its state changes are handed to ``on_status``."""

    def __init__(self, assignment: Assignment, task_type: type[Task] | None, *, bus: Bus,
                 on_status: Callable[[Instance], None], unavailable: str | None = None,
                 resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 max_payload: int = 16 * 1024 * 1024, queue_size: int = 100) -> None:
        self.assignment = assignment
        self.task_type = task_type
        self.bus = bus
        self.state = "pending"
        self.error: str | None = None
        self.restarts = 0
        self.task: Task | None = None
        self._on_status = on_status
        self._resolve = resolve or (lambda config: config)
        self._unavailable = unavailable
        self._max_payload = max_payload
        self._queue_size = queue_size
        self._last: tuple[float, dict[str, int]] | None = None

    @property
    def instance_id(self) -> str:
        return f"{self.assignment.deployment}/{self.assignment.task}"

    def _set(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.error = error
        self._on_status(self)

    async def supervise(self) -> None:
        """Run until cancelled (or until the task stops by itself or is invalid)."""
        a = self.assignment
        if self.task_type is None:
            self._set("invalid", self._unavailable or f"unknown task type {a.type!r}")
            return
        try:
            resolved = self._resolve(a.config)
            problems = self.task_type.check(resolved)  # the lines the controller's validation shows
            if problems:
                self._set("invalid", "; ".join(problems))
                return
            config = self.task_type.validate_config(resolved)
        except ConfigError as exc:
            self._set("invalid", str(exc))
            return
        backoff = BACKOFF_MIN
        crashes_in_a_row = 0
        while True:
            self._set("starting", self.error)
            context = TaskContext(bus=self.bus, instance_id=self.instance_id, sources=a.sources, targets=a.targets,
                                  max_payload=self._max_payload, queue_size=self._queue_size)
            task = self.task_type(config, context=context)
            self.task = task
            started = time.monotonic()
            try:
                await task.open_inputs()
                self._set("running")
                await task.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                crashes_in_a_row = 1 if time.monotonic() - started > STABLE_AFTER else crashes_in_a_row + 1
                backoff = BACKOFF_MIN if crashes_in_a_row == 1 else min(backoff * 2, BACKOFF_MAX)
                error = f"{type(exc).__name__}: {exc}"
                log.exception("task %s (%s) crashed (%d in a row); restarting in %.1f s", self.instance_id,
                              a.type, crashes_in_a_row, backoff)
                self._set("failed" if crashes_in_a_row >= FAILED_AFTER else "starting", error)
                await asyncio.sleep(backoff)
                continue
            finally:
                await task.close()
            self._set("stopped")
            return

    # -- reporting -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        a = self.assignment
        status: dict[str, Any] = {"state": self.state, "type": a.type, "version": a.version, "ts": now_ms(),
                                  "restarts": self.restarts, "error": self.error}
        if self.task is not None and self.state in ("running", "failed", "starting"):
            status["metrics"] = self.metrics()
        return status

    def metrics(self) -> dict[str, Any]:
        """Frames in/out per port with rates since the last call, drops and errors."""
        task = self.task
        if task is None:
            return {}
        counts = {f"in.{p}": m.frames for p, m in task.in_metrics.items()}
        counts.update({f"out.{p}": m.frames for p, m in task.out_metrics.items()})
        now = time.monotonic()
        last_t, last = self._last if self._last is not None else (now, counts)
        elapsed = now - last_t
        self._last = (now, counts)

        def rate(key: str) -> float:
            return round((counts[key] - last.get(key, 0)) / elapsed, 2) if elapsed > 0 else 0.0

        return {
            "inputs": {p: {"frames": m.frames, "errors": m.errors, "rate": rate(f"in.{p}")}
                       for p, m in task.in_metrics.items()},
            "outputs": {p: {"frames": m.frames, "rate": rate(f"out.{p}"), "dropped_offline": task.dropped_offline(p)}
                        for p, m in task.out_metrics.items()},
            "dropped": task.dropped(),
            "errors": sum(m.errors for m in task.in_metrics.values()),
        }
