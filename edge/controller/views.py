"""What a task is shown as: the one rule every view uses (the panel's pages, ``edge ls``).

A task's retained status is what its agent said last; on its own it cannot tell a running task
from one whose agent died a minute ago (the status stays, retained, saying ``running``). So the
state shown is derived from the status *and* the liveness of the agent the spec gives the task:

* the agent is offline (its will or offline state came; or it has no state on the broker at
  all though it reported a status): ``agent offline`` with how long (since the agent was last
  heard of: its last state message or status), whatever its last status said; its metrics
  are the last known, not current (no rates);
* no status yet: ``pending``, waiting for its agent to report (also when that agent has never
  announced itself: :attr:`TaskView.detail` says so);
* otherwise the reported state (``starting``, ``running``, ``failed``, ``stopped``, ``invalid``).

A task with replicas is shown as each replica: its own status (``worker.1``) and its own agent
(the spec's ``agents``), by the same rule.

A crash notice (``restarts``, ``last_error``, ``crashed_at``, kept by the agent until dismissed
or after ten minutes without a crash) is shown beside the state: :attr:`TaskView.notice`.
Ages use the agents' clocks (``ts`` in their messages): keep clocks in sync (NTP).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edge.controller.fleet import Fleet, TaskStatus
from edge.frames import now_ms
from edge.graph import TaskSpec

__all__ = ["AGENT_OFFLINE", "PENDING", "DeploymentSummary", "TaskView", "deployment_views", "format_age",
           "replica_views", "summarize", "task_view"]

AGENT_OFFLINE = "agent offline"
PENDING = "pending"
#: reported states whose metrics the agent refreshes (every 2 s): shown as current while it is online
LIVE_STATES = frozenset({"running", "starting", "failed"})


def format_age(seconds: float) -> str:
    """``25 s``, ``4 min``, ``3 h``, ``2 d``: how long, short enough for a chip."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def _clock(ts: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts / 1000))


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task as every view shows it (see the module docstring for the rule)."""

    deployment: str
    task: str
    type: str
    #: the agent the spec gives the task (else the one that reported it)
    agent: str | None
    #: shown: a reported state, ``pending`` or ``agent offline``
    state: str
    #: the status the agent retained last (None: none yet)
    status: TaskStatus | None
    #: the agent is known to the fleet (has announced itself at least once)
    agent_known: bool
    #: when the agent was last heard of (ms), for ``agent offline``
    last_heard: int | None
    now: int
    #: the spec's task id (``task`` is a replica's key where the task has replicas) and its replicas
    of: str = ""
    replicas: int = 1

    @property
    def reported(self) -> str | None:
        return self.status.state if self.status is not None else None

    @property
    def offline_for(self) -> float | None:
        """Seconds since the offline agent was last heard of (None unless ``agent offline``)."""
        if self.state != AGENT_OFFLINE or self.last_heard is None:
            return None
        return max(0.0, (self.now - self.last_heard) / 1000)

    @property
    def label(self) -> str:
        """The state with how long for an offline agent: ``agent offline 25 s``."""
        offline = self.offline_for
        return f"{AGENT_OFFLINE} {format_age(offline)}" if offline is not None else self.state

    @property
    def current(self) -> bool:
        """Whether the metrics are current (refreshed by a live agent): rates are shown only then."""
        return self.state in LIVE_STATES

    @property
    def metrics(self) -> dict[str, Any]:
        """The last reported metrics (current only if :attr:`current`)."""
        return self.status.metrics if self.status is not None else {}

    @property
    def error(self) -> str:
        return (self.status.error or "") if self.status is not None else ""

    @property
    def restarts(self) -> int:
        return self.status.restarts if self.status is not None else 0

    @property
    def crash(self) -> str | None:
        """The crash notice without its error: ``restarted 2 times · last crash 14:02:11 (3 min ago)``."""
        status = self.status
        if status is None or status.crashed_at is None:
            return None
        when = f"{_clock(status.crashed_at)} ({format_age((self.now - status.crashed_at) / 1000)} ago)"
        times = "once" if status.restarts == 1 else f"{status.restarts} times"
        return f"restarted {times} · last crash {when}"

    @property
    def notice(self) -> str | None:
        """The crash notice: ``restarted 2 times · last crash 14:02:11 (3 min ago): ValueError: boom``."""
        crash = self.crash
        last_error = self.status.last_error if self.status is not None else None
        return f"{crash}: {last_error}" if crash and last_error else crash

    @property
    def detail(self) -> str:
        """One line on why it is shown so: what an offline agent last said, who a pending task waits for."""
        if self.state == AGENT_OFFLINE:
            said = f"; its last status said {self.reported}" if self.reported else ""
            gone = "is offline" if self.agent_known else "has no state on the broker"
            return f"agent {self.agent} {gone}{said}"
        if self.state == PENDING:
            if self.agent is None:
                return "not placed on any agent"
            if not self.agent_known:
                return f"waiting for agent {self.agent}, which has never announced itself"
            return f"waiting for agent {self.agent} to report"
        return ""


def _statuses_heard(fleet: Fleet) -> dict[str, int]:
    """Agent id -> the newest ``ts`` of the statuses it published."""
    heard: dict[str, int] = {}
    for status in fleet.statuses.values():
        if status.agent is not None and status.ts > heard.get(status.agent, 0):
            heard[status.agent] = status.ts
    return heard


def task_view(fleet: Fleet, deployment: str, task: TaskSpec, *, now: int | None = None,
              heard: dict[str, int] | None = None, replica: int | None = None) -> TaskView:
    """How ``task`` of ``deployment`` is shown, from its status and its agent's liveness; with
    ``replica``, how that replica of it is (:attr:`TaskView.task` is then its key, ``worker.1``).

    ``heard`` (from one pass over the statuses) saves that pass when many tasks are shown at once."""
    now = now_ms() if now is None else now
    key, placed = task.instances()[replica or 0]
    status = fleet.statuses.get((deployment, key))
    agent_id = placed or (status.agent if status is not None else None)
    agent = fleet.agents.get(agent_id) if agent_id is not None else None
    last_heard: int | None = None
    # offline: its will or offline state came, or it reported a status but has no state on the broker
    # (cleared since): either way nothing vouches for what the status says
    gone = agent is None and status is not None
    if agent_id is not None and (gone or (agent is not None and not agent.online)):
        state = AGENT_OFFLINE
        if heard is None:
            heard = _statuses_heard(fleet)
        last_heard = max(agent.last_seen if agent is not None else 0, heard.get(agent_id, 0))
    elif status is None:
        state = PENDING
    else:
        state = status.state
    return TaskView(deployment=deployment, task=key, type=task.type, agent=agent_id, state=state,
                    status=status, agent_known=agent is not None, last_heard=last_heard, now=now,
                    of=task.id, replicas=task.replicas)


def replica_views(fleet: Fleet, deployment: str, task: TaskSpec, *, now: int | None = None,
                  heard: dict[str, int] | None = None) -> list[TaskView]:
    """A view per instance of ``task``: the task's own, or one per replica (in order)."""
    if task.replicas == 1:
        return [task_view(fleet, deployment, task, now=now, heard=heard)]
    now = now_ms() if now is None else now
    heard = _statuses_heard(fleet) if heard is None else heard
    return [task_view(fleet, deployment, task, now=now, heard=heard, replica=i) for i in range(task.replicas)]


