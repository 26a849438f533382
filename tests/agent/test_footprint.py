"""An agent as ``edge agent`` runs it, with every extra installed here, loads no library of an extra by the time
it is born (and has listed every type): numpy, PyAV, httpx, gpiozero, the engines... load when a task first
uses them (``tests/_footprint.py`` says why; ``bench/footprint.py`` measures what it saves)."""

from __future__ import annotations

import json
import os
import uuid
from importlib.metadata import entry_points
from pathlib import Path

from _agent_process import agent_process
from _footprint import PYPROJECT, START, beyond_core

from agent.registry import ENTRY_POINT_GROUP, discover
from edge.controller import Controller
from edge.settings import load_settings

TIMEOUT = 60  # an agent's start on a machine the whole suite shares


def _agent(modules: Path) -> list[str]:
    """``python -c`` arguments: ``edge agent``, writing the modules it loaded to ``modules`` when it exits."""
    code = START + f"""
import atexit, json
def _write():
    with open({str(modules)!r}, "w") as out:
        out.write(json.dumps({{"start": _START, "end": sorted(_sys.modules)}}))
atexit.register(_write)
_sys.argv = ["edge", "agent"]
from edge.cli import main
main()
"""
    return ["-c", code]


def _not_installed_yet() -> str:
    """The modules of the entry points pyproject.toml names that this installation does not have yet (the
    package is installed from an older checkout): the agent loads them by name (EDGE_TASKS)."""
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    points = PYPROJECT["project"]["entry-points"][ENTRY_POINT_GROUP]
    return ",".join(value.split(":")[0] for name, value in points.items() if name not in installed)


async def test_an_agent_at_its_birth_has_loaded_no_library_of_an_extra(mosquitto_broker, tmp_path: Path) -> None:
    ns = f"fp{uuid.uuid4().hex[:8]}"
    modules = tmp_path / "modules.json"
    env = {**os.environ, "EDGE_BROKER": str(mosquitto_broker.url), "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "fp",
           "EDGE_DATA_DIR": str(tmp_path / "agent"), "EDGE_TASKS": _not_installed_yet()}
    names = set(discover().types)
    settings = load_settings(broker=str(mosquitto_broker.url), namespace=ns, agent_id="ctl", data_dir=tmp_path / "ctl")
    async with Controller(settings) as controller:
        with agent_process(env, tmp_path / "agent.log", args=_agent(modules)):
            await controller.fleet.wait_for(lambda f: "fp" in f.agents and f.agents["fp"].online
                                            and bool(f.agents["fp"].types), TIMEOUT)
            listed = {entry["name"] for entry in controller.fleet.agents["fp"].types}
    assert names <= listed, f"the agent did not list {sorted(names - listed)}"
    output = modules.read_text()
    assert "numpy" not in json.loads(output)["end"]
    found = beyond_core(output)
    assert not found, f"the agent loaded {found} at start: a task module imports them at its top"
