"""The topic namespace: the addressing layer of edgetasks.

Every topic the system uses is built and parsed here, and nowhere else. The layout
(documented for other-language clients in ``docs/protocol.md``)::

    edge/v1/{namespace}/agents/{agent_id}/state                      retained birth / will
    edge/v1/{namespace}/agents/{agent_id}/catalog                    retained task types (or a catalog hash)
    edge/v1/{namespace}/catalogs/{hash}                              retained task types shared by agents
    edge/v1/{namespace}/agents/{agent_id}/catalog/request            "publish your shared catalog", never retained
    edge/v1/{namespace}/agents/{agent_id}/validate                   validation requests to that agent
    edge/v1/{namespace}/replies/{token}                              answers to one requester
    edge/v1/{namespace}/agents/{agent_id}/dismiss                    "dismiss a crash notice", never retained
    edge/v1/{namespace}/agents/{agent_id}/metrics                    task metrics batches, never retained
    edge/v1/{namespace}/agents/{agent_id}/metrics/request            "send all metrics", never retained
    edge/v1/{namespace}/deployments/{deployment_id}                  retained graph spec or removal record
    edge/v1/{namespace}/deployments/{deployment_id}/status/{task_id} retained task status
    edge/v1/{namespace}/deployments/{deployment_id}/status/{task_id}.{n}  retained status of replica n
    edge/v1/{namespace}/streams/{deployment_id}/{task_id}/{port}     data frames, never retained
    edge/v1/{namespace}/named/{name}                                 a named stream's frames
    edge/v1/{namespace}/agents/{agent_id}/sync                       an agent's own round trips
    edge/v1/{namespace}/agents/{agent_id}/inject/{deployment_id}/{task_id}/{port}
                                                                     frames a controller injects into an input
    edge/v1/{namespace}/controllers/{client}/sync                    a controller's own round trips
    edge/v1/{namespace}/agents/{agent_id}/hass/availability          retained "online" / "offline" (plain text)
    edge/v1/{namespace}/agents/{agent_id}/hass/health                the agent's health for Home Assistant (JSON)
    edge/v1/{namespace}/hass/{deployment_id}/{task_id}/state         a dashboard task's state (plain text, retained)
    edge/v1/{namespace}/hass/{deployment_id}/{task_id}/set           Home Assistant's commands to it (plain text)

Home Assistant's own topics (``edge.hass``) live under its discovery prefix, outside the namespace::

    {prefix}/{component}/{node_id}/{object_id}/config                retained discovery config (JSON)
    {prefix}/status                                                  Home Assistant's birth / will

Ids are ``[A-Za-z0-9_-]{1,64}``: they can never contain the MQTT wildcards ``+`` and
``#`` nor the level separator ``/``, so a topic always parses back into the ids it was
built from. A task with ``replicas: N`` runs N instances, each with a *task key* of its own,
``{task_id}.{n}`` (n from 0; ``.`` is in no id): its status topic's last level. The inputs of
replicas are shared subscriptions, ``$share/{group}/{source}`` (:meth:`Topics.shared`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from edge.errors import IdError, TopicError

__all__ = [
    "ANY_NAMESPACE_AGENT_STATES",
    "CATALOG_HASH_PATTERN",
    "ID_PATTERN",
    "MAX_REPLICAS",
    "TASK_KEY_PATTERN",
    "MAX_TOPIC_BYTES",
    "HASS_PREFIX",
    "ParsedTopic",
    "TopicKind",
    "Topics",
    "is_stream_topic",
    "is_valid_id",
    "hass_config",
    "hass_status",
    "matches",
    "namespace_of",
    "replica_key",
    "sibling_topic",
    "split_task_key",
    "validate_filter",
    "validate_hass_prefix",
    "validate_id",
    "validate_task_key",
    "validate_topic",
]

ID_PATTERN: Final = r"[A-Za-z0-9_-]{1,64}"
_ID_RE: Final = re.compile(rf"\A{ID_PATTERN}\Z")
#: replicas one task may have (``TaskSpec.replicas``)
MAX_REPLICAS: Final = 64
#: a task's id, or a replica's key ``{task_id}.{n}`` (n < MAX_REPLICAS): what a status is published under
TASK_KEY_PATTERN: Final = rf"{ID_PATTERN}(?:\.(?:0|[1-9][0-9]?))?"
_TASK_KEY_RE: Final = re.compile(rf"\A({ID_PATTERN})(?:\.(0|[1-9][0-9]?))?\Z")
MAX_TOPIC_BYTES: Final = 65535
#: a shared catalog's name: the first 32 hex digits (128 bits) of the sha256 of its payload
CATALOG_HASH_PATTERN: Final = r"[0-9a-f]{32}"
CATALOG_HASH_RE: Final = re.compile(CATALOG_HASH_PATTERN)
PROTOCOL_VERSION: Final = "v1"
_PREFIX: Final = "edge"
#: The agent states of every namespace on a broker (to tell a user which namespaces hold agents).
ANY_NAMESPACE_AGENT_STATES: Final = f"{_PREFIX}/{PROTOCOL_VERSION}/+/agents/+/state"


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None


def validate_id(value: object, kind: str = "id") -> str:
    """Return ``value`` if it is a valid id, else raise :class:`IdError` naming ``kind``."""
    if is_valid_id(value):
        return value  # type: ignore[return-value]
    raise IdError(
        f"invalid {kind} {value!r}: use 1 to 64 of the characters A-Z a-z 0-9 _ - "
        "(no spaces, '/', '+', '#' or non-ASCII)",
        kind=kind,
        value=value,
    )


def replica_key(task_id: str, index: int) -> str:
    """The key of replica ``index`` (from 0) of task ``task_id``: ``worker.1``."""
    if type(index) is not int or not 0 <= index < MAX_REPLICAS:
        raise IdError(f"invalid replica index {index!r}: 0 to {MAX_REPLICAS - 1}", kind="replica", value=index)
    return f"{validate_id(task_id, 'task id')}.{index}"


def split_task_key(key: str) -> tuple[str, int | None]:
    """``worker.1`` -> ``("worker", 1)``, ``worker`` -> ``("worker", None)``; :class:`IdError` for anything else."""
    found = _TASK_KEY_RE.match(key) if isinstance(key, str) else None
    if found is None or (found.group(2) is not None and int(found.group(2)) >= MAX_REPLICAS):
        raise IdError(f"invalid task key {key!r}: a task id, or a task id, '.' and a replica number "
                      f"(0 to {MAX_REPLICAS - 1})", kind="task key", value=key)
    return found.group(1), None if found.group(2) is None else int(found.group(2))


def validate_task_key(value: object) -> str:
    """``value`` if it is a task id or a replica's key (``worker.1``), else :class:`IdError`."""
    split_task_key(value)  # type: ignore[arg-type]
    return value  # type: ignore[return-value]


