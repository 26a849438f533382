"""edgetasks core library: settings, topics, frames, brokers and the MQTT bus.

This package is what a task author or a script needs; the agent, the control panel and
the built-in tasks are separate packages built on it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgetasks")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0"

from edge.fntask import FnTask, fn_task  # after __version__, which modules it loads may import

__all__ = ["FnTask", "__version__", "fn_task"]
