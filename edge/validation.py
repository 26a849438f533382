"""One validation of deployment specs, the same for the panel, ``edge deploy``, the controller and agents.

What is checked, in one pass, every problem listed (one line each, naming the task and field):

1. **structure** (:func:`edge.graph.parse_spec_lenient`): ids, unique task ids, edges between
   existing tasks, an input fed at most once, no secret in clear text;
2. **catalog** (:func:`edge.graph.check_against_catalog`): the type exists and is available, the
   ports exist, connected ports agree on their metadata;
3. **config schema** (:func:`schema_problems`): each task's config against the JSON Schema its
   type publishes in the catalog (unknown keys, wrong types, ranges), with ``jsonschema``;
4. **the type's own checks** (:meth:`edge.task.Task.check`): what needs the task's code (a
   formula that does not parse, a file outside its folder). The controller asks an online agent
   offering the type over MQTT (:data:`REQUEST` below) and waits at most ``timeout`` seconds; a
   task whose type no online agent offers, or whose agent does not answer in time, is listed in
   :attr:`Report.unchecked` ("not checked: ...") instead of being passed silently. An agent runs
   the same :meth:`~edge.task.Task.check` before it starts an instance and marks the task
   ``invalid`` with the same lines;
5. **pins** (:func:`pin_warnings`): a task pinned to an agent the broker has never seen is a
   *warning* (the agent may come later; the task waits in ``pending`` until it does).

Errors block a deployment; warnings and unchecked notes do not.

The request/response (documented in ``docs/protocol.md``): the controller publishes, QoS 1, on
``{root}/agents/{agent}/validate`` the CBOR map ``{"id": ID, "reply_to": TOPIC, "tasks": [{"task",
"type", "config"}, ...]}``; the agent answers on ``reply_to`` (a ``{root}/replies/{token}`` topic
and nothing else) with ``{"id": ID, "agent": AGENT, "tasks": {TASK: {"errors": [...],
"warnings": [...], "ports": {"inputs": {PORT: METADATA}, "outputs": {...}}}}}`` (both with the protocol
revision ``v``; their models are :class:`edge.protocol.ValidationRequest` and
:class:`edge.protocol.ValidationReply`), ``ports`` (the instance's, from :meth:`edge.task.Task.ports`) for
each task with neither errors nor warnings; the controller checks the wires against them, which covers
what the catalog's ``ports_from`` rules cannot express (:mod:`edge.ports`). The reply topic travels in
the payload, not in MQTT 5 properties, because the bus also speaks MQTT 3.1.1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from edge.errors import ConfigError, FrameError
from edge.frames import decode_value, encode_value
from edge.graph import DeploymentSpec, TaskSpec, check_against_catalog, parse_spec_lenient
from edge.protocol import (
    MAX_CHECK_LINES,
    MAX_CHECK_TASKS,
    PROTOCOL_REVISION,
    CheckResult,
    CheckTask,
    InstancePorts,
    ValidationError,
    ValidationReply,
    ValidationRequest,
    problem,
)
from edge.secrets import is_reference

if TYPE_CHECKING:
    from edge.task import Task

__all__ = ["CHECK_TIMEOUT", "CheckRequest", "OfflineCheck", "Report", "answer_request", "check_offline", "decode_reply",
           "decode_reply_ports", "decode_request", "encode_request", "parse_reply", "pin_warnings", "reply_lines",
           "schema_problems"]

log = logging.getLogger("edge.validation")

#: seconds the controller waits for the agents' answers to a validation request
CHECK_TIMEOUT: Final = 3.0
#: most tasks, and most lines per task, in one request or reply (hostile input stays bounded)
MAX_TASKS: Final = MAX_CHECK_TASKS
MAX_LINES: Final = MAX_CHECK_LINES
#: longest message of one schema error (they quote the value, which may be large)
MAX_MESSAGE: Final = 300


@dataclass(frozen=True)
class Report:
    """The result of validating a spec: ``spec`` is the spec as it would be published (None
    while it has structural problems), then every error, warning and check that could not run."""

    spec: DeploymentSpec | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    #: the spec as it was given, when it was structurally valid (before placement)
    checked: DeploymentSpec | None = None

    @property
    def ok(self) -> bool:
        """No error (warnings and unchecked notes do not block)."""
        return not self.errors

    def lines(self) -> list[str]:
        """Every problem, one line each: ``error: ...``, then ``warning: ...``, then ``not checked: ...``."""
        return [*(f"error: {e}" for e in self.errors), *(f"warning: {w}" for w in self.warnings),
                *(f"not checked: {u}" for u in self.unchecked)]


# -- config schemas ----------------------------------------------------------------------------------
def _where(path: Collection[Any]) -> str:
    return ".".join(["config", *(str(p) for p in path)])


def schema_problems(task: TaskSpec, schema: Mapping[str, Any], *,
                    validators: dict[str, Any] | None = None) -> tuple[list[tuple[str, str]], str | None]:
    """``(field, message)`` for each way ``task.config`` breaks ``schema``, and why it could not be
    checked (a broken schema in the catalog) or None. Secret references are not checked: only the
    agent holds their values. ``validators`` keeps the validator of each type whose schema was found
    sound, for the next task of that type with the same schema (checking the schema itself against the
    metaschema took ~2 ms a task: 2 s for a deployment of 1,000 tasks of one type)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing.exceptions import Unresolvable

    try:
        validator = validators.get(task.type) if validators is not None else None
        if validator is None:
            Draft202012Validator.check_schema(schema)
            validator = Draft202012Validator(schema)
            if validators is not None:
                validators[task.type] = validator
        found = sorted(validator.iter_errors(task.config), key=lambda e: [str(p) for p in e.absolute_path])
    except (SchemaError, Unresolvable, RecursionError) as exc:
        return [], f"the catalog's config schema of type {task.type!r} is broken: {str(exc).splitlines()[0]}"
    problems: list[tuple[str, str]] = []
    for error in found:
        if is_reference(error.instance):
            continue
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            known = sorted((error.schema.get("properties") or {}) if isinstance(error.schema, Mapping) else {})
            allowed = f" (known: {', '.join(known)})" if known else ""
            problems += [(_where([*path, key]), f"unknown field{allowed}") for key in error.instance
                         if key not in known]
            continue
        message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + " …"
        problems.append((_where(path), message))
    return problems, None