def _check_common(topic: str, what: str) -> None:
    if not isinstance(topic, str):
        raise TopicError(f"{what} must be a string, not {type(topic).__name__}", topic=repr(topic))
    if not topic:
        raise TopicError(f"{what} must not be empty", topic=topic)
    if "\x00" in topic:
        raise TopicError(f"{what} must not contain NUL characters", topic=topic)
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise TopicError(f"{what} is longer than {MAX_TOPIC_BYTES} bytes", topic=topic[:80])
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TopicError(f"{what} is not valid UTF-8: {exc}", topic=repr(topic)) from None


def validate_topic(topic: str) -> str:
    """A topic to publish on: valid UTF-8, not empty, no wildcards."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic {topic!r} must not contain the wildcards '+' or '#'", topic=topic)
    return topic


def validate_filter(pattern: str) -> str:
    """A topic filter to subscribe to: ``+`` fills one whole level, ``#`` only the last one."""
    _check_common(pattern, "topic filter")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise TopicError(f"in topic filter {pattern!r}, '#' must be the whole last level", topic=pattern)
        if "+" in level and level != "+":
            raise TopicError(f"in topic filter {pattern!r}, '+' must fill a whole level", topic=pattern)
    return pattern


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT filter ``pattern`` (``$``-topics need an explicit first level)."""
    if pattern == topic:
        return True
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    if pattern.startswith("$share/"):
        parts = pattern.split("/", 2)
        if len(parts) < 3:
            return False
        pattern = parts[2]
    p_levels = pattern.split("/")
    t_levels = topic.split("/")
    for i, p in enumerate(p_levels):
        if p == "#":
            return True
        if i >= len(t_levels):
            return False
        if p != "+" and p != t_levels[i]:
            return False
    return len(p_levels) == len(t_levels)


def namespace_of(topic: str) -> str | None:
    """The namespace of an edgetasks topic (``edge/v1/{namespace}/...``), or None for any other topic."""
    levels = topic.split("/", 3)
    if len(levels) == 4 and levels[:2] == [_PREFIX, PROTOCOL_VERSION] and is_valid_id(levels[2]):
        return levels[2]
    return None


def is_stream_topic(topic: str) -> bool:
    """Whether ``topic`` is a task output's stream (``edge/v1/{ns}/streams/{dep}/{task}/{port}``) in any
    namespace: a topic only that one output publishes on, so its frames' ``seq`` counts one stream."""
    levels = topic.split("/")
    return (len(levels) == 7 and levels[:2] == [_PREFIX, PROTOCOL_VERSION] and levels[3] == "streams"
            and all(_ID_RE.match(level) for level in (levels[2], *levels[4:])))


