"""The AsyncAPI 3.0 document of the edgetasks protocol, generated from ``edge.protocol`` and ``edge.topics``.

``docs/asyncapi.yaml`` is this module's output, committed so that a client in any language can be
generated from it (``tests/edge/test_asyncapi.py`` checks it equals a fresh generation, so it
cannot drift from the models). Every topic of ``docs/protocol.md`` is a channel, its ids are
the channel's parameters, its payloads the JSON Schemas of the pydantic models that the readers
parse it with; ``x-retained`` (and the MQTT operation bindings' ``retain``) says whether it is
retained, and the operations say who sends and who receives (tagged with the role: ``agent``,
``controller``, ``broker``, ``task``, ``panel``)::

    python -m edge.asyncapi > docs/asyncapi.yaml        # write it again after changing a model
    python -m edge.asyncapi --check docs/asyncapi.yaml  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from edge.protocol import (
    PAYLOADS,
    PROTOCOL_REVISION,
    AgentState,
    Catalog,
    CatalogDocument,
    CatalogRequest,
    DeploymentSpec,
    DismissRequest,
    MetricsBatch,
    MetricsRequest,
    RemovalRecord,
    StreamFrame,
    TaskStatusMsg,
    ValidationReply,
    ValidationRequest,
    ViewFrame,
    Watch,
)
from edge.topics import CATALOG_HASH_PATTERN, ID_PATTERN, PROTOCOL_VERSION, Topics

__all__ = ["document", "main", "render"]

SCHEMAS: Final = "#/components/schemas/"
ROOT: Final = "{namespace}"  # stands for the namespace in the topics built below
_ID: Final = f"an id: {ID_PATTERN} (no wildcard, no '/')"
PARAMETERS: Final = {
    "namespace": f"The namespace: every topic of one fleet is under edge/{PROTOCOL_VERSION}/{{namespace}}; {_ID}.",
    "agent_id": f"The agent's id; {_ID}.",
    "deployment_id": f"The deployment's id; {_ID}.",
    "task_id": f"The task's id in its deployment; {_ID}.",
    "port": f"The port's name: an output's (a stream), an input's (inject); {_ID}.",
    "token": f"A requester's own token (32 hex digits); {_ID}.",
    "client_id": f"A controller's client id; {_ID}.",
    "hash": f"A shared catalog's name: the first 32 hex digits of the sha256 of its payload ({CATALOG_HASH_PATTERN}).",
}


@dataclass(frozen=True)
class Message:
    """A kind of payload: its key in ``components.messages``, its model (None: opaque bytes), what it says."""

    key: str
    model: type[BaseModel] | None
    summary: str
    content_type: str = "application/cbor"


@dataclass(frozen=True)
class Channel:
    """A topic: its key, address, payloads, whether retained, its QoS (published, subscribed), and who
    sends and receives it."""

    key: str
    address: str
    description: str
    messages: tuple[Message, ...]
    retained: bool
    qos: int
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    receive_qos: int | None = None  # when subscribers ask for another QoS than senders publish at

    def qos_of(self, action: str) -> int:
        return self.qos if action == "send" or self.receive_qos is None else self.receive_qos


STATE = Message("agentState", AgentState, "An agent's birth, periodic state with metrics, or will (online: false).")
CATALOG = Message("catalog", Catalog, "The task types an agent offers (inline, or the hash of a shared catalog).")
DOCUMENT = Message("catalogDocument", CatalogDocument, "Task types shared by the agents whose catalog names its hash.")
CATALOG_REQUEST = Message("catalogRequest", CatalogRequest,
                          "Publish the shared catalog `catalog` again, if it is still yours: the reader lacks it.")
SPEC = Message("deploymentSpec", DeploymentSpec, "A deployment's graph spec (the same shape as its YAML).")
REMOVAL = Message("removalRecord", RemovalRecord, "A deployment removed: every version up to `version` is gone.")
STATUS = Message("taskStatus", TaskStatusMsg, "The last state of one task instance, with its metrics.")
REQUEST = Message("validationRequest", ValidationRequest, "Run these tasks' own config checks; answer on reply_to.")
REPLY = Message("validationReply", ValidationReply, "An agent's answer to one validation request.")
DISMISS = Message("dismissRequest", DismissRequest, "Clear a task's crash notice unless it crashed again since.")
WATCH = Message("watch", Watch, "Someone looks at the streams matching `filter` for `lease` more seconds.")
FRAME = Message("frame", StreamFrame, "One frame of a task output's stream (docs/frames.md).")
VIEW = Message("viewFrame", ViewFrame, "What a dashboard task's card shows now.")
METRICS = Message("metricsBatch", MetricsBatch, "Part of a batch of the metrics of an agent's running tasks.")
METRICS_REQUEST = Message("metricsRequest", MetricsRequest,
                          "Send every task's metrics now, then the changed ones for ``watch`` s (an empty payload: "
                          "30 s).")
TOKEN = Message("syncToken", None, "An opaque token; it comes back to its sender after all it sent before.",
                content_type="application/octet-stream")


def _channels() -> tuple[Channel, ...]:
    topics = Topics("namespace")  # then its namespace level is swapped for the parameter
    ids = {"agent_id": "{agent_id}", "deployment_id": "{deployment_id}", "task_id": "{task_id}", "port": "{port}",
           "token": "{token}", "client_id": "{client_id}"}
    placeholder = {name: name.replace("_", "-") for name in ids}  # valid ids, replaced by the parameters

    def address(build: Any, *names: str) -> str:
        topic: str = build(*(placeholder[n] for n in names))
        levels = topic.split("/")
        levels[2] = ROOT
        for name in names:
            levels[levels.index(placeholder[name])] = ids[name]
        return "/".join(levels)

    agent_sync = address(topics.agent_state, "agent_id").rsplit("/", 1)[0] + "/sync"
    documents = address(topics.agent_state, "agent_id").split("/agents/")[0] + "/catalogs/{hash}"
    return (
        Channel("agentState", address(topics.agent_state, "agent_id"),
                "The agent's retained state: its birth on every connect, again every 5 s with metrics, and its will "
                "(online: false) that the broker publishes when the agent dies without a DISCONNECT. Liveness rules: "
                "docs/protocol.md.", (STATE,), True, 1, ("agent", "broker"), ("controller",)),
        Channel("agentCatalog", address(topics.agent_catalog, "agent_id"),
                "The agent's retained catalog, published on every connect.", (CATALOG,), True, 1, ("agent",),
                ("controller",)),
        Channel("catalogDocument", documents,
                "A shared catalog, retained: published by each agent with EDGE_SHARED_CATALOG before its catalog "
                "naming it, at its first connect and when a controller asks (the same bytes from every agent with "
                "the same types, so one copy is kept). A reader refuses one whose sha256 does not match the hash, or "
                "over 16 MiB. `edge catalogs prune` clears one no agent names (an empty payload).", (DOCUMENT,),
                True, 1, ("agent", "controller"), ("controller",)),
        Channel("agentCatalogRequest", address(topics.agent_catalog_request, "agent_id"),
                "A controller lacks the shared catalog the agent's catalog names (its topic is empty or holds "
                "garbage): the agent publishes it again if it is its own, at most once per 2 s. Never retained.",
                (CATALOG_REQUEST,), False, 1, ("controller",), ("agent",)),
        Channel("agentValidate", address(topics.agent_validate, "agent_id"),
                "Validation requests to one agent.", (REQUEST,), False, 1, ("controller",), ("agent",)),
        Channel("reply", address(topics.reply, "token"),
                "Answers to one requester (its own token); an agent answers on no other topic.", (REPLY,), False, 1,
                ("agent",), ("controller",)),
        Channel("agentDismiss", address(topics.agent_dismiss, "agent_id"),
                "Requests to clear a task's crash notice, read by that agent only; never retained.", (DISMISS,),
                False, 1, ("controller",), ("agent",)),
        Channel("watch", address(lambda: topics.watch),
                "Watch leases: a reader of streams (the panel's inspector, debug sidebar, status lines; `edge sub`) "
                "says so here at once and every lease / 3 s; an agent that hands a stream of large arrays between "
                "its own tasks in-process publishes it at the broker meanwhile (edge.local). Never retained.",
                (WATCH,), False, 0, ("controller",), ("agent",)),
        Channel("agentMetrics", address(topics.agent_metrics, "agent_id"),
                "The metrics of the agent's running tasks, never retained: a full batch after each connect and on "
                "request, then, while a request's lease lasts, every report interval the tasks whose metrics "
                "changed; at most 2 x 8 messages per interval whatever the task count (edge.reporting).",
                (METRICS,), False, 0, ("agent",), ("controller",)),
        Channel("agentMetricsRequest", address(topics.agent_metrics_request, "agent_id"),
                "A reader asks the agent for a full metrics batch (answered at once, at most once per interval) "
                "and for the changed metrics every interval during its lease; a lease ended, no batch is sent.",
                (METRICS_REQUEST,), False, 0, ("controller",), ("agent",)),
        Channel("agentSync", agent_sync,
                "The agent's own round trip after each connect (and to fetch retained messages one by one): "
                "what it sends comes back to it.", (TOKEN,), False, 1, ("agent",), ("agent",)),
        Channel("controllerSync", address(topics.sync, "client_id"),
                "A controller's own round trip: what it sends comes back after everything the broker delivered "
                "before it.", (TOKEN,), False, 1, ("controller",), ("controller",)),
        Channel("deployment", address(topics.deployment, "deployment_id"),
                "The desired state of one deployment, retained: its spec, or a removal record. An agent that holds "
                "a better record than the broker's publishes it again (docs/deployments.md). An empty payload "
                "means nothing is there. Subscribed at QoS 0: retained state, sent again on every subscribe "
                "(edge.retained).", (SPEC, REMOVAL), True, 1, ("controller", "agent"), ("agent", "controller"),
                receive_qos=0),
        Channel("taskStatus", address(topics.task_status, "deployment_id", "task_id"),
                "The retained status of one task, published by the agent running it on every change (an empty "
                "payload: the task left its deployment). A task with replicas has one status per replica: the "
                "last level is then {task_id}.{n}, n from 0 (docs/deployments.md#replicas).", (STATUS,), True, 1,
                ("agent",), ("controller",)),
        Channel("stream", address(topics.stream, "deployment_id", "task_id", "port"),
                "The frames of one task output; never retained (QoS 0 for live streams, 1 for outputs that must "
                "survive an outage); inputs subscribe at QoS 1, in the agent's persistent session.", (FRAME,), False,
                0, ("task",), ("task",), receive_qos=1),
        Channel("inject", address(topics.inject, "agent_id", "deployment_id", "task_id", "port"),
                "A frame a controller sends into input `port` of a task running on agent `agent_id` (the panel's "
                "inject), wired or not; the agent subscribes to its inject topics (one filter) and hands each frame "
                "to the task as the input's source would. Under edge acl only controllers and that agent may "
                "publish here.", (FRAME,), False, 1, ("controller",), ("agent",)),
        Channel("dashboardView", address(topics.stream, "deployment_id", "task_id", "port").rsplit("/", 1)[0]
                + "/view",
                "A dashboard task's view output (a stream whose port is `view`), the one retained stream: published "
                "at start and on every change; an empty payload clears it when the task stops.", (VIEW,), True, 1,
                ("task",), ("panel",)),
        Channel("dashboardSet", address(topics.stream, "deployment_id", "task_id", "port").rsplit("/", 1)[0]
                + "/set",
                "Where the panel sends a control its new value (a frame), unless the spec wires the control's "
                "`set` input.", (FRAME,), False, 1, ("panel",), ("task",)),
    )


def _schemas() -> dict[str, Any]:
    """The models' JSON Schemas as ``components.schemas``, refs pointing there, in AsyncAPI's dialect."""
    _, top = models_json_schema([(model, "validation") for model in PAYLOADS], ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = top["$defs"]
    # Catalog.types is validated entry by entry (a bad entry is dropped alone): on the wire each is an entry
    schemas["Catalog"]["properties"]["types"]["items"] = {"$ref": SCHEMAS + "CatalogEntry"}
    return {name: _dialect(schemas[name]) for name in sorted(schemas)}


def _dialect(schema: Any) -> Any:
    """AsyncAPI's schema keeps OpenAPI's ``discriminator`` as a property name, not pydantic's object."""
    if isinstance(schema, dict):
        out = {key: _dialect(value) for key, value in schema.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(schema, list):
        return [_dialect(item) for item in schema]
    return schema


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"name": message.key, "summary": message.summary, "contentType": message.content_type}
    if message.model is None:
        out["payload"] = {"type": "string", "description": "opaque bytes, read only by their sender"}
    else:
        out["title"] = message.model.__name__
        out["payload"] = {"$ref": SCHEMAS + message.model.__name__}
    return out


