"""Live line charts over time (the inspector's and the dashboard's plots) that stay readable.

ECharts' default time axis puts as many labels as it likes, in formats that change with the zoom
(``12:03:04.500``): on a narrow card they ran into each other. Here the axis asks for a few
ticks, writes times as ``HH:mm:ss``, hides a label that would overlap its neighbour and keeps the
first and last labels inside the chart (clear of the value axis' labels). The
charts are drawn as SVG, so their labels are text a test can measure.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["RENDERER", "time_axis"]

RENDERER: Literal["canvas", "svg"] = "svg"
TICKS = 4


def time_axis() -> dict[str, Any]:
    """The ``xAxis`` of a chart whose points are ``[epoch ms, value]``."""
    return {
        "type": "time",
        "splitNumber": TICKS,
        "minInterval": 1000,
        # the first label starts at its tick, the last ends at its own: neither runs into the value axis
        # labels or off the chart; the gap keeps them clear of the value axis' lowest label
        "axisLabel": {"hideOverlap": True, "formatter": "{HH}:{mm}:{ss}", "fontSize": 11, "margin": 10,
                      "alignMinLabel": "left", "alignMaxLabel": "right"},
    }
