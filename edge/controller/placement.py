"""Placing unpinned tasks on agents.

The rule: a task without ``agent`` goes to an **online** agent whose catalog offers its type
(available), choosing the one that runs the **fewest task instances** (counted over every
deployment the fleet knows, plus the tasks this spec has placed so far), ties broken by agent id.
So tasks spread across agents, and the same fleet and spec always give the same placement.
A task that is already running on an eligible agent (an update of a deployed spec) stays
there, so an update does not move tasks around. Pinned tasks are kept as they are; a pin to an
agent that is known and online but does not offer the type is a problem, a pin to an agent that
is offline or not yet known is allowed (it is desired state: the agent runs it when it comes).

A task with ``replicas: N`` gets ``agents``, one per replica: each replica goes to the eligible
agent with the fewest instances **that runs no other replica of the task yet**, so replicas spread
over as many agents as offer the type; only when there are fewer such agents than replicas does an
agent take a second one. A replica keeps the agent it ran on (its previous placement) while that
agent is eligible and not already taken by another replica. ``agent`` pins every replica to it.
"""

from __future__ import annotations

from edge.controller.fleet import Fleet
from edge.graph import DeploymentSpec, TaskSpec

__all__ = ["place"]


def place(spec: DeploymentSpec, fleet: Fleet) -> tuple[DeploymentSpec, list[str]]:
    """``spec`` with every task pinned to an agent, and the problems that prevented it."""
    problems: list[str] = []
    load = fleet.load()
    previous = fleet.deployments.get(spec.id)
    if previous is not None:  # this spec's own tasks are about to be replaced: do not count them twice
        for task in previous.tasks:
            for _, ran_on in task.instances():
                if ran_on is not None:
                    load[ran_on] = load.get(ran_on, 1) - 1
    tasks = []
    for task in spec.tasks:
        if (task.replicas > 1 or task.agents is not None) and task.agent is None:
            placed, problem = _place_replicas(spec, task, fleet, load, previous)
            if problem:
                problems.append(problem)
            tasks.append(placed)
            continue
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


def _place_replicas(spec: DeploymentSpec, task: TaskSpec, fleet: Fleet, load: dict[str, int],
                    previous: DeploymentSpec | None) -> tuple[TaskSpec, str | None]:
    """``task`` with an agent for each replica (kept where a user listed them), or the problem."""
    if task.agents is not None:  # pinned one by one: each pin as a pin
        for pin in dict.fromkeys(task.agents):
            known = fleet.agents.get(pin)
            if known is not None and known.online and not known.offers(task.type):
                return task, f"task {task.id!r}: agent {pin!r} does not offer type {task.type!r}"
        return task, None
    eligible = [a.id for a in fleet.online if a.offers(task.type)]
    if not eligible:
        return task, f"task {task.id!r}: no online agent offers type {task.type!r}"
    old = next((t for t in previous.tasks if t.id == task.id), None) if previous is not None else None
    placed_before = dict(old.instances()) if old is not None else {}
    before: list[str | None] = []
    for key, _ in task.instances():  # where the spec had each replica, else where its status says it ran
        status = fleet.statuses.get((spec.id, key))
        before.append(placed_before.get(key) or (status.agent if status else None))
    chosen: list[str | None] = [None] * task.replicas
    for i, stay in enumerate(before):  # replicas stay where they ran, one per agent
        if stay is not None and stay in eligible and stay not in chosen:
            chosen[i] = stay
            load[stay] = load.get(stay, 0) + 1
    for i in range(task.replicas):
        if chosen[i] is None:
            pick = min(eligible, key=lambda a: (a in chosen, load.get(a, 0), a))
            chosen[i] = pick
            load[pick] = load.get(pick, 0) + 1
    agents = tuple(a for a in chosen if a is not None)
    return task.model_copy(update={"agents": agents}), None