def _parameters(address: str) -> dict[str, Any]:
    return {name: {"description": text} for name, text in PARAMETERS.items() if f"{{{name}}}" in address}


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as plain data."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in _channels():
        address = channel.address
        channels[channel.key] = {
            "address": address,
            "description": channel.description,
            "parameters": _parameters(address),
            "messages": {m.key: {"$ref": f"#/components/messages/{m.key}"} for m in channel.messages},
            "x-retained": channel.retained,
        }
        for m in channel.messages:
            messages[m.key] = _message(m)
        for action, roles in (("send", channel.senders), ("receive", channel.receivers)):
            for role in roles:
                verb = "sends" if action == "send" else "receives"
                operations[f"{role}{'Sends' if action == 'send' else 'Receives'}{channel.key[0].upper()}"
                           f"{channel.key[1:]}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel.key}"},
                    "summary": f"The {role} {verb} on {channel.key}.",
                    "tags": [{"name": role}],
                    "messages": [{"$ref": f"#/channels/{channel.key}/messages/{m.key}"} for m in channel.messages],
                    "bindings": {"mqtt": {"qos": channel.qos_of(action), "retain": channel.retained,
                                          "bindingVersion": "0.2.0"}},
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "edgetasks",
            "version": f"{PROTOCOL_VERSION.removeprefix('v')}.{PROTOCOL_REVISION}.0",
            "description": (
                "The MQTT protocol of edgetasks: agents announce themselves and their task types, controllers "
                "publish deployment specs, agents report task statuses, tasks exchange CBOR frames. Every payload "
                "is CBOR (RFC 8949); a control payload is a map with text keys whose unknown keys readers ignore. "
                f"The topic level edge/{PROTOCOL_VERSION} is the protocol's major version; `v` in a payload is its "
                f"revision (now {PROTOCOL_REVISION}, absent in payloads of older agents). Generated from the "
                "models of edge.protocol by `python -m edge.asyncapi`; "
                "prose in docs/protocol.md."),
            "tags": [{"name": role} for role in ("agent", "broker", "controller", "panel", "task")],
        },
        "defaultContentType": "application/cbor",
        "servers": {
            "broker": {"host": "localhost:1883", "protocol": "mqtt",
                       "description": "Any MQTT 3.1.1 or 5 broker (Mosquitto, or the embedded one: docs/brokers.md)."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _schemas(), "messages": dict(sorted(messages.items()))},
    }


def render() -> str:
    """The document as YAML (what docs/asyncapi.yaml holds)."""
    header = "# Generated by `python -m edge.asyncapi` from edge/protocol.py and edge/topics.py: do not edit.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.asyncapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="FILE", type=Path, help="exit 1 if FILE is not what would be generated")
    args = parser.parse_args(argv)
    text = render()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cannot read {args.check}: {exc}", file=sys.stderr)
        return 1
    if current != text:
        print(f"{args.check} is out of date: write it again with `python -m edge.asyncapi > {args.check}`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
