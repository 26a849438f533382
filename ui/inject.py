"""Inject: type a value and send it as one frame into an input of a running task.

The Running view opens :func:`port_dialog` when an input of its graph is clicked: a value, how to
read it (a number, text, or JSON: a map, a list, true/false, null) and ``send``, which goes through
:meth:`edge.controller.Controller.inject` (the task's inject topic; wired or not, only that input
gets it). A wired input's dialog also opens the inspector of its source. A mistake (not a number,
not JSON, a task that is not running) is one line; nothing is sent then.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from nicegui import ui

from edge.errors import ConfigError
from edge.ports import catalog_ports
from ui.app import Panel
from ui.frame import transient_dialog
from ui.inspector import open_inspector
from ui.io_text import io_text

__all__ = ["KINDS", "MAX_TEXT", "default_kind", "inject_buttons", "parse_value", "port_dialog"]

KINDS: Final = ("number", "text", "JSON")
#: characters of a typed value (a frame for testing, not a file upload)
MAX_TEXT: Final = 65536


def parse_value(text: str, kind: str) -> Any:
    """The value ``text`` stands for, read as ``kind``; :class:`ValueError` (one line) if it is not one."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"the value is longer than {MAX_TEXT} characters")
    if kind == "text":
        return text
    if kind == "number":
        stripped = text.strip()
        try:
            number: int | float = int(stripped)
        except ValueError:
            try:
                number = float(stripped)
            except ValueError:
                raise ValueError(f"{stripped[:40]!r} is not a number") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"{stripped[:40]!r} is not a finite number")
        return number
    if kind == "JSON":
        try:
            return json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    raise ValueError(f"read the value as one of {', '.join(KINDS)}, not {kind!r}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def default_kind(meta: Mapping[str, Any] | None) -> str:
    """How to read what is typed into an input with this IO metadata: its content's kind, else JSON."""
    content = meta.get("content") if isinstance(meta, Mapping) else None
    return content if content in ("number", "text") else "JSON"


def port_dialog(panel: Panel, dep: str, task: str, port: str) -> None:
    """The dialog of input ``task.port`` of deployment ``dep``: inject a value; inspect its source if wired."""
    spec = panel.fleet.deployments.get(dep)
    meta: Mapping[str, Any] | None = None
    wired = False
    if spec is not None:
        try:
            task_spec = spec.task(task)
        except KeyError:
            ui.notify(f"deployment {dep} has no task {task!r}", type="warning")
            return
        inputs, _ = catalog_ports(panel.fleet.types(online_only=False).get(task_spec.type, {}), task_spec.config)
        meta = inputs.get(port)
        wired = port in spec.sources(task, panel.controller.topics)
    with transient_dialog() as dialog, ui.card().classes("w-[32rem] max-w-full").mark("inject-dialog"):
        ui.label(f"Inject into {task}.{port}").classes("text-h6")
        ui.label(("wired: the frame goes to this input only, beside what its source sends" if wired else
                  "not wired: the frame is all this input gets") + (f" · expects {io_text(meta)}" if meta else "")
                 ).classes("text-caption text-grey-7")
        kind = ui.toggle(list(KINDS), value=default_kind(meta)).props("dense").mark("inject-kind")
        value = ui.textarea("value", placeholder="42, some text, or {\"a\": 1}").classes("w-full edge-mono").props(
            "autogrow autofocus").mark("inject-value")
        sent = ui.label().classes("text-caption").mark("inject-result")

        async def send() -> None:
            try:
                parsed = parse_value(value.value or "", str(kind.value))
                await panel.controller.inject(dep, task, port, parsed)
            except (ValueError, ConfigError) as exc:
                sent.text = f"not sent: {exc}"
                sent.classes(replace="text-caption text-negative")
                return
            sent.text = f"sent {json.dumps(parsed, ensure_ascii=False)[:80]} into {task}.{port}"
            sent.classes(replace="text-caption text-positive")
            ui.notify(f"injected into {dep}/{task}.{port}", type="positive")

        value.on("keydown.ctrl.enter", send)
        with ui.row().classes("items-center gap-2"):
            ui.button("send", icon="send", on_click=send).mark("inject-send")
            if wired:
                def inspect() -> None:
                    dialog.close()
                    open_inspector(panel, dep, task, port, "in")

                ui.button("inspect its source", icon="visibility", on_click=inspect).props("flat").mark(
                    "inject-inspect")
            ui.button("close", on_click=dialog.close).props("flat").mark("inject-close")
    dialog.open()


def inject_buttons(panel: Panel, dep: str, task: str) -> None:
    """In the editor's side panel of a node: one inject button per input the task has as deployed, while it
    runs (a draft's changes are not deployed: what is injected goes into what runs)."""
    spec = panel.fleet.deployments.get(dep)
    status = panel.fleet.statuses.get((dep, task))
    if spec is None or status is None or status.state != "running":
        return
    try:
        task_spec = spec.task(task)
    except KeyError:
        return
    inputs, _ = catalog_ports(panel.fleet.types(online_only=False).get(task_spec.type, {}), task_spec.config)
    if not inputs:
        return
    with ui.row().classes("items-center gap-1").mark("inject-buttons"):
        ui.label("inject into the running task:").classes("text-caption")
        for port in inputs:
            ui.button(port, icon="input", on_click=lambda p=port: port_dialog(panel, dep, task, p)).props(
                "flat dense no-caps").mark(f"inject-{port}")
