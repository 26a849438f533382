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

The rest of the protocol is here too, so that every payload has one model (``PAYLOADS``): the
deployment spec (``edge.graph``'s, re-exported) and its removal record, the validation request and
reply, the dismissal, task states (:class:`TaskState`), stream frames and dashboard views.
Producers build their payloads through them, readers parse with them, and ``edge.asyncapi``
publishes their JSON Schemas as ``docs/asyncapi.yaml``. Payloads carry the protocol revision
``v`` (:data:`PROTOCOL_REVISION`; versions and the compatibility rule: docs/protocol.md).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from edge.graph import DeploymentSpec
from edge.topics import CATALOG_HASH_PATTERN, ID_PATTERN, TASK_KEY_PATTERN

_M = TypeVar("_M", bound=BaseModel)

__all__ = [
    "DEFAULT_WATCH",
    "MAX_BATCH_PARTS",
    "MAX_BATCH_TASKS",
    "MAX_CATALOG_BYTES",
    "COLOR_PATTERN",
    "MAX_CHECK_LINES",
    "MAX_CHECK_TASKS",
    "MAX_INT",
    "MAX_JSON_DEPTH",
    "MAX_JSON_ITEMS",
    "MAX_KEYS",
    "MAX_NAME",
    "MAX_REMOVAL_VERSION",
    "MAX_TEXT",
    "MAX_TYPES",
    "MAX_URL",
    "MAX_WATCH",
    "PAYLOADS",
    "PROTOCOL_REVISION",
    "AgentState",
    "Catalog",
    "CatalogDocument",
    "CatalogEntry",
    "CatalogRequest",
    "CheckResult",
    "CheckTask",
    "Crash",
    "InstancePorts",
    "DashboardView",
    "DeploymentSpec",
    "DismissRequest",
    "InputMetrics",
    "MetricsBatch",
    "MetricsRequest",
    "OutputMetrics",
    "PlotSeries",
    "PlotView",
    "RadioButtonsView",
    "RemovalRecord",
    "SliderView",
    "SpectrumView",
    "StatusDisplayView",
    "StreamFrame",
    "TaskMetrics",
    "TaskMetricsEntry",
    "TaskState",
    "TaskStatusMsg",
    "TextDisplayView",
    "TextInputView",
    "ToggleView",
    "ValidationError",
    "ValidationReply",
    "ValidationRequest",
    "Watch",
    "ValueBarView",
    "ViewFrame",
    "WebViewerView",
    "problem",
    "web_url_problem",
]

MAX_INT: Final = 2**63 - 1  # epochs, versions, counters, timestamps
MAX_NAME: Final = 256  # characters of a name, label, version or state
MAX_TEXT: Final = 4096  # characters of an error or a description kept (longer text is cut)
MAX_KEYS: Final = 256  # entries of a map (ports, host facts, metrics)
MAX_TYPES: Final = 10_000  # entries of a catalog (5000 are handled: tests/reliability/test_bad_input.py)
MAX_JSON_DEPTH: Final = 16  # levels of a free-form value (a config schema is a few levels deep)
MAX_JSON_ITEMS: Final = 10_000  # scalars, keys and containers of one free-form value
MAX_BOOT: Final = 64  # characters of a boot id
#: bytes of a shared catalog a reader takes, at most (a real one is ~80 KB; 10,000 types of ~1 KB fit)
MAX_CATALOG_BYTES: Final = 16 * 2**20
MAX_BATCH_TASKS: Final = 2000  # tasks in one metrics batch message
DEFAULT_WATCH: Final = 30.0  # s an agent sends changed metrics after a request that names no lease
MAX_WATCH: Final = 3600.0  # s of the longest lease one request may ask for
MAX_BATCH_PARTS: Final = 8  # messages one metrics batch is split into, at most
_V: Final = ("the protocol revision of its sender (edge.protocol.PROTOCOL_REVISION); absent: 0, a sender older "
              "than the field")


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
#: a task's id, or one replica's key (``worker.1``: ``edge.topics.replica_key``)
TaskKey = Annotated[str, Field(strict=True, pattern=rf"^{TASK_KEY_PATTERN}$")]
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
        extra = self.__pydantic_extra__
        if not extra:  # the common case, and an agent's metrics build a few of these per task every report
            return self
        if len(extra) > MAX_KEYS:
            raise ValueError(f"more than {MAX_KEYS} extra keys")
        _bounded_json(extra)
        return self


class AgentState(_Message):
    """``{root}/agents/{id}/state``: birth (``online: true``), periodic metrics, will (``online: false``)."""

    v: Int = Field(default=0, description=_V)
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
    dashboard: Id | None = Field(default=None, description="the widget the panel draws for a dashboard type "
                                 "(a kind of ViewFrame's value; tasks.dashboard)")
    ports_from: Annotated[list[Json], Field(max_length=MAX_KEYS)] | None = Field(
        default=None, description="rules making an instance's ports of its config (edge.ports.PortRule; a reader "
                                  "leaves a malformed rule out)")
    io_map: Json = Field(default=None, description="an fn_task's IO metadata keys taken from config fields: "
                                                   "{inputs|outputs: {port: {key: field}}}")
    stateless: bool = Field(default=False, description="each frame's result depends on that frame alone: a "
                            "task of this type may have replicas (TaskSpec.replicas)")


class Catalog(_Message):
    """``{root}/agents/{id}/catalog``; entries are validated one by one (:meth:`entries`).

    Since revision 2 an agent may send ``catalog``, the hash of a :class:`CatalogDocument` on
    ``{root}/catalogs/{hash}`` holding its entries (shared by every agent with the same ones), in
    place of ``types``."""

    v: Int = Field(default=0, description=_V)
    agent: Name = ""
    epoch: Int = 0
    boot: Annotated[str, Field(strict=True, max_length=MAX_BOOT)] = ""
    catalog: Annotated[str | None, Field(pattern=rf"^{CATALOG_HASH_PATTERN}$",
                                         description="the hash of the shared catalog holding its types")] = None
    types: Annotated[list[Any], Field(max_length=MAX_TYPES)] = Field(default_factory=list)

    def entries(self) -> tuple[list[CatalogEntry], list[str]]:
        """The valid entries, and one problem line per invalid one (the others still stand)."""
        return _each(CatalogEntry, self.types, "types")


class CatalogDocument(_Message):
    """``{root}/catalogs/{hash}`` (retained): task types shared by the agents whose catalog names
    ``hash``, the first 32 hex digits of the sha256 of this payload as sent (its bytes, not a
    re-encoding): a reader checks it and refuses a document that does not match its topic."""

    v: Int = Field(default=0, description=_V)
    types: Annotated[list[Any], Field(max_length=MAX_TYPES)] = Field(default_factory=list)

    def entries(self) -> tuple[list[CatalogEntry], list[str]]:
        """The valid entries, and one problem line per invalid one (the others still stand)."""
        return _each(CatalogEntry, self.types, "types")


class CatalogRequest(_Message):
    """``{root}/agents/{id}/catalog/request`` (never retained): a controller lacks the shared catalog
    ``catalog`` that the agent's catalog names (the broker lost it, it was cleared, or garbage took
    its place): the agent publishes it again if it is still its own. An agent publishes its document
    at its first connect and on such a request, not at every reconnect (docs/protocol.md)."""

    v: Int = Field(default=0, description=_V)
    catalog: Annotated[str, Field(pattern=rf"^{CATALOG_HASH_PATTERN}$",
                                  description="the hash of the shared catalog asked for")]


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

    v: Int = Field(default=0, description=_V)
    state: Annotated[TaskState, Field(strict=False)]
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
    task: TaskKey = Field(description="the task's id, or a replica's key: the task id, '.' and its number")
    metrics: TaskMetrics


class MetricsBatch(_Message):
    """``{root}/agents/{id}/metrics`` (never retained): the metrics of that agent's running tasks.

    A batch (``seq``) is sent every ``interval`` seconds with the tasks whose metrics changed since
    they were last sent; ``full`` batches (after a connect, or asked for on ``metrics/request``)
    hold every task that has metrics. A batch is split into ``parts`` messages (``part`` 0 ..
    parts - 1), each within the agent's payload limit and :data:`MAX_BATCH_TASKS` tasks; entries are
    validated one by one (:meth:`entries`)."""

    v: Int = Field(default=0, description=_V)
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
        return _each(TaskMetricsEntry, self.tasks, "tasks")


def _each(model: type[_M], items: list[Any], field: str) -> tuple[list[_M], list[str]]:
    """Each of ``items`` validated as ``model`` alone: the valid ones, and one line per invalid one."""
    valid: list[_M] = []
    problems: list[str] = []
    for i, raw in enumerate(items):
        try:
            valid.append(model.model_validate(raw))
        except ValidationError as exc:
            problems.append(f"{field}.{i}: {problem(exc)}")
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


# -- the rest of the protocol (issue 18.1): versions, task states, removals, requests, views ---------------
#: The payload revision of protocol ``v1`` (the ``edge/v1/`` topic level) this code speaks, sent as
#: ``v`` in every control payload but a spec. Readers accept any revision and ignore fields they do not
#: know; an absent ``v`` is revision 0 (agents older than the field). What bumps it, and what needs a
#: new topic level instead, is in docs/protocol.md ("Versions").
PROTOCOL_REVISION: Final = 2
#: A colour a dashboard view may carry: ``#rgb``, ``#rrggbb`` (alpha too) or a CSS name such as ``green``;
#: safe to put in a style attribute. Dashboard task configs check it, the panel checks it again.
COLOR_PATTERN: Final = r"^(#[0-9a-fA-F]{3,8}|[a-z]{3,20})$"
MAX_REMOVAL_VERSION: Final = 2**53  # a removal record's version: beyond this it is garbage (edge.desired)
MAX_CHECK_TASKS: Final = 1000  # tasks in one validation request or reply
MAX_CHECK_LINES: Final = 50  # errors (or warnings) kept per task of a validation reply
MAX_BANDS: Final = 256  # bands of a spectrum view
MAX_VIEW_TEXT: Final = 1_000_000  # characters of a text a dashboard view shows (a text input's longest)
MAX_POINTS: Final = 10_000  # points of one plot series

Version = Annotated[int, Field(strict=True, ge=0, le=MAX_REMOVAL_VERSION)]
Revision = Annotated[int, Field(strict=True, ge=0, le=MAX_INT, description=_V)]
Color = Annotated[str, Field(strict=True, pattern=COLOR_PATTERN)]


class TaskState(StrEnum):
    """What a task instance is doing, as its status says (``state``)."""

    PENDING = "pending"  # assigned, not started yet (or waiting for its agent)
    STARTING = "starting"  # its inputs are being opened
    RUNNING = "running"
    FAILED = "failed"  # crashed; restarted after a back-off
    STOPPED = "stopped"  # stopped by its agent (the agent stops, or the task's spec changed)
    INVALID = "invalid"  # its config was refused: it is not run until a new spec comes


TaskStatusMsg.model_rebuild()


def _ms_or_zero(value: Any) -> Any:
    """A removal's ``at`` is only shown: one out of range (or not a number) reads as 0, unknown."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT
    return value if ok else 0


class RemovalRecord(_Message):
    """``{root}/deployments/{dep}`` when removed: every version up to ``version`` is gone (``edge.desired``)."""

    v: Revision = 0
    removed: Literal[True]
    version: Version
    #: ms, the removing controller's clock
    at: Annotated[Int, BeforeValidator(_ms_or_zero)] = 0


def _lines(value: Any) -> Any:
    return value[:MAX_CHECK_LINES] if isinstance(value, list) else value


Lines = Annotated[list[Text], BeforeValidator(_lines), Field(max_length=MAX_CHECK_LINES)]


class CheckTask(_Message):
    """One task of a validation request: its id, type and config (secret references unresolved)."""

    task: Id
    type: Id
    #: as the spec holds it: checked by the type's own config model (a text may be long, a formula, a script)
    config: Annotated[dict[Name, Any], Field(max_length=MAX_KEYS)] = Field(default_factory=dict)


class ValidationRequest(_Message):
    """``{root}/agents/{id}/validate``: run these tasks' own checks, answer on ``reply_to`` (``edge.validation``)."""

    v: Revision = 0
    id: Id
    reply_to: Name  # a ``{root}/replies/{token}`` topic: the agent answers nowhere else
    tasks: Annotated[list[CheckTask], Field(max_length=MAX_CHECK_TASKS)] = Field(default_factory=list)


MAX_PORT_KEYS: Final = 32  # IO metadata keys of one port in a validation reply
_MetaText = Annotated[str, Field(strict=True, max_length=300)]
#: one port's IO metadata: ``{key: scalar}`` (content, codec, rate, width, ...)
PortMeta = Annotated[dict[_MetaText, bool | int | float | _MetaText | None], Field(max_length=MAX_PORT_KEYS)]
PortMap = Annotated[dict[Id, PortMeta], Field(max_length=MAX_KEYS)]


class InstancePorts(_Message):
    """One instance's ports with their IO metadata, as :meth:`edge.task.Task.ports` makes them of its config."""

    inputs: PortMap
    outputs: PortMap


def _ports_or_none(value: Any) -> Any:
    """A task's ports beyond the bounds are left out of its result, not the whole reply with them."""
    if value is None or isinstance(value, InstancePorts):
        return value
    try:
        return InstancePorts.model_validate(value)
    except ValidationError:
        return None


class CheckResult(_Message):
    """What one task's checks found: error lines (``config.FIELD: message``), and why a check did not run;
    with neither, the instance's ``ports`` (left out when they do not fit :class:`InstancePorts`)."""

    errors: Lines = Field(default_factory=list)
    warnings: Lines = Field(default_factory=list)
    ports: Annotated[InstancePorts | None, BeforeValidator(_ports_or_none)] = None


class ValidationReply(_Message):
    """``{root}/replies/{token}``: an agent's answer to the validation request ``id``."""

    v: Revision = 0
    id: Id
    agent: Id
    tasks: Annotated[dict[Id, CheckResult], Field(max_length=MAX_CHECK_TASKS)] = Field(default_factory=dict)


class DismissRequest(_Message):
    """``{root}/agents/{id}/dismiss``: clear a task's crash notice if it has not crashed since ``before`` (ms)."""

    v: Revision = 0
    deployment: Id
    task: TaskKey
    before: Int


class Watch(_Message):
    """``{root}/watch``: someone outside the agents looks at the streams matching ``filter`` for ``lease``
    more seconds (at most 60): an agent publishing them in-process only (``edge.local``) sends them to the
    broker meanwhile. Watchers send it again before the lease runs out (``edge.watch``)."""

    v: Revision = 0
    filter: Annotated[str, Field(strict=True, min_length=1, max_length=1024)]
    lease: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)]


