"""Deployment specs: graphs of task instances wired output-to-input.

A spec is YAML, JSON or CBOR, one shape::

    id: demo
    label: Demo graph
    version: 1
    tasks:
      - {id: gen, type: pulse, agent: pi-1, config: {interval_ms: 100}}
      - {id: add, type: adder}                     # no agent: placed by the controller
    edges:
      - {from: gen.out, to: add.a}                 # task.port -> task.port
      - {from: "topic:sensors/b", to: add.b}       # any MQTT topic (filter) carrying frames
      - {from: add.out, to: "topic:results/sum"}   # also publish an output on a topic

Rules (checked by :meth:`DeploymentSpec.model_validate` and :func:`check_against_catalog`):
ids are ``[A-Za-z0-9_-]{1,64}``; task ids are unique; an edge joins an existing task's port
(``task.port``) or a ``topic:`` to a task port; ``topic:`` to ``topic:`` is refused; an input
is fed by at most one edge; a ``to: topic:`` must be a topic without wildcards, a
``from: topic:`` may be a filter. **Cycles are allowed**: tasks run concurrently and exchange
frames over the broker, so a feedback loop (a latch, a counter fed back) is a valid graph.
Against a catalog: the type exists, the ports exist (an instance's own: they may follow its
config, ``edge.ports``), and where both ends of an edge declare the same IO metadata key
(content, codec, rate, …) the values agree. A config field named like a
secret (password, token, stream_key, …) must hold a secret reference, not the secret itself
(``edge.secrets``).

Every output of every task publishes on ``{root}/streams/{deployment}/{task}/{port}`` plus
any ``topic:`` targets; every input subscribes to its one source.

**Replicas**: a task with ``replicas: N`` (1 to :data:`~edge.topics.MAX_REPLICAS`) runs as N
instances, placed on different agents where the fleet allows (``agents`` lists the agent of each,
which the controller fills in; ``agent`` pins them all to one). Each input of a replica is a
shared subscription of its source (``Topics.shared``): every frame goes to one replica. The
replicas publish on the task's one stream per output. Only a type that declares itself
``stateless`` (its catalog entry) may have more than one replica: each frame's result must not
depend on the frames before it, since a replica sees only some of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from edge.errors import EdgeError, FrameError, SpecError
from edge.frames import decode_value, encode_value
from edge.secrets import cleartext_secrets
from edge.topics import (
    ID_PATTERN,
    MAX_REPLICAS,
    MAX_TOPIC_BYTES,
    Topics,
    replica_key,
    validate_filter,
    validate_id,
    validate_topic,
)

__all__ = ["DashboardCard", "DashboardSpec", "DeploymentSpec", "EdgeSpec", "Endpoint", "GroupSpec", "NoteSpec",
           "Origin", "TaskSpec", "check_against_catalog", "decode_spec",
           "encode_spec", "load_spec", "load_spec_data", "parse_spec", "parse_spec_lenient", "structure_problems"]

TOPIC_PREFIX = "topic:"
MAX_LABEL = 256  # characters of a deployment's or a task's label
MAX_VERSION = 2**63 - 1  # what any client language holds (edge.protocol.MAX_INT)
MAX_DASHBOARDS = 16  # dashboards of a deployment
MAX_CARDS = 256  # cards of one dashboard
MAX_SPAN = 4  # columns (and rows) a dashboard card spans at most
MAX_NOTE = 4096  # characters of a comment's text
MAX_MARKS = 256  # comments, and groups, of one deployment
MAX_GROUP_TASKS = 1000  # tasks one group names
MAX_XY = 1_000_000  # a comment's coordinates on the canvas, either way
#: ids are checked by validate_id (its one-line errors); this is only what their JSON Schema says
_ID_SCHEMA: dict[str, Any] = {"pattern": f"^{ID_PATTERN}$"}

_ID_FIELD = Field(json_schema_extra=_ID_SCHEMA)


def _checked(kind: str) -> AfterValidator:
    return AfterValidator(lambda value: validate_id(value, kind))


#: ids of a spec's parts: a string of the id pattern (the JSON schema says so); another is an error naming it
TaskId = Annotated[str, _ID_FIELD, _checked("task id")]
NoteId = Annotated[str, _ID_FIELD, _checked("note id")]
GroupId = Annotated[str, _ID_FIELD, _checked("group id")]
CardTask = Annotated[str, _ID_FIELD, _checked("dashboard card task")]
DashboardId = Annotated[str, _ID_FIELD, _checked("dashboard id")]
DeploymentId = Annotated[str, _ID_FIELD, _checked("deployment id")]


class Endpoint(BaseModel):
    """One end of an edge: a task's port, or an MQTT topic."""

    model_config = ConfigDict(frozen=True)

    task: str | None = None
    port: str | None = None
    topic: str | None = None

    @classmethod
    def parse(cls, text: str, *, side: str) -> Endpoint:
        if not isinstance(text, str):
            raise ValueError(f"{side} must be 'task.port' or 'topic:...', not {text!r}")
        if text.startswith(TOPIC_PREFIX):
            topic = text[len(TOPIC_PREFIX):]
            (validate_filter if side == "from" else validate_topic)(topic)
            return cls(topic=topic)
        task, dot, port = text.partition(".")
        if not dot:
            raise ValueError(f"{side} {text!r} must be 'task.port' or 'topic:...'")
        return cls(task=validate_id(task, "task id"), port=validate_id(port, "port"))

    def __str__(self) -> str:
        return f"{TOPIC_PREFIX}{self.topic}" if self.topic is not None else f"{self.task}.{self.port}"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """On the wire (and in YAML) an endpoint is its text, ``task.port`` or ``topic:...`` (docs/asyncapi.yaml)."""
        return {"type": "string", "minLength": 1, "maxLength": MAX_TOPIC_BYTES + len(TOPIC_PREFIX),
                "description": "task.port, or topic: and an MQTT topic (a filter in 'from')",
                "examples": ["gen.out", "topic:sensors/+/temperature"]}


