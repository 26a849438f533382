"""What deploying a draft will do to what runs: the editor's modified markers and Deploy's summary.

Compared with the deployed spec, each task of the draft is *added*, *removed*, *restarted* (its
agent restarts it because its type, config or wiring changed, as :meth:`edge.host.Host.reconcile`
decides by :meth:`edge.instance.Assignment.same_as`: its inputs' sources, its outputs' topics),
*moved* (to another agent: stopped there, started here), *changed without a restart* (its label,
or a wire from one of its outputs to another task's input: only that input's task restarts), or
unchanged. A task left to placement (no agent in the draft) keeps the agent it was placed on as
far as this summary goes: placement decides at deploy time.

The line-by-line changes are :func:`ui.versions.diff_specs`' (as the history and the conflict
banner show them); this module adds what each means for the running tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.graph import DeploymentSpec, TaskSpec
from edge.topics import Topics
from ui.versions import diff_specs

__all__ = ["DeployPlan", "plan_deploy"]

_TOPICS = Topics("plan")  # any namespace: only whether two specs' topics differ is compared


def _topic_outputs(spec: DeploymentSpec, task_id: str) -> set[tuple[str, str]]:
    return {(str(e.source.port), str(e.target.topic)) for e in spec.edges
            if e.source.task == task_id and e.target.topic is not None}


def _wired_to(spec: DeploymentSpec, task_id: str) -> set[str]:
    """The wires from this task's outputs to other tasks' inputs."""
    return {f"{e.source} → {e.target}" for e in spec.edges if e.source.task == task_id and e.target.task is not None}


def _why_restart(old: TaskSpec, new: TaskSpec, before: DeploymentSpec, after: DeploymentSpec) -> list[str]:
    why: list[str] = []
    if old.type != new.type:
        why.append(f"type {old.type} → {new.type}")
    keys = sorted(k for k in set(old.config) | set(new.config) if old.config.get(k, ...) != new.config.get(k, ...))
    if keys:
        why.append("config " + ", ".join(keys))
    if before.sources(old.id, _TOPICS) != after.sources(new.id, _TOPICS):
        why.append("its inputs' wires")
    if _topic_outputs(before, old.id) != _topic_outputs(after, new.id):
        why.append("its outputs' topics")
    return why


@dataclass(frozen=True, slots=True)
class DeployPlan:
    """What deploying would do; every dict is task id -> why."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: dict[str, str] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    no_restart: dict[str, str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    #: the changes line by line (:func:`ui.versions.diff_specs`)
    lines: list[str] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return bool(self.lines)

    @property
    def modified(self) -> dict[str, str]:
        """Task id -> what changed since the last deploy, for the editor's marker on its node."""
        marks = {task: "new" for task in self.added}
        marks.update({task: f"{why} (restarts)" for task, why in self.restarted.items()})
        marks.update({task: f"{why} (moves)" for task, why in self.moved.items()})
        marks.update({task: f"{why} (no restart)" for task, why in self.no_restart.items()})
        return marks

    def summary(self) -> str:
        """``1 added, 1 removed, 2 restarted, 3 unchanged`` (``none: the draft is what runs`` when so)."""
        if not self.changes_anything:
            return "none: the draft is what runs"
        parts = [f"{len(items)} {name}" for name, items in (
            ("added", self.added), ("removed", self.removed), ("restarted", self.restarted), ("moved", self.moved),
            ("changed without a restart", self.no_restart), ("unchanged", self.unchanged)) if items]
        marks = [line for line in self.lines if line.lstrip("+- ").startswith(("comment ", "group "))]
        if marks:  # comments and groups of the canvas: deployed with the spec, nothing restarts
            parts.append(f"{len(marks)} comment or group change{'s' if len(marks) != 1 else ''}")
        return ", ".join(parts)

    def task_lines(self) -> list[str]:
        """One line per task that deploying touches: ``+ add``, ``- remove``, ``↻ restart``, ..."""
        return ([f"+ start {task} (new)" for task in self.added]
                + [f"- stop {task} (removed)" for task in self.removed]
                + [f"↻ restart {task}: {why}" for task, why in self.restarted.items()]
                + [f"→ move {task}: {why}" for task, why in self.moved.items()]
                + [f"= keep {task} running: {why}" for task, why in self.no_restart.items()])


def plan_deploy(deployed: DeploymentSpec | None, draft: DeploymentSpec) -> DeployPlan:
    """What deploying ``draft`` over ``deployed`` (None: nothing deployed) does to the running tasks."""
    if deployed is None:
        return DeployPlan(added=[t.id for t in draft.tasks], lines=diff_specs(None, draft))
    before = {t.id: t for t in deployed.tasks}
    # a task left to placement is compared on the agent it was placed on
    draft = draft.model_copy(update={"tasks": [
        t.model_copy(update={"agent": before[t.id].agent}) if not t.agent and t.id in before else t
        for t in draft.tasks]})
    after = {t.id: t for t in draft.tasks}
    plan = DeployPlan(added=[t for t in after if t not in before], removed=[t for t in before if t not in after],
                      lines=diff_specs(deployed, draft))
    for task in draft.tasks:
        old = before.get(task.id)
        if old is None:
            continue
        why = _why_restart(old, task, deployed, draft)
        if task.agent and old.agent and task.agent != old.agent:
            plan.moved[task.id] = "; ".join([f"{old.agent} → {task.agent}", *why])
        elif why:
            plan.restarted[task.id] = "; ".join(why)
        else:
            quiet: list[str] = []
            if old.label != task.label:
                quiet.append("label")
            if _wired_to(deployed, task.id) != _wired_to(draft, task.id):
                quiet.append("wires from its outputs")
            if not old.agent and task.agent:
                quiet.append(f"pinned to {task.agent}")
            if quiet:
                plan.no_restart[task.id] = "; ".join(quiet)
            else:
                plan.unchanged.append(task.id)
    return plan
