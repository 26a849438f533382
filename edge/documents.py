"""The JSON documents edgetasks writes for other programs, beside its MQTT protocol: typed and bounded.

An agent's health file (:class:`HealthFile`, ``health.json`` in its state folder, which
``edge health`` reads for a container's HEALTHCHECK), and the CLI's ``--json`` outputs:
``edge ls KIND --json`` (:class:`AgentList`, :class:`TypeList`, :class:`DeploymentList`,
:class:`TaskList`), ``edge describe TYPE --json`` (:class:`TypeDescription`) and each line of
``edge tail --json`` (:class:`TailLine`). The writer builds each through its model; a reader in
Python parses it with the same model (``TaskList.model_validate_json(text)``), one in another
language with the model's JSON Schema (``model_json_schema()``). Their fields are documented in
docs/cli.md; names are stable, new fields may be added (a reader ignores the ones it does not know).

Bounds are the protocol's (:mod:`edge.protocol`: ids, names, texts, free-form JSON) and, for
the lists, :data:`MAX_ROWS`: a file or an output that breaks them is refused at parse with one
error type (pydantic's ``ValidationError``), as a control message is.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import Field

from edge.protocol import (
    MAX_BOOT,
    MAX_KEYS,
    Id,
    Int,
    Json,
    JsonMap,
    Name,
    TaskKey,
    TaskState,
    Text,
    _Message,
)
from edge.topics import CATALOG_HASH_PATTERN

__all__ = [
    "MAX_HEALTH_TASKS",
    "MAX_ROWS",
    "AgentList",
    "AgentRow",
    "CatalogList",
    "CatalogRow",
    "ConfigField",
    "DeploymentList",
    "DeploymentRow",
    "HealthFile",
    "Offer",
    "PruneLine",
    "PruneList",
    "TailLine",
    "TaskList",
    "TaskRow",
    "TypeDescription",
    "TypeList",
    "TypeRow",
    "to_json",
]

#: rows of one ``edge ls --json`` document (a fleet of agents running 10,000 tasks each fits)
MAX_ROWS: Final = 1_000_000
#: tasks one health file names (an agent runs 10,000 busy tasks: docs/reliability.md)
MAX_HEALTH_TASKS: Final = 100_000

# a count or a rate as the agents' metrics give it: an integer stays one (1, not 1.0)
Amount = Annotated[int | float, Field(allow_inf_nan=False)]
Ports = Annotated[dict[Id, JsonMap], Field(max_length=MAX_KEYS)]
Boot = Annotated[str, Field(strict=True, max_length=MAX_BOOT)]


def to_json(document: _Message, *, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """``document`` as JSON text, with only the fields it was given (an optional one left out is absent)."""
    return json.dumps(document.dump(), indent=indent, ensure_ascii=ensure_ascii)


class HealthFile(_Message):
    """``health.json`` in an agent's state folder, replaced every report interval (``edge health`` reads it)."""

    agent: Id
    connected: bool = Field(description="whether the agent's bus is connected to its broker now")
    ts: Int = Field(description="when it was written, ms since the epoch")
    pid: Int
    tasks: Annotated[dict[Name, TaskState], Field(max_length=MAX_HEALTH_TASKS)] = Field(
        default_factory=dict, description="deployment/task → its instance's state")
    errors: Int = Field(default=0, description="control messages the agent could not understand since it started")
    epoch: Int = 0
    boot: Boot = ""


# -- edge ls KIND --json -------------------------------------------------------------------------

_R = TypeVar("_R", bound=_Message)
Rows = Annotated[list[_R], Field(max_length=MAX_ROWS)]


class _Listing(_Message):
    """``edge ls KIND --json``: ``{"namespace": ..., KIND: [one row each]}``."""

    namespace: Name


class AgentRow(_Message):
    """An agent the broker knows (its retained state)."""

    id: Id
    online: bool
    epoch: Int
    version: Name
    ts: Int = Field(description="its last state, ms since the epoch")
    host: JsonMap
    types: Annotated[list[Id], Field(max_length=MAX_ROWS)] = Field(description="the types it can run")
    catalog_problem: str | None = Field(default=None, max_length=4096, description="why its types are unknown: "
                                        "the shared catalog its catalog names has not come, or was refused, or its "
                                        "catalog has not come")
    tasks: Int = Field(description="tasks placed on it")
    cpu_percent: Amount | None = Field(description="null when unknown or the agent is offline")
    rss_mb: Amount | None = Field(description="null when unknown or the agent is offline")


class AgentList(_Listing):
    agents: Rows[AgentRow]


class TypeRow(_Message):
    """A task type of the agents' catalogs."""

    name: Id
    label: Name
    description: Text
    inputs: Ports = Field(description="port name → IO metadata")
    outputs: Ports = Field(description="port name → IO metadata")
    agents: Annotated[list[Id], Field(max_length=MAX_ROWS)] = Field(description="the agents that can run it")
    available: bool
    reason: Text | None = Field(description="why it is unavailable, else null")