class EdgeSpec(BaseModel):
    """``{from: gen.out, to: add.a}``."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    source: Endpoint = Field(alias="from")
    target: Endpoint = Field(alias="to")

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        return value if isinstance(value, Endpoint) else Endpoint.parse(value, side="from")

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: Any) -> Any:
        return value if isinstance(value, Endpoint) else Endpoint.parse(value, side="to")

    @model_validator(mode="after")
    def _not_topic_to_topic(self) -> EdgeSpec:
        if self.source.topic is not None and self.target.topic is not None:
            raise ValueError(f"edge {self.source} -> {self.target} joins two topics: one end must be a task port")
        return self

    def to_dict(self) -> dict[str, str]:
        return {"from": str(self.source), "to": str(self.target)}


class TaskSpec(BaseModel):
    """One task instance of a deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: TaskId
    type: str = Field(json_schema_extra=_ID_SCHEMA)
    agent: str | None = Field(default=None, json_schema_extra=_ID_SCHEMA)
    label: str | None = Field(default=None, max_length=MAX_LABEL)
    config: dict[str, Any] = Field(default_factory=dict)
    #: inputs that wait for QoS 1 frames instead of dropping the oldest when full, as if their port
    #: were declared ``Port(overflow="wait")`` (docs/reliability.md#inputs-that-wait-for-qos-1)
    wait: tuple[str, ...] = Field(default=(), max_length=256,
                                  json_schema_extra={"items": {"type": "string", **_ID_SCHEMA}},
                                  description="inputs that wait for QoS 1 frames instead of dropping the oldest when "
                                  "full")
    #: instances of this task, each taking its share of every input's frames (a stateless type only)
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS, strict=True,
                          description="instances of this task; every frame of an input goes to one of them "
                          "(only for a type whose catalog entry says stateless)")
    #: the agent of each replica, in order: what the controller places (or a user pins)
    agents: tuple[Annotated[str, Field(json_schema_extra=_ID_SCHEMA)], ...] | None = Field(
        default=None, max_length=MAX_REPLICAS,
        description="the agent of each replica, in order (filled in by the controller's placement)")

    @field_validator("agents")
    @classmethod
    def _agents(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(validate_id(agent, "agent id") for agent in value)

    @model_validator(mode="after")
    def _replicas(self) -> TaskSpec:
        if self.agents is not None and self.agent is not None:
            raise ValueError("give agent (every replica runs there) or agents (one per replica), not both")
        if self.agents is not None and len(self.agents) != self.replicas:
            raise ValueError(f"agents lists {len(self.agents)} agent(s) for {self.replicas} replica(s): "
                             "one per replica")
        return self

    def instances(self) -> list[tuple[str, str | None]]:
        """``(key, agent)`` of each instance: the task's id alone, or each replica's key (``worker.1``)
        with its agent (``agents``, else ``agent``)."""
        if self.replicas == 1:
            return [(self.id, self.agents[0] if self.agents else self.agent)]
        return [(replica_key(self.id, i), self.agents[i] if self.agents else self.agent) for i in range(self.replicas)]

    @field_validator("wait")
    @classmethod
    def _wait(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({validate_id(port, "input port in wait") for port in value}))


    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return validate_id(value, "task type")

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str | None) -> str | None:
        return None if value is None else validate_id(value, "agent id")


