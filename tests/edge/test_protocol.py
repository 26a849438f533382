"""The protocol's models (edge/protocol.py): versions, task states, requests, and one colour rule."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any, ClassVar

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
from edge.task import Port, Task
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


# -- producers build their payloads through the models (no bare dict crosses a process boundary) ---------
def test_every_catalog_entry_is_built_by_its_model_and_round_trips() -> None:
    from agent.registry import discover
    from edge.protocol import CatalogEntry
    from tasks.dashboard import DashboardTask

    types = list(discover().types.values())
    assert len(types) > 20
    for task_type in types:
        entry = task_type.catalog_entry()
        assert isinstance(entry, CatalogEntry) and task_type.describe() == entry.dump()
        wire = decode_value(encode_value(task_type.describe()))
        assert CatalogEntry.model_validate(wire) == entry, task_type.type_name  # nothing lost on the way
        # a dashboard type: a DashboardTask, or another base's type that draws one too (audio_frequency_display)
        dashboard = issubclass(task_type, DashboardTask) or isinstance(getattr(task_type, "kind", None), str)
        assert entry.dashboard == (task_type.kind if dashboard else None)
        assert (entry.ports_from is not None) == bool(task_type.ports_from), task_type.type_name
        assert ("dashboard" in wire) == dashboard  # the wire shape: no null keys added


class _Broken(Task):
    """A third party's type whose own describe() breaks the catalog entry's model."""

    type_name = "broken"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {**super().describe(), "inputs": "abc"}


class _Fine(Task):
    """A well-behaved type."""

    type_name = "fine"


def test_a_type_whose_catalog_entry_breaks_the_model_is_offered_as_unavailable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    host = Host(Settings(data_dir=tmp_path), types=[_Broken, _Fine], agent_id="pi-1", persist=False,
                unavailable={"gone": "needs PyAV", "bad/name": "x"})
    catalog = Catalog.model_validate(decode_value(encode_value({"types": host.catalog()})))
    entries, problems = catalog.entries()
    assert problems == []
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == ["broken", "fine", "gone"]  # a name the protocol refuses is not published
    assert by_name["fine"].available and by_name["fine"].description == "A well-behaved type."
    broken = by_name["broken"]
    assert not broken.available and broken.reason is not None
    assert broken.reason.startswith("its catalog entry breaks the protocol: inputs: ")
    assert (by_name["gone"].available, by_name["gone"].reason) == (False, "needs PyAV")
    assert any("broken is not offered" in r.getMessage() for r in caplog.records)


class _Steady(Task):
    """Sends three frames, then runs until stopped."""

    outputs: ClassVar = {"out": Port(content="number")}

    async def run(self) -> None:
        for n in range(3):
            await self.send("out", n)
        await asyncio.Event().wait()


async def test_a_status_and_its_metrics_are_built_by_their_models_and_round_trip() -> None:
    from edge.protocol import TaskMetrics, TaskMetricsEntry
    from edge.testing import MemoryBus

    assignment = Assignment(deployment="d", task="t", type="_steady", config={}, sources={},
                            targets={"out": ["d/t/out"]}, version=4)
    async with MemoryBus() as bus:
        instance = Instance(assignment, _Steady, bus=bus, on_status=lambda i: None)
        pending = instance.status_msg()
        assert isinstance(pending, TaskStatusMsg) and pending.state is TaskState.PENDING
        assert "metrics" not in instance.status() and instance.metrics() == {}  # nothing ran yet
        supervisor = asyncio.create_task(instance.supervise())
        try:
            async with asyncio.timeout(10):
                while instance.task is None or instance.task.out_metrics["out"].frames < 3:
                    await asyncio.sleep(0.001)
            status = instance.status_msg()
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
    assert status.state is TaskState.RUNNING and status.v == PROTOCOL_REVISION and status.version == 4
    assert isinstance(status.metrics, TaskMetrics) and status.metrics.outputs["out"].frames == 3
    wire = decode_value(encode_value(status.dump()))
    assert TaskStatusMsg.model_validate(wire) == status  # every field survives the wire
    assert set(wire) == {"v", "state", "type", "version", "ts", "restarts", "error", "last_error", "crashed_at",
                         "errors", "metrics"}  # the wire shape of before the models: nulls included
    assert wire["metrics"]["outputs"]["out"] == {"frames": 3, "rate": wire["metrics"]["outputs"]["out"]["rate"],
                                                 "dropped_offline": 0}
    entry = TaskMetricsEntry(deployment="d", task="t", metrics=status.metrics)
    assert TaskMetricsEntry.model_validate(decode_value(encode_value(entry.dump()))) == entry


class _Wide(Task):
    """More outputs than the protocol's maps hold (MAX_KEYS): its metrics cannot go out."""

    outputs: ClassVar = {f"o{k}": Port(content="number") for k in range(300)}

    async def run(self) -> None:
        await self.send("o0", 1)
        await asyncio.Event().wait()


async def test_metrics_the_protocol_cannot_carry_leave_the_status_not_the_agent(
        caplog: pytest.LogCaptureFixture) -> None:
    from edge.testing import MemoryBus

    assignment = Assignment(deployment="d", task="wide", type="_wide", config={}, sources={}, targets={})
    async with MemoryBus() as bus:
        instance = Instance(assignment, _Wide, bus=bus, on_status=lambda i: None)
        supervisor = asyncio.create_task(instance.supervise())
        try:
            async with asyncio.timeout(10):
                while instance.task is None or instance.task.out_metrics["o0"].frames < 1:
                    await asyncio.sleep(0.001)
            status = instance.status_msg(agent="pi-1")
            metrics = instance.metrics_msg()
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
    assert status.state is TaskState.RUNNING and "metrics" not in status.model_fields_set and metrics is None
    assert [r.getMessage() for r in caplog.records if "break the protocol" in r.getMessage()] == [
        "task d/wide (_wide): its metrics break the protocol's bounds (metrics.outputs: Dictionary should have "
        "at most 256 items after validation, not 300): its status goes without them"]  # once: rate-limited per task
