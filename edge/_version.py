"""The installed edgetasks version, in a module of its own: what reports it (``edge.presence``) need
not import the package's ``__init__``, which imports the decorator, which runs the runtime."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("edgetasks")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0"
