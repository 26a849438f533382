"""The graph editor's working copy of a deployment spec, and the checks its edits go through.

A :class:`Draft` is edited in place by the editor page (add, remove, connect, configure, pin) and
turned into a :class:`~edge.graph.DeploymentSpec` to deploy or export. Connecting two ports is
checked at once against the live catalog with :func:`edge.graph.check_against_catalog`, so an
incompatible wire is refused with the metadata fields that disagree, before anything is deployed.

A draft remembers the deployed spec it started from (its *base*): when what is deployed is no
longer that spec (deployed meanwhile from the CLI or another panel), the draft is *stale*, and
the editor says so instead of letting Deploy undo the other change unseen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from edge.errors import SpecError
from edge.graph import (
    DashboardSpec,
    DeploymentSpec,
    EdgeSpec,
    GroupSpec,
    NoteSpec,
    TaskSpec,
    check_against_catalog,
    load_spec,
    parse_spec,
)
from edge.topics import is_valid_id, validate_filter
from ui.history import History

__all__ = ["Draft", "Snapshot", "valid_deployment_id"]


@dataclass(frozen=True)
class Snapshot:
    """What undo puts back: everything of a draft the user edits (its specs are immutable)."""

    label: str | None
    tasks: tuple[TaskSpec, ...]
    edges: tuple[EdgeSpec, ...]
    positions: tuple[tuple[str, tuple[int, int]], ...]
    topics: tuple[str, ...]
    notes: tuple[NoteSpec, ...]
    groups: tuple[GroupSpec, ...]
    dashboards: tuple[DashboardSpec, ...] = ()


@dataclass
class Draft:
    """A deployment being edited: its tasks, wires and where the user put the nodes."""

    id: str
    label: str | None = None
    version: int = 1
    tasks: list[TaskSpec] = field(default_factory=list)
    edges: list[EdgeSpec] = field(default_factory=list)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the deployed (or last saved) spec this draft started from; None for a new deployment
    base: DeploymentSpec | None = None
    #: topic nodes the user added that no wire uses yet (wired ones are read from the edges)
    topics: list[str] = field(default_factory=list)
    #: the dashboards' layouts (arranged on the dashboard page), deployed with the rest
    dashboards: list[DashboardSpec] = field(default_factory=list)
    #: comments and groups on the canvas (kept in the spec, ignored by agents)
    notes: list[NoteSpec] = field(default_factory=list)
    groups: list[GroupSpec] = field(default_factory=list)
    #: the editor's undo and redo (ui.history); it lives with the draft, so it outlives a page reload
    history: History[Snapshot] = field(default_factory=History, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: DeploymentSpec) -> Draft:
        return cls(id=spec.id, label=spec.label, version=spec.version, tasks=list(spec.tasks), edges=list(spec.edges),
                   notes=list(spec.notes), groups=list(spec.groups), base=spec,
                   dashboards=list(spec.dashboards))

    # -- undo and redo --------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot(self.label, tuple(self.tasks), tuple(self.edges), tuple(self.positions.items()),
                        tuple(self.topics), tuple(self.notes), tuple(self.groups), tuple(self.dashboards))

    def restore(self, state: Snapshot) -> None:
        self.label = state.label
        self.tasks, self.edges, self.topics = list(state.tasks), list(state.edges), list(state.topics)
        self.positions = dict(state.positions)
        self.notes, self.groups = list(state.notes), list(state.groups)
        self.dashboards = list(state.dashboards)  # a removed task's cards come back with it

    def record(self, before: Snapshot, key: str | None = None) -> bool:
        """Keep ``before`` (taken by :meth:`snapshot` before an edit) as an undo step, unless nothing
        changed; ``key`` coalesces a run of edits of one field into one step (:class:`ui.history.History`)."""
        if before == self.snapshot():
            return False
        return self.history.record(before, key)

    def undo(self) -> bool:
        state = self.history.undo(self.snapshot())
        if state is not None:
            self.restore(state)
        return state is not None

    def redo(self) -> bool:
        state = self.history.redo(self.snapshot())
        if state is not None:
            self.restore(state)
        return state is not None

    def stale(self, deployed: DeploymentSpec | None) -> bool:
        """Whether ``deployed`` is not the spec this draft is based on: deployed elsewhere meanwhile."""
        if deployed is None:
            return False
        if self.base is None:
            return True
        # a publish is known by its version and its stamp (when, where): a decoded copy of the same
        # publish compares equal, a version number reused by another controller does not
        return (deployed.version, deployed.deployed) != (self.base.version, self.base.deployed)

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Draft:
        """A draft from a YAML/JSON spec; :class:`~edge.errors.SpecError` lists every problem."""
        return cls.from_spec(load_spec(text))

    def to_spec(self) -> DeploymentSpec:
        return parse_spec(self.to_data())

    def to_data(self) -> dict[str, Any]:
        """The draft as unchecked spec data (for the controller's validation, which lists every problem)."""
        return {"id": self.id, **({"label": self.label} if self.label else {}), "version": self.version,
                "tasks": [t.model_dump(exclude_none=True) for t in self.tasks],
                "edges": [e.to_dict() for e in self.edges],
                **({"dashboards": [d.model_dump(exclude_none=True) for d in self.dashboards]}
                   if self.dashboards else {}),
                **({"notes": [n.model_dump(exclude_none=True) for n in self.notes]} if self.notes else {}),
                **({"groups": [g.model_dump(exclude_none=True) for g in self.groups]} if self.groups else {})}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_spec().to_dict(), sort_keys=False, allow_unicode=True)

    # -- tasks ----------------------------------------------------------------------------------
    def task(self, task_id: str) -> TaskSpec:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def new_task_id(self, type_name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", type_name)[:56] or "task"
        taken = {t.id for t in self.tasks}
        n = 1
        while f"{base}{n}" in taken:
            n += 1
        return f"{base}{n}"

    def add_task(self, type_name: str, *, task_id: str | None = None, agent: str | None = None,
                 config: Mapping[str, Any] | None = None) -> TaskSpec:
        task_id = task_id or self.new_task_id(type_name)
        if any(t.id == task_id for t in self.tasks):
            raise SpecError(f"task id {task_id!r} is used already")
        task = TaskSpec(id=task_id, type=type_name, agent=agent, config=dict(config or {}))
        self.tasks.append(task)
        return task

    def remove_task(self, task_id: str) -> None:
        self.tasks = [t for t in self.tasks if t.id != task_id]
        self.edges = [e for e in self.edges if task_id not in (e.source.task, e.target.task)]
        self.positions.pop(task_id, None)
        self.dashboards = [d.model_copy(update={"cards": [c for c in d.cards if c.task != task_id]})
                           for d in self.dashboards]  # a removed task's cards go with it
        self.groups = [g.model_copy(update={"tasks": [t for t in g.tasks if t != task_id]}) for g in self.groups]

    def _replace(self, task_id: str, **changes: Any) -> TaskSpec:
        for i, task in enumerate(self.tasks):
            if task.id == task_id:
                self.tasks[i] = TaskSpec.model_validate({**task.model_dump(), **changes})
                return self.tasks[i]
        raise KeyError(task_id)

    def set_config(self, task_id: str, config: Mapping[str, Any]) -> TaskSpec:
        return self._replace(task_id, config=dict(config))

    def pin(self, task_id: str, agent: str | None) -> TaskSpec:
        """Run the task on ``agent``, or leave it to placement with ``None``."""
        return self._replace(task_id, agent=agent or None)

    def set_replicas(self, task_id: str, replicas: int) -> TaskSpec:
        """``replicas`` instances of the task, placed anew (docs/deployments.md#replicas)."""
        return self._replace(task_id, replicas=replicas, agents=None)

    def set_label(self, task_id: str, label: str | None) -> TaskSpec:
        return self._replace(task_id, label=label or None)

    # -- comments and groups on the canvas ------------------------------------------------------
    def _new_mark_id(self, prefix: str, taken: set[str]) -> str:
        n = 1
        while f"{prefix}{n}" in taken:
            n += 1
        return f"{prefix}{n}"

    def add_note(self, text: str, x: int, y: int) -> NoteSpec:
        note = NoteSpec(id=self._new_mark_id("note", {n.id for n in self.notes}), text=text, x=x, y=y)
        self.notes.append(note)
        return note

    def note(self, note_id: str) -> NoteSpec:
        for note in self.notes:
            if note.id == note_id:
                return note
        raise KeyError(note_id)

    def set_note(self, note_id: str, **changes: Any) -> NoteSpec:
        """Change a comment's ``text``, ``x`` or ``y``; ValueError when a value is out of bounds."""
        for i, note in enumerate(self.notes):
            if note.id == note_id:
                self.notes[i] = NoteSpec.model_validate({**note.model_dump(), **changes})
                return self.notes[i]
        raise KeyError(note_id)

    def remove_note(self, note_id: str) -> None:
        self.notes = [n for n in self.notes if n.id != note_id]

    def add_group(self, label: str, tasks: list[str], color: str | None = None) -> GroupSpec:
        known = {t.id for t in self.tasks}
        group = GroupSpec(id=self._new_mark_id("group", {g.id for g in self.groups}), label=label,
                          tasks=[t for t in dict.fromkeys(tasks) if t in known], color=color)
        self.groups.append(group)
        return group

    def group(self, group_id: str) -> GroupSpec:
        for group in self.groups:
            if group.id == group_id:
                return group
        raise KeyError(group_id)

    def set_group(self, group_id: str, **changes: Any) -> GroupSpec:
        """Change a group's ``label``, ``color`` or ``tasks``; ValueError when a value is not valid."""
        for i, group in enumerate(self.groups):
            if group.id == group_id:
                self.groups[i] = GroupSpec.model_validate({**group.model_dump(), **changes})
                return self.groups[i]
        raise KeyError(group_id)

    def remove_group(self, group_id: str) -> None:
        """Drop the box; its tasks stay."""
        self.groups = [g for g in self.groups if g.id != group_id]

    # -- wires ----------------------------------------------------------------------------------
    @staticmethod
    def edge_key(edge: EdgeSpec) -> str:
        return f"{edge.source}->{edge.target}"

    def connect(self, source: str, target: str, types: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Wire ``source`` (``task.port``) to ``target``; returns the problems (nothing is changed then).

        The problems are the spec rules (an input fed twice, an unknown task) and the catalog's
        (a missing port, metadata that disagree: ``incompatible (content: 'text' != 'number')``).
        """
        try:
            edge = EdgeSpec.model_validate({"from": source, "to": target})
        except ValueError as exc:
            return [str(exc)]
        for other in self.edges:
            if other.target == edge.target:
                if edge.target.task is not None:
                    return [f"input {edge.target} is fed by {other.source} already: delete that wire first"]
                if other.source == edge.source:  # many tasks may publish to one topic, each once
                    return [f"{edge.source} → {edge.target} is wired already"]
        trial = Draft(id=self.id, tasks=self.tasks, edges=[*self.edges, edge])
        try:
            spec = trial.to_spec()
        except SpecError as exc:
            return exc.errors or [str(exc)]
        ends = (f"edge {edge.source} -> {edge.target}:", f"{edge.source}:", f"{edge.target}:")
        problems = [p for p in check_against_catalog(spec, types) if p.startswith(ends)]
        if not problems:
            self.edges.append(edge)
        return problems

    def dangling(self, types: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """A line for each wire to or from a port its task does not have with its config (a
        calculator whose formula no longer names ``b``); the wire stays until the user deletes it."""
        from edge.ports import catalog_ports

        by_id = {task.id: task for task in self.tasks}
        lines: list[str] = []
        for edge in self.edges:
            for end, side in ((edge.source, 1), (edge.target, 0)):
                task = by_id.get(end.task or "")
                entry = types.get(task.type) if task is not None else None
                if task is None or entry is None:
                    continue  # an unknown task or type: the spec's and the catalog's checks say so
                own = catalog_ports(entry, task.config)[side]
                if end.port not in own:
                    kind = "output" if side else "input"
                    lines.append(f"wire {edge.source} → {edge.target}: {task.id} ({task.type}) has no {kind} "
                                 f"{end.port!r} with its config (it has: {', '.join(own) or 'none'}): delete "
                                 f"the wire or change the config")
        return lines

    # -- topic nodes ----------------------------------------------------------------------------
    def add_topic(self, topic: str) -> None:
        """A topic node to wire to and from (a filter with ``+``/``#`` can only be read);
        :class:`~edge.errors.SpecError` when ``topic`` is not a topic filter."""
        try:
            validate_filter(topic)
        except ValueError as exc:
            raise SpecError(f"not a topic: {exc}") from None
        if topic not in self.topics:
            self.topics.append(topic)

    def remove_topic(self, topic: str) -> int:
        """Drop a topic node and its wires; returns how many wires went."""
        before = len(self.edges)
        self.edges = [e for e in self.edges if topic not in (e.source.topic, e.target.topic)]
        self.topics = [t for t in self.topics if t != topic]
        self.positions.pop(f"topic:{topic}", None)
        return before - len(self.edges)

    def disconnect(self, key: str) -> bool:
        gone = [e for e in self.edges if self.edge_key(e) == key]
        self.edges = [e for e in self.edges if self.edge_key(e) != key]
        for edge in gone:  # a topic node stays until it is removed, wired or not
            for end in (edge.source, edge.target):
                if end.topic is not None and end.topic not in self.topics:
                    self.topics.append(end.topic)
        return bool(gone)

    def problems(self, types: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Everything wrong with the draft as it stands (spec rules, then the catalog)."""
        try:
            spec = self.to_spec()
        except SpecError as exc:
            return exc.errors or [str(exc)]
        return check_against_catalog(spec, types)


def valid_deployment_id(text: str) -> str | None:
    """None when ``text`` can be a deployment id, else why not."""
    if is_valid_id(text):
        return None
    return "letters, digits, - and _ only, 1 to 64 of them"
