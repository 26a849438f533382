"""What the retained message on a deployment's topic says: a spec, a removal, or nothing.

Desired state lives on the broker, and brokers lose it (a Mosquitto killed before it saved, the
embedded broker restarted). So a deployment is removed only by an explicit **removal record** (a
tombstone), never inferred from absence: the controller's ``remove`` publishes, retained on the
deployment's own topic, the CBOR map::

    {"v": 1, "removed": true, "version": N, "at": <ms>}

where ``N`` is the version of the spec it removes (every version up to ``N`` is gone). An agent
offline during the removal finds it there when it comes back, on every broker that keeps
retained messages. Each removed deployment keeps one such small message (~40 bytes) in the
retained store until it is deployed again (which replaces it) or purged by hand.

Every holder of a record (agents keep theirs on disk) applies one rule, :func:`supersedes`:
**the highest version wins; at the same version a removal beats a spec.** An agent that holds a
record better than the broker's, or finds nothing on the broker, publishes its own again; one
that finds a better record on the broker takes it. Two different specs of the same version
(two controllers deploying at once) are not ordered: the broker's is taken, so holders converge
on whatever the broker kept. See docs/deployments.md for the races that remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.errors import FrameError, SpecError
from edge.frames import decode_value, encode_value, now_ms
from edge.graph import DeploymentSpec, parse_spec
from edge.protocol import MAX_REMOVAL_VERSION, PROTOCOL_REVISION, RemovalRecord, ValidationError, problem

__all__ = ["Record", "Removal", "decode_record", "encode_record", "removal", "supersedes"]

MAX_VERSION = MAX_REMOVAL_VERSION  # a removal's version: beyond this it is garbage, not a version


@dataclass(frozen=True, slots=True)
class Removal:
    """A deployment removed at ``version`` (and every earlier one), at ``at`` ms (the controller's clock)."""

    id: str
    version: int
    at: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The record as published (:class:`edge.protocol.RemovalRecord`)."""
        return RemovalRecord(v=PROTOCOL_REVISION, removed=True, version=self.version, at=self.at).model_dump()


Record = DeploymentSpec | Removal


def removal(spec_id: str, version: int) -> Removal:
    return Removal(spec_id, version, now_ms())


def encode_record(record: Record) -> bytes:
    return encode_value(record.to_dict())


def decode_record(deployment: str, payload: bytes) -> Record | None:
    """The record retained on ``deployment``'s topic: None for an empty payload (nothing there);
    :class:`SpecError` for anything that is neither a valid spec of that id nor a removal."""
    if not payload:
        return None
    try:
        data = decode_value(payload)
    except FrameError as exc:
        raise SpecError(f"not a CBOR deployment spec or removal record: {exc}") from None
    if isinstance(data, dict) and "removed" in data:
        try:
            record = RemovalRecord.model_validate(data)
        except ValidationError as exc:
            raise SpecError(f"not a valid removal record: {problem(exc)}") from None
        return Removal(deployment, record.version, record.at)
    spec = parse_spec(data)
    if spec.id != deployment:
        raise SpecError(f"spec id {spec.id!r} published on the topic of deployment {deployment!r}")
    return spec


def supersedes(mine: Record, theirs: Record | None) -> bool:
    """Whether ``mine`` should replace ``theirs`` on the broker (``theirs`` None: nothing there).

    Strictly better only: equal records, or two specs of the same version, are left as they are."""
    if theirs is None:
        return True
    if mine.version != theirs.version:
        return mine.version > theirs.version
    return isinstance(mine, Removal) and not isinstance(theirs, Removal)
