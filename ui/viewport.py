"""Where the editor puts a node it adds: in the middle of what the user is looking at.

The graph component reports the visible part of its canvas, in graph coordinates, whenever
panning or zooming settles (its ``view`` event). :class:`Viewport` keeps the latest report and
:meth:`Viewport.spot` turns it into a free place: the visible centre if no node covers it, else
the nearest free place around it (rings of growing size, inside the visible area first), so
nodes added one after another do not hide each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["NODE_HEIGHT", "NODE_WIDTH", "Box", "Viewport"]

NODE_WIDTH = 190  # as drawn by static/graph_view.js
NODE_HEIGHT = 84  # a node with two ports a side: a fair guess before the catalog says
GAP = 16
STEP = 40
RINGS = 12

Box = tuple[int, int, int, int]  # x, y, width, height


def _clear(x: int, y: int, width: int, height: int, boxes: list[Box]) -> bool:
    return all(x + width + GAP <= bx or bx + bw + GAP <= x or y + height + GAP <= by or by + bh + GAP <= y
               for bx, by, bw, bh in boxes)


@dataclass
class Viewport:
    """The visible part of the canvas, in graph coordinates (unknown until the browser reports it)."""

    x: float | None = None
    y: float | None = None
    width: float = 0.0
    height: float = 0.0

    def update(self, x: float, y: float, width: float, height: float) -> None:
        self.x, self.y, self.width, self.height = x, y, max(0.0, width), max(0.0, height)

    def _visible(self, x: int, y: int, width: int, height: int) -> bool:
        assert self.x is not None and self.y is not None
        return (self.x - self.width / 2 <= x and x + width <= self.x + self.width / 2
                and self.y - self.height / 2 <= y and y + height <= self.y + self.height / 2)

    def spot(self, taken: Iterable[Box], *, width: int = NODE_WIDTH,
             height: int = NODE_HEIGHT) -> tuple[int, int] | None:
        """A top-left corner for a new node near the visible centre, clear of the ``taken`` boxes;
        None while the view is unknown."""
        if self.x is None or self.y is None:
            return None
        boxes = list(taken)
        cx, cy = int(self.x - width / 2), int(self.y - height / 2)
        fallback: tuple[int, int] | None = None
        for ring in range(RINGS + 1):  # the centre, then the places around it, nearest first
            around = sorted({(dx, dy) for dx in range(-ring, ring + 1) for dy in range(-ring, ring + 1)
                             if max(abs(dx), abs(dy)) == ring}, key=lambda d: (d[0] ** 2 + d[1] ** 2, d))
            for dx, dy in around:
                x, y = cx + dx * STEP, cy + dy * STEP
                if _clear(x, y, width, height, boxes):
                    if self._visible(x, y, width, height):
                        return x, y
                    fallback = fallback or (x, y)
        return fallback or (cx, cy)
