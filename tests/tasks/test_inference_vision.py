"""face_detection against OpenCV called directly on the same frames, its overlay, the shared cascades, and what
an agent without OpenCV (or with OpenCV 5) offers.

The photo (tests/tasks/data/astronaut.jpg) is NASA's portrait of Eileen Collins (public domain), as
scikit-image ships it (``skimage.data.astronaut``), scaled to 320x320: one face, at about (109, 40)
and 63 pixels wide.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from fractions import Fraction
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from test_media_rig import Rig, wait_for

from edge.frames import encode_frame
from tasks.inference import haar
from tasks.inference.haar import Detector, Scan
from tasks.inference.models import Shared
from tasks.inference.vision import FaceDetection, draw_boxes, grey
from tasks.media.raw import RawVideo

PHOTO = Path(__file__).parent / "data" / "astronaut.jpg"
FACE = (109, 40, 63, 63)  # where the face is, as OpenCV finds it at the default settings
TS = 1_700_000_000_000


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


def photo(pixel_format: str = "rgb24") -> np.ndarray:
    """The photo as a wire array of ``pixel_format``."""
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    if pixel_format == "rgb24":
        return rgb
    array = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pixel_format).to_ndarray()
    return array[:, :, np.newaxis] if array.ndim == 2 else array


def direct(gray: np.ndarray, *, min_size: int = 30) -> list[tuple[int, int, int, int]]:
    """OpenCV's own face detection (its objectDetection sample's steps), nothing of ours."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5,
                                     minSize=(min_size, min_size))
    return [tuple(int(v) for v in box) for box in found]


def as_dicts(boxes: list[tuple[int, int, int, int]]) -> list[dict[str, int]]:
    return [{"x": x, "y": y, "width": w, "height": h} for x, y, w, h in boxes]


def near(box: dict[str, int], expected: tuple[int, int, int, int], tolerance: int = 3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(box.values(), expected, strict=True))


async def run_frames(rig: Rig, config: dict, frames: list[tuple[np.ndarray, dict]], *, video: bool = False):
    faces, count, out = await rig.listen("faces"), await rig.listen("count"), await rig.listen("video")
    outputs = {"faces": "faces", "count": "count", **({"video": "video"} if video else {})}
    await rig.start(FaceDetection, {"queue": 100, **config}, inputs={"in": "in"}, outputs=outputs)
    for i, (array, extra) in enumerate(frames):
        await rig.bus.publish(rig.topic("in"), encode_frame(array, ts=TS + i, seq=i, extra=extra))
    got = await rig.take(faces, len(frames)), await rig.take(count, len(frames))
    return (*got, await rig.take(out, len(frames)) if video else [])


# -- against OpenCV ------------------------------------------------------------------------------
@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_face_detection_finds_what_detect_multiscale_finds(rig):
    """The same boxes as OpenCV's own calls on the same frame, whatever pixel format the frame travels in."""
    rgb = photo()
    expected = direct(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert len(expected) == 1 and all(abs(a - b) <= 3 for a, b in zip(expected[0], FACE, strict=True))
    yuv = photo("yuv420p")
    formats = [(rgb, {"pixel_format": "rgb24"}), (np.ascontiguousarray(rgb[:, :, ::-1]), {"pixel_format": "bgr24"}),
               (yuv, {"pixel_format": "yuv420p"})]
    faces, count, _ = await run_frames(rig, {}, formats)
    assert [f.value for f in faces[:2]] == [as_dicts(expected)] * 2  # rgb24, bgr24: OpenCV's grey exactly
    assert faces[2].value == as_dicts(direct(np.ascontiguousarray(yuv[:320, :, 0])))  # yuv420p: its Y plane
    assert near(faces[2].value[0], FACE)
    assert [f.ts for f in faces] == [f.ts for f in count] == [TS, TS + 1, TS + 2]
    assert [f.value for f in count] == [1, 1, 1]
    assert all((f.extra["width"], f.extra["height"]) == (320, 320) for f in faces)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_a_frame_without_a_face_sends_an_empty_list(rig):
    blank = np.full((240, 320, 3), 90, np.uint8)
    tiny = np.zeros((2, 2, 1), np.uint8)  # smaller than any face: nothing to scan
    faces, count, _ = await run_frames(rig, {}, [(blank, {}), (tiny, {"pixel_format": "gray"})])
    assert [f.value for f in faces] == [[], []] and [f.value for f in count] == [0, 0]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_detect_width_scans_a_smaller_copy_and_answers_in_the_frames_pixels(rig):
    rgb = photo()
    small = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (160, 160), interpolation=cv2.INTER_AREA)
    expected = [tuple(v * 2 for v in box) for box in direct(small, min_size=15)]
    faces, _, _ = await run_frames(rig, {"detect_width": 160, "min_size": 15}, [(rgb, {})])
    assert faces[0].value == as_dicts(expected)
    assert near(faces[0].value[0], FACE, tolerance=6)


