"""Every entry point's module, and the catalog entries of its types, import no library beyond the core
(``tests/_footprint.py`` says why): the libraries of the extras load when a task first uses them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _footprint import PYPROJECT, REPORT, START, beyond_core

from tasks._lazy import LazyModule, available, lazy, loaded, require

POINTS: dict[str, str] = PYPROJECT["project"]["entry-points"]["edgetasks.tasks"]

LOAD = """
from importlib.metadata import EntryPoint
from agent.registry import task_types_in
try:
    types = task_types_in(EntryPoint({name!r}, {value!r}, "edgetasks.tasks").load())
except ModuleNotFoundError as exc:
    print("MISSING", exc.name)
    raise SystemExit(0)
assert types, "the entry point holds no task type"
for task_type in types:  # what the agent does with each: its catalog entry, which checks its availability
    task_type.describe()
print(len(types), "types")
"""


@pytest.mark.parametrize("name", sorted(POINTS))
def test_an_entry_point_and_its_catalog_entries_import_no_library_of_an_extra(name: str) -> None:
    code = START + LOAD.format(name=name, value=POINTS[name]) + REPORT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    if out.stdout.startswith("MISSING"):
        pytest.skip(f"{name}: {out.stdout.split()[1]} is not installed here")
    found = beyond_core(out.stdout)
    assert not found, (f"entry point {name!r} ({POINTS[name]}) imports {found} at load: import them inside "
                       "run() or through tasks._lazy (tests/_footprint.py says why)")


def test_the_rule_sees_a_library_imported_at_the_top() -> None:
    """The check above, on code that breaks the rule the way a task module would: it names the library."""
    code = START + "import numpy, httpx\nfrom tasks.web import TYPES\n" + REPORT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    found = beyond_core(out.stdout)
    assert found.keys() >= {"numpy", "httpx"}, found
    assert found["httpx"] == "httpx"


def test_a_lazy_module_imports_its_library_on_first_use() -> None:
    code = """
import sys
from pathlib import Path
from tasks._lazy import lazy, loaded, numpy as np
assert "numpy" not in sys.modules and not loaded(np) and lazy("numpy") is np
print(np.arange(4).sum(), loaded(np), "numpy" in sys.modules, np.float32 is sys.modules["numpy"].float32,
      np.load is sys.modules["numpy"].load)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["6", "True", "True", "True", "True"]


def test_a_missing_library_is_one_line_with_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "no_such_library_here", None)  # as if not installed
    assert not available("no_such_library_here") and not available("nor_this_one_either")
    assert available("json") and available("pydantic")
    require("json", "pydantic", hint="never raised")
    with pytest.raises(ModuleNotFoundError, match=r"^No module named 'nor_this_one_either': pip install it$") as err:
        require("json", "nor_this_one_either", hint="pip install it")
    assert err.value.name == "nor_this_one_either"
    missing = LazyModule("nor_this_one_either")
    with pytest.raises(ModuleNotFoundError):
        missing.anything  # noqa: B018  (the first use imports it)
    assert not loaded(missing)
    assert isinstance(lazy("json"), LazyModule) and lazy("json").dumps([1]) == "[1]"


def test_without_a_gpio_chip_the_gpio_types_say_so_without_importing_gpiozero() -> None:
    if any(Path("/dev").glob("gpiochip*")) or Path("/dev/gpiomem").exists():
        pytest.skip("this machine has GPIO: gpiozero is imported to find its pin factory")
    code = ("import sys\nfrom tasks.hardware.gpio import GpioIn\nentry = GpioIn.describe()\n"
            "print(entry['available'], 'gpiozero' in sys.modules)\nprint(entry['reason'])")
    env = {k: v for k, v in os.environ.items() if k not in ("GPIOZERO_PIN_FACTORY", "PIGPIO_ADDR")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "False False",
        "no GPIO pin factory: this device has no GPIO chip (no /dev/gpiochip*, /dev/gpiomem) (on a Raspberry Pi: "
        "pip install lgpio; or set GPIOZERO_PIN_FACTORY)"]