def deployment_views(fleet: Fleet, deployment: str, *, now: int | None = None) -> list[TaskView]:
    """Every task instance of a deployed spec, in spec order, each replica of a task on its own (empty
    when it is not deployed)."""
    spec = fleet.deployments.get(deployment)
    if spec is None:
        return []
    now = now_ms() if now is None else now
    heard = _statuses_heard(fleet)
    return [view for task in spec.tasks for view in replica_views(fleet, deployment, task, now=now, heard=heard)]


@dataclass(frozen=True, slots=True)
class DeploymentSummary:
    """The counts of a deployment's shown states: ``3/5 running, 2 agent offline, 1 restarted``."""

    views: tuple[TaskView, ...]
    #: why the deployment's newest retained spec was refused (agents keep running the one they had)
    rejected: str | None = None

    @property
    def total(self) -> int:
        return len(self.views)

    def count(self, *states: str) -> int:
        return sum(1 for v in self.views if v.state in states)

    @property
    def running(self) -> int:
        return self.count("running")

    @property
    def failed(self) -> int:
        return self.count("failed", "invalid")

    @property
    def offline(self) -> int:
        return self.count(AGENT_OFFLINE)

    @property
    def restarted(self) -> int:
        """Tasks with a crash notice (restarted since it was last cleared)."""
        return sum(1 for v in self.views if v.notice is not None)

    @property
    def states(self) -> dict[str, str]:
        return {v.task: v.state for v in self.views}

    @property
    def text(self) -> str:
        return ", ".join([f"{self.running}/{self.total} running", *self.notes])

    @property
    def notes(self) -> list[str]:
        """What else the tasks are: ``2 agent offline``, ``1 failing``, ``1 pending``, ``1 restarted``."""
        parts = [f"new spec refused: {self.rejected}"] if self.rejected else []
        if self.offline:
            parts.append(f"{self.offline} {AGENT_OFFLINE}")
        if self.failed:
            parts.append(f"{self.failed} failing")
        if pending := self.count(PENDING):
            parts.append(f"{pending} {PENDING}")
        if self.restarted:
            parts.append(f"{self.restarted} restarted")
        return parts


def summarize(fleet: Fleet, deployment: str, *, now: int | None = None) -> DeploymentSummary:
    return DeploymentSummary(tuple(deployment_views(fleet, deployment, now=now)),
                             rejected=fleet.rejected.get(deployment))
