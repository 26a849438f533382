"""What ``import edge`` (``from edge import fn_task``) costs a task author: the decorator and the Task class,
not the transports, the settings, the script runner or the runtime (issue 18 section 4)."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_FOR_A_TASK_AUTHOR = ("paho", "edge.bus._bus", "edge.bus._paho", "edge.bus._mqtt5", "edge.settings",
                         "pydantic_settings", "edge._fnrun", "edge.host", "argparse")


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
