"""Finding the task types an agent offers.

Three sources, in this order (a later one wins on a name clash, with a warning):

* the ``edgetasks.tasks`` entry-point group: the built-in tasks of ``tasks/`` register there,
  and so does any installed third-party package (``[project.entry-points."edgetasks.tasks"]``,
  each entry pointing at a Task subclass, an ``@fn_task``, or a module holding some);
* modules named on the command line or in ``EDGE_TASKS`` (``my_pkg.my_tasks``);
* Python files named the same way (``./my_tasks.py``).

A source that fails to import (a dependency missing on this device) does not stop the agent:
its types are listed in the catalog as unavailable, with the error as the reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from edge.task import Task

__all__ = ["ENTRY_POINT_GROUP", "Registry", "discover", "task_types_in"]

log = logging.getLogger("agent")

ENTRY_POINT_GROUP = "edgetasks.tasks"


@dataclass
class Registry:
    """Task types by name, and the names that could not be loaded with the reason."""

    types: dict[str, type[Task]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, task_type: type[Task], origin: str) -> None:
        name = task_type.type_name
        if name in self.types and self.types[name] is not task_type:
            log.warning("task type %r from %s replaces the one from %s", name, origin,
                        self.types[name].__module__)
        self.types[name] = task_type
        self.unavailable.pop(name, None)


def _as_task_type(obj: Any) -> type[Task] | None:
    task_type = getattr(obj, "task_type", None)  # an @fn_task
    if inspect.isclass(task_type) and issubclass(task_type, Task):
        return task_type
    if inspect.isclass(obj) and issubclass(obj, Task) and obj is not Task and "run" in _methods(obj):
        return obj
    return None


def _methods(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ if klass is not Task and klass is not object for name in vars(klass)}


def task_types_in(obj: Any) -> list[type[Task]]:
    """The task types an entry-point target holds: a type, an fn_task, a list of them, or a module
    (those defined in it)."""
    if isinstance(obj, ModuleType):
        found = []
        for value in vars(obj).values():
            task_type = _as_task_type(value)
            if task_type is not None and (getattr(value, "__module__", None) == obj.__name__
                                          or task_type.__module__ == obj.__name__):
                found.append(task_type)
        return found
    if isinstance(obj, list | tuple):
        return [t for item in obj for t in task_types_in(item)]
    task_type = _as_task_type(obj)
    return [task_type] if task_type else []


def _load_file(path: Path) -> ModuleType:
    name = f"edgetasks_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def discover(sources: Iterable[str] = (), *, entry_point_group: str = ENTRY_POINT_GROUP) -> Registry:
    """Every task type from the entry points and from ``sources`` (modules or ``.py`` files)."""
    registry = Registry()
    for ep in entry_points(group=entry_point_group):
        try:
            loaded = ep.load()
        except Exception as exc:  # any import-time failure of a plugin makes it unavailable, not fatal
            registry.unavailable[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("task type %r is unavailable: %s", ep.name, exc)
            continue
        types = task_types_in(loaded)
        if not types:
            registry.unavailable[ep.name] = f"entry point {ep.value!r} holds no task type"
        for task_type in types:
            registry.add(task_type, f"entry point {ep.name}")
    for source in sources:
        try:
            module = _load_file(Path(source)) if source.endswith(".py") else importlib.import_module(source)
        except Exception as exc:  # same: a broken task module must not stop the agent
            registry.unavailable[Path(source).stem if source.endswith(".py") else source] = (
                f"{type(exc).__name__}: {exc}")
            log.error("could not load task types from %s: %s", source, exc)
            continue
        types = task_types_in(module)
        if not types:
            log.warning("%s defines no task type", source)
        for task_type in types:
            registry.add(task_type, source)
    return registry
