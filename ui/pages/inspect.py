"""The live inspector on a page of its own: ``/deployments/{dep}/inspect/{task}/{port}?side=out``."""

from __future__ import annotations

from nicegui import ui

from edge.errors import ConfigError
from edge.topics import is_valid_id
from ui.app import current
from ui.frame import deployment_nav, frame
from ui.inspector import Inspector, port_topic

__all__ = ["create"]


def create() -> None:
    @ui.page("/deployments/{dep}/inspect/{task}/{port}")
    def inspect_page(dep: str, task: str, port: str, side: str = "out") -> None:
        panel = current()
        with frame(f"{dep}/{task}.{port}", active="/deployments"):
            if not all(map(is_valid_id, (dep, task, port))) or side not in ("in", "out"):
                ui.label("not a port: /deployments/DEPLOYMENT/inspect/TASK/PORT?side=in|out").classes(
                    "text-negative")
                return
            deployment_nav(dep, "Inspector")
            try:
                topic = port_topic(panel, dep, task, port, side)
            except ConfigError as exc:
                ui.label(str(exc)).classes("text-negative")
                return
            Inspector(panel, title=f"{dep}/{task}.{port}", topic=topic)