class MetricsRequest(_Message):
    """``{root}/agents/{id}/metrics/request``: send every task's metrics now (a full batch), then the
    changed ones every report interval for ``watch`` seconds (a lease; later requests extend it).

    An agent sends no metrics batch nobody asked for: an idle fleet's control traffic is its
    heartbeats (docs/protocol.md, "Metrics"). An empty payload (what controllers before the lease
    sent) asks for :data:`DEFAULT_WATCH` seconds."""

    v: Revision = 0
    watch: Annotated[float, Field(gt=0, le=MAX_WATCH, allow_inf_nan=False)] = DEFAULT_WATCH


class StreamFrame(_Open):
    """One frame on ``{root}/streams/...``, as a schema for other languages: the codec is ``edge.frames``
    (docs/frames.md); ``value`` is any CBOR item (numeric arrays as RFC 8746 typed arrays); other keys
    are control fields (``paused``, ...)."""

    ts: Int
    seq: Int
    value: Any = None


# -- dashboard views: the frame value a dashboard task publishes, retained, on its ``view`` output ----
class _View(_Open):
    label: Name = ""


class SliderView(_View):
    kind: Literal["slider"]
    value: Number
    min: Number
    max: Number
    step: Number


class ToggleView(_View):
    kind: Literal["toggle"]
    value: bool