class NoteSpec(BaseModel):
    """A comment on the editor's canvas (a sticky note at ``x``, ``y``); agents ignore it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: NoteId
    text: str = Field(default="", max_length=MAX_NOTE)
    x: int = Field(default=0, ge=-MAX_XY, le=MAX_XY)
    y: int = Field(default=0, ge=-MAX_XY, le=MAX_XY)



class GroupSpec(BaseModel):
    """A labelled box the editor draws around some tasks; agents ignore it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: GroupId
    label: str = Field(default="", max_length=MAX_LABEL)
    tasks: list[Annotated[str, Field(json_schema_extra=_ID_SCHEMA)]] = Field(default_factory=list,
                                                                            max_length=MAX_GROUP_TASKS)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$",
                              description="#rrggbb; the editor's default when absent")


    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        return [validate_id(task, "task id") for task in value]


class Origin(BaseModel):
    """When and from where a version was deployed: stamped by the controller that published it.

    Agents ignore it (it changes nothing they run); the panel's history shows it. Unknown keys
    are ignored, so later controllers may add some.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    via: str = Field(max_length=MAX_LABEL)  # cli, panel, or api (a script using the Controller)
    host: str = Field(default="", max_length=MAX_LABEL)
    at: int = Field(default=0, ge=0, le=MAX_VERSION)  # ms since the epoch
    replaced: int | None = Field(default=None, ge=0, le=MAX_VERSION)  # the version deployed before, if any
    rollback_of: int | None = Field(default=None, ge=0, le=MAX_VERSION)  # the earlier version whose content this is


class DashboardCard(BaseModel):
    """One task's card on a dashboard: ``w`` columns wide (of :data:`MAX_SPAN`), ``h`` rows high."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: CardTask
    w: int = Field(default=1, ge=1, le=MAX_SPAN)
    h: int = Field(default=1, ge=1, le=MAX_SPAN)



