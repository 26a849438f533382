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

from typing import Any

from tasks._lazy import available as _available
from tasks._lazy import lazy
from tasks._lazy import loaded as _loaded

__all__ = ["av", "available", "loaded"]

av: Any = lazy("av", submodules=("av.codec.context", "av.container", "av.video.reformatter",
                                        "av.audio.resampler"))


def available() -> bool:
    """Whether PyAV is installed (without importing it)."""
    return _available("av")


def loaded() -> bool:
    """Whether PyAV has been imported in this process."""
    return _loaded(av)