class RadioButtonsView(_View):
    kind: Literal["radio_buttons"]
    options: Annotated[list[Name], Field(max_length=MAX_KEYS)]
    selected: Int


class TextInputView(_View):
    kind: Literal["text_input"]
    value: Annotated[str, Field(strict=True, max_length=MAX_VIEW_TEXT)]


class StatusDisplayView(_View):
    kind: Literal["status_display"]
    value: Number | None = None  # None: no frame yet
    text: Name = ""
    color: Color | None = None


class TextDisplayView(_View):
    kind: Literal["text_display"]
    text: Annotated[str, Field(strict=True, max_length=MAX_VIEW_TEXT)]


class ValueBarView(_View):
    kind: Literal["value_bar"]
    value: Number
    min: Number
    max: Number
    fraction: Annotated[float, Field(strict=True, ge=0.0, le=1.0)]
    color: Color
    direction: Literal["vertical", "horizontal"]


class PlotSeries(_Message):
    input: Id
    label: Name
    #: ``[ts ms, value]`` pairs, oldest first
    points: Annotated[list[Annotated[list[Number], Field(min_length=2, max_length=2)]], Field(max_length=MAX_POINTS)]


class PlotView(_View):
    kind: Literal["plot"]
    window_ms: Int
    y_min: Number | None = None
    y_max: Number | None = None
    series: Annotated[list[PlotSeries], Field(max_length=MAX_KEYS)] = Field(default_factory=list)


