"""Shared catalog documents on the broker: which there are, who names them, and clearing the ones
nobody names (``edge catalogs``, docs/protocol.md "Shared catalogs").

A document (``{root}/catalogs/{hash}``) stays retained after the last agent naming it moved to
another software version or configuration. :func:`prune` clears those with an empty retained
message, and is safe by construction:

* it acts only on a complete view: the fleet has :meth:`~edge.controller.fleet.Fleet.synced` and
  fetched everything it knew to be missing (else nothing is cleared), and no online agent's catalog
  is unknown (an agent announcing itself publishes its document before its catalog: an online agent
  whose catalog has not come may be about to name one; it is waited for, else nothing is cleared);
* a document is cleared only if no agent catalog the fleet holds names it, retained or live, online
  or offline, checked again right before each clear;
* after clearing, a round trip on the fleet's sync topic brings any catalog that reached the broker
  meanwhile (an agent announcing itself as its document was cleared): a cleared document such a
  catalog names is published again, from the verified bytes fetched before clearing.

And a document cleared under an agent the view missed comes back: a controller that lacks the
document an online agent names asks that agent to publish it again
(:class:`~edge.controller.fleet.Fleet`, :meth:`edge.presence.Presence.answer`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Literal

from edge.bus import Message
from edge.controller.fleet import Fleet
from edge.presence import catalog_hash

__all__ = ["CatalogDocumentInfo", "PruneReport", "Pruned", "documents", "prune", "unknown_types_note"]

log = logging.getLogger("edge.controller")

Outcome = Literal["cleared", "would clear", "kept", "published again"]
DocumentState = Literal["ok", "refused", "not retained"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogDocumentInfo:
    """One shared catalog the broker holds, or that an agent names."""

    hash: str
    #: bytes of the retained document; None when an agent names it and the broker holds none
    size: int | None
    #: agent catalogs naming it (retained or live), and how many of those agents are online
    agents: int
    online: int
    #: why it was refused (one line: ``shared catalog … refused: …``), None when verified or not come
    problem: str | None

    @property
    def state(self) -> DocumentState:
        if self.size is None:
            return "not retained"
        return "refused" if self.problem is not None else "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What :func:`prune` did with one document."""

    hash: str
    size: int
    outcome: Outcome
    why: str

    def line(self) -> str:
        return f"{self.outcome} {self.hash} ({self.size:,} bytes): {self.why}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneReport:
    """One :class:`Pruned` per retained document; ``blocked`` says why nothing was cleared, if so."""

    documents: tuple[Pruned, ...] = ()
    blocked: str | None = None

    @property
    def cleared(self) -> list[Pruned]:
        return [d for d in self.documents if d.outcome == "cleared"]


def _namers(fleet: Fleet) -> dict[str, tuple[int, int]]:
    """hash -> (agents naming it, how many of them online)."""
    counts: dict[str, tuple[int, int]] = {}
    for agent in fleet.agents.values():
        if agent.catalog is not None:
            named, online = counts.get(agent.catalog, (0, 0))
            counts[agent.catalog] = (named + 1, online + agent.online)
    return counts


def documents(fleet: Fleet) -> list[CatalogDocumentInfo]:
    """Every document the broker holds or an agent names, by hash."""
    namers = _namers(fleet)
    return [CatalogDocumentInfo(hash=digest, size=fleet.catalog_documents.get(digest),
                                agents=namers.get(digest, (0, 0))[0], online=namers.get(digest, (0, 0))[1],
                                problem=fleet.document_problem(digest) if digest in fleet.catalog_documents else None)
            for digest in sorted(set(fleet.catalog_documents) | set(namers))]


def unknown_types_note(fleet: Fleet) -> str | None:
    """One line when some agents' types are unknown (their shared catalog has not come or was refused): a type
    said to be unknown may be theirs. None when every agent's catalog is known."""
    ids = sorted(a.id for a in fleet.agents.values() if a.catalog_note is not None)
    if not ids:
        return None
    named = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    return (f"the task types of {len(ids)} agent{'s' if len(ids) != 1 else ''} ({named}) are unknown: the shared "
            "catalog they name has not come or was refused (edge ls agents)")


