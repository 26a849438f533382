"""edgetasks core library: settings, topics, frames, brokers and the MQTT bus.

This package is what a task author or a script needs; the agent, the control panel and
the built-in tasks are separate packages built on it.
"""

from edge._version import __version__
from edge.fntask import FnTask, fn_task

__all__ = ["FnTask", "__version__", "fn_task"]
