"""screen_capture under Xvfb: the test starts its own X server, paints its screen with xsetroot and checks the
colour of the frames the task grabs; and what it says when the display or the area is not there."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from test_media_rig import Rig
from xvfb_display import needs_xvfb, paint, xvfb

from tasks.media.errors import CodecError, DeviceNotFoundError
from tasks.media.screen import ScreenCapture, check_x_display, x_displays

WIDTH, HEIGHT = 320, 240
RED, BLUE = [255, 0, 0], [0, 0, 255]


@pytest.fixture
def display() -> Iterator[str]:
    with xvfb(WIDTH, HEIGHT) as name:
        yield name


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


def mean_colour(frame) -> list[int]:
    return np.rint(frame.value.reshape(-1, 3).mean(axis=0)).astype(int).tolist()


@needs_xvfb
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_screen_capture_grabs_what_the_display_shows(rig, display):
    paint(display, "red")
    video = await rig.listen("video")
    task = await rig.start(ScreenCapture, {"display": display, "rate": 20, "draw_mouse": False},
                           outputs={"video": "video"})
    frames = await rig.take(video, 3)
    assert all(f.value.shape == (HEIGHT, WIDTH, 3) and f.extra["pixel_format"] == "rgb24" for f in frames)
    assert all(mean_colour(f) == RED for f in frames)
    assert frames[0].ts < frames[1].ts < frames[2].ts
    paint(display, "blue")  # live: the next frames show the change
    later = await rig.take(video, 1, until=lambda fs: bool(fs) and mean_colour(fs[-1]) == BLUE)
    assert later[-1].value.shape == (HEIGHT, WIDTH, 3)
    assert task.output_metadata("video")["rate"] == 20


@needs_xvfb
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_an_area_of_the_screen_is_grabbed_at_its_offset(rig, display):
    paint(display, "#00ff00")
    video = await rig.listen("video")
    config = {"display": display, "x": 100, "y": 40, "width": 64, "height": 48, "rate": 20, "draw_mouse": False,
              "pixel_format": "yuv420p"}
    task = await rig.start(ScreenCapture, config, outputs={"video": "video"})
    (frame,) = await rig.take(video, 1)
    assert frame.value.shape == (48 * 3 // 2, 64, 1) and frame.extra["pixel_format"] == "yuv420p"
    luma = frame.value[:48, :, 0]
    assert abs(int(luma.mean()) - 145) <= 3  # pure green's Y (BT.601, limited range)
    meta = task.output_metadata("video")
    assert (meta["width"], meta["height"], meta["pixel_format"]) == (64, 48, "yuv420p")


@needs_xvfb
def test_an_area_outside_the_screen_is_one_line_naming_it(display):
    task = ScreenCapture({"display": display, "x": WIDTH - 10, "y": 0, "width": 64, "height": 48})
    with pytest.raises(CodecError) as caught:
        task.open_reader()
    message = str(caught.value)
    assert f"the 64x48 area at {WIDTH - 10},0 of X display {display}" in message and "inside the screen" in message
    assert "\n" not in message


async def test_a_display_that_is_not_running_is_a_device_error_naming_it(tmp_path):
    sockets = tmp_path / "X11"
    sockets.mkdir()
    (sockets / "X7").touch()
    with pytest.raises(DeviceNotFoundError, match=r"X display :5 is not running \(X displays here: :7\)"):
        check_x_display(":5", sockets=sockets, unix=tmp_path / "none")
    with pytest.raises(DeviceNotFoundError, match="no X server runs on this machine"):
        check_x_display(":0.0", sockets=tmp_path / "missing", unix=tmp_path / "none")
    check_x_display(":7.0", sockets=sockets, unix=tmp_path / "none")
    check_x_display("otherhost:0", sockets=tmp_path / "missing", unix=tmp_path / "none")  # FFmpeg's to try
    task = ScreenCapture({"display": f":{max([*x_displays(), 0]) + 1}"})
    with pytest.raises(DeviceNotFoundError, match="is not running"):
        await asyncio.to_thread(task.open_reader)


def test_abstract_x_sockets_count_as_displays(tmp_path):
    unix = tmp_path / "unix"
    unix.write_text("Num RefCount Protocol Flags Type St Inode Path\n"
                    "0000: 00000002 00000000 00010000 0001 01 1 @/tmp/.X11-unix/X12\n"
                    "0000: 00000002 00000000 00010000 0001 01 2 /run/other.sock\n")
    assert x_displays(sockets=tmp_path / "none", unix=unix) == [12]


@pytest.mark.parametrize(("config", "field"), [
    ({"display": "0"}, "config.display"),
    ({"display": ":0; rm -rf /"}, "config.display"),
    ({"width": 64}, "config"),
    ({"x": 10}, "config"),
    ({"rate": 0}, "config.rate"),
])
def test_a_bad_config_says_which_field(config, field):
    lines = ScreenCapture.check(config)
    assert lines and lines[0].split(":")[0] == field, lines
