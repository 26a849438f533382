"""Fixtures of the control panel tests.

The ``user`` fixture (``nicegui.testing.user_plugin``) runs ``tests/ui/main.py``, which sets the
panel up from ``EDGE_*`` variables: :func:`panel_settings` (autouse) points them at a real
broker, a namespace of the test's own and a temporary data dir, before the panel starts. Real
agents run in the test's event loop next to the panel, with the task types of ``ui_tasks.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from agent import Agent
from edge.settings import Settings, load_settings

UI_TASKS = str(Path(__file__).with_name("ui_tasks.py"))
TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def panel_settings(broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings of the panel under test (and the base of its agents' settings)."""
    for name in list(os.environ):
        if name.startswith("EDGE_"):
            monkeypatch.delenv(name)
    env = {"EDGE_BROKER": broker.url.geturl(), "EDGE_NAMESPACE": f"ui{uuid.uuid4().hex[:10]}",
           "EDGE_DATA_DIR": str(tmp_path / "panel"), "EDGE_AGENT_ID": "panel"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def agent_settings(base: Settings, tmp_path: Path, name: str) -> Settings:
    return base.model_copy(update={"agent_id": name, "data_dir": tmp_path / name})


@contextlib.asynccontextmanager
async def agents(base: Settings, tmp_path: Path, *names: str,
                 sources: Iterable[str] = (UI_TASKS,)) -> AsyncIterator[list[Agent]]:
    """Real agents (``async with agents(settings, tmp_path, "a1", "a2") as (a1, a2)``)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Agent(agent_settings(base, tmp_path, name), task_sources=list(sources),
                                                     persist=False))
               for name in names]


async def until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Wait (bounded) until ``predicate()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def new_deployment(user: Any, dep: str) -> None:
    """A new deployment's editor, made as users make one: the New-deployment dialog (an unknown id's
    editor is a not-found page)."""
    await user.open("/deployments")
    user.find(marker="new").click()
    user.find(marker="new-id").type(dep)
    user.find(marker="create").click()
    await user.should_see("Add a task", retries=50)


def panel() -> Any:
    """The panel the user fixture started (its module is loaded by then)."""
    from ui.app import current

    return current()


def element(user: Any, marker: str) -> Any:
    """The newest element with that marker, shown or not (a page refreshed keeps its old ones a while)."""
    from nicegui.element_filter import ElementFilter

    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    assert found, f"no element marked {marker!r}"
    return max(found, key=lambda e: e.id)
