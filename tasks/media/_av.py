"""PyAV, imported when a media task first uses it rather than when the catalog loads.

Importing ``av`` (FFmpeg's libraries) costs ~15 MB of RSS and ~0.15 s. An agent lists the media
task types in its catalog whether or not it ever runs one, so the modules of this package take
``av`` from here: a stand-in module whose first attribute access imports the real one (with the
submodules they use). Type checkers see the real ``av``::

    if TYPE_CHECKING:
        import av
    else:
        from tasks.media._av import av
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["av", "available", "loaded"]

_SUBMODULES = ("av.codec.context", "av.container", "av.video.reformatter", "av.audio.resampler")


class _LazyAv(ModuleType):
    """``av``, imported on first attribute access (thread-safe: media tasks use it in worker threads)."""

    def __init__(self) -> None:
        super().__init__("av", "PyAV, imported on first use")
        self._lock = threading.Lock()
        self._real: ModuleType | None = None

    def _load(self) -> ModuleType:
        with self._lock:
            if self._real is None:
                real = importlib.import_module("av")
                for name in _SUBMODULES:
                    importlib.import_module(name)
                self._real = real
            return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        real = self.__dict__.get("_real") or self._load()
        return getattr(real, name)


av: Any = _LazyAv()


def available() -> bool:
    """Whether PyAV is installed (without importing it)."""
    if "av" in sys.modules:
        return sys.modules["av"] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec("av") is not None
    except (ImportError, ValueError):
        return False


def loaded() -> bool:
    """Whether PyAV has been imported in this process."""
    return av.__dict__.get("_real") is not None