class TypeList(_Listing):
    types: Rows[TypeRow]


class DeploymentRow(_Message):
    """A deployment, with the states its tasks are shown in."""

    id: Id
    version: Int | None = Field(description="null: only a refused spec is on the broker")
    label: Text
    tasks: Int = Field(description="task instances: each replica of a task counts")
    running: Int
    notes: Annotated[list[Text], Field(max_length=MAX_KEYS)] = Field(
        description="as the table: '2 agent offline', '1 failing'…")
    states: Annotated[dict[Name, Int], Field(max_length=MAX_KEYS)] = Field(description="shown state → count")


class DeploymentList(_Listing):
    deployments: Rows[DeploymentRow]


class TaskRow(_Message):
    """A task instance, as the panel shows it."""

    deployment: Id
    task: TaskKey = Field(description="the task's id, or a replica's key: worker.1")
    type: Name
    agent: Name | None
    state: Name = Field(description="running, pending, agent offline…")
    shown: Name = Field(description="the table's STATE: 'agent offline 25 s'")
    restarts: Int
    ts: Int | None = Field(description="of its last status, null before one")
    error: Text | None
    notice: Text | None = Field(description="the crash notice, else null")
    frames_in: Int
    frames_out: Int
    dropped: Amount = Field(description="by full input queues")
    lost: Amount = Field(description="holes in the seq of inputs fed by a task's stream")
    duplicates: Amount = Field(description="copies of frames that arrived twice, dropped")


class TaskList(_Listing):
    tasks: Rows[TaskRow]


# -- edge describe TYPE --json -------------------------------------------------------------------

class ConfigField(_Message):
    """One config field of a type, as its schema says."""

    name: Name
    type: Text = Field(description="in a few words: 'integer 1..60000', 'one of \"a\"|\"b\"'")
    required: bool
    default: Json = Field(default=None, description="present only when the field has a default")
    description: Text


class Offer(_Message):
    """An agent whose catalog names the type, online or not."""

    agent: Id
    online: bool
    available: bool = Field(description="whether it can run the type")
    reason: Text | None = Field(description="why it cannot, else null")


class TypeDescription(_Message):
    """``edge describe TYPE --json``."""

    name: Id
    label: Name | None
    description: Text | None
    inputs: Ports
    outputs: Ports
    ports_from: Annotated[list[Json], Field(max_length=MAX_KEYS)] | None = Field(
        default=None, description="present only for a type whose ports follow its config (edge.ports)")
    config: Annotated[list[ConfigField], Field(max_length=MAX_KEYS)]
    config_schema: Json = Field(description="the JSON Schema as the catalog has it")
    agents: Annotated[list[Offer], Field(max_length=MAX_ROWS)]


# -- edge tail --json ----------------------------------------------------------------------------

class TailLine(_Message):
    """One line of ``edge tail --json``: one message as tail read it.

    ``value`` and ``extra`` are what the message holds, whatever a device published: they are not
    bounded here (tail shows hostile payloads, cut and described: docs/cli.md)."""

    topic: str
    format: Annotated[str, Field(pattern="^(frame|cbor|json|text|hex)$")]
    ts: int | None = Field(description="a frame's, else null")
    seq: int | None = Field(description="a frame's, else null")
    time: str | None = Field(description="ts as an ISO 8601 time, else null")
    value: Any
    extra: dict[str, Any] = Field(description="a frame's other fields (paused, ...)")
    note: str | None = Field(description="why hex is not a frame, else null")

    def fields(self) -> dict[str, Any]:
        """The fields in order, as they are: ``value`` may hold arrays, bytes, a CBOR tag, which the
        writer describes in words (pydantic's serializer is not run on what a device published)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


# -- edge catalogs [prune] --json ----------------------------------------------------------------

CatalogHash = Annotated[str, Field(pattern=rf"^{CATALOG_HASH_PATTERN}$")]


class CatalogRow(_Message):
    """A shared catalog document the broker holds, or that an agent's catalog names."""

    hash: CatalogHash
    bytes: Int | None = Field(description="size of the retained document; null when the broker holds none")
    agents: Int = Field(description="agent catalogs (retained or live) naming it")
    online: Int = Field(description="of those, agents online")
    state: Literal["ok", "refused", "not retained"]
    problem: str | None = Field(default=None, max_length=4096, description="why it was refused, else null")


class CatalogList(_Listing):
    """``edge catalogs --json``."""

    catalogs: Rows[CatalogRow]


class PruneLine(_Message):
    """What ``edge catalogs prune`` did with one document."""

    hash: CatalogHash
    bytes: Int
    outcome: Literal["cleared", "would clear", "kept", "published again"]
    why: Text


class PruneList(_Listing):
    """``edge catalogs prune --json``: ``blocked`` says why nothing was cleared, else null."""

    dry_run: bool
    blocked: Text | None = None
    catalogs: Rows[PruneLine]
