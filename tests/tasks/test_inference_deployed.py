"""The speech types deployed by spec to a real agent process, fed and read by a plain paho client: the text a
client publishes is spoken, heard back through the broker by a grammar, and seen as speech by the detector."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from _agent_process import agent_process
from test_integration_deployed import Client, _statuses

from edge.bus import Bus
from edge.graph import encode_spec, parse_spec
from edge.topics import Topics

GRAMMAR = "#JSGF V1.0;\ngrammar home;\npublic <c> = turn (on | off) the (kitchen | bedroom | hall) light;\n"


def _spec(ns: str) -> dict[str, Any]:
    def t(task_id: str, type_: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"id": task_id, "type": type_, "agent": "io", "config": config}

    return {"id": "io", "tasks": [
        t("tts", "text_to_speech", {"silence_ms": 1000}),
        t("asr", "speech_recognition", {"mode": "grammar", "grammar": GRAMMAR}),
        t("vad", "voice_activity", {"probabilities": False}),
    ], "edges": [
        {"from": f"topic:e2e/{ns}/say", "to": "tts.in"},
        {"from": "tts.out", "to": "asr.in"},
        {"from": "tts.out", "to": "vad.in"},
        {"from": "asr.text", "to": f"topic:e2e/{ns}/heard"},
        {"from": "vad.speaking", "to": f"topic:e2e/{ns}/speaking"},
    ]}


async def test_speech_round_trip_on_an_agent_process(broker, tmp_path: Path) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    env = {**os.environ, "EDGE_BROKER": str(broker.url), "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "io",
           "EDGE_DATA_DIR": str(tmp_path / "data"),
           # the speech entry points' modules, also where the package was installed before it had them
           "EDGE_TASKS": "tasks.inference.tts,tasks.inference.asr,tasks.inference.vad"}
    client = Client(broker.url)
    try:
        with agent_process(env, tmp_path / "agent.log"):
            for name in ("heard", "speaking"):
                client.subscribe(f"e2e/{ns}/{name}")
            async with Bus(str(broker.url)) as bus:
                await bus.publish(topics.deployment("io"), encode_spec(parse_spec(_spec(ns))), qos=1, retain=True)
            statuses = await _statuses(broker.url, topics, ["tts", "asr", "vad"], "running")
            assert all(s["error"] is None for s in statuses.values()), statuses

            client.publish(f"e2e/{ns}/say", "turn on the kitchen light")
            assert await client.next(f"e2e/{ns}/heard") == "turn on the kitchen light"
            assert [await client.next(f"e2e/{ns}/speaking"), await client.next(f"e2e/{ns}/speaking")] == [True, False]
    finally:
        client.close()
