"""Which libraries a process loaded beyond what edgetasks' core needs: the rule of the agent's footprint.

An agent lists every task type it has (it loads every entry point to build its catalog), so whatever a task
module imports at its top, every agent pays for, at start, whether or not it runs the task: numpy ~12 MB,
httpx ~4 MB, PyAV ~15 MB, an inference engine tens of MB. The rule: a task module and its catalog entry
import the standard library, edgetasks and the core dependencies only (``project.dependencies`` and what they
need), and not numpy either (a core dependency, loaded with the first array). A library of an extra is
imported when a task first uses it (``tasks._lazy``).

A test runs the code in a fresh interpreter that prints :data:`REPORT` at the end, and hands the output to
:func:`beyond_core`: what was loaded at the interpreter's start (``site``, ``.pth`` files) does not count.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

__all__ = ["LAZY_CORE", "PYPROJECT", "REPORT", "START", "beyond_core", "core_distributions"]

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
LAZY_CORE = frozenset({"numpy"})  # core dependencies loaded on first use, never at start

START = "import sys as _sys\n_START = sorted(_sys.modules)\n"
"""The first lines of the code run: the modules the interpreter loaded before it."""
REPORT = "\nimport json as _json\nprint(_json.dumps({'start': _START, 'end': sorted(_sys.modules)}))\n"
"""The last lines: the modules at the start and at the end, as one line of JSON."""


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


@cache
def core_distributions() -> frozenset[str]:
    """The core dependencies and, as installed here, everything they need (without their extras)."""
    seen: set[str] = set()
    todo = [_name(r) for r in PYPROJECT["project"]["dependencies"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in needs if "extra ==" not in r)
    return frozenset(seen)


def beyond_core(output: str) -> dict[str, str]:
    """From the last line of a :data:`REPORT`: each top-level module loaded after the start that belongs to
    a distribution outside the core (or to a lazy one), with that distribution."""
    report = json.loads(output.strip().splitlines()[-1])
    start = {m.split(".")[0] for m in report["start"]}
    owners = packages_distributions()
    found = {}
    for top in sorted({m.split(".")[0] for m in report["end"]} - start):
        dists = {_name(d) for d in owners.get(top, ())}
        if dists and (not dists & core_distributions() or top in LAZY_CORE) and "edgetasks" not in dists:
            found[top] = ", ".join(sorted(dists))
    return found
