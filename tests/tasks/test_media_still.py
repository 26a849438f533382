"""image_renderer: an image file of the files folder as video frames at a rate, on a real broker."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from test_media_rig import Rig

from edge.frames import encode_frame
from tasks.media import ImageRenderer
from tasks.media.errors import ImageError

PICTURE = np.zeros((48, 64, 3), np.uint8)
PICTURE[:, :32] = (255, 0, 0)
PICTURE[:, 32:] = (0, 0, 255)


def write_png(path: Path, array: np.ndarray) -> None:
    import av

    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = array.shape[1], array.shape[0], "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
            out.mux(packet)
        out.mux(stream.encode(None))


@pytest.fixture
async def rig(broker, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    write_png(folder / "halves.png", PICTURE)
    write_png(folder / "green.png", np.full((48, 64, 3), (0, 255, 0), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    async with Rig(broker.url, files_dir=folder) as rig:
        yield rig


async def test_the_image_is_sent_at_the_rate_with_due_times(rig):
    out = await rig.listen("out")
    await rig.start(ImageRenderer, {"path": "halves.png", "rate": 20, "frames": 5}, outputs={"out": "out"})
    frames = await rig.take(out, 5)
    for i, frame in enumerate(frames):
        assert np.array_equal(frame.value, PICTURE)
        assert frame.extra["pixel_format"] == "rgb24" and frame.extra["pts"] == i
    assert [b.ts - a.ts for a, b in itertools.pairwise(frames)] == [50] * 4


async def test_the_image_is_scaled_keeping_its_aspect_and_converted(rig):
    out = await rig.listen("out")
    await rig.start(ImageRenderer, {"path": "halves.png", "rate": 50, "frames": 1, "width": 32,
                                    "pixel_format": "gray"}, outputs={"out": "out"})
    [frame] = await rig.take(out, 1)
    assert frame.value.shape == (24, 32, 1) and frame.extra["pixel_format"] == "gray"
    # red (luma ~76) on the left, blue (~29) on the right
    assert frame.value[:, :12].mean() == pytest.approx(76, abs=6) and frame.value[:, 20:].mean() == pytest.approx(
        29, abs=6)


async def test_a_path_frame_switches_the_image_and_a_bad_one_is_counted(rig):
    out = await rig.listen("out")
    renderer = await rig.start(ImageRenderer, {"path": "halves.png", "rate": 50}, inputs={"path": "path"},
                               outputs={"out": "out"})
    await rig.take(out, 1)
    for bad in ("../outside.png", "notes.txt", "missing.png", 42):
        await rig.bus.publish(rig.topic("path"), encode_frame(bad))
    await rig.bus.publish(rig.topic("path"), encode_frame("green.png"))
    frames = await rig.take(out, 0, until=lambda fs: bool(fs) and int(fs[-1].value[0, 0, 1]) == 255)
    assert all(np.array_equal(f.value, PICTURE) for f in frames[:-1])  # the bad ones left it as it was
    assert renderer.in_metrics["path"].errors == 4


async def test_a_missing_file_fails_the_task_naming_it(rig):
    renderer = await rig.start(ImageRenderer, {"path": "nowhere.png"}, outputs={"out": "out"})
    with pytest.raises(ImageError, match=r"^cannot read image 'nowhere.png': No such file or directory$"):
        await rig.finished(renderer)
    with pytest.raises(ImageError):
        await rig.stop(renderer)


def test_paths_follow_the_files_folder_rules():
    assert ImageRenderer.check({"path": "/etc/passwd"})[0].startswith("config.path: '/etc/passwd' is an absolute path")
    assert ImageRenderer.check({"path": "../x.png"})[0].startswith("config.path: '../x.png' leads out")
    assert ImageRenderer.check({"path": "a/b.png", "width": 33})[0].startswith("config.width: ")
    assert ImageRenderer.check({"path": "a/b.png", "rate": 10}) == []
