"""The layers of ../shared/STYLE.md, checked in fresh interpreters: who may load whom."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import agent
import edge
import edge.bus
import edge.errors
import ui


def loaded_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


@pytest.mark.parametrize(("module", "forbidden"), [
    ("edge", {"agent", "ui", "tasks", "nicegui", "av"}),
    ("edge.bus", {"agent", "ui", "tasks", "nicegui", "av"}),
    ("edge.cli", {"agent", "ui", "tasks", "nicegui", "av", "iotcore"}),
    ("agent", {"ui", "nicegui", "av", "iotcore"}),
    ("tasks", {"agent", "ui", "nicegui"}),
])
def test_packages_load_only_their_layers(module, forbidden):
    assert loaded_after_import(module) & forbidden == set()


def test_ui_reaches_the_fleet_only_through_edge():
    assert "agent" not in loaded_after_import("ui")


@pytest.mark.parametrize("package", [edge, edge.bus, edge.errors, agent, ui])
def test_public_names_are_sorted_and_exist(package):
    names = package.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert hasattr(package, name), name


def test_one_exception_root():
    from edge import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EdgeError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.FrameError, ValueError)
    assert issubclass(errors.ConnectError, ConnectionError)
