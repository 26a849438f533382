"""The hardware types' entry points: one per library, so a missing library makes only its own types
unavailable, with an install hint; the extras that install them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from hardware_fakes import hardware_types

import tasks.hardware
from agent import registry
from agent.registry import ENTRY_POINT_GROUP, discover

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
POINTS = PYPROJECT["project"]["entry-points"][ENTRY_POINT_GROUP]
LIBRARIES = {"gpio": ("gpiozero", {"gpio_in", "gpio_out", "pwm_out"}),
             "i2c": ("smbus2", {"i2c_read", "i2c_write"}),
             "serial": ("serial", {"serial_in", "serial_out"})}


def _entry_points(names: list[str]) -> list[EntryPoint]:
    return [EntryPoint(name, POINTS[name], ENTRY_POINT_GROUP) for name in names]


def test_each_library_is_an_entry_point_of_its_types():
    assert len(hardware_types()) == 7, "gpiozero, smbus2 and pyserial are installed for the tests"
    for name, (_library, types) in LIBRARIES.items():
        loaded = EntryPoint(name, POINTS[name], ENTRY_POINT_GROUP).load()
        assert {t.type_name for t in loaded} == types
        assert all(t.category == "hardware" for t in loaded)


@pytest.mark.parametrize("missing", list(LIBRARIES))
def test_a_missing_library_makes_only_its_types_unavailable_with_an_install_hint(missing, monkeypatch):
    library, types = LIBRARIES[missing]
    monkeypatch.setitem(sys.modules, library, None)  # import fails: as if not installed
    for module in ("gpio", "i2c", "serial_port"):  # imported afresh; the modules the other tests hold come back after
        monkeypatch.delitem(sys.modules, f"tasks.hardware.{module}", raising=False)
        monkeypatch.delattr(tasks.hardware, module, raising=False)
    monkeypatch.setattr(registry, "entry_points", lambda group: _entry_points(["builtin", *LIBRARIES]))
    found = discover()
    assert set(found.unavailable) == {missing}
    reason = found.unavailable[missing]
    assert reason.startswith(f"ModuleNotFoundError: No module named '{library}': ")
    assert f"pip install 'edgetasks[{missing}]'" in reason
    others = set().union(*(t for name, (_l, t) in LIBRARIES.items() if name != missing))
    assert others | {"one_wire_temperature", "calculator"} <= set(found.types)
    assert not types & set(found.types)


def test_the_extras_install_the_libraries():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert extras["gpio"] == ["gpiozero>=2"] and extras["i2c"] == ["smbus2>=0.4"]
    assert extras["serial"] == ["pyserial>=3.5"]
    assert extras["hardware"] == ["edgetasks[gpio,i2c,serial]"]
    assert "hardware" in extras["all"][0]


def test_importing_the_package_loads_no_library():
    code = ("import sys, tasks.hardware, tasks.hardware.one_wire; "
            "print(sorted(m for m in ('gpiozero', 'smbus2', 'serial') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
