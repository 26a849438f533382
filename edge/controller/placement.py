"""Placing unpinned tasks on agents.

The rule: a task without ``agent`` goes to an **online** agent whose catalog offers its type
(available), choosing the one that runs the **fewest task instances** (counted over every
deployment the fleet knows, plus the tasks this spec has placed so far), ties broken by agent id.
So tasks spread across agents, and the same fleet and spec always give the same placement.
A task that is already running on an eligible agent (an update of a deployed spec) stays
there, so an update does not move tasks around. Pinned tasks are kept as they are; a pin to an
agent that is known and online but does not offer the type is a problem, a pin to an agent that
is offline or not yet known is allowed (it is desired state: the agent runs it when it comes).
"""

from __future__ import annotations

from edge.controller.fleet import Fleet
from edge.graph import DeploymentSpec

__all__ = ["place"]


def place(spec: DeploymentSpec, fleet: Fleet) -> tuple[DeploymentSpec, list[str]]:
    """``spec`` with every task pinned to an agent, and the problems that prevented it."""
    problems: list[str] = []
    load = fleet.load()
    previous = fleet.deployments.get(spec.id)
    if previous is not None:  # this spec's own tasks are about to be replaced: do not count them twice
        for task in previous.tasks:
            if task.agent is not None:
                load[task.agent] = load.get(task.agent, 1) - 1
    tasks = []
    for task in spec.tasks:
        if task.agent is not None:
            agent = fleet.agents.get(task.agent)
            if agent is not None and agent.online and not agent.offers(task.type):
                why = next((t.get("reason") for t in agent.types
                            if t.get("name") == task.type and t.get("available") is False), None)  # its device
                problems.append(f"task {task.id!r}: agent {task.agent!r} does not offer type {task.type!r}"
                                + (f" (unavailable there: {why})" if why else ""))
            tasks.append(task)
            continue
        eligible = sorted((a for a in fleet.online if a.offers(task.type)), key=lambda a: (load.get(a.id, 0), a.id))
        if not eligible:
            problems.append(f"task {task.id!r}: no online agent offers type {task.type!r}")
            tasks.append(task)
            continue
        status = fleet.statuses.get((spec.id, task.id))
        before = {status.agent if status else None}
        if previous is not None:
            before |= {t.agent for t in previous.tasks if t.id == task.id}
        sticky = next((a for a in eligible if a.id in before), None)
        chosen = sticky or eligible[0]
        load[chosen.id] = load.get(chosen.id, 0) + 1
        tasks.append(task.model_copy(update={"agent": chosen.id}))
    return spec.model_copy(update={"tasks": tasks}), problems
