"""The JSON documents for other programs (edge.documents): written through their models, read through them,
refused at parse when they break the bounds, and all named in docs/cli.md."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import edge.documents
from edge.cli._serve import cmd_health
from edge.documents import MAX_HEALTH_TASKS, HealthFile, TaskList, TaskRow, TypeDescription, to_json
from edge.frames import now_ms
from edge.protocol import TaskState
from edge.settings import load_settings

DOCS = Path(__file__).parents[2] / "docs" / "cli.md"
MODELS = [getattr(edge.documents, name) for name in edge.documents.__all__
          if isinstance(getattr(edge.documents, name), type) and issubclass(getattr(edge.documents, name), BaseModel)]


def health(**changes: object) -> dict[str, object]:
    return {"agent": "a1", "connected": True, "ts": now_ms(), "pid": 7, "tasks": {"d/t": "running"}, "errors": 0,
            "epoch": 3, "boot": "b00t", **changes}


async def run_health(tmp_path: Path, text: str | bytes | None) -> int:
    settings = load_settings(data_dir=tmp_path, agent_id="a1")
    if text is not None:
        path = tmp_path / "agents" / "a1" / "health.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    return await cmd_health(argparse.Namespace(panel=False, max_age=10.0), settings)


async def test_edge_health_reads_what_the_agent_writes(tmp_path, capsys):
    written = HealthFile(agent="a1", connected=True, ts=now_ms(), pid=7,
                         tasks={"d/t": TaskState.RUNNING, "d/u": TaskState.FAILED}, epoch=3, boot="b00t")
    assert await run_health(tmp_path, written.model_dump_json()) == 0
    assert capsys.readouterr().out == "healthy: agent a1 connected, 2 task(s)\n"
    assert await run_health(tmp_path, json.dumps(health(connected=False))) == 1
    assert "not connected to its broker" in capsys.readouterr().err
    assert await run_health(tmp_path, json.dumps(health(ts=now_ms() - 60_000))) == 1
    assert "last reported 60 s ago" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "why"), [
    (b"\xff{", "Invalid JSON"),
    ("[]", "Input should be an object"),
    (json.dumps(health(ts="soon")), "ts: Input should be a valid integer"),
    (json.dumps(health(ts=2**70)), "ts: Input should be less than or equal to"),
    (json.dumps(health(connected="yes")), "connected: Input should be a valid boolean"),
    (json.dumps(health(agent="a/1")), "agent: String should match pattern"),
    (json.dumps(health(tasks={"d/t": "dancing"})), "tasks.d/t: Input should be 'pending', 'starting'"),
    (json.dumps(health(tasks={f"d/t{i}": "running" for i in range(MAX_HEALTH_TASKS + 1)})),
     f"tasks: Dictionary should have at most {MAX_HEALTH_TASKS} items"),
], ids=["not-json", "a-list", "ts-text", "ts-huge", "connected-text", "agent-id", "task-state", "too-many-tasks"])
async def test_edge_health_refuses_a_file_that_breaks_the_model_in_one_line(tmp_path, capsys, text, why):
    assert await run_health(tmp_path, text) == 1
    err = capsys.readouterr().err
    assert err.startswith("unhealthy: no readable health file at ") and why in err and err.count("\n") == 1, err


async def test_edge_health_without_a_file_says_so(tmp_path, capsys):
    assert await run_health(tmp_path, None) == 1
    assert "unhealthy: no readable health file at" in capsys.readouterr().err


def test_ls_rows_are_bounded_like_the_protocol():
    row = {"deployment": "demo", "task": "add", "type": "calculator", "agent": None, "state": "pending",
           "shown": "pending", "restarts": 0, "ts": None, "error": None, "notice": None, "frames_in": 0,
           "frames_out": 0, "dropped": 0, "lost": 0, "duplicates": 0}
    listed = TaskList.model_validate_json(json.dumps({"namespace": "n", "tasks": [row], "newer": 1}))
    assert listed.tasks == [TaskRow.model_validate(row)]  # a field a newer edge adds is ignored
    assert to_json(listed) == json.dumps({"namespace": "n", "tasks": [row]})
    for bad in ({"task": "a/b"}, {"restarts": -1}, {"dropped": float("nan")}, {"frames_in": "7"}, {"shown": "x" * 300}):
        with pytest.raises(ValidationError):
            TaskRow.model_validate({**row, **bad})
    cut = TaskRow.model_validate({**row, "error": "e" * 10_000})
    assert cut.error is not None and len(cut.error) == 4096  # long texts are cut as the protocol cuts them


def test_a_description_leaves_out_a_default_it_does_not_have():
    document = TypeDescription.model_validate({
        "name": "gauge", "label": None, "description": None, "inputs": {"in": {"content": "number"}}, "outputs": {},
        "config": [{"name": "low", "type": "number", "required": False, "default": 0.0, "description": ""},
                   {"name": "label", "type": "string", "required": True, "description": ""}],
        "config_schema": {"type": "object"}, "agents": [{"agent": "a1", "online": True, "available": True,
                                                         "reason": None}]})
    out = json.loads(to_json(document))
    assert out["config"][0]["default"] == 0.0 and "default" not in out["config"][1] and "ports_from" not in out
    with pytest.raises(ValidationError, match="nested deeper than"):
        TypeDescription.model_validate({**document.dump(), "config_schema": json.loads("[" * 40 + "]" * 40)})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_document_has_a_json_schema_and_is_in_the_cli_docs(model):
    schema = model.model_json_schema()
    assert schema["type"] == "object" and schema["properties"]
    assert re.search(rf"`{model.__name__}`", DOCS.read_text()), f"docs/cli.md does not name {model.__name__}"
