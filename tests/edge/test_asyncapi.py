"""docs/asyncapi.yaml: generated from the protocol models, valid AsyncAPI 3.0, true to what the code sends.

The AsyncAPI 3.0.0 JSON Schema in ``data/asyncapi-3.0.0.schema.json`` is the official one, taken
unchanged from the npm package ``@asyncapi/specs`` 6.11.1 (``schemas/3.0.0.json``, Apache-2.0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from jsonschema import Draft7Validator

import edge.instance
from agent.registry import discover
from edge import asyncapi
from edge.desired import Removal
from edge.frames import decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.instance import Assignment, Instance
from edge.protocol import PROTOCOL_REVISION, TaskState, TaskStatusMsg, ViewFrame
from edge.settings import Settings
from edge.task import Port, Task
from edge.testing import MemoryBus
from edge.topics import TopicError, TopicKind, Topics
from edge.validation import CheckRequest, answer_request, encode_request

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_3 = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text())


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


def payload_errors(document: dict[str, Any], message: str, payload: Any) -> list[str]:
    """Why ``payload`` breaks the schema the document gives ``message`` (a key of components.messages)."""
    schema = {"$ref": document["components"]["messages"][message]["payload"]["$ref"],
              "components": document["components"]}
    return [f"{list(e.absolute_path)}: {e.message}" for e in Draft7Validator(schema).iter_errors(payload)]


def test_the_committed_document_is_what_the_models_generate() -> None:
    assert DOC.read_text(encoding="utf-8") == asyncapi.render(), \
        "docs/asyncapi.yaml is out of date: python -m edge.asyncapi > docs/asyncapi.yaml"
    assert asyncapi.main(["--check", str(DOC)]) == 0


def test_check_says_when_the_document_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(asyncapi.render().replace("maxLength: 4096", "maxLength: 4000"))
    assert asyncapi.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_it_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    validator = Draft7Validator(ASYNCAPI_3)
    assert [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)] == []
    # and the validator does look inside: a wrong QoS in a binding, a payload schema of the wrong dialect
    broken = json.loads(json.dumps(document))
    broken["operations"]["agentSendsAgentState"]["bindings"]["mqtt"]["qos"] = 3
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(document))
    broken["components"]["schemas"]["ViewFrame"]["properties"]["value"]["discriminator"] = {"propertyName": "kind"}
    assert not validator.is_valid(broken)


def test_every_topic_of_the_protocol_page_is_a_channel_retained_as_it_says(document: dict[str, Any]) -> None:
    page = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\{root\}/[^`]+)` \| ([^|]+) \|", page, re.MULTILINE)
    assert len(rows) >= 8
    channels = {c["address"]: c for c in document["channels"].values()}
    for topic, retained in rows:
        address = topic.replace("{root}", "edge/v1/{namespace}")
        assert address in channels, f"{topic} of docs/protocol.md has no channel"
        assert channels[address]["x-retained"] is (retained.strip() == "yes"), topic
    assert "edge/v1/{namespace}/agents/{agent_id}/sync" in channels  # the round trip the page names in its text


def test_channels_are_the_topics_the_code_parses(document: dict[str, Any]) -> None:
    topics = Topics("ns")
    kinds = set()
    for key, channel in document["channels"].items():
        names = re.findall(r"\{(\w+)\}", channel["address"])
        assert set(channel["parameters"]) == set(names), key
        topic = channel["address"]
        for name in names:
            value = {"namespace": "ns", "hash": "0" * 32}.get(name, f"x-{name}".replace("_", "-"))
            topic = topic.replace(f"{{{name}}}", value)
        try:
            kinds.add(topics.parse(topic).kind)
        except TopicError:
            assert key.endswith("Sync"), f"channel {key} is not a topic edge.topics knows"
        # the retained flag and the MQTT bindings agree, and every channel has a sender and a receiver
        ops = [op for op in document["operations"].values() if op["channel"]["$ref"] == f"#/channels/{key}"]
        assert {op["action"] for op in ops} == {"send", "receive"}, key
        assert all(op["bindings"]["mqtt"]["retain"] is channel["x-retained"] for op in ops), key
    assert kinds == set(TopicKind)


def test_who_sends_what(document: dict[str, Any]) -> None:
    def roles(channel: str, action: str) -> set[str]:
        return {op["tags"][0]["name"] for op in document["operations"].values()
                if op["channel"]["$ref"] == f"#/channels/{channel}" and op["action"] == action}

    assert roles("agentState", "send") == {"agent", "broker"}  # the broker publishes the will
    assert roles("deployment", "send") == {"controller", "agent"}  # an agent republishes what the broker lost
    assert roles("taskStatus", "send") == {"agent"}
    assert roles("agentDismiss", "receive") == {"agent"}
    assert roles("dashboardView", "receive") == {"panel"}

    def qos(operation: str) -> int:
        return int(document["operations"][operation]["bindings"]["mqtt"]["qos"])

    # as the code subscribes: retained specs at QoS 0 (edge.retained), task inputs at QoS 1 (edge.task)
    assert (qos("agentReceivesDeployment"), qos("controllerSendsDeployment")) == (0, 1)
    assert (qos("taskSendsStream"), qos("taskReceivesStream")) == (0, 1)
    assert qos("agentSendsTaskStatus") == 1


class Crasher(Task):
    outputs: ClassVar = {"out": Port(content="number")}

    async def run(self) -> None:
        await self.send("out", 1.5)
        raise RuntimeError("crashed on purpose")


async def crashed_status() -> dict[str, Any]:
    """The status :meth:`Instance.status` gives after two crashes (restarts, errors, metrics)."""
    assignment = Assignment(deployment="d", task="t", type="crasher", config={}, sources={},
                            targets={"out": ["edge/v1/ns/streams/d/t/out"]}, version=3)
    async with MemoryBus() as bus:
        instance = Instance(assignment, Crasher, bus=bus, on_status=lambda i: None)
        supervisor = asyncio.create_task(instance.supervise())
        try:
            async with asyncio.timeout(10):
                while instance.restarts < 2:
                    await asyncio.sleep(0.001)
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
    return {**instance.status(), "agent": "pi-1"}  # the host adds its agent


async def test_what_the_code_sends_matches_the_document(document: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="edge.instance")  # the crashes below are on purpose
    monkeypatch.setattr(edge.instance, "BACKOFF_MIN", 0.001)
    monkeypatch.setattr(edge.instance, "BACKOFF_MAX", 0.001)
    registry = discover()
    host = Host(Settings(data_dir=tmp_path), types=list(registry.types.values()),
                unavailable={"missing": "needs a library"}, agent_id="pi-1", persist=False,
                metrics=lambda: {"cpu_percent": 1.5, "rss_mb": 40.0})
    status = await crashed_status()
    spec = parse_spec({"id": "demo", "label": "Demo", "version": 2,
                       "tasks": [{"id": "gen", "type": "pulse", "agent": "pi-1", "config": {"interval_ms": 100}},
                                 {"id": "add", "type": "adder", "label": "sum"}],
                       "edges": [{"from": "gen.out", "to": "add.a"}, {"from": "topic:sensors/+/b", "to": "add.b"},
                                 {"from": "add.out", "to": "topic:results/sum"}],
                       "deployed": {"via": "cli", "host": "laptop", "at": 1764028800000, "replaced": 1}})
    request = CheckRequest(id="a" * 32, reply_to="edge/v1/ns/replies/" + "a" * 32,
                           tasks=[("calc", "calculator", {"formula": "a * (1.8 +"}), ("x", "nope", {})])
    reply = answer_request(request, agent_id="pi-1", types=registry.types, resolve=lambda c: c)
    samples = [
        ("agentState", host.presence.state(online=True)),
        ("agentState", host.presence.state(online=False)),
        ("catalog", host.presence.catalog()),
        ("taskStatus", status),
        ("deploymentSpec", decode_value(encode_spec(spec))),
        ("removalRecord", Removal("demo", 2, 1764028800000).to_dict()),
        ("validationRequest", decode_value(encode_request(request))),
        ("validationReply", decode_value(reply)),
        ("frame", decode_value(encode_frame(1.5, ts=1764028800000, seq=7))),
    ]
    for message, payload in samples:
        assert payload_errors(document, message, payload) == [], message
    assert len(host.presence.catalog()["types"]) == len(registry.types) + 1
    assert host.presence.state(online=True)["v"] == PROTOCOL_REVISION
    assert isinstance(TaskStatusMsg.model_validate(status).state, TaskState)
    # and a payload that breaks the models breaks the document too
    assert payload_errors(document, "taskStatus", {**status, "state": "exploded"})
    assert payload_errors(document, "agentState", {"online": "yes", "epoch": 1})
    assert payload_errors(document, "deploymentSpec", {"id": "demo", "tasks": [{"id": "a b", "type": "x"}]})


def test_the_spectrum_view_matches_the_document(document: dict[str, Any]) -> None:
    """audio_frequency_display is a media type (not a DashboardTask): its view, as it sends it."""
    pytest.importorskip("av")
    import numpy as np

    from tasks.media.spectrum import AudioFrequencyDisplay

    task = AudioFrequencyDisplay({"bands": 4, "label": "Mic"})
    task.spectrum_for(48000).add(np.sin(np.arange(4096) / 10))
    view = task.view(task.spectrum_for(48000).levels())
    frame = decode_value(encode_frame(view.dump(), ts=1764028800000, seq=0))
    assert payload_errors(document, "viewFrame", frame) == []
    assert ViewFrame.model_validate(frame).value == view
    assert payload_errors(document, "viewFrame", {"ts": 1, "seq": 0, "value": {
        "kind": "audio_frequency_display", "edges": [1], "levels": [0], "floor_db": -90, "rate": 48000}})


def test_every_dashboard_view_matches_the_document(document: dict[str, Any]) -> None:
    from tasks.dashboard import DashboardTask

    kinds = set()
    for task_type in discover().types.values():
        if not issubclass(task_type, DashboardTask):
            continue
        task = task_type()
        views = [task.view()]
        if task_type.kind == "plot":  # and one with points
            task.points["a"].extend([(1764028800000, 1.5), (1764028800100, -2.0)])
            views.append(task.view())
        elif hasattr(task, "value") and task_type.kind in ("status_display", "value_bar"):
            task.value = 0.75
            views.append(task.view())
        elif task_type.kind == "web_viewer":  # and one with a page and a refusal
            task.url, task.refused = "https://example.com/", "refused 'javascript:x': only http(s)"
            views.append(task.view())
        for view in views:  # as publish_view sends it: the kind's model, dumped
            frame = decode_value(encode_frame(view.dump(), ts=1764028800000, seq=0))
            assert payload_errors(document, "viewFrame", frame) == [], task_type.kind
            parsed = ViewFrame.model_validate(frame).value
            assert parsed.kind == task_type.kind and parsed == view  # the round trip keeps every field
        kinds.add(task_type.kind)
    assert kinds == {"slider", "toggle", "radio_buttons", "text_input", "status_display", "text_display",
                     "value_bar", "plot", "web_viewer"}
    for url in ("javascript:alert(1)", "data:text/html,x", "http:///no-host"):  # a web viewer shows http(s) only
        assert payload_errors(document, "viewFrame", {"ts": 1, "seq": 0, "value": {"kind": "web_viewer", "url": url}})
    assert payload_errors(document, "viewFrame", {"ts": 1, "seq": 0, "value": {"kind": "value_bar", "value": 1,
                                                   "min": 0, "max": 2, "fraction": 0.5, "direction": "vertical",
                                                   "color": "red;background:url(x)"}})