# -- pins ---------------------------------------------------------------------------------------------
def pin_warnings(spec: DeploymentSpec, known_agents: Collection[str]) -> list[str]:
    """A warning for each task pinned to an agent the broker has never announced."""
    return [f"task {task.id!r}: agent {task.agent!r} is not known to this broker: the task stays pending "
            f"until an agent with that id connects" for task in spec.tasks
            if task.agent is not None and task.agent not in known_agents]


# -- everything that needs no agent ----------------------------------------------------------------
@dataclass
class OfflineCheck:
    """What :func:`check_offline` found; ``schema_fields`` maps a task id to the config fields the
    schema already found wrong (so the type's own checks do not repeat them)."""

    spec: DeploymentSpec | None
    partial: DeploymentSpec
    errors: list[str]
    schema_fields: dict[str, set[str]]
    warnings: list[str]
    unchecked: list[str]


def check_offline(data: Any, *, types: Mapping[str, Mapping[str, Any]], agents: Collection[str]) -> OfflineCheck:
    """Structure, catalog, config schemas and pins of ``data`` (a spec or its parsed YAML/JSON)."""
    spec, partial, errors = parse_spec_lenient(data)
    errors += check_against_catalog(partial, types)
    fields: dict[str, set[str]] = {}
    unchecked: list[str] = []
    validators: dict[str, Any] = {}  # by type: one schema per type in ``types``
    for task in partial.tasks:
        schema = types.get(task.type, {}).get("config_schema")
        if not isinstance(schema, Mapping):
            continue
        problems, broken = schema_problems(task, schema, validators=validators)
        if broken is not None:
            unchecked.append(f"task {task.id!r}: {broken}")
        fields[task.id] = {where for where, _ in problems}
        errors += [f"task {task.id!r}: {where}: {message}" for where, message in problems]
    return OfflineCheck(spec, partial, errors, fields, pin_warnings(partial, agents), unchecked)


# -- the request and reply -----------------------------------------------------------------------
@dataclass(frozen=True)
class CheckRequest:
    """Validate these tasks' configs with their types' own checks, answer on ``reply_to``."""

    id: str
    reply_to: str
    tasks: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (task, type, config)