class DashboardSpec(BaseModel):
    """A dashboard of a deployment: its cards in order. Agents accept it and ignore it; the panel draws it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: DashboardId
    label: str | None = Field(default=None, max_length=MAX_LABEL)
    cards: list[DashboardCard] = Field(default_factory=list, max_length=MAX_CARDS)



def dashboard_problems(tasks: Sequence[TaskSpec], dashboards: Sequence[DashboardSpec]) -> list[str]:
    """Dashboards of distinct ids whose cards name tasks of the spec, each at most once per dashboard."""
    problems: list[str] = []
    ids = {task.id for task in tasks}
    seen: set[str] = set()
    for board in dashboards:
        if board.id in seen:
            problems.append(f"dashboard id {board.id!r} is used twice")
        seen.add(board.id)
        on_board: set[str] = set()
        for card in board.cards:
            if card.task not in ids:
                problems.append(f"dashboard {board.id!r}: no task {card.task!r} in this deployment")
            elif card.task in on_board:
                problems.append(f"dashboard {board.id!r}: task {card.task!r} has two cards")
            on_board.add(card.task)
    return problems


class DeploymentSpec(BaseModel):
    """A graph of task instances; retained at ``{root}/deployments/{id}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: DeploymentId
    label: str | None = Field(default=None, max_length=MAX_LABEL)
    version: int = Field(default=1, ge=1, le=MAX_VERSION)
    tasks: list[TaskSpec] = Field(default_factory=list)
    edges: list[EdgeSpec] = Field(default_factory=list)
    #: the panel's dashboards (the first is the default one); agents ignore them
    dashboards: list[DashboardSpec] = Field(default_factory=list, max_length=MAX_DASHBOARDS)
    #: comments and groups of the editor's canvas: kept with the spec, ignored by agents
    notes: list[NoteSpec] = Field(default_factory=list, max_length=MAX_MARKS)
    groups: list[GroupSpec] = Field(default_factory=list, max_length=MAX_MARKS)
    deployed: Origin | None = None


    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSpec:
        problems = (structure_problems(self.tasks, self.edges) + dashboard_problems(self.tasks, self.dashboards)
                    + mark_problems(self.tasks, self.notes, self.groups))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- wiring -------------------------------------------------------------------------------
    def task(self, task_id: str) -> TaskSpec:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def sources(self, task_id: str, topics: Topics) -> dict[str, str]:
        """Input port -> the topic (filter) it subscribes to."""
        return {edge.target.port: self.source_topic(edge, topics) for edge in self.edges
                if edge.target.task == task_id and edge.target.port is not None}

    def source_topic(self, edge: EdgeSpec, topics: Topics) -> str:
        """The topic (filter) an edge's target reads: its ``topic:`` source, else the source task's stream."""
        src = edge.source
        return src.topic if src.topic is not None else topics.stream(self.id, src.task or "", src.port or "")

    def merged(self, task_id: str) -> tuple[str, ...]:
        """The inputs of ``task_id`` fed by a task with replicas: several producers on one stream."""
        replicated = {task.id for task in self.tasks if task.replicas > 1}
        return tuple(sorted(edge.target.port for edge in self.edges
                            if edge.target.task == task_id and edge.target.port is not None
                            and edge.source.task in replicated))

    def targets(self, task_id: str, outputs: list[str], topics: Topics) -> dict[str, list[str]]:
        """Output port -> every topic it publishes on: its stream topic plus ``topic:`` edges."""
        result = {port: [topics.stream(self.id, task_id, port)] for port in outputs}
        for edge in self.edges:
            if edge.source.task == task_id and edge.source.port in result and edge.target.topic is not None:
                result[edge.source.port].append(edge.target.topic)
        return result

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"edges", "notes", "groups"}, exclude_none=True)
        data["edges"] = [edge.to_dict() for edge in self.edges]
        for task in data["tasks"]:  # one instance: dumped as before replicas existed
            if task.get("replicas") == 1:
                del task["replicas"]
        if not self.dashboards:  # a spec without dashboards reads as it did before they existed
            data.pop("dashboards", None)
        for key in ("notes", "groups"):  # only where there are some: a spec without them dumps as before
            marks = getattr(self, key)
            if marks:
                data[key] = [mark.model_dump(mode="json", exclude_none=True) for mark in marks]
        return data


def structure_problems(tasks: Sequence[TaskSpec], edges: Sequence[EdgeSpec]) -> list[str]:
    """The rules between tasks and edges: unique ids, edges between existing tasks, one feed per input."""
    problems: list[str] = []
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            problems.append(f"task id {task.id!r} is used twice")
        seen.add(task.id)
        problems += [f"task {task.id!r}: {p}" for p in cleartext_secrets(task.config)]
    fed: dict[tuple[str, str], str] = {}
    for edge in edges:
        for end in (edge.source, edge.target):
            if end.task is not None and end.task not in seen:
                problems.append(f"edge {edge.source} -> {edge.target}: no task {end.task!r} in this deployment")
        if edge.target.task is not None:
            key = (edge.target.task, edge.target.port or "")
            if key in fed:
                problems.append(f"input {edge.target} is fed twice: by {fed[key]} and by {edge.source}")
            fed[key] = str(edge.source)
    return problems


def mark_problems(tasks: Sequence[TaskSpec], notes: Sequence[NoteSpec], groups: Sequence[GroupSpec]) -> list[str]:
    """The rules of the canvas's comments and groups: unique ids, groups of tasks of this deployment."""
    problems: list[str] = []
    for kind, items in (("note", notes), ("group", groups)):
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                problems.append(f"{kind} id {item.id!r} is used twice")
            seen.add(item.id)
    ids = {task.id for task in tasks}
    for group in groups:
        unknown = [t for t in group.tasks if t not in ids]
        if unknown:
            problems.append(f"group {group.id!r}: no task {', '.join(map(repr, unknown[:5]))} in this deployment")
    return problems


