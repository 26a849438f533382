"""The control messages agents publish, as typed models with bounds: checked once, on the way in.

An agent's retained state (:class:`AgentState`), its catalog (:class:`Catalog` of
:class:`CatalogEntry`), each task's retained status (:class:`TaskStatusMsg`) and the batches of
its tasks' metrics (:class:`MetricsBatch` of :class:`TaskMetricsEntry`) arrive from the
broker, where anyone allowed to publish may have put anything CBOR can hold: a bignum epoch, a
megabyte of text, ``inputs: "abc"``, ``metrics: {"inputs": [1]}``. The fleet
(``edge.controller.fleet``) validates each message here before it touches its model, so what the
panel and the CLI read has the shapes below, or the message was ignored (counted and logged).

Bounds: integers are ``0 .. 2**63 - 1`` (what any client language holds), names at most
:data:`MAX_NAME` characters, free text (errors, descriptions) cut to :data:`MAX_TEXT`, maps and
lists at most :data:`MAX_KEYS` / :data:`MAX_TYPES` items, free-form JSON values (host facts,
port metadata, config schemas) at most :data:`MAX_JSON_DEPTH` levels and :data:`MAX_JSON_ITEMS`
items, numbers finite. Unknown keys of a state or a status are ignored (the fleet's models have fixed
fields); those of a catalog entry (``dashboard``, ...) and of a status's metrics (a counter a
newer agent adds) are kept as bounded JSON.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from edge.topics import ID_PATTERN

__all__ = [
    "MAX_BATCH_PARTS",
    "MAX_BATCH_TASKS",
    "MAX_INT",
    "MAX_JSON_DEPTH",
    "MAX_JSON_ITEMS",
    "MAX_KEYS",
    "MAX_NAME",
    "MAX_TEXT",
    "MAX_TYPES",
    "AgentState",
    "Catalog",
    "CatalogEntry",
    "InputMetrics",
    "MetricsBatch",
    "OutputMetrics",
    "TaskMetrics",
    "TaskMetricsEntry",
    "TaskStatusMsg",
    "ValidationError",
    "problem",
]

MAX_INT: Final = 2**63 - 1  # epochs, versions, counters, timestamps
MAX_NAME: Final = 256  # characters of a name, label, version or state
MAX_TEXT: Final = 4096  # characters of an error or a description kept (longer text is cut)
MAX_KEYS: Final = 256  # entries of a map (ports, host facts, metrics)
MAX_TYPES: Final = 10_000  # entries of a catalog (5000 are handled: tests/reliability/test_bad_input.py)
MAX_JSON_DEPTH: Final = 16  # levels of a free-form value (a config schema is a few levels deep)
MAX_JSON_ITEMS: Final = 10_000  # scalars, keys and containers of one free-form value
MAX_BOOT: Final = 64  # characters of a boot id
MAX_BATCH_TASKS: Final = 2000  # tasks in one metrics batch message
MAX_BATCH_PARTS: Final = 8  # messages one metrics batch is split into, at most


def _bounded_json(value: Any) -> Any:
    """``value`` if it is JSON-like (str keys, finite numbers) within the depth, item and length bounds."""
    budget = [MAX_JSON_ITEMS]

    def check(item: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"more than {MAX_JSON_ITEMS} items")
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if item is None or isinstance(item, bool):
            return
        if isinstance(item, int):
            if not -MAX_INT - 1 <= item <= MAX_INT:
                raise ValueError("an integer out of the 64-bit range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("a number that is not finite")
        elif isinstance(item, str):
            if len(item) > MAX_TEXT:
                raise ValueError(f"a text longer than {MAX_TEXT} characters")
        elif isinstance(item, list):
            for element in item:
                check(element, depth + 1)
        elif isinstance(item, dict):
            for key, element in item.items():
                if not isinstance(key, str) or len(key) > MAX_NAME:
                    raise ValueError(f"a map key that is not a text of at most {MAX_NAME} characters")
                budget[0] -= 1
                check(element, depth + 1)
        else:
            raise ValueError(f"a {type(item).__name__}, not a JSON value")

    check(value, 0)
    return value


def _cut(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) and len(value) > MAX_TEXT else value


Int = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Name = Annotated[str, Field(strict=True, max_length=MAX_NAME)]
Id = Annotated[str, Field(strict=True, pattern=rf"^{ID_PATTERN}$")]
Text = Annotated[str, BeforeValidator(_cut), Field(strict=True, max_length=MAX_TEXT)]
Json = Annotated[Any, AfterValidator(_bounded_json)]
JsonMap = Annotated[dict[Name, Json], Field(max_length=MAX_KEYS)]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    def dump(self) -> dict[str, Any]:
        """The message as plain data, with only the keys it came with (what the fleet's readers get)."""
        return self.model_dump(exclude_unset=True)


class _Open(_Message):
    """A message whose unknown keys are kept (as bounded JSON), for the readers of a newer producer."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    @model_validator(mode="after")
    def _bounded_extra(self) -> _Open:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > MAX_KEYS:
            raise ValueError(f"more than {MAX_KEYS} extra keys")
        _bounded_json(extra)
        return self


class AgentState(_Message):
    """``{root}/agents/{id}/state``: birth (``online: true``), periodic metrics, will (``online: false``)."""

    online: bool
    epoch: Int
    #: a random token per agent process: a state with another boot id is a new life of the agent
    #: whatever its epoch, and an offline state counts only for the boot id it names
    boot: Annotated[str, Field(strict=True, max_length=MAX_BOOT)] = ""
    ts: Int = 0
    version: Name = ""
    host: JsonMap = Field(default_factory=dict)
    metrics: JsonMap = Field(default_factory=dict)
    #: control messages the agent could not understand (invalid specs, requests), since it started
    errors: Int = 0
    #: s between its metrics batches (:class:`MetricsBatch`); absent: an agent that sends none
    report_interval: Annotated[float, Field(strict=True, gt=0, le=3600, allow_inf_nan=False)] | None = None


class CatalogEntry(_Open):
    """One task type an agent offers (``Task.describe``), or one it cannot offer (``available: false``)."""

    name: Id
    label: Name | None = None
    description: Text | None = None
    category: Name | None = None
    inputs: Annotated[dict[Id, JsonMap], Field(max_length=MAX_KEYS)] = Field(default_factory=dict)
    outputs: Annotated[dict[Id, JsonMap], Field(max_length=MAX_KEYS)] = Field(default_factory=dict)
    config_schema: Json = None
    config_default: Json = None
    available: bool = True
    reason: Text | None = None


class Catalog(_Message):
    """``{root}/agents/{id}/catalog``; entries are validated one by one (:meth:`entries`)."""

    agent: Name = ""
    epoch: Int = 0
    types: Annotated[list[Any], Field(max_length=MAX_TYPES)] = Field(default_factory=list)

    def entries(self) -> tuple[list[CatalogEntry], list[str]]:
        """The valid entries, and one problem line per invalid one (the others still stand)."""
        valid: list[CatalogEntry] = []
        problems: list[str] = []
        for i, raw in enumerate(self.types):
            try:
                valid.append(CatalogEntry.model_validate(raw))
            except ValidationError as exc:
                problems.append(f"types.{i}: {problem(exc)}")
        return valid, problems


class InputMetrics(_Open):
    frames: Int = 0
    errors: Int = 0
    rate: Number = 0.0
    gaps: Int = 0
    duplicates: Int = 0


class OutputMetrics(_Open):
    frames: Int = 0
    rate: Number = 0.0
    dropped_offline: Int = 0


class TaskMetrics(_Open):
    inputs: Annotated[dict[Id, InputMetrics], Field(max_length=MAX_KEYS)] = Field(default_factory=dict)
    outputs: Annotated[dict[Id, OutputMetrics], Field(max_length=MAX_KEYS)] = Field(default_factory=dict)
    dropped: Int = 0
    errors: Int = 0
    gaps: Int = 0
    duplicates: Int = 0


class Crash(_Message):
    """One entry of a status's ``errors``: a crash's error and when it happened (ms)."""

    error: Text
    at: Int


class TaskStatusMsg(_Message):
    """``{root}/deployments/{dep}/status/{task}``: the last state of one task instance (``Instance.status``)."""

    state: Annotated[str, Field(strict=True, min_length=1, max_length=32)]
    agent: Id | None = None
    type: Name | None = None
    version: Int = 0
    ts: Int = 0
    restarts: Int = 0
    error: Text | None = None
    last_error: Text | None = None
    crashed_at: Int | None = None
    #: the last few crashes, oldest first (the agent keeps 5; a reader takes at most 16)
    errors: Annotated[list[Crash], Field(max_length=16)] = Field(default_factory=list)
    metrics: TaskMetrics = Field(default_factory=TaskMetrics)


class TaskMetricsEntry(_Message):
    """The metrics of one task in a :class:`MetricsBatch` (``Instance.metrics``)."""

    deployment: Id
    task: Id
    metrics: TaskMetrics


class MetricsBatch(_Message):
    """``{root}/agents/{id}/metrics`` (never retained): the metrics of that agent's running tasks.

    A batch (``seq``) is sent every ``interval`` seconds with the tasks whose metrics changed since
    they were last sent; ``full`` batches (after a connect, or asked for on ``metrics/request``)
    hold every task that has metrics. A batch is split into ``parts`` messages (``part`` 0 ..
    parts - 1), each within the agent's payload limit and :data:`MAX_BATCH_TASKS` tasks; entries are
    validated one by one (:meth:`entries`)."""

    boot: Annotated[str, Field(strict=True, max_length=MAX_BOOT)] = ""
    epoch: Int = 0
    seq: Int = 0
    ts: Int = 0
    interval: Annotated[float, Field(strict=True, gt=0, le=3600, allow_inf_nan=False)] = 2.0
    full: bool = False
    part: Annotated[int, Field(strict=True, ge=0, lt=MAX_BATCH_PARTS)] = 0
    parts: Annotated[int, Field(strict=True, ge=1, le=MAX_BATCH_PARTS)] = 1
    tasks: Annotated[list[Any], Field(max_length=MAX_BATCH_TASKS)] = Field(default_factory=list)

    def entries(self) -> tuple[list[TaskMetricsEntry], list[str]]:
        """The valid entries, and one problem line per invalid one (the others still stand)."""
        valid: list[TaskMetricsEntry] = []
        problems: list[str] = []
        for i, raw in enumerate(self.tasks):
            try:
                valid.append(TaskMetricsEntry.model_validate(raw))
            except ValidationError as exc:
                problems.append(f"tasks.{i}: {problem(exc)}")
        return valid, problems


def problem(exc: ValidationError) -> str:
    """One line for a log: the first problem, and how many more there were."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return str(exc).splitlines()[0]
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"