def sibling_topic(topic: str, level: str) -> str | None:
    """The topic beside ``topic`` whose last level is ``level`` (a stream's other port: the panel's
    ``set`` beside a dashboard task's ``view``); None for a topic of one level."""
    if "/" not in topic:
        return None
    return f"{topic.rsplit('/', 1)[0]}/{validate_id(level, 'port')}"


HASS_PREFIX: Final = "homeassistant"
"""Home Assistant's default MQTT discovery prefix."""


def validate_hass_prefix(prefix: object) -> str:
    """A Home Assistant discovery prefix: levels of letters, digits, ``_`` and ``-``, split by ``/``."""
    if isinstance(prefix, str) and prefix and all(_ID_RE.match(level) for level in prefix.split("/")):
        return prefix
    raise TopicError(f"invalid Home Assistant discovery prefix {prefix!r}: use levels of 1 to 64 of the "
                     "characters A-Z a-z 0-9 _ - split by '/' (default 'homeassistant')", topic=repr(prefix))


def hass_config(prefix: str, component: str, node_id: str, object_id: str) -> str:
    """Where Home Assistant reads an entity's discovery config: ``{prefix}/{component}/{node_id}/{object_id}/config``
    (its documented layout; the ids are ``[a-zA-Z0-9_-]``, which our ids are)."""
    return (f"{validate_hass_prefix(prefix)}/{validate_id(component, 'component')}/"
            f"{validate_id(node_id, 'node id')}/{validate_id(object_id, 'object id')}/config")


def hass_status(prefix: str) -> str:
    """Where Home Assistant publishes its birth (``online``) and will (``offline``)."""
    return f"{validate_hass_prefix(prefix)}/status"


class TopicKind(Enum):
    AGENT_STATE = "agent_state"
    AGENT_CATALOG = "agent_catalog"
    CATALOG_DOCUMENT = "catalog_document"
    AGENT_CATALOG_REQUEST = "agent_catalog_request"
    AGENT_DISMISS = "agent_dismiss"
    AGENT_METRICS = "agent_metrics"
    AGENT_METRICS_REQUEST = "agent_metrics_request"
    DEPLOYMENT = "deployment"
    TASK_STATUS = "task_status"
    STREAM = "stream"
    INJECT = "inject"
    AGENT_VALIDATE = "agent_validate"
    REPLY = "reply"
    WATCH = "watch"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """What a namespace topic addresses; ids that do not apply to its kind are ``None``."""

    kind: TopicKind
    namespace: str
    agent_id: str | None = None
    deployment_id: str | None = None
    task_id: str | None = None
    port: str | None = None
    token: str | None = None
    #: a shared catalog's hash (``catalogs/{hash}``)
    catalog: str | None = None


