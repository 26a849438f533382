"""Where the editor puts a node it adds: in the middle of what the user is looking at.

The graph component reports the visible centre of its canvas, in graph coordinates, whenever
panning or zooming settles (its ``view`` event). :class:`Viewport` keeps the latest report and
:meth:`Viewport.spot` turns it into a free position: centred, then stepped down and right past
nodes that already sit there, so nodes added one after another do not hide each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NODE_HEIGHT", "NODE_WIDTH", "Viewport"]

NODE_WIDTH = 190  # as drawn by static/graph_view.js
NODE_HEIGHT = 84  # a node with two ports a side: a fair guess before the catalog says
STEP = 32
MAX_STEPS = 50


@dataclass
class Viewport:
    """The visible part of the canvas, in graph coordinates (unknown until the browser reports it)."""

    x: float | None = None
    y: float | None = None
    width: float = 0.0
    height: float = 0.0

    def update(self, x: float, y: float, width: float, height: float) -> None:
        self.x, self.y, self.width, self.height = x, y, max(0.0, width), max(0.0, height)

    @property
    def known(self) -> bool:
        return self.x is not None and self.y is not None

    def spot(self, taken: Mapping[str, tuple[int, int]]) -> tuple[int, int] | None:
        """A free top-left corner for a new node at the visible centre; None while the view is unknown."""
        if self.x is None or self.y is None:
            return None
        x, y = int(self.x - NODE_WIDTH / 2), int(self.y - NODE_HEIGHT / 2)
        corners = set(taken.values())
        # stay inside the visible area: step along a diagonal, wrap back to the centre when it leaves it
        span_x = max(STEP, int(self.width / 2 - NODE_WIDTH))
        span_y = max(STEP, int(self.height / 2 - NODE_HEIGHT))
        for step in range(MAX_STEPS):
            dx, dy = (step * STEP) % span_x, (step * STEP) % span_y
            spot = (x + dx, y + dy)
            if all(abs(spot[0] - cx) > STEP / 2 or abs(spot[1] - cy) > STEP / 2 for cx, cy in corners):
                return spot
        return x, y
