"""What the panel says of agents whose task types are unknown: their shared catalog has not come or
was refused (docs/protocol.md, "Shared catalogs").

Such an agent has no types in the fleet's model, and a page that listed its types as they are would
show an agent that offers nothing. Every view says instead "catalog pending" or "catalog refused"
with the reason, in the words of ``edge ls agents`` (:attr:`~edge.controller.fleet.AgentInfo.catalog_note`):
the Agents page in a Types badge and a line per distinct reason, the Task types page and the editor's
palette in those lines (their lists hold only the types that came).
"""

from __future__ import annotations

from typing import Any, Final

from nicegui import ui

from edge.controller import AgentInfo, Fleet

__all__ = ["MAX_NOTES", "CatalogNotes", "catalog_notes", "types_badge"]

MAX_NOTES: Final = 5  # distinct reasons listed; the rest are counted


def types_badge(agent: AgentInfo, note: str | None, counted: dict[int, int] | None = None) -> dict[str, Any]:
    """A Types badge: how many types the agent can run, or why they are unknown (``note``,
    :meth:`~edge.controller.fleet.Fleet.catalog_note`: the whole line in its title). ``counted``: the
    counts of type lists already counted in this pass, by list (agents naming one shared catalog share
    its list: 10,000 agents' badges count it once)."""
    if note is not None and agent.catalog_note is None:  # its own catalog has not come
        return {"text": "no catalog yet", "color": "grey", "title": note, "sort": -3}
    if note is None:
        count = counted.get(id(agent.types)) if counted is not None else None
        if count is None:
            count = sum(1 for t in agent.types if t.get("available", True))
            if counted is not None:
                counted[id(agent.types)] = count
        return {"text": f"{count} type{'' if count == 1 else 's'}", "color": "blue-grey", "sort": count}
    if agent.catalog_problem is not None:
        return {"text": "catalog refused", "color": "red", "title": note, "sort": -2}
    return {"text": "catalog pending", "color": "orange", "title": note, "sort": -1}


def catalog_notes(fleet: Fleet) -> list[str]:
    """One line per distinct reason some agents' types are unknown: how many agents, the first few, the reason."""
    by_note: dict[str, list[str]] = {}
    for agent in fleet.agents.values():  # every second on the Agents page: 10,000 agents, sorted only if noted
        note = agent.catalog_note
        if note is not None:
            by_note.setdefault(note, []).append(agent.id)
    lines = []
    for note, ids in sorted(by_note.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_NOTES]:
        ids.sort()
        named = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        what = "catalog refused" if fleet.agents[ids[0]].catalog_problem is not None else "catalog pending"
        lines.append(f"{what} for {len(ids)} agent{'' if len(ids) == 1 else 's'} ({named}): {note}")
    if len(by_note) > MAX_NOTES:
        lines.append(f"and {len(by_note) - MAX_NOTES} more shared catalogs not received or refused")
    return lines


class CatalogNotes(ui.column):
    """The lines of :func:`catalog_notes`, a refusal in the error colour, a pending catalog in the warning one;
    :meth:`show` redraws only when they changed."""

    def __init__(self) -> None:
        super().__init__()
        self.classes("gap-0").mark("catalog-notes")
        self.lines: list[str] = []

    def show(self, lines: list[str]) -> None:
        if lines == self.lines:
            return
        self.lines = list(lines)
        self.clear()
        with self:
            for line in lines:
                ui.label(line).classes("text-caption " + ("text-negative" if line.startswith("catalog refused")
                                                          else "text-orange-9"))
