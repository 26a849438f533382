"""Libraries imported when a task first uses them, not when its entry point loads.

An agent builds its catalog by loading every entry point, whether or not it ever runs one of the
types: a library imported at the top of a task module costs every agent its memory and start-up
time (numpy ~12 MB, httpx ~4 MB, PyAV ~15 MB, an inference engine tens of MB). So a task module
checks that its library is installed without importing it (:func:`require`, the entry point then
fails to load and its types are listed as unavailable with the hint), and takes the library from a
:class:`LazyModule` (or imports it inside ``run()``). Type checkers see the real module::

    if TYPE_CHECKING:
        import numpy as np
    else:
        from tasks._lazy import numpy as np

``tests/tasks/test_lazy_imports.py`` holds every module of an entry point to this rule.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "available", "lazy", "load", "loaded", "numpy", "require"]


class LazyModule(ModuleType):
    """The module ``name``, imported (with ``submodules``) on first attribute access; thread-safe, since
    media and inference tasks use their libraries in worker threads. Once loaded, the module's names are
    copied in, so later look-ups cost what a plain module's do. Its own attributes start with ``_lazy_``
    (the library's names must not be hidden: ``numpy.load`` is numpy's); :func:`load` and :func:`loaded`
    are functions of this module for that reason."""

    def __init__(self, name: str, *, submodules: tuple[str, ...] = ()) -> None:
        super().__init__(name, f"{name}, imported on first use")
        self._lazy_lock = threading.Lock()
        self._lazy_submodules = submodules
        self._lazy_real: ModuleType | None = None

    def _lazy_load(self) -> ModuleType:
        with self._lazy_lock:
            if self._lazy_real is None:
                real = importlib.import_module(self.__name__)
                for name in self._lazy_submodules:
                    importlib.import_module(name)
                mine = self.__dict__.keys() | vars(LazyModule).keys()
                self.__dict__.update((key, value) for key, value in vars(real).items()
                                     if not key.startswith("__") and key not in mine)
                self._lazy_real = real
            return self._lazy_real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        real = self.__dict__.get("_lazy_real") or self._lazy_load()
        return getattr(real, name)


def load(module: Any) -> ModuleType:
    """Import a :class:`LazyModule`'s library now (in a worker thread, say, before the event loop needs it)."""
    assert isinstance(module, LazyModule), module
    return module._lazy_load()


def loaded(module: Any) -> bool:
    """Whether a :class:`LazyModule`'s library has been imported through it."""
    assert isinstance(module, LazyModule), module
    return module.__dict__.get("_lazy_real") is not None


def available(name: str) -> bool:
    """Whether the top-level module ``name`` is installed, without importing it (False where imports of it
    are blocked: ``sys.modules[name] = None``, as tests do to play a device without it)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(*names: str, hint: str) -> None:
    """Raise ModuleNotFoundError (``No module named 'x': <hint>``) for the first of ``names`` not installed:
    called at the top of an entry point's module, so the agent lists its types as unavailable with why."""
    for name in names:
        if not available(name):
            raise ModuleNotFoundError(f"No module named {name!r}: {hint}", name=name)


_made: dict[str, LazyModule] = {}
_made_lock = threading.Lock()


def lazy(name: str, *, submodules: tuple[str, ...] = ()) -> Any:
    """The one :class:`LazyModule` of ``name`` in this process (typed Any: modules import the real one for
    type checkers, under ``TYPE_CHECKING``)."""
    with _made_lock:
        if name not in _made:
            _made[name] = LazyModule(name, submodules=submodules)
        return _made[name]


numpy: Any = lazy("numpy")
