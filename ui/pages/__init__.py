"""The panel's pages, one module each; :func:`create` registers their routes (NiceGUI's modularization)."""

from __future__ import annotations

from . import agents, dashboard, deployments, editor, inspect, running, types

__all__ = ["create"]


def create() -> None:
    for module in (agents, types, deployments, editor, running, dashboard, inspect):
        module.create()