def _error_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    errors: list[str] = []
    for err in exc.errors():
        where = ".".join(part for part in (prefix, *(str(p) for p in err["loc"])) if part)
        msg = err["msg"].removeprefix("Value error, ")
        errors.extend(f"{where}: {part}" if where else part for part in msg.split("; "))
    return errors


def _spec_error(exc: ValidationError) -> SpecError:
    return SpecError("invalid deployment spec", errors=_error_lines(exc))


def parse_spec_lenient(data: Any) -> tuple[DeploymentSpec | None, DeploymentSpec, list[str]]:
    """Every structural problem of ``data`` at once, and as much of the spec as parses.

    Returns ``(spec, partial, problems)``: ``spec`` is the valid spec (None when there are
    problems); ``partial`` holds the tasks and edges that parsed on their own (built without the
    rules between them), so the catalog checks can still run on them and report their problems
    in the same pass.
    """
    if isinstance(data, DeploymentSpec):
        return data, data, []
    if not isinstance(data, Mapping):
        return None, DeploymentSpec.model_construct(id="", tasks=[], edges=[]), [
            f"a deployment spec is a map, not {type(data).__name__}"]
    problems: list[str] = []
    top = dict(data)
    raw_tasks, raw_edges = top.get("tasks", []), top.get("edges", [])
    raw_boards = top.get("dashboards", [])
    raw_groups = top.get("groups", [])
    parts: dict[str, list[Any]] = {"tasks": [], "edges": [], "dashboards": [], "groups": []}
    for key, raw, model in (("tasks", raw_tasks, TaskSpec), ("edges", raw_edges, EdgeSpec),
                            ("dashboards", raw_boards, DashboardSpec), ("groups", raw_groups, GroupSpec)):
        if not isinstance(raw, list):
            continue
        if key == "dashboards" and len(raw) > MAX_DASHBOARDS:
            problems.append(f"dashboards: at most {MAX_DASHBOARDS} dashboards, not {len(raw)}")
        top[key] = []
        for i, item in enumerate(raw[:MAX_DASHBOARDS] if key == "dashboards" else raw):
            try:
                parts[key].append(model.model_validate(item))
            except ValidationError as exc:
                problems += _error_lines(exc, f"{key}.{i}")
            except EdgeError as exc:
                problems.append(f"{key}.{i}: {exc}")
    tasks: list[TaskSpec] = parts["tasks"]
    edges: list[EdgeSpec] = parts["edges"]
    header: dict[str, Any] = {"id": "", "version": 1}
    try:
        parsed = DeploymentSpec.model_validate(top)
        header = {"id": parsed.id, "label": parsed.label, "version": parsed.version, "notes": parsed.notes}
    except ValidationError as exc:
        problems += _error_lines(exc)
    except EdgeError as exc:
        problems.append(str(exc))
    boards: list[DashboardSpec] = parts["dashboards"]
    groups: list[GroupSpec] = parts["groups"]
    if isinstance(raw_groups, list) and len(raw_groups) > MAX_MARKS:
        problems.append(f"groups: at most {MAX_MARKS} groups, not {len(raw_groups)}")
        groups = groups[:MAX_MARKS]
    problems += (structure_problems(tasks, edges) + dashboard_problems(tasks, boards)
                 + mark_problems(tasks, (), groups))
    partial = DeploymentSpec.model_construct(**header, tasks=tasks, edges=edges, dashboards=boards, groups=groups)
    if problems:
        return None, partial, problems
    return DeploymentSpec.model_validate(partial.to_dict()), partial, []


def parse_spec(data: Any) -> DeploymentSpec:
    """A spec from already-parsed data; :class:`SpecError` lists every problem."""
    if isinstance(data, DeploymentSpec):
        return data
    if not isinstance(data, Mapping):
        raise SpecError(f"a deployment spec is a map, not {type(data).__name__}")
    try:
        return DeploymentSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise _spec_error(exc) from None
    except EdgeError as exc:
        raise SpecError(str(exc)) from None


def load_spec(source: str | bytes | Path) -> DeploymentSpec:
    """A spec from a file (``.yaml``/``.yml``, ``.json``, ``.cbor``) or from YAML/JSON text."""
    if isinstance(source, Path) and source.suffix == ".cbor":
        return decode_spec(source.read_bytes())
    return parse_spec(load_spec_data(source))