class SpectrumView(_View):
    """A live spectrum (``audio_frequency_display``): the level of each frequency band of the last audio."""

    kind: Literal["audio_frequency_display"]
    #: the bands' edges in Hz, ascending: one more than ``levels``
    edges: Annotated[list[Number], Field(min_length=2, max_length=MAX_BANDS + 1)]
    #: each band's level in dB (a full-scale sine reads 0 in its band), at least ``floor_db``
    levels: Annotated[list[Number], Field(min_length=1, max_length=MAX_BANDS)]
    floor_db: Number
    #: the audio's sample rate
    rate: Int


MAX_URL: Final = 2048  # characters of a URL a web viewer shows
WEB_SCHEMES: Final = ("http", "https")


def web_url_problem(url: str) -> str | None:
    """None when a web viewer may show ``url``: an absolute ``http://`` or ``https://`` URL that names a
    host, without spaces or control characters, of at most :data:`MAX_URL` characters; else why not, in
    one line. Any other scheme (``javascript:``, ``data:``, ``file:``) would run or read something in the
    panel's page or on its host rather than show a web page: the task and the panel both refuse it."""
    if len(url) > MAX_URL:
        return f"a URL has at most {MAX_URL} characters"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "a URL has no spaces or control characters"
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme not in WEB_SCHEMES:
        return "only http:// and https:// URLs are shown"
    if not host:
        return "a URL names a host (http://host/...)"
    return None