class Topics:
    """Builds and parses the topics of one namespace (``edge/v1/{namespace}``)."""

    __slots__ = ("namespace", "root")

    def __init__(self, namespace: str = "default") -> None:
        self.namespace = validate_id(namespace, "namespace")
        self.root = f"{_PREFIX}/{PROTOCOL_VERSION}/{namespace}"

    def __repr__(self) -> str:
        return f"Topics({self.namespace!r})"

    # -- building ---------------------------------------------------------------------------
    def client_id(self, kind: str, name: str) -> str:
        """The MQTT client id of an agent (``kind`` "agent") or a wired fn_task ("fn") named ``name``
        in this namespace: ``agent-pi1.default``. The namespace is part of it, so agents with the same
        id in two namespaces of one broker do not take over each other's connection and persistent
        session (``.`` is in no id, so no two pairs give the same client id)."""
        return f"{kind}-{validate_id(name, f'{kind} id')}.{self.namespace}"

    def replica_client_id(self, agent_id: str, deployment_id: str, task_key: str) -> str:
        """The MQTT client id of a replica's own connection on ``agent_id`` (``Host``):
        ``replica-pi1.demo.worker.1.default``, unique as :meth:`client_id` is."""
        return (f"replica-{validate_id(agent_id, 'agent id')}.{validate_id(deployment_id, 'deployment id')}."
                f"{validate_task_key(task_key)}.{self.namespace}")

    def agent_state(self, agent_id: str) -> str:
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/state"

    def agent_catalog(self, agent_id: str) -> str:
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/catalog"

    def agent_catalog_request(self, agent_id: str) -> str:
        """Where a controller that lacks the shared catalog an agent names asks that agent to publish it."""
        return f"{self.agent_catalog(agent_id)}/request"

    def catalog_document(self, digest: str) -> str:
        """The retained task types shared by the agents whose catalog names ``digest`` (docs/protocol.md)."""
        if not isinstance(digest, str) or not CATALOG_HASH_RE.fullmatch(digest):
            raise IdError(f"invalid catalog hash {digest!r}: 32 lowercase hex digits expected", kind="catalog hash",
                          value=digest)
        return f"{self.root}/catalogs/{digest}"

    def agent_validate(self, agent_id: str) -> str:
        """Where an agent takes validation requests (``edge.validation``)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/validate"

    def reply(self, token: str) -> str:
        """Where one requester takes its answers; ``token`` is its own (e.g. a uuid's hex)."""
        return f"{self.root}/replies/{validate_id(token, 'reply token')}"
    def agent_dismiss(self, agent_id: str) -> str:
        """Where a controller asks an agent to clear a task's crash notice (read by that agent only)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/dismiss"

    def agent_metrics(self, agent_id: str) -> str:
        """Where an agent publishes the metrics of its tasks, in batches (``edge.protocol.MetricsBatch``)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/metrics"

    def agent_metrics_request(self, agent_id: str) -> str:
        """Where a reader asks an agent for the metrics of all its tasks (answered in its next full batch)."""
        return f"{self.agent_metrics(agent_id)}/request"

    def deployment(self, deployment_id: str) -> str:
        return f"{self.root}/deployments/{validate_id(deployment_id, 'deployment id')}"

    def task_status(self, deployment_id: str, task_id: str) -> str:
        """The retained status of a task, or of one replica of it (``task_id`` a replica key: ``worker.1``)."""
        return f"{self.deployment(deployment_id)}/status/{validate_task_key(task_id)}"

    def shared(self, deployment_id: str, task_id: str, source: str) -> str:
        """The shared subscription by which the replicas of a task take ``source`` (a topic or filter):
        each message goes to one of them. The group names namespace, deployment and task (``.`` is in
        no id, so two tasks never share a group), so other subscribers of ``source`` are not affected."""
        group = f"edge.{self.namespace}.{validate_id(deployment_id, 'deployment id')}.{validate_id(task_id, 'task id')}"
        return f"$share/{group}/{validate_filter(source)}"

    def sync(self, client: str) -> str:
        """A client's own topic for round trips: what it publishes there comes back after all before it."""
        return f"{self.root}/controllers/{validate_id(client, 'client id')}/sync"

    def agent_sync(self, agent_id: str) -> str:
        """An agent's own topic for round trips (:meth:`sync` for a controller)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/sync"

    def inject(self, agent_id: str, deployment_id: str, task_id: str, port: str) -> str:
        """Where a controller sends a frame into input ``port`` of a task running on ``agent_id`` (the
        panel's inject): the agent hands it to the task as the input's source would, wired or not."""
        return (
            f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/inject/"
            f"{validate_id(deployment_id, 'deployment id')}/{validate_id(task_id, 'task id')}/"
            f"{validate_id(port, 'port')}"
        )

    def agent_injects(self, agent_id: str) -> str:
        """The inject topics of every input of every task of one agent: what the agent subscribes to
        (one filter per agent, not per task: a task's start waits for no extra SUBACK)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/inject/+/+/+"

    @property
    def watch(self) -> str:
        """Where watchers of streams say so (``edge.protocol.Watch``), read by every agent (``edge.local``)."""
        return f"{self.root}/watch"

    def stream(self, deployment_id: str, task_id: str, port: str) -> str:
        return (
            f"{self.root}/streams/{validate_id(deployment_id, 'deployment id')}/"
            f"{validate_id(task_id, 'task id')}/{validate_id(port, 'port')}"
        )

    def hass_availability(self, agent_id: str) -> str:
        """An agent's availability for Home Assistant: retained plain ``online`` / ``offline`` (``edge.hass``)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/hass/availability"

    def hass_health(self, agent_id: str) -> str:
        """An agent's health for Home Assistant's sensors: a JSON map (``edge.hass``)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/hass/health"

    def hass_state(self, deployment_id: str, task_id: str) -> str:
        """A dashboard task's state as Home Assistant reads it: plain text, retained."""
        return (f"{self.root}/hass/{validate_id(deployment_id, 'deployment id')}/"
                f"{validate_id(task_id, 'task id')}/state")

    def hass_command(self, deployment_id: str, task_id: str) -> str:
        """Where Home Assistant sets a dashboard control: plain text."""
        return (f"{self.root}/hass/{validate_id(deployment_id, 'deployment id')}/"
                f"{validate_id(task_id, 'task id')}/set")

    def named(self, name: str) -> str:
        """The named stream ``name`` (``tasks.named``): frames any deployment of the namespace may read."""
        return f"{self.root}/named/{validate_id(name, 'stream name')}"

    # -- subscription filters ---------------------------------------------------------------
    @property
    def all_agent_states(self) -> str:
        return f"{self.root}/agents/+/state"

    @property
    def all_agent_catalogs(self) -> str:
        return f"{self.root}/agents/+/catalog"

    @property
    def all_catalog_documents(self) -> str:
        return f"{self.root}/catalogs/+"

    @property
    def all_agent_metrics(self) -> str:
        return f"{self.root}/agents/+/metrics"

    @property
    def all_deployments(self) -> str:
        return f"{self.root}/deployments/+"

    def all_task_statuses(self, deployment_id: str | None = None) -> str:
        dep = "+" if deployment_id is None else validate_id(deployment_id, "deployment id")
        return f"{self.root}/deployments/{dep}/status/+"

    def all_streams(self, deployment_id: str | None = None) -> str:
        if deployment_id is None:
            return f"{self.root}/streams/#"
        return f"{self.root}/streams/{validate_id(deployment_id, 'deployment id')}/#"

    def all_streams_of_port(self, port: str, deployment_id: str | None = None) -> str:
        """The streams of one port of every task (of one deployment): the dashboards' ``view``."""
        dep = "+" if deployment_id is None else validate_id(deployment_id, "deployment id")
        return f"{self.root}/streams/{dep}/+/{validate_id(port, 'port')}"

    # -- ACL filters (``edge.acl``) ---------------------------------------------------------
    @property
    def everything(self) -> str:
        return f"{self.root}/#"

    def agent_subtree(self, agent_id: str) -> str:
        """An agent's own topics (state, catalog, sync, ...)."""
        return f"{self.root}/agents/{validate_id(agent_id, 'agent id')}/#"

    @property
    def all_replies(self) -> str:
        return f"{self.root}/replies/+"

    def task_streams(self, deployment_id: str, task_id: str) -> str:
        """Every output stream of one task."""
        return f"{self.root}/streams/{validate_id(deployment_id, 'deployment id')}/{validate_id(task_id, 'task id')}/#"

    # -- parsing ----------------------------------------------------------------------------
    def parse(self, topic: str) -> ParsedTopic:
        """The kind and ids of a topic of this namespace; :class:`TopicError` for anything else."""
        prefix = self.root + "/"
        if not isinstance(topic, str) or not topic.startswith(prefix):
            raise TopicError(f"topic {topic!r} is not under {prefix!r}", topic=str(topic))
        levels = topic[len(prefix) :].split("/")
        ns = self.namespace
        if len(levels) == 4 and levels[0] == "deployments" and levels[2] == "status" \
                and _TASK_KEY_RE.match(levels[3]) and _ID_RE.match(levels[1]):  # a replica's status too
            with contextlib.suppress(IdError):
                split_task_key(levels[3])
                return ParsedTopic(TopicKind.TASK_STATUS, ns, deployment_id=levels[1], task_id=levels[3])
        if not all(_ID_RE.match(level) for level in levels):
            raise TopicError(f"topic {topic!r} holds an invalid id", topic=topic)
        match levels:
            case ["agents", agent, "state"]:
                return ParsedTopic(TopicKind.AGENT_STATE, ns, agent_id=agent)
            case ["agents", agent, "catalog"]:
                return ParsedTopic(TopicKind.AGENT_CATALOG, ns, agent_id=agent)
            case ["agents", agent, "catalog", "request"]:
                return ParsedTopic(TopicKind.AGENT_CATALOG_REQUEST, ns, agent_id=agent)
            case ["catalogs", digest] if CATALOG_HASH_RE.fullmatch(digest):
                return ParsedTopic(TopicKind.CATALOG_DOCUMENT, ns, catalog=digest)
            case ["agents", agent, "validate"]:
                return ParsedTopic(TopicKind.AGENT_VALIDATE, ns, agent_id=agent)
            case ["replies", token]:
                return ParsedTopic(TopicKind.REPLY, ns, token=token)
            case ["agents", agent, "dismiss"]:
                return ParsedTopic(TopicKind.AGENT_DISMISS, ns, agent_id=agent)
            case ["agents", agent, "metrics"]:
                return ParsedTopic(TopicKind.AGENT_METRICS, ns, agent_id=agent)
            case ["agents", agent, "metrics", "request"]:
                return ParsedTopic(TopicKind.AGENT_METRICS_REQUEST, ns, agent_id=agent)
            case ["deployments", dep]:
                return ParsedTopic(TopicKind.DEPLOYMENT, ns, deployment_id=dep)
            case ["deployments", dep, "status", task]:
                return ParsedTopic(TopicKind.TASK_STATUS, ns, deployment_id=dep, task_id=task)
            case ["watch"]:
                return ParsedTopic(TopicKind.WATCH, ns)
            case ["streams", dep, task, port]:
                return ParsedTopic(TopicKind.STREAM, ns, deployment_id=dep, task_id=task, port=port)
            case ["agents", agent, "inject", dep, task, port]:
                return ParsedTopic(TopicKind.INJECT, ns, agent_id=agent, deployment_id=dep, task_id=task, port=port)
        raise TopicError(f"topic {topic!r} is not an edgetasks topic", topic=topic)
