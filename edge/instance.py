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

A crash stays visible after the restart: the status keeps ``restarts``, ``last_error`` and
``crashed_at`` (the crash notice) until a user dismisses it (:meth:`Instance.dismiss`, asked for
over the agent's ``dismiss`` topic) or :data:`NOTICE_CLEARS_AFTER` seconds pass without another
crash while the task runs. The frame counters of the crashed run carry over to the next one.
``errors`` keeps the last :data:`ERRORS_KEPT` crashes (``{"error", "at"}``, oldest first), dismissed
or not: the history of the instance, where the notice is what a user has yet to look at.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge._inbox import QUEUE_BYTES, QUEUE_FRAMES, WAIT_STALL
from edge._lograte import LogLimiter
from edge.bus import Bus
from edge.errors import ConfigError
from edge.files import files_folder
from edge.frames import now_ms
from edge.hass import HassLink
from edge.local import LocalStreams
from edge.protocol import PROTOCOL_REVISION, Crash, TaskMetrics, TaskStatusMsg, ValidationError, problem
from edge.task import Task, TaskContext
from edge.topics import replica_key

__all__ = ["Assignment", "Instance"]

log = logging.getLogger("edge.instance")
_bad_metrics = LogLimiter(log)

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
FAILED_AFTER = 3
STABLE_AFTER = 30.0
NOTICE_CLEARS_AFTER = 600.0  # s of running without a crash after which the crash notice clears itself
ERRORS_KEPT = 5  # crashes the status lists in `errors`


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
    #: whether a controller can inject frames into its inputs (the agent's inject topics)
    inject: bool = False
    #: inputs the spec makes wait (TaskSpec.wait)
    wait: tuple[str, ...] = ()
    #: inputs fed in-process by a task of the same agent (edge.local), not through the broker
    local: tuple[str, ...] = ()
    #: which replica of its task this instance is (from 0), None for a task without replicas: its
    #: inputs are then shared subscriptions, on a connection of its own (``Host``)
    replica: int | None = None
    #: inputs fed by a task with replicas (TaskContext.merged)
    merged: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """``(deployment, task key)``: the task's id, or the replica's key (``worker.1``)."""
        return (self.deployment, self.task if self.replica is None else replica_key(self.task, self.replica))

    def same_as(self, other: Assignment) -> bool:
        """Equal in all that matters to the running instance (the spec version alone is not, nor which inputs
        are fed in-process: :meth:`Instance.rewire` changes that without a restart)."""
        return (self.type, self.config, self.sources, self.targets, self.wait, self.replica, self.merged) == (
            other.type, other.config, other.sources, other.targets, other.wait, other.replica, other.merged)


class Instance:
    """Supervises one task instance; its state changes are handed to ``on_status``."""

    def __init__(self, assignment: Assignment, task_type: type[Task] | None, *, bus: Bus,
                 on_status: Callable[[Instance], None], unavailable: str | None = None,
                 resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 max_payload: int = 16 * 1024 * 1024, queue_size: int = QUEUE_FRAMES,
                 queue_bytes: int | None = QUEUE_BYTES, queue_age: float | None = None,
                 files_dir: Path | None = None, hass: HassLink | None = None,
                 queue_stall: float = WAIT_STALL, local: LocalStreams | None = None) -> None:
        self.assignment = assignment
        self._local = local
        self._hass = hass
        self._files_dir = files_dir
        self.task_type = task_type
        self.bus = bus
        self.state = "pending"
        self.error: str | None = None
        #: the crash notice: crashes since it was last cleared, the last one's error and time (ms)
        self.restarts = 0
        self.last_error: str | None = None
        self.crashed_at: int | None = None
        #: the last crashes, oldest first
        self.errors: deque[Crash] = deque(maxlen=ERRORS_KEPT)
        self.task: Task | None = None
        self._on_status = on_status
        self._resolve = resolve or (lambda config: config)
        self._unavailable = unavailable
        self._max_payload = max_payload
        self._queue_size, self._queue_bytes, self._queue_age = queue_size, queue_bytes, queue_age
        self._queue_stall = queue_stall
        self._last: tuple[float, dict[str, int]] | None = None
        self._carried: dict[str, int] = {}  # counters of the runs before this one (a crash does not zero them)

    @property
    def instance_id(self) -> str:
        return "/".join(self.assignment.key)

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
            with files_folder(self._files_dir):  # file paths are checked against the agent's folder
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
                                  inject=a.inject,
                                  max_payload=self._max_payload, queue_size=self._queue_size,
                                  queue_bytes=self._queue_bytes, queue_age=self._queue_age, files_dir=self._files_dir,
                                  hass=self._hass.slot(a.deployment, a.task) if self._hass is not None else None,
                                  queue_stall=self._queue_stall, wait=a.wait, merged=a.merged, local=self._local,
                                  local_inputs=self.assignment.local)  # rewire() may have changed it
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
                self._carried, self.task = self._counters(), None  # its counts live on; its object is done
                self.restarts += 1
                crashes_in_a_row = 1 if time.monotonic() - started > STABLE_AFTER else crashes_in_a_row + 1
                backoff = BACKOFF_MIN if crashes_in_a_row == 1 else min(backoff * 2, BACKOFF_MAX)
                error = f"{type(exc).__name__}: {exc}"
                self.last_error, self.crashed_at = error, now_ms()
                self.errors.append(Crash(error=error, at=self.crashed_at))
                log.exception("task %s (%s) crashed (%d in a row); restarting in %.1f s", self.instance_id,
                              a.type, crashes_in_a_row, backoff)
                self._set("failed" if crashes_in_a_row >= FAILED_AFTER else "starting", error)
                await asyncio.sleep(backoff)
                continue
            finally:
                await task.close()
            self._set("stopped")
            return

    async def rewire(self, assignment: Assignment) -> None:
        """Take ``assignment`` (:meth:`Assignment.same_as` this one's) and feed the running task's inputs as
        it says: in-process or from the broker (``edge.local``), without a restart."""
        self.assignment = assignment
        if self.task is not None:
            await self.task.rewire(assignment.local)

    # -- the crash notice ------------------------------------------------------------------------
    def dismiss(self, before: int) -> bool:
        """Clear the crash notice if its last crash happened at or before ``before`` (ms); True if cleared.

        A crash after the user looked (a later ``crashed_at``) is not dismissed by that look."""
        if self.crashed_at is None or self.crashed_at > before:
            return False
        self.restarts, self.last_error, self.crashed_at = 0, None, None
        return True

    def _expire_notice(self, now: int) -> None:
        if self.state == "running" and self.crashed_at is not None \
                and now - self.crashed_at >= NOTICE_CLEARS_AFTER * 1000:
            self.dismiss(self.crashed_at)

    # -- reporting -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The status as published (:class:`edge.protocol.TaskStatusMsg`), without the agent."""
        return self.status_msg().dump()

    def status_msg(self, *, agent: str | None = None) -> TaskStatusMsg:
        """The status now: state, crash notice and history, and a snapshot of the metrics while it runs;
        ``agent``: the id of the agent that runs it (which the instance does not know)."""
        a = self.assignment
        now = now_ms()
        self._expire_notice(now)
        running = self.state in ("running", "failed", "starting")
        status: dict[str, Any] = {"v": PROTOCOL_REVISION, "state": self.state, "type": a.type, "version": a.version,
                                  "ts": now, "restarts": self.restarts,
                                  "error": self.error if self.error is not None or self.task is None
                                  else self.task.problem,
                                  "last_error": self.last_error, "crashed_at": self.crashed_at,
                                  "errors": list(self.errors)}
        if agent is not None:
            status["agent"] = agent
        if running and (metrics := self._metrics()) is not None:
            status["metrics"] = metrics
        try:
            return TaskStatusMsg.model_validate(status)  # one validation of the whole (every report, every task)
        except ValidationError as exc:
            if "metrics" not in status:
                raise
            self._metrics_refused(exc)
            del status["metrics"]
            return TaskStatusMsg.model_validate(status)

    def _counters(self) -> dict[str, int]:
        """Counters since the instance started: the runs before this one (a crash does not zero them)
        plus this run's."""
        counts = dict(self._carried)
        task = self.task
        if task is not None:
            for key, value in [*((f"in.{p}", m.frames) for p, m in task.in_metrics.items()),
                               *((f"err.{p}", m.errors) for p, m in task.in_metrics.items()),
                               *((f"gap.{p}", m.gaps) for p, m in task.in_metrics.items()),
                               *((f"dup.{p}", m.duplicates) for p, m in task.in_metrics.items()),
                               *((f"out.{p}", m.frames) for p, m in task.out_metrics.items()),
                               *((f"off.{p}", task.dropped_offline(p)) for p in task.out_metrics),
                               ("dropped", task.dropped())]:
                counts[key] = counts.get(key, 0) + value
        return counts

    def metrics(self) -> dict[str, Any]:
        """:meth:`metrics_msg` as published; ``{}`` before the first run."""
        metrics = self.metrics_msg()
        return metrics.dump() if metrics is not None else {}

    def metrics_msg(self) -> TaskMetrics | None:
        """Frames in/out per port (since the instance started, across crashes) with rates since the last
        call, drops and errors; None before the first run."""
        metrics = self._metrics()
        if metrics is None:
            return None
        try:
            return TaskMetrics.model_validate(metrics)
        except ValidationError as exc:
            self._metrics_refused(exc)
            return None

    def _metrics_refused(self, exc: ValidationError) -> None:
        """Metrics the protocol cannot carry (a third party's type with more ports than a map holds): its
        status goes without them, and says nothing false."""
        _bad_metrics.warning(self.instance_id, "task %s (%s): its metrics break the protocol's bounds (%s): its "
                             "status goes without them", self.instance_id, self.assignment.type, problem(exc))

    def _metrics(self) -> dict[str, Any] | None:
        """What :meth:`metrics_msg` validates (a status validates it with the rest)."""
        if self.task is None and not self._carried:
            return None
        total = self._counters()
        counts = {k: v for k, v in total.items() if k.startswith(("in.", "out."))}
        now = time.monotonic()
        last_t, last = self._last if self._last is not None else (now, counts)
        elapsed = now - last_t
        self._last = (now, counts)

        def rate(key: str) -> float:
            return round((counts[key] - last.get(key, 0)) / elapsed, 2) if elapsed > 0 else 0.0

        inputs = [k[3:] for k in total if k.startswith("in.")]
        outputs = [k[4:] for k in total if k.startswith("out.")]
        return {
            "inputs": {p: {"frames": total[f"in.{p}"], "errors": total.get(f"err.{p}", 0), "rate": rate(f"in.{p}"),
                           "gaps": total.get(f"gap.{p}", 0), "duplicates": total.get(f"dup.{p}", 0)}
                       for p in inputs},
            "outputs": {p: {"frames": total[f"out.{p}"], "rate": rate(f"out.{p}"),
                            "dropped_offline": total.get(f"off.{p}", 0)}
                        for p in outputs},
            "dropped": total.get("dropped", 0),
            "errors": sum(total.get(f"err.{p}", 0) for p in inputs),
            "gaps": sum(total.get(f"gap.{p}", 0) for p in inputs),
            "duplicates": sum(total.get(f"dup.{p}", 0) for p in inputs),
        }