def encode_request(request: CheckRequest) -> bytes:
    message = ValidationRequest(v=PROTOCOL_REVISION, id=request.id, reply_to=request.reply_to,
                                tasks=[CheckTask(task=t, type=ty, config=c) for t, ty, c in request.tasks])
    return encode_value(message.model_dump())


def decode_request(payload: bytes) -> CheckRequest:
    """A request from the wire (:class:`edge.protocol.ValidationRequest`); :class:`ConfigError` for
    anything malformed."""
    try:
        message = ValidationRequest.model_validate(decode_value(payload))
    except FrameError as exc:
        raise ConfigError(f"not a CBOR validation request: {exc}", field="payload") from None
    except ValidationError as exc:
        raise ConfigError(f"a malformed validation request: {problem(exc)}", field="payload") from None
    return CheckRequest(id=message.id, reply_to=message.reply_to,
                        tasks=[(t.task, t.type, dict(t.config)) for t in message.tasks])


def answer_request(request: CheckRequest, *, agent_id: str, types: Mapping[str, type[Task]],
                   resolve: Callable[[Any], Any]) -> bytes:
    """The reply of agent ``agent_id`` (its types, its secrets) to ``request``."""
    results: dict[str, CheckResult] = {}
    for task_id, type_name, config in request.tasks:
        task_type = types.get(type_name)
        errors: list[str] = []
        warnings: list[str] = []
        if task_type is None:
            warnings.append(f"agent {agent_id} does not offer type {type_name!r}: its checks were not run")
        else:
            try:
                errors = task_type.check(resolve(config))
            except ConfigError as exc:  # an unknown secret: the agent may get it before the task starts
                warnings.append(f"{exc}: the type's checks were not run")
            except Exception as exc:  # a bug in a type's check must not stop the agent answering
                log.exception("the check of type %r failed on agent %s", type_name, agent_id)
                warnings.append(f"the check of type {type_name!r} failed on agent {agent_id}: "
                                f"{type(exc).__name__}: {exc}")
        ports: InstancePorts | None = None
        if task_type is not None and not errors and not warnings:
            try:
                ports = InstancePorts.model_validate(
                    task_type.ports(task_type.validate_config(resolve(config))).metadata())
            except ConfigError:
                pass  # check() passed but the model did not: its lines are the type's to give
            except Exception as exc:  # a bug in a type's ports() must not stop the agent answering
                log.exception("the ports of type %r failed on agent %s", type_name, agent_id)
                warnings.append(f"the ports of type {type_name!r} failed on agent {agent_id}: "
                                f"{type(exc).__name__}: {exc}")
        results[task_id] = CheckResult(errors=[str(e) for e in errors[:MAX_LINES]], warnings=warnings, ports=ports)
    reply = ValidationReply(v=PROTOCOL_REVISION, id=request.id, agent=agent_id, tasks=results)
    return encode_value(reply.model_dump(exclude_none=True))


def parse_reply(payload: bytes, request_id: str) -> ValidationReply | None:
    """The reply to ``request_id`` (:class:`edge.protocol.ValidationReply`); None for anything else. A task
    whose ``ports`` are malformed or beyond the bounds has none; its lines still stand."""
    try:
        reply = ValidationReply.model_validate(decode_value(payload))
    except (FrameError, ValidationError):
        return None
    return reply if reply.id == request_id else None


def decode_reply_ports(payload: bytes, request_id: str) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{task id: {"inputs": {port: metadata}, "outputs": ...}}``: the instance ports a reply to
    ``request_id`` carries (what the agent's :meth:`~edge.task.Task.ports` made of each config)."""
    reply = parse_reply(payload, request_id)
    if reply is None:
        return {}
    return {task: result.ports.model_dump() for task, result in reply.tasks.items() if result.ports is not None}


def decode_reply(payload: bytes, request_id: str) -> tuple[str, dict[str, tuple[list[str], list[str]]]] | None:
    """``(agent, {task id: (errors, warnings)})`` of a reply to ``request_id``; None for anything else."""
    reply = parse_reply(payload, request_id)
    return None if reply is None else (reply.agent, reply_lines(reply))


def reply_lines(reply: ValidationReply) -> dict[str, tuple[list[str], list[str]]]:
    """``{task id: (errors, warnings)}`` of a reply."""
    return {task: (list(result.errors), list(result.warnings)) for task, result in reply.tasks.items()}
