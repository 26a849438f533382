"""Versions of a deployment as a user reads them: what differs between two, and where one came from.

``+ task gen (numbers)``, ``- wire gen.out → add.a``, ``task add: config factor: 2 → 3``: tasks
added, removed and changed (type, agent, label, each config key), wires added and removed, the
label. The history shows each version's lines against the one before; the editor shows what a
version deployed elsewhere changed, and what deploying a draft over it would undo.
:func:`origin_text` says when and from where a version was deployed (the controller's stamp,
:class:`~edge.graph.Origin`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from edge.graph import DeploymentSpec, TaskSpec

__all__ = ["diff_specs", "origin_text", "shown_value"]

VIA = {"cli": "from the CLI", "panel": "from the panel", "api": "by a program"}

MAX_VALUE = 60  # characters of a config value shown in a line


def shown_value(value: Any) -> str:
    """A config value as JSON (text readable as typed: ``°`` stays ``°``), cut to :data:`MAX_VALUE`."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _task_changes(old: TaskSpec, new: TaskSpec) -> list[str]:
    head = f"task {new.id}:"
    lines: list[str] = []
    if old.type != new.type:
        lines.append(f"{head} type {old.type} → {new.type}")
    if old.agent != new.agent:
        lines.append(f"{head} runs on {old.agent or '(placement)'} → {new.agent or '(placement)'}")
    if old.label != new.label:
        lines.append(f"{head} label {shown_value(old.label or '')} → {shown_value(new.label or '')}")
    for key in sorted(set(old.config) | set(new.config)):
        if key not in new.config:
            lines.append(f"{head} config - {key} (was {shown_value(old.config[key])})")
        elif key not in old.config:
            lines.append(f"{head} config + {key}: {shown_value(new.config[key])}")
        elif old.config[key] != new.config[key]:
            lines.append(f"{head} config {key}: {shown_value(old.config[key])} → {shown_value(new.config[key])}")
    return lines


def diff_specs(old: DeploymentSpec | None, new: DeploymentSpec) -> list[str]:
    """The changes from ``old`` to ``new`` (every task, wire and the label), empty when they run the same.

    The version number and the deployment stamp (``deployed``) are not compared.
    """
    if old is None:
        return [f"+ task {t.id} ({t.type})" for t in new.tasks] + [
            f"+ wire {e.source} → {e.target}" for e in new.edges]
    lines: list[str] = []
    if old.label != new.label:
        lines.append(f"label {shown_value(old.label or '')} → {shown_value(new.label or '')}")
    before = {t.id: t for t in old.tasks}
    after = {t.id: t for t in new.tasks}
    lines += [f"- task {t.id} ({t.type})" for t in old.tasks if t.id not in after]
    lines += [f"+ task {t.id} ({t.type})" for t in new.tasks if t.id not in before]
    for task in new.tasks:
        if task.id in before:
            lines += _task_changes(before[task.id], task)
    old_edges = [str(e.source) + " → " + str(e.target) for e in old.edges]
    new_edges = [str(e.source) + " → " + str(e.target) for e in new.edges]
    lines += [f"- wire {e}" for e in old_edges if e not in new_edges]
    lines += [f"+ wire {e}" for e in new_edges if e not in old_edges]
    if old.dashboards != new.dashboards:  # the panel's layout: no task runs differently for it
        lines.append(f"dashboards {_boards_text(old)} → {_boards_text(new)}")
    return lines + mark_changes(old, new)


def mark_changes(old: DeploymentSpec, new: DeploymentSpec) -> list[str]:
    """The comments and groups of the canvas added, removed and changed (agents ignore them)."""
    lines: list[str] = []
    for kind, before_items, after_items in (("comment", old.notes, new.notes), ("group", old.groups, new.groups)):
        before: dict[str, Any] = {m.id: m for m in before_items}
        after: dict[str, Any] = {m.id: m for m in after_items}
        lines += [f"- {kind} {ident}" for ident in before if ident not in after]
        lines += [f"+ {kind} {ident}" for ident in after if ident not in before]
        for ident, mark in after.items():
            if ident in before and before[ident] != mark:
                fields = [k for k in type(mark).model_fields if getattr(before[ident], k) != getattr(mark, k)]
                lines.append(f"{kind} {ident}: {', '.join(fields)} changed")
    return lines


def _boards_text(spec: DeploymentSpec) -> str:
    text = "; ".join(f"{b.id}: " + ", ".join(f"{c.task} {c.w}x{c.h}" for c in b.cards) for b in spec.dashboards)
    return shown_value(text or "none")


def origin_text(spec: DeploymentSpec) -> str:
    """``deployed 2026-12-05 01:32:10 UTC from the CLI on lab-pc`` (``as a rollback to v1`` when one)."""
    origin = spec.deployed
    if origin is None:
        return "deployed (when and from where: not recorded)"
    parts = ["deployed"]
    if origin.at > 0:
        parts.append(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(origin.at / 1000)))
    parts.append(VIA.get(origin.via, f"via {origin.via}"))
    if origin.host:
        parts.append(f"on {origin.host}")
    if origin.rollback_of is not None:
        parts.append(f"as a rollback to v{origin.rollback_of}")
    return " ".join(parts)
