"""How task states look on every page: one colour per shown state, and a deployment's summary.

What state a task is shown in is decided once, in :mod:`edge.controller.views` (its status and its
agent's liveness); this module only gives each shown state its colour and CSS class.
"""

from __future__ import annotations

from edge.controller import Fleet
from edge.controller.views import AGENT_OFFLINE, DeploymentSummary, TaskView
from edge.controller.views import summarize as _summarize

__all__ = ["STATE_COLORS", "graph_states", "state_class", "state_color", "summarize", "view_color"]

STATE_COLORS = {"running": "green", "starting": "orange", "failed": "red", "invalid": "purple",
                "stopped": "grey", "pending": "blue", AGENT_OFFLINE: "blue-grey"}
#: a running task with a crash notice (it crashed and was restarted lately)
RESTARTED = "restarted"
RESTARTED_COLOR = "amber"


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, "grey")


def state_class(state: str) -> str:
    """The CSS-safe name of a shown state (``agent offline`` -> ``agent-offline``)."""
    return state.replace(" ", "-")


def view_color(view: TaskView) -> str:
    """A task's colour: its shown state's, amber for a running task that crashed lately."""
    if view.state == "running" and view.notice is not None:
        return RESTARTED_COLOR
    return state_color(view.state)


#: which replica's state a node of a task with replicas takes: the first of these any replica is in
WORST_FIRST = ("failed", "invalid", AGENT_OFFLINE, "starting", "pending", "stopped", RESTARTED, "running")


def graph_states(summary: DeploymentSummary) -> dict[str, str]:
    """Task id -> the node class of the running view's graph (``restarted`` for a running task with a notice);
    a task with replicas takes the worst of its replicas' (:data:`WORST_FIRST`)."""
    by_task: dict[str, list[str]] = {}
    for v in summary.views:
        shown = RESTARTED if v.state == "running" and v.notice is not None else v.state
        by_task.setdefault(v.of or v.task, []).append(shown)
    rank = {state: i for i, state in enumerate(WORST_FIRST)}
    return {task: state_class(min(states, key=lambda s: rank.get(s, -1))) for task, states in by_task.items()}


def summarize(fleet: Fleet, deployment: str) -> DeploymentSummary:
    """Each task's shown state and the counts, for a deployed spec (empty when it is not deployed)."""
    return _summarize(fleet, deployment)
