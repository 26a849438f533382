"""Beside the editor's Deploy button: what deploying the draft will change, always up to date.

A button reads the summary (``Changes: 1 added, 2 restarted, 3 unchanged``); its menu lists the
tasks deploying starts, stops, restarts (and why), moves or keeps running, then the changes line
by line. :func:`mark_modified` puts the marker on the editor's nodes changed since the last deploy.
The comparison is :func:`ui.deploy_plan.plan_deploy`'s, with what is deployed *now*.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from edge.graph import DeploymentSpec
from ui.conflict import diff_lines
from ui.deploy_plan import DeployPlan, plan_deploy

__all__ = ["DeploySummary", "mark_modified"]


def mark_modified(nodes: list[dict[str, Any]], plan: DeployPlan) -> None:
    """Give each node of a task changed since the last deploy a ``modified`` field: what changed."""
    marks = plan.modified
    for node in nodes:
        if node.get("kind") == "task" and node["id"] in marks:
            node["modified"] = marks[node["id"]]


class DeploySummary:
    """``DeploySummary()`` where the summary goes; :meth:`update` after every edit and fleet change."""

    def __init__(self) -> None:
        self.plan: DeployPlan | None = None
        self.button = ui.button("", icon="difference").props("flat dense no-caps").mark("deploy-summary")
        with self.button, ui.menu().classes("p-3") as self.menu:
            self.body = ui.column().classes("gap-1").mark("deploy-changes")

    def not_valid(self) -> None:
        """The draft is no valid spec (Deploy refuses it): no summary of what it would change."""
        self.plan = None
        self.button.text = "Changes: unknown until the draft is a valid spec"
        self.body.clear()
        with self.body:
            ui.label("The draft is not a valid spec: the problems are listed under the graph.").classes(
                "text-caption")

    def update(self, deployed: DeploymentSpec | None, draft: DeploymentSpec) -> DeployPlan:
        plan = plan_deploy(deployed, draft)
        if plan == self.plan:
            return plan
        self.plan = plan
        # (no "deploy" in its text: the Deploy button stays the one button of that name)
        prefix = "Changes: " if deployed is not None else "New, to start: "
        self.button.text = prefix + plan.summary()
        self.body.clear()
        with self.body:
            if not plan.changes_anything:
                ui.label("No changes: the draft is what runs now.").classes("text-caption")
                return plan
            ui.label("What Deploy will do to the running tasks").classes("text-subtitle2")
            diff_lines(plan.task_lines(), marker="deploy-tasks")
            ui.label("Changes, line by line").classes("text-subtitle2")
            diff_lines(plan.lines, marker="deploy-lines")
        return plan
