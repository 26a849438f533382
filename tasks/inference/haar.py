"""OpenCV's Haar cascades: the XML models inside ``opencv-python-headless`` 4.x (``cv2.data.haarcascades``).

Nothing is downloaded: the cascades install with the wheel. OpenCV 5 dropped ``CascadeClassifier``
(and the XML files), hence the pin ``opencv-python-headless>=4.8,<5`` of the ``vision`` extra.

A loaded cascade is one :class:`Detector` per agent (:func:`detector`), loaded in a thread on
first use and shared by every instance that uses that cascade. A ``CascadeClassifier`` keeps
state of the image it scans, so two threads never run one at once: users take turns under the
detector's lock (OpenCV spreads one scan over its own threads, so taking turns costs little).
``import cv2`` (~30 MB of RSS) happens when a detector is first loaded, not when the agent lists
the type.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from tasks.inference.models import Shared, installed

if not installed("cv2"):
    raise ModuleNotFoundError("No module named 'cv2': face_detection needs OpenCV: pip install 'edgetasks[vision]' "
                              "(or: pip install 'opencv-python-headless>=4.8,<5')", name="cv2")

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["CASCADES", "Box", "Cascade", "Detector", "Scan", "detector", "opencv_5_reason"]

#: the face cascades OpenCV 4.x ships (``haarcascade_{name}.xml``)
Cascade = Literal["frontalface_default", "frontalface_alt", "frontalface_alt2", "frontalface_alt_tree",
                  "profileface", "frontalcatface", "frontalcatface_extended"]
CASCADES: Final[tuple[str, ...]] = get_args(Cascade)
#: the distributions that install the ``cv2`` module
_DISTRIBUTIONS: Final = ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                         "opencv-contrib-python")

#: x, y, width, height in pixels of the scanned image
Box = tuple[int, int, int, int]


def opencv_5_reason() -> str | None:
    """Why the installed OpenCV cannot run Haar cascades (5.x has none), without importing it; None if it can."""
    found: list[str] = []
    for name in _DISTRIBUTIONS:
        try:
            found.append(version(name))
        except PackageNotFoundError:
            continue
    if found and all(_major(v) >= 5 for v in found):
        return (f"OpenCV {found[0]} has no Haar cascades (OpenCV 5 dropped CascadeClassifier): "
                "pip install 'opencv-python-headless>=4.8,<5'")
    return None


def _major(text: str) -> int:
    head = text.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Scan:
    """How a cascade scans an image: ``detectMultiScale``'s parameters (sizes in pixels; 0: no bound)."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 30
    max_size: int = 0


class Detector:
    """One loaded cascade; :meth:`detect` from any thread (one scan at a time)."""

    def __init__(self, cascade: str) -> None:
        import cv2  # here: imported when a task first needs a detector

        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped it): "
                               "pip install 'opencv-python-headless>=4.8,<5'")
        folder = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in OpenCV's stubs
        path = Path(folder) / f"haarcascade_{cascade}.xml"
        classifier = cv2.CascadeClassifier(str(path))
        if classifier.empty():
            raise RuntimeError(f"the Haar cascade {cascade!r} could not be loaded from {path}")
        self.cascade = cascade
        self._classifier: Any = classifier
        self._lock = threading.Lock()

    def detect(self, gray: npt.NDArray[np.uint8], scan: Scan) -> list[Box]:
        """The boxes the cascade finds in a grey image, as ``detectMultiScale`` returns them."""
        size = (scan.min_size, scan.min_size)
        largest = (scan.max_size, scan.max_size)  # (0, 0): no bound, as OpenCV takes it
        with self._lock:
            found = self._classifier.detectMultiScale(gray, scaleFactor=scan.scale_factor,
                                                      minNeighbors=scan.min_neighbors, minSize=size,
                                                      maxSize=largest)
        return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


_DETECTORS: Final = {name: Shared(f"Haar cascade {name}", partial(Detector, name)) for name in CASCADES}


def detector(cascade: str) -> Shared[Detector]:
    """The agent's detector of ``cascade`` (one of :data:`CASCADES`), loaded on first use."""
    return _DETECTORS[cascade]
