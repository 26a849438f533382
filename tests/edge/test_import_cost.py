"""What ``import edge`` (``from edge import fn_task``) costs a task author: the decorator and the Task class,
not the transports, the settings, the script runner or the runtime (issue 18 section 4)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NOT_FOR_A_TASK_AUTHOR = ("paho", "edge.bus._bus", "edge.bus._paho", "edge.bus._mqtt5", "edge.settings",
                         "pydantic_settings", "edge._fnrun", "edge.host", "argparse", "numpy")


def loaded_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_edge_loads_nothing_a_task_author_does_not_need() -> None:
    loaded = loaded_by("from edge import fn_task\nfrom edge.task import Port, Task, TaskContext")
    assert "edge.fntask" in loaded and "edge.task" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in NOT_FOR_A_TASK_AUTHOR or m in NOT_FOR_A_TASK_AUTHOR) == []


def test_the_bus_and_the_script_runner_load_on_first_use() -> None:
    loaded = loaded_by("from edge.bus import Bus, TLSOptions\nimport edge._fnrun")
    assert {"edge.bus._bus", "edge.bus._transport", "edge.settings", "argparse"} <= loaded



def test_numpy_loads_with_the_first_array() -> None:
    """numpy (about half of what import edge cost) is not loaded by it, yet arrays work from the first one:
    decoded, encoded, and taken by an fn_task parameter annotated with numpy's array."""
    code = """
import sys
from edge.frames import decode_frame, encode_frame
from edge import fn_task
assert "numpy" not in sys.modules
assert decode_frame(encode_frame([1.5, "x"], ts=1)).value == [1.5, "x"]
assert "numpy" not in sys.modules
array = decode_frame(bytes.fromhex("a36274730163736571006576616c7565d828828103d84043010203")).value
print(type(array).__name__, array.tolist(), "numpy" in sys.modules)
import numpy as np
assert decode_frame(encode_frame(np.arange(3, dtype=np.float32), ts=1)).value.dtype == np.float32
@fn_task
def total(values: np.ndarray) -> float:  # decorating it compiles the array converter: numpy is loaded now
    return float(values.sum())
from edge._fnconvert import converter_for
print(converter_for(np.ndarray)([1, 2]).tolist(), total(np.ones(4)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["ndarray [1, 2, 3] True", "[1, 2] 4.0"]


IMPORT_BUDGET_S = 0.3  # issue 18 section 4: it was 0.8-1.0 s before the lazy imports


def import_seconds(code: str) -> float:
    """What ``code`` costs in imports of ``edge`` (with everything they load), as ``python -X importtime``
    counts it: the interpreter's own start-up is not counted."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stderr
    rows = [line.split("|") for line in out.splitlines() if line.startswith("import time:")]
    # a top-level row names its module after one space; what it imported is indented under it
    return sum(int(row[1]) for row in rows if row[2].startswith(" edge")) / 1e6


@pytest.mark.alone  # a timing figure: scripts/test.sh runs it with the machine to itself
def test_import_edge_stays_under_its_budget() -> None:
    best = min(import_seconds("from edge import fn_task\nfrom edge.task import Task") for _ in range(3))
    assert 0 < best < IMPORT_BUDGET_S, f"import edge took {best:.3f} s (budget {IMPORT_BUDGET_S} s)"
