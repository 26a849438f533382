"""How task states look on every page: one colour per state, and a deployment's summary."""

from __future__ import annotations

from dataclasses import dataclass

from edge.controller import Fleet

__all__ = ["STATE_COLORS", "Summary", "state_color", "summarize"]

STATE_COLORS = {"running": "green", "starting": "orange", "failed": "red", "invalid": "purple",
                "stopped": "grey", "pending": "blue"}


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, "grey")


@dataclass(frozen=True, slots=True)
class Summary:
    total: int
    running: int
    failed: int
    states: dict[str, str]

    @property
    def text(self) -> str:
        extra = f", {self.failed} failing" if self.failed else ""
        return f"{self.running}/{self.total} running{extra}"


def summarize(fleet: Fleet, deployment: str) -> Summary:
    """Each task's state (``pending`` until its agent reports) and the counts, for a deployed spec."""
    spec = fleet.deployments.get(deployment)
    if spec is None:
        return Summary(0, 0, 0, {})
    states = {}
    for task in spec.tasks:
        status = fleet.statuses.get((deployment, task.id))
        states[task.id] = status.state if status is not None else "pending"
    running = sum(1 for s in states.values() if s == "running")
    failed = sum(1 for s in states.values() if s in ("failed", "invalid"))
    return Summary(len(states), running, failed, states)
