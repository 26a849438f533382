"""The toast that says something was refused, when the reasons are listed on the page already.

The editor lists every problem under the graph; a toast that repeated them sat on top of that
very list (toasts open at the bottom) and said everything twice. This one opens at the top,
says what was refused and where to read why, and goes away by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from nicegui import ui

__all__ = ["notify_refused", "refused_text"]


def refused_text(what: str, problems: Sequence[str]) -> str:
    """``demo was not deployed: 2 problems, listed under the graph``."""
    n = len(problems)
    return f"{what}: {n} problem{'' if n == 1 else 's'}, listed under the graph"


def notify_refused(what: str, problems: Sequence[str]) -> None:
    ui.notify(refused_text(what, problems), type="negative", position="top", timeout=5000)
