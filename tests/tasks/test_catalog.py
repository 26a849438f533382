"""Every built-in task type is complete: described, typed, documented ports, a default config, found by agents."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
from _types import extra_types

import tasks
from agent.registry import discover
from edge.frames import decode_value, encode_value
from edge.task import Task
from tasks.builtin import TYPES

IDS = [t.type_name for t in TYPES]


def test_names_are_unique_and_the_list_is_complete():
    assert len(set(IDS)) == len(IDS) == 43
    assert {"calculator", "gate", "switch", "sr_latch", "pulse_generator", "repeater", "message_detector",
            "synchronizer", "time_buffer", "timestamp_updater", "replay_buffer", "number_to_text", "time_to_text",
            "text_formatter", "string_matcher", "string_concatenator", "named_input", "named_output", "mqtt_in",
            "mqtt_out", "slider", "toggle", "radio_buttons", "text_input", "status_display", "text_display",
            "value_bar", "plot", "web_viewer", "filter", "throttle", "trigger", "change", "split", "join", "batch",
            "parse", "format", "python", "one_wire_temperature", "file_write", "file_read", "exec"} == set(IDS)


#: types with a field that has no sensible default (where to send a request, a webhook's token)
NEEDS_CONFIG = {"http_request": "url", "webhook_in": "token", "llm_chat": "model"}
SAMPLE = {"url": "http://127.0.0.1:8080/", "token": "t", "model": "models/model.gguf"}


@pytest.mark.parametrize("task_type", [*TYPES, *extra_types()], ids=lambda t: t.type_name)
def test_each_type_is_described(task_type: type[Task]):
    entry = task_type.describe()
    assert len(entry["description"]) > 40 and entry["description"].endswith(".")
    assert "\n\n" in inspect.getdoc(task_type), "a docstring with a paragraph beyond the summary"
    assert task_type.inputs or task_type.outputs
    for name, port in {**task_type.inputs, **task_type.outputs}.items():
        assert port.metadata(), f"port {name} has no IO metadata"
        assert port.label, f"port {name} has no label"
    default = entry["config_default"]
    if task_type.type_name in NEEDS_CONFIG:  # no sensible default: a config without it says what is missing
        field = NEEDS_CONFIG[task_type.type_name]
        assert default is None and any(line.startswith(f"config.{field}:") for line in task_type.check({}))
        default = {field: SAMPLE[field]}
        entry["config_default"] = task_type.validate_config(default).model_dump(mode="json")
        default = entry["config_default"]
    assert default is not None, "every field has a default: deployable without a config"
    assert task_type.validate_config(default).model_dump(mode="json") == default
    schema = entry["config_schema"]
    assert schema.get("additionalProperties") is False, "unknown config keys are refused"
    for field, spec in schema.get("properties", {}).items():
        assert spec.get("description"), f"config field {field} has no description"
    assert decode_value(encode_value(entry)) == json.loads(json.dumps(entry))  # the catalog is CBOR on the wire
    instance = task_type(default)
    for port in task_type.outputs:
        assert instance.output_metadata(port)


def test_agents_discover_every_builtin():
    registry = discover()
    for task_type in (*TYPES, *extra_types()):  # the others: their own entry points
        assert registry.types[task_type.type_name] is task_type


def test_tasks_package_is_light_and_needs_no_agent_or_ui():
    assert tasks.__all__ == [] or list(tasks.__all__) == sorted(tasks.__all__)
    code = "import json, sys; import tasks.builtin; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert loaded & {"agent", "ui", "nicegui", "av"} == set()