# -- the overlay ---------------------------------------------------------------------------------
def edge_and_inside(array: np.ndarray, box: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """A pixel on the box's top edge, and one in the middle of the face."""
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    return array[y, x + w // 2], array[y + h // 2, x + w // 2]


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_the_video_output_carries_the_frames_with_the_boxes_drawn(rig):
    rgb = photo()
    faces, _, video = await run_frames(rig, {"color": "#ff0000", "thickness": 2}, [(rgb, {})], video=True)
    (box,) = faces[0].value
    out = video[0].value
    assert out.shape == rgb.shape and video[0].ts == TS and video[0].extra["pixel_format"] == "rgb24"
    on_edge, inside = edge_and_inside(out, box)
    assert on_edge.tolist() == [255, 0, 0]
    assert inside.tolist() == edge_and_inside(rgb, box)[1].tolist()  # the face itself is not painted over
    changed = np.argwhere((out != rgb).any(axis=2))
    assert changed.min(axis=0).tolist() == [box["y"] - 1, box["x"] - 1]  # a 2-pixel line centred on the edge
    assert changed.max(axis=0).tolist() == [box["y"] + box["height"], box["x"] + box["width"]]


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_without_overlay_the_video_goes_out_as_it_came(rig):
    rgb = photo()
    faces, _, video = await run_frames(rig, {"overlay": False}, [(rgb, {})], video=True)
    assert len(faces[0].value) == 1 and np.array_equal(video[0].value, rgb)


@pytest.mark.parametrize("pixel_format", ["yuv420p", "bgr24", "rgba", "gray"])
def test_boxes_are_drawn_in_the_frames_own_pixel_format(pixel_format):
    array = photo(pixel_format)
    raw = RawVideo(array, pixel_format, 0, Fraction(1, 1000), 0)
    box = (109, 40, 63, 63)
    drawn = draw_boxes(raw, [box], (255, 0, 0), 2)
    assert drawn.shape == array.shape
    rgb = RawVideo(drawn, pixel_format, 0, Fraction(1, 1000), 0).to_av().to_ndarray(format="rgb24")
    edge = rgb[40, 109 + 31].astype(int)
    if pixel_format == "gray":
        assert abs(edge[0] - round(0.299 * 255)) <= 2  # red's luma
    else:
        assert edge[0] > 200 and edge[1] < 60 and edge[2] < 60, edge
    before = RawVideo(array, pixel_format, 0, Fraction(1, 1000), 0).to_av().to_ndarray(format="rgb24")
    assert np.array_equal(rgb[70:90, 130:150], before[70:90, 130:150])  # inside the box: untouched


def test_grey_is_opencvs_conversion_of_every_pixel_format():
    rgb = photo()
    want = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for fmt, array in (("rgb24", rgb), ("bgr24", np.ascontiguousarray(rgb[:, :, ::-1])),
                       ("rgba", cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)), ("gray", want[:, :, np.newaxis])):
        raw = RawVideo(array, fmt, 0, Fraction(1, 1000), 0)
        assert np.array_equal(grey(raw, equalize=False), want), fmt


# -- the cascades --------------------------------------------------------------------------------
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_instances_of_an_agent_share_one_loaded_cascade(rig):
    shared = haar.detector("frontalface_alt2")
    first = await rig.start(FaceDetection, {"cascade": "frontalface_alt2"}, inputs={"in": "a"}, outputs={})
    second = await rig.start(FaceDetection, {"cascade": "frontalface_alt2"}, inputs={"in": "b"}, outputs={})
    await wait_for(lambda: first.detector is not None and second.detector is not None)
    assert first.detector is second.detector and shared.made == 1
    other = await rig.start(FaceDetection, {"cascade": "profileface"}, inputs={"in": "c"}, outputs={})
    await wait_for(lambda: other.detector is not None)
    assert other.detector is not first.detector and other.detector.cascade == "profileface"


async def test_a_cascade_loads_in_a_thread_and_scans_one_image_at_a_time():
    threads: list[threading.Thread] = []
    shared = Shared("test", lambda: threads.append(threading.current_thread()) or Detector("frontalface_alt"))
    detector = await shared.get()
    assert threads[0] is not threading.main_thread()
    gray = cv2.cvtColor(photo(), cv2.COLOR_RGB2GRAY)
    alone = detector.detect(gray, Scan())
    together = await asyncio.gather(*(asyncio.to_thread(detector.detect, gray, Scan()) for _ in range(4)))
    assert alone and all(boxes == alone for boxes in together)


def test_every_face_cascade_loads():
    for cascade in haar.CASCADES:
        assert Detector(cascade).cascade == cascade


# -- without OpenCV ------------------------------------------------------------------------------
def test_without_opencv_only_face_detection_is_unavailable_with_the_install_hint():
    script = """
import json, sys
sys.modules['cv2'] = None  # as if not installed
from agent.registry import discover
registry = discover()
print(json.dumps({"unavailable": registry.unavailable, "types": sorted(registry.types)}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(found["unavailable"]) == {"face_detection"}
    assert ("pip install 'edgetasks[vision]' (or: pip install 'opencv-python-headless>=4.8,<5')"
            in found["unavailable"]["face_detection"])
    assert "face_detection" not in found["types"] and "screen_capture" in found["types"]


def test_opencv_5_makes_face_detection_unavailable(monkeypatch):
    versions = {"opencv-python-headless": "5.0.0.93"}

    def version(name: str) -> str:
        if name not in versions:
            raise PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(haar, "version", version)
    reason = FaceDetection.unavailable_reason()
    assert reason is not None and "OpenCV 5.0.0.93 has no Haar cascades" in reason
    assert "pip install 'opencv-python-headless>=4.8,<5'" in reason
    versions["opencv-python"] = "4.10.0.84"  # a 4.x beside it: its cv2 may be the one imported
    assert FaceDetection.unavailable_reason() is None


def test_offering_face_detection_loads_no_opencv():
    script = """
import json, sys
import tasks.inference.vision as vision
[t.describe() for t in vision.TYPES]
print(json.dumps({"cv2": "cv2" in sys.modules, "made": [vision.haar.detector(c).made for c in vision.haar.CASCADES]}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"cv2": False, "made": [0] * len(haar.CASCADES)}


def test_a_config_with_a_bad_value_says_which_field():
    lines = FaceDetection.check({"scale_factor": 1.001, "cascade": "eye", "color": "red"})
    assert {line.split(":")[0] for line in lines} == {"config.scale_factor", "config.cascade", "config.color"}
