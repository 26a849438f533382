"""The protocol's models (edge/protocol.py): versions, task states, requests, and one colour rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from edge.bus import Message
from edge.errors import ConfigError
from edge.frames import decode_value, encode_value
from edge.host import Host
from edge.instance import Assignment, Instance
from edge.presence import Presence
from edge.protocol import (
    COLOR_PATTERN,
    PROTOCOL_REVISION,
    AgentState,
    Catalog,
    DismissRequest,
    RemovalRecord,
    TaskState,
    TaskStatusMsg,
    ValidationError,
    ValidationReply,
    ValidationRequest,
)
from edge.settings import Settings
from edge.topics import Topics
from edge.validation import CheckRequest, decode_reply, decode_request, encode_request

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("model", "payload"), [
    (AgentState, {"online": True, "epoch": 3}),
    (Catalog, {"agent": "pi-1", "epoch": 3, "types": []}),
    (TaskStatusMsg, {"state": "running"}),
    (DismissRequest, {"deployment": "d", "task": "t", "before": 5}),
    (RemovalRecord, {"removed": True, "version": 2, "at": 5}),
    (ValidationRequest, {"id": "abc", "reply_to": "edge/v1/ns/replies/abc", "tasks": []}),
    (ValidationReply, {"id": "abc", "agent": "pi-1", "tasks": {}}),
])
def test_payloads_of_older_and_newer_peers_are_read(model: Any, payload: dict[str, Any]) -> None:
    old = model.model_validate(payload)  # no v: an agent or controller older than the field
    assert old.v == 0
    newer = model.model_validate({**payload, "v": PROTOCOL_REVISION + 5, "a_key_of_revision_6": [1, 2]})
    assert newer.v == PROTOCOL_REVISION + 5
    assert "a_key_of_revision_6" not in newer.dump()
    with pytest.raises(ValidationError):
        model.model_validate({**payload, "v": -1})


def test_a_status_state_is_one_of_the_task_states() -> None:
    assert [s.value for s in TaskState] == ["pending", "starting", "running", "failed", "stopped", "invalid"]
    for state in TaskState:
        parsed = TaskStatusMsg.model_validate({"state": state.value}).state
        assert parsed is state and parsed == state.value and f"{parsed}" == state.value
    for bad in ("exploded", "", 5, None, "RUNNING"):
        with pytest.raises(ValidationError):
            TaskStatusMsg.model_validate({"state": bad})


def test_an_agent_state_is_built_through_its_model(caplog: pytest.LogCaptureFixture) -> None:
    metrics: dict[str, Any] = {"cpu_percent": 2.5, "rss_mb": 40.0}
    presence = Presence(topics=Topics("ns"), agent_id="pi-1", state_dir=None, catalog=list, metrics=lambda: metrics,
                        errors=lambda: 3)
    state = presence.state(online=True)
    assert AgentState.model_validate(state).dump() == state
    assert (state["v"], state["metrics"], state["errors"]) == (PROTOCOL_REVISION, metrics, 3)
    assert "metrics" not in presence.state(online=False)
    metrics["cpu_percent"] = float("nan")  # a broken metrics source: the state still goes, without them
    state = presence.state(online=True)
    assert "metrics" not in state and state["online"] is True
    assert "without them" in caplog.text
    catalog = presence.catalog()
    assert (catalog["v"], catalog["agent"], catalog["boot"], catalog["types"]) == (PROTOCOL_REVISION, "pi-1",
                                                                                  presence.boot, [])


def test_validation_requests_and_replies_go_through_the_models() -> None:
    request = CheckRequest(id="f" * 32, reply_to="edge/v1/ns/replies/" + "f" * 32,
                           tasks=[("calc", "calculator", {"formula": "a +" * 3000})])  # a long text is a config too
    wire = decode_value(encode_request(request))
    assert wire["v"] == PROTOCOL_REVISION
    assert decode_request(encode_request(request)) == request
    for bad, why in [({"id": "a b", "reply_to": "x", "tasks": []}, "id"),
                     ({"id": "a", "reply_to": "x", "tasks": [{"task": "t", "type": "x/y"}]}, "tasks.0.type"),
                     ({"id": "a", "reply_to": "x", "tasks": [{}] * 1001}, "tasks"), ([1], "")]:
        with pytest.raises(ConfigError) as caught:
            decode_request(encode_value(bad))
        assert "\n" not in str(caught.value) and why in str(caught.value)
    reply = {"id": "r1", "agent": "pi-1", "tasks": {"calc": {"errors": ["x"] * 80, "warnings": ["w"]}}}
    assert decode_reply(encode_value(reply), "r1") == ("pi-1", {"calc": (["x"] * 50, ["w"])})  # lines kept: 50
    assert decode_reply(encode_value(reply), "r2") is None  # another request's
    assert decode_reply(encode_value({**reply, "agent": 5}), "r1") is None
    assert decode_reply(b"\xff", "r1") is None


class _Crashed:
    def __init__(self, tmp_path: Path) -> None:
        self.host = Host(Settings(data_dir=tmp_path), types=[], agent_id="pi-1", persist=False)
        assignment = Assignment(deployment="d", task="t", type="x", config={}, sources={}, targets={})
        self.instance = Instance(assignment, None, bus=self.host.bus, on_status=lambda i: None)
        self.instance.restarts, self.instance.last_error, self.instance.crashed_at = 2, "boom", 1000
        self.host.instances[("d", "t")] = self.instance

    def dismiss(self, payload: Any) -> None:
        self.host._on_dismiss(Message(self.host.topics.agent_dismiss("pi-1"), encode_value(payload)))


async def test_a_dismissal_is_parsed_by_its_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    crashed = _Crashed(tmp_path)
    hostile: list[Any] = [[1], {"deployment": "d", "task": "t"}, {"deployment": "d", "task": "t", "before": True},
                          {"deployment": "d", "task": "t", "before": 2**64}, {"deployment": "d/x", "task": "t",
                                                                             "before": 1000},
                          {"deployment": "d", "task": "t" * 5000, "before": 1000}]
    for payload in hostile:
        crashed.dismiss(payload)
    assert crashed.host.errors == len(hostile)
    assert crashed.instance.crashed_at == 1000  # none of them cleared it
    assert all(len(r.getMessage()) < 400 for r in caplog.records)
    crashed.dismiss({"deployment": "d", "task": "t", "before": 999})  # it crashed after the user looked
    assert crashed.instance.crashed_at == 1000
    crashed.dismiss(DismissRequest(v=PROTOCOL_REVISION, deployment="d", task="t", before=1000).model_dump())
    assert crashed.instance.crashed_at is None and crashed.host.errors == len(hostile)
    crashed.instance.crashed_at = 2000
    crashed.dismiss({"deployment": "d", "task": "t", "before": 2000})  # an older controller's, without v
    assert crashed.instance.crashed_at is None


def test_the_dashboard_colour_rule_is_written_once() -> None:
    literal = re.escape(COLOR_PATTERN[1:20])
    holders = [str(p.relative_to(ROOT)) for package in ("edge", "tasks", "ui", "agent")
               for p in sorted((ROOT / package).rglob("*.py")) if re.search(literal, p.read_text(encoding="utf-8"))]
    assert holders == ["edge/protocol.py"]
    from tasks.dashboard import COLOR_PATTERN as tasks_rule

    assert tasks_rule is COLOR_PATTERN  # the panel reads colours through the view models (ViewFrame)
