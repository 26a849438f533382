"""``face_detection``: raw video in, the faces in each frame out as boxes (OpenCV's Haar cascades), and the
video with the boxes drawn; the ``face_detection`` entry point.

Each frame is turned grey (the Y plane of ``yuv420p`` as it is), its histogram equalized (as
OpenCV's own face detection sample does), scaled down to ``detect_width`` if it is wider, and
scanned by the cascade (``detectMultiScale``). The boxes, in the frame's pixels, go out on
``faces`` with the frame's ``ts``, one frame per video frame (an empty list: no face), their
number on ``count``; when ``video`` is wired, the frame goes out there with the boxes drawn
(``overlay``) or as it came. The scan runs in the task's worker thread; the cascade is loaded
once per agent and shared (:mod:`tasks.inference.haar`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field

from edge.task import Port, Task
from tasks.inference import haar  # first of ours: without OpenCV, its error is the reason
from tasks.inference.haar import Box, Cascade, Detector, Scan
from tasks.media.mediatask import RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import RawVideo

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from edge.settings import Settings
else:
    from tasks._lazy import numpy as np

__all__ = ["TYPES", "FaceDetection", "draw_boxes", "grey", "scaled_boxes"]

#: OpenCV's colour conversions to grey, by wire pixel format (gray and yuv420p need none)
_TO_GREY: Final = {"rgb24": "COLOR_RGB2GRAY", "bgr24": "COLOR_BGR2GRAY", "rgba": "COLOR_RGBA2GRAY",
                   "bgra": "COLOR_BGRA2GRAY"}


class FaceDetectionConfig(MediaConfig):
    queue: int = Field(default=2, ge=1, le=10_000, description="frames waiting to be scanned (the oldest goes: "
                                                                "a detector slower than its camera scans the newest)")
    cascade: Cascade = Field(default="frontalface_default", description="which of OpenCV's Haar cascades: frontal "
                             "faces (default, alt, alt2, alt_tree), profileface, or cat faces")
    # from 1.01: a factor nearer 1 makes tens of thousands of scales, one scan of minutes that a stop waits for
    scale_factor: float = Field(default=1.1, ge=1.01, le=2.0, description="how much the scan window grows each "
                                "step: lower finds more, slower")
    min_neighbors: int = Field(default=5, ge=0, le=100, description="overlapping hits a box needs: higher, fewer "
                               "false faces")
    min_size: int = Field(default=30, ge=1, le=4096, description="smallest face in pixels (of the scanned image)")
    max_size: int = Field(default=0, ge=0, le=8192, description="largest face in pixels; 0: no bound")
    equalize: bool = Field(default=True, description="equalize the grey image's histogram before the scan")
    detect_width: int | None = Field(default=None, ge=32, le=7680, description="scan a copy scaled down to this "
                                     "width (faster; boxes still in the frame's pixels); unset: the frame as it is")
    overlay: bool = Field(default=True, description="draw the boxes on the frames sent on 'video' (false: they go "
                                                    "out as they came)")
    color: str = Field(default="#00ff00", pattern=r"^#[0-9a-fA-F]{6}$", description="the boxes' colour, #rrggbb")
    thickness: int = Field(default=2, ge=1, le=32, description="the boxes' line width in pixels")


class FaceDetection(MediaTask):
    """Find faces in raw video with OpenCV's Haar cascades: boxes per frame, and the video with them drawn.

    Each frame is scanned grey (equalized, optionally scaled down to ``detect_width``); its boxes go
    out on ``faces`` as ``[{x, y, width, height}, …]`` in the frame's pixels with the frame's ``ts``
    (an empty list when there is none), their number on ``count``. When ``video`` is wired, the
    frames go out there too, with the boxes drawn if ``overlay`` is on.
    """

    Config = FaceDetectionConfig
    category = "inference"
    inputs = {"in": replace(RAW_VIDEO, label="video (any raw pixel format)")}
    outputs = {"faces": Port(content="data", label="boxes per frame: [{x, y, width, height}]"),
               "count": Port(content="number", label="faces per frame"),
               "video": replace(RAW_VIDEO, label="the video, boxes drawn (overlay)")}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.scan = Scan(scale_factor=c.scale_factor, min_neighbors=c.min_neighbors, min_size=c.min_size,
                         max_size=c.max_size)
        self.detector: Detector | None = None
        self._rgb = tuple(int(c.color[i : i + 2], 16) for i in (1, 3, 5))

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        return haar.opencv_5_reason() or super().unavailable_reason(settings)

    def detect(self, raw: RawVideo) -> list[Box]:
        """The boxes in one frame, in its pixels (worker thread)."""
        assert self.detector is not None
        c = self.config
        image = grey(raw, equalize=c.equalize, width=c.detect_width)
        boxes = self.detector.detect(image, self.scan)
        return scaled_boxes(boxes, raw.width / image.shape[1]) if image.shape[1] != raw.width else boxes

    def process(self, raw: RawVideo, video: bool) -> tuple[list[Box], npt.NDArray[np.uint8] | None]:
        """The boxes and, if the video goes out, the frame to send (worker thread)."""
        boxes = self.detect(raw)
        if not video:
            return boxes, None
        if not self.config.overlay or not boxes:
            return boxes, raw.array
        return boxes, draw_boxes(raw, boxes, self._rgb, self.config.thickness)

    async def serve(self) -> None:
        self.detector = await haar.detector(self.config.cascade).get()
        video = bool(self.context is not None and self.context.targets.get("video"))
        while True:
            _, item = await self.lanes.get_any()
            if not isinstance(item, RawVideo):
                continue
            boxes, frame = await self.work(self.process, item, video)
            size = {"width": item.width, "height": item.height}
            await self.emit("faces", [{"x": x, "y": y, "width": w, "height": h} for x, y, w, h in boxes],
                            ts=item.ts, extra=size)
            await self.emit("count", len(boxes), ts=item.ts)
            if frame is not None:
                await self.emit("video", frame, ts=item.ts, extra=item.extra())


def grey(raw: RawVideo, *, equalize: bool = True, width: int | None = None) -> npt.NDArray[np.uint8]:
    """A frame as the grey image a cascade scans: equalized if asked, scaled down to ``width`` if wider."""
    import cv2

    array = raw.array
    if raw.pixel_format in _TO_GREY:
        image = cv2.cvtColor(array, getattr(cv2, _TO_GREY[raw.pixel_format]))
    else:  # gray, or the Y plane (the first rows) of yuv420p
        image = np.ascontiguousarray(array[: raw.height, :, 0])
    if width is not None and raw.width > width:
        height = max(1, round(raw.height * width / raw.width))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if equalize:
        image = cv2.equalizeHist(image)
    return image  # type: ignore[return-value]  # uint8 in, uint8 out (OpenCV's stubs say any number type)


def scaled_boxes(boxes: list[Box], factor: float) -> list[Box]:
    """Boxes of a scaled image in the pixels of the original (``factor``: original / scaled width)."""
    return [(round(x * factor), round(y * factor), round(w * factor), round(h * factor)) for x, y, w, h in boxes]


def draw_boxes(raw: RawVideo, boxes: list[Box], rgb: tuple[int, ...], thickness: int) -> npt.NDArray[np.uint8]:
    """A copy of the frame's array with the boxes drawn in colour ``rgb``, in the frame's own pixel format."""
    import cv2

    array = raw.array.copy()  # a received frame is read-only
    fmt = raw.pixel_format
    r, g, b = rgb
    if fmt == "yuv420p":
        _draw_yuv420p(array, raw.width, raw.height, boxes, rgb=(r, g, b), thickness=thickness)
        return array
    color: tuple[int, ...] = {"rgb24": (r, g, b), "bgr24": (b, g, r), "rgba": (r, g, b, 255),
                              "bgra": (b, g, r, 255)}.get(fmt, (_luma(r, g, b),))
    for x, y, w, h in boxes:
        cv2.rectangle(array, (x, y), (x + w - 1, y + h - 1), color, thickness)
    return array


def _luma(r: int, g: int, b: int) -> int:
    return round(0.299 * r + 0.587 * g + 0.114 * b)


def _draw_yuv420p(array: npt.NDArray[np.uint8], width: int, height: int, boxes: list[Box], *,
                  rgb: tuple[int, int, int], thickness: int) -> None:
    """Draw into the Y plane and, at half size, into the U and V planes (BT.601, limited range)."""
    import cv2

    r, g, b = rgb
    y_value = round(16 + 0.257 * r + 0.504 * g + 0.098 * b)
    u_value = round(128 - 0.148 * r - 0.291 * g + 0.439 * b)
    v_value = round(128 + 0.439 * r - 0.368 * g - 0.071 * b)
    flat = array.reshape(-1)  # the planes one after the other (a view: the array is contiguous)
    size, half_size = width * height, (width // 2) * (height // 2)
    luma = flat[:size].reshape(height, width)
    u = flat[size : size + half_size].reshape(height // 2, width // 2)
    v = flat[size + half_size : size + 2 * half_size].reshape(height // 2, width // 2)
    for x, y, w, h in boxes:
        cv2.rectangle(luma, (x, y), (x + w - 1, y + h - 1), (y_value,), thickness)
        half = (x // 2, y // 2), ((x + w - 1) // 2, (y + h - 1) // 2)
        cv2.rectangle(u, *half, (u_value,), max(1, thickness // 2))
        cv2.rectangle(v, *half, (v_value,), max(1, thickness // 2))


#: the ``face_detection`` entry point's types
TYPES: list[type[Task]] = [FaceDetection]