def load_spec_data(source: str | bytes | Path) -> Any:
    """The parsed but unchecked data of a spec file or text (for :func:`parse_spec_lenient`)."""
    if isinstance(source, Path):
        raw = source.read_bytes()
        if source.suffix == ".cbor":
            try:
                return decode_value(raw)
            except FrameError as exc:
                raise SpecError(f"not a CBOR deployment spec: {exc}") from None
        source = raw
    try:
        text = source.decode() if isinstance(source, bytes) else source
    except UnicodeDecodeError as exc:
        raise SpecError(f"not valid YAML or JSON: {exc}") from None
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        try:
            return json.loads(text)
        except ValueError:
            raise SpecError(f"not valid YAML or JSON: {_yaml_problem(exc)}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line 1, column 5: expected ',' or ']'`` rather than PyYAML's several lines with a caret."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        context = getattr(exc, "context", None)
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")
    return " ".join(str(exc).split())


def encode_spec(spec: DeploymentSpec) -> bytes:
    """The spec as published on the broker (CBOR)."""
    return encode_value(spec.to_dict())


def decode_spec(payload: bytes) -> DeploymentSpec:
    try:
        data = decode_value(payload)
    except FrameError as exc:
        raise SpecError(f"not a CBOR deployment spec: {exc}") from None
    return parse_spec(data)


def check_against_catalog(spec: DeploymentSpec, types: Mapping[str, Mapping[str, Any]], *,
                          ports: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> list[str]:
    """Problems of ``spec`` given the catalog entries by type name (unknown types, ports, metadata).

    Each task's ports are its instance's: from its config by the entry's rules (:mod:`edge.ports`),
    or ``ports[task id]`` (``{"inputs": ..., "outputs": ...}``, an agent's validation answer) where given.
    """
    from edge.ports import catalog_ports

    problems: list[str] = []
    by_id = {task.id: task for task in spec.tasks}
    instance: dict[str, dict[str, Mapping[str, Any]]] = {}
    for task in spec.tasks:
        entry = types.get(task.type)
        if entry is None:
            problems.append(f"task {task.id!r}: unknown task type {task.type!r}")
            continue
        if entry.get("available") is False:
            problems.append(f"task {task.id!r}: type {task.type!r} is unavailable: {entry.get('reason', '?')}")
        if task.replicas > 1 and entry.get("stateless") is not True:
            problems.append(f"task {task.id!r}: type {task.type!r} is not stateless, so it cannot have "
                            f"{task.replicas} replicas (docs/deployments.md#replicas)")
        answered = (ports or {}).get(task.id)
        if answered is not None:
            instance[task.id] = {kind: answered.get(kind) or {} for kind in ("inputs", "outputs")}
        else:
            inputs, outputs = catalog_ports(entry, task.config)
            instance[task.id] = {"inputs": inputs, "outputs": outputs}

    def port_meta(end: Endpoint, kind: str) -> Mapping[str, Any] | None:
        task = by_id.get(end.task or "")
        entry = types.get(task.type) if task else None
        if task is None or entry is None:
            return None
        own = instance[task.id][kind]
        if end.port is None or end.port not in own:
            declared = entry.get(kind, {})
            follows = not isinstance(declared, Mapping) or set(declared) != set(own) or any(
                isinstance(r, Mapping) and r.get("side") == kind for r in entry.get("ports_from") or ())
            problems.append(f"{end}: task type {entry.get('name', '?')!r} has no {kind[:-1]} {end.port!r}"
                            f"{' with this config' if follows else ''} (it has: {', '.join(own) or 'none'})")
            return None
        meta = own[end.port]
        return meta if isinstance(meta, Mapping) else {}

    for edge in spec.edges:
        out_meta = port_meta(edge.source, "outputs") if edge.source.task else None
        in_meta = port_meta(edge.target, "inputs") if edge.target.task else None
        if out_meta is not None and in_meta is not None:
            mismatched = [f"{k}: {out_meta[k]!r} != {in_meta[k]!r}" for k in sorted(set(out_meta) & set(in_meta))
                          if out_meta[k] != in_meta[k]]
            if mismatched:
                problems.append(f"edge {edge.source} -> {edge.target}: incompatible ({', '.join(mismatched)})")
    return problems