def _web_url(url: str) -> str:
    why = web_url_problem(url)
    if why is not None:
        raise ValueError(why)
    return url


#: the pattern is what other languages' schemas check (docs/asyncapi.yaml); the validator is the whole rule
WebUrl = Annotated[str, Field(strict=True, max_length=MAX_URL, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+"),
                   AfterValidator(_web_url)]


class WebViewerView(_View):
    """``web_viewer``: a web page the panel shows in a frame on the dashboard (http and https only)."""

    kind: Literal["web_viewer"]
    url: WebUrl | None = None  # None: no page yet
    #: the frame's height in pixels
    height: Annotated[int, Field(strict=True, ge=100, le=4000)] = 400
    #: why the last URL offered on the input was not taken ("" when it was)
    refused: Name = ""


DashboardView = Annotated[SliderView | ToggleView | RadioButtonsView | TextInputView | StatusDisplayView
                          | TextDisplayView | ValueBarView | PlotView | SpectrumView | WebViewerView,
                          Field(discriminator="kind")]


class ViewFrame(StreamFrame):
    """A frame on a dashboard task's ``view`` output: its value says what the panel draws."""

    value: DashboardView


#: Every payload model of the protocol, by the name docs/asyncapi.yaml gives its schema.
PAYLOADS: Final[tuple[type[BaseModel], ...]] = (
    AgentState, Catalog, CatalogDocument, CatalogEntry, CatalogRequest, CheckResult, CheckTask, DeploymentSpec,
    DismissRequest, MetricsBatch, MetricsRequest, RemovalRecord, StreamFrame, TaskStatusMsg, ValidationReply,
    ValidationRequest, ViewFrame)