def _named_by(fleet: Fleet, digest: str) -> list[str]:
    return sorted(a.id for a in fleet.agents.values() if a.catalog == digest)


async def prune(fleet: Fleet, *, dry_run: bool = False, wait: float = 5.0) -> PruneReport:
    """Clear the retained documents no agent catalog names (see the module docstring); ``dry_run``: say what
    would be cleared, clear nothing. ``fleet`` must have :meth:`~Fleet.synced`; ``wait``: s an online agent's
    catalog may take to come."""
    missing = fleet.missing()
    if missing:
        return PruneReport(blocked=f"the view of the fleet is not complete ({len(missing)} retained topics not "
                                   f"fetched yet, e.g. {missing[0]}): try again")

    def unknown(f: Fleet) -> list[str]:
        return [a for a in f.catalogs_unknown if (info := f.agents.get(a)) is not None and info.online]

    with contextlib.suppress(TimeoutError):
        await fleet.wait_for(lambda f: not unknown(f), wait)
    waiting = unknown(fleet)
    if waiting:
        more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
        return PruneReport(blocked=f"agent {', '.join(waiting[:3])}{more} is online and its catalog has not come "
                                   f"within {wait:g} s: it may name one of the documents")
    namers = _namers(fleet)
    results: dict[str, Pruned] = {}
    candidates: dict[str, int] = {}
    for digest, size in sorted(fleet.catalog_documents.items()):
        named, online = namers.get(digest, (0, 0))
        if named:
            results[digest] = Pruned(hash=digest, size=size, outcome="kept",
                                     why=f"named by {named} agent{'s' if named != 1 else ''} ({online} online)")
        else:
            candidates[digest] = size
    if not dry_run and candidates:
        held = await _fetch(fleet, list(candidates))  # to publish again one named while it was cleared
        cleared = []
        for digest, size in candidates.items():
            if _named_by(fleet, digest):  # named since we looked: kept
                continue
            await fleet.bus.publish(fleet.topics.catalog_document(digest), b"", qos=1, retain=True)
            log.info("cleared the shared catalog %s (%d bytes): no agent names it", digest, size)
            cleared.append(digest)
        await fleet.round_trip()  # a catalog that reached the broker meanwhile has come
        for digest in cleared:
            namers_now = _named_by(fleet, digest)
            size = candidates[digest]
            if not namers_now:
                results[digest] = Pruned(hash=digest, size=size, outcome="cleared",
                                         why="no retained agent catalog names it")
            elif digest in held:
                await fleet.bus.publish(fleet.topics.catalog_document(digest), held[digest], qos=1, retain=True)
                results[digest] = Pruned(hash=digest, size=size, outcome="published again",
                                         why=f"agent {namers_now[0]} named it as it was cleared")
            else:  # garbage under its hash: the agents' controllers ask them for it (edge.controller.fleet)
                results[digest] = Pruned(hash=digest, size=size, outcome="cleared",
                                         why=f"not a valid document; agent {namers_now[0]} names it and is asked "
                                             "for it")
    for digest, size in candidates.items():
        if digest not in results:
            results[digest] = Pruned(hash=digest, size=size, outcome="would clear" if dry_run else "kept",
                                     why="no retained agent catalog names it" if dry_run
                                     else f"named by agent {', '.join(_named_by(fleet, digest)[:3])} since")
    return PruneReport(documents=tuple(results[d] for d in sorted(results)))


async def _fetch(fleet: Fleet, digests: list[str]) -> dict[str, bytes]:
    """The retained bytes of each document that match its hash (garbage is never published again)."""
    held: dict[str, bytes] = {}

    def keep(message: Message) -> None:
        digest = message.topic.rsplit("/", 1)[-1]
        if message.payload and catalog_hash(message.payload) == digest:
            held[digest] = message.payload

    async with contextlib.AsyncExitStack() as stack:
        for digest in digests:  # each alone: a few documents, one per stale software version or configuration
            await stack.enter_async_context(fleet.bus.subscribe(fleet.topics.catalog_document(digest), qos=0,
                                                                callback=keep))
        await fleet.round_trip()
    return held
