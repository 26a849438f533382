"""The task types of edgetasks' own entry points beyond ``builtin`` and ``media`` (``schedule``, ``gpio``,
``i2c``, ``serial``, ``web``, the speech ones: ``text_to_speech``, ``speech_recognition``,
``voice_activity``, and ``face_detection``), as an agent finds them: the tests install every extra, so a missing library
fails here rather than leaving its types out of the catalog tests unnoticed."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from edge.task import Task

__all__ = ["extra_types"]

GROUP = "edgetasks.tasks"
#: the entry points with tests and docs of their own kind (the built-ins' list, media's page)
OWN_KIND = {"builtin", "media"}


def extra_types() -> list[type[Task]]:
    found: list[type[Task]] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in OWN_KIND or not ep.value.startswith("tasks."):
            continue
        loaded: Any = ep.load()
        found += list(loaded)
    return found
