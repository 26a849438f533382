"""Copy and paste of part of a graph, within a deployment and across deployments.

What is copied is YAML text in the shape of a spec (``tasks``, ``edges``, ``notes``, ``groups``)
plus where the nodes were (``positions``), so a pasted piece keeps its layout, and any spec
(an exported file, a piece copied from another panel) can be pasted too. Only the wires between
copied tasks (and from or to ``topic:`` ends) are copied: a wire to a task left behind is
dropped. A pasted task whose id is taken is renamed (``scale1`` -> ``scale2``), and its wires
and groups follow the new name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from edge.errors import EdgeError, SpecError
from edge.graph import MAX_XY, EdgeSpec, GroupSpec, NoteSpec, TaskSpec, load_spec_data
from ui.draft import Draft

__all__ = ["MAX_CLIP", "OFFSET", "copy_text", "paste_text"]

MAX_CLIP = 1_000_000  # characters of pasted text
OFFSET = 40  # a pasted piece lands this far right of and below where it was copied from


def copy_text(draft: Draft, task_ids: Iterable[str], note_ids: Iterable[str] = ()) -> str:
    """The tasks ``task_ids`` and comments ``note_ids`` of ``draft``, with their wires and groups, as YAML."""
    chosen = set(task_ids)
    tasks = [t for t in draft.tasks if t.id in chosen]
    ids = {t.id for t in tasks}
    edges = [e for e in draft.edges
             if all(end.task is None or end.task in ids for end in (e.source, e.target))
             and any(end.task is not None for end in (e.source, e.target))]
    wanted_notes = set(note_ids)
    groups = [{**g.model_dump(exclude_none=True), "tasks": [t for t in g.tasks if t in ids]}
              for g in draft.groups if ids & set(g.tasks)]
    data: dict[str, Any] = {
        "tasks": [t.model_dump(exclude_none=True) for t in tasks],
        "edges": [e.to_dict() for e in edges],
        "positions": {k: list(v) for k, v in draft.positions.items() if k in ids},
    }
    notes = [n.model_dump() for n in draft.notes if n.id in wanted_notes]
    if notes:
        data["notes"] = notes
    if groups:
        data["groups"] = groups
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _free(name: str, taken: set[str]) -> str:
    """``name``, or the next of ``name`` without its number with a number that is free (``scale1`` -> ``scale2``)."""
    if name not in taken:
        return name
    base = re.sub(r"\d+$", "", name)[:56] or "task"
    n = 1
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


def _items(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise SpecError(f"{key} must be a list, not {type(value).__name__}")
    return value


def _xy(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= MAX_XY for v in value):
        return int(value[0]), int(value[1])
    return None


def paste_text(draft: Draft, text: str) -> list[str]:
    """Add what ``text`` (from :func:`copy_text`, or any spec) holds to ``draft``; returns the new
    task ids. :class:`~edge.errors.SpecError` (the draft unchanged) when it is not a piece of a graph."""
    if len(text) > MAX_CLIP:
        raise SpecError(f"the pasted text is longer than {MAX_CLIP} characters")
    data = load_spec_data(text)
    if not isinstance(data, Mapping) or not any(k in data for k in ("tasks", "notes", "groups")):
        raise SpecError("not a piece of a graph: YAML with tasks (and edges, notes, groups) is")
    problems: list[str] = []

    def parse(key: str, model: Any) -> list[Any]:
        parsed = []
        for i, item in enumerate(_items(data, key)):
            try:
                parsed.append(model.model_validate(item))
            except (ValidationError, EdgeError, ValueError) as exc:
                problems.append(f"{key}.{i}: {' '.join(str(exc).split())[:300]}")
        return parsed

    tasks: list[TaskSpec] = parse("tasks", TaskSpec)
    edges: list[EdgeSpec] = parse("edges", EdgeSpec)
    notes: list[NoteSpec] = parse("notes", NoteSpec)
    groups: list[GroupSpec] = parse("groups", GroupSpec)
    if problems:
        raise SpecError("cannot paste that", errors=problems)
    found = data.get("positions")
    positions: Mapping[str, Any] = found if isinstance(found, Mapping) else {}

    taken = {t.id for t in draft.tasks}
    renamed: dict[str, str] = {}
    for task in tasks:
        if task.id in renamed:  # twice in the text: the first one counts
            continue
        renamed[task.id] = new = _free(task.id, taken)
        taken.add(new)
    trial = _merged(draft, tasks, edges, groups, renamed)
    added = [t.id for t in trial.tasks[len(draft.tasks):]]
    draft.tasks, draft.edges, draft.groups = trial.tasks, trial.edges, trial.groups
    for old, new in renamed.items():
        xy = _xy(positions.get(old))
        if xy is not None:
            draft.positions[new] = (min(MAX_XY, xy[0] + OFFSET), min(MAX_XY, xy[1] + OFFSET))
    note_ids = {n.id for n in draft.notes}
    for note in notes:
        nid = _free(note.id, note_ids)
        note_ids.add(nid)
        draft.notes.append(note.model_copy(update={"id": nid, "x": min(MAX_XY, note.x + OFFSET),
                                                   "y": min(MAX_XY, note.y + OFFSET)}))
    return added


def _merged(draft: Draft, tasks: list[TaskSpec], edges: list[EdgeSpec], groups: list[GroupSpec],
            renamed: Mapping[str, str]) -> Draft:
    """A copy of ``draft`` with the tasks (renamed), their wires and their groups added."""
    trial = Draft(id=draft.id, tasks=list(draft.tasks), edges=list(draft.edges), groups=list(draft.groups))
    added: list[str] = []
    for task in tasks:
        new = renamed[task.id]
        if new in added:
            continue
        trial.tasks.append(task.model_copy(update={"id": new}))
        added.append(new)
    fed = {(e.target.task, e.target.port) for e in trial.edges if e.target.task is not None}
    for edge in edges:
        ends = [edge.source, edge.target]
        if any(end.task is not None and end.task not in renamed for end in ends):
            continue  # a wire to a task that was not copied
        data_edge = {"from": _rename(edge.source, renamed), "to": _rename(edge.target, renamed)}
        moved = EdgeSpec.model_validate(data_edge)
        if moved.target.task is not None and (moved.target.task, moved.target.port) in fed:
            continue
        if moved.target.task is not None:
            fed.add((moved.target.task, moved.target.port))
        trial.edges.append(moved)
    mark_ids = {g.id for g in trial.groups}
    for group in groups:
        members = [renamed[t] for t in group.tasks if t in renamed]
        if members:
            gid = _free(group.id, mark_ids)
            mark_ids.add(gid)
            trial.groups.append(group.model_copy(update={"id": gid, "tasks": members}))
    return trial


def _rename(end: Any, renamed: Mapping[str, str]) -> str:
    if end.task is None:
        return str(end)
    return f"{renamed[end.task]}.{end.port}"
