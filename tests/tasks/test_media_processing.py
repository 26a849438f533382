"""Video processing tasks on a real broker: reformatter, mixer and layout, activity meter, text, viewer."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from test_media_rig import Rig, wait_for

from edge.frames import encode_frame
from tasks.media import (
    TestPattern,
    TextRenderer,
    VideoActivityMeter,
    VideoLayout,
    VideoMixer,
    VideoReformatter,
    VideoViewer,
)

SMALL = {"width": 160, "height": 120, "audio": False, "realtime": False}


@pytest.fixture
async def rig(mosquitto_broker):
    async with Rig(mosquitto_broker.url) as rig:
        yield rig


async def test_reformatter_changes_size_and_pixel_format(rig):
    out = await rig.listen("out")
    await rig.start(VideoReformatter, {"width": 80, "pixel_format": "yuv420p", "queue": 50},
                    inputs={"in": "raw"}, outputs={"out": "out"})
    await rig.start(TestPattern, {**SMALL, "frames": 5}, outputs={"video": "raw"})
    frames = await rig.take(out, 5)
    assert all(f.value.shape == (90, 80, 1) and f.extra["pixel_format"] == "yuv420p" for f in frames)  # 80x60
    assert [f.extra["pts"] for f in frames] == [0, 1, 2, 3, 4]


async def test_reformatter_makes_a_constant_frame_rate(rig):
    out = await rig.listen("out")
    reformatter = await rig.start(VideoReformatter, {"rate": 10}, inputs={"in": "raw"}, outputs={"out": "out"})
    await rig.start(TestPattern, {**SMALL, "realtime": True, "rate": 40, "frames": 24}, outputs={"video": "raw"})
    frames = await rig.take(out, 5)
    assert [f.extra["pts"] for f in frames] == [0, 1, 2, 3, 4] and frames[0].extra["time_base"] == [1, 10]
    assert reformatter.skipped >= 10  # 40 in, 10 out
    assert reformatter.dropped() == 0  # leaving frames out on purpose is not dropping them


async def test_mixer_blends_a_layer_with_its_opacity(rig):
    out = await rig.listen("out")
    await rig.start(VideoMixer, {"width": 160, "height": 120, "queue": 50, "layers": [
        {"input": "in0"}, {"input": "in1", "x": 20, "y": 10, "width": 40, "height": 30, "alpha": 0.5}]},
        inputs={"in0": "a", "in1": "b"}, outputs={"out": "out"})
    solid = {**SMALL, "pattern": "solid", "moving_box": False, "counter": False, "frames": 1}
    second = await rig.start(TestPattern, {**solid, "color": (0, 0, 200)}, outputs={"video": "b"})
    await rig.finished(second)
    await rig.start(TestPattern, {**solid, "color": (200, 0, 0)}, outputs={"video": "a"})
    (frame,) = await rig.take(out, 1)
    image = frame.value
    assert image.shape == (120, 160, 3)
    assert tuple(image[100, 100]) == (200, 0, 0)  # only in0
    assert tuple(image[20, 30]) == pytest.approx((100, 0, 100), abs=2)  # half and half


async def test_mixer_blends_an_rgba_overlay_with_its_own_alpha(rig):
    out = await rig.listen("out")
    mixer = await rig.start(VideoMixer, {"width": 160, "height": 120, "queue": 50, "layers": [
        {"input": "in0"}, {"input": "in1", "y": 80, "width": 160, "height": 32}]},
        inputs={"in0": "a", "in1": "text"}, outputs={"out": "out"})
    await rig.start(TextRenderer, {"text": "I", "width": 160, "height": 32, "scale": 4, "rate": 0,
                                   "background_alpha": 160}, outputs={"out": "text"})
    await wait_for(lambda: mixer.in_metrics["in1"].frames == 1)  # the overlay is there
    await rig.start(TestPattern, {**SMALL, "pattern": "solid", "moving_box": False, "counter": False, "frames": 1,
                                  "color": (200, 0, 0)}, outputs={"video": "a"})
    (frame,) = await rig.take(out, 1)
    image = frame.value
    assert tuple(image[10, 10]) == (200, 0, 0)  # above the overlay
    assert tuple(image[82, 150]) == pytest.approx((200 * 95 / 255, 0, 0), abs=2)  # its background: 160/255 black
    assert (image[80:112] == 255).all(axis=2).any()  # the glyph: opaque white


async def test_layout_puts_inputs_side_by_side(rig):
    out = await rig.listen("out")
    await rig.start(VideoLayout, {"width": 160, "height": 120, "layout": "side_by_side", "queue": 50},
                    inputs={"in0": "a", "in1": "b"}, outputs={"out": "out"})
    solid = {**SMALL, "pattern": "solid", "moving_box": False, "counter": False, "frames": 1}
    second = await rig.start(TestPattern, {**solid, "color": (0, 200, 0)}, outputs={"video": "b"})
    await rig.finished(second)
    await rig.start(TestPattern, {**solid, "color": (200, 0, 0)}, outputs={"video": "a"})
    (frame,) = await rig.take(out, 1)
    assert tuple(frame.value[60, 20]) == (200, 0, 0) and tuple(frame.value[60, 140]) == (0, 200, 0)


async def test_activity_meter_tells_still_from_moving(rig):
    results = {}
    for name, pattern in [("still", {"moving_box": False, "counter": False}), ("moving", {})]:
        activity, active = await rig.listen(f"activity-{name}"), await rig.listen(f"active-{name}")
        await rig.start(VideoActivityMeter, {"queue": 50, "threshold": 0.002}, inputs={"in": name},
                        outputs={"activity": f"activity-{name}", "active": f"active-{name}"})
        await rig.start(TestPattern, {**SMALL, "frames": 4, **pattern}, outputs={"video": name})
        results[name] = ([f.value for f in await rig.take(activity, 3)], [f.value for f in await rig.take(active, 1)])
    assert results["still"] == ([0.0, 0.0, 0.0], [False])
    moving, active = results["moving"]
    assert all(0.002 < value < 0.2 for value in moving) and active == [True]  # a small box moving 4 pixels


async def test_text_renderer_draws_text_and_takes_new_text(rig):
    out = await rig.listen("out")
    await rig.start(TextRenderer, {"text": "Hi", "width": 64, "height": 32, "scale": 2, "rate": 0},
                    inputs={"text": "text"}, outputs={"out": "out"})
    (first,) = await rig.take(out, 1)
    assert first.value.shape == (32, 64, 4) and first.extra["pixel_format"] == "rgba"
    lit = first.value[:, :, 3] == 255
    assert 20 < lit.sum() < 64 * 32 / 2  # the glyphs, opaque; the background half transparent
    assert set(np.unique(first.value[:, :, 3])) == {160, 255}
    await rig.bus.publish(rig.topic("text"), encode_frame("Hello!"))
    (second,) = await rig.take(out, 1)
    assert (second.value[:, :, 3] == 255).sum() > lit.sum()


async def test_viewer_sends_jpeg_images_at_a_limited_rate(rig):
    view = await rig.listen("view")
    viewer = await rig.start(VideoViewer, {"max_fps": 4, "max_width": 80}, inputs={"in": "raw"},
                             outputs={"view": "view"})
    await rig.start(TestPattern, {**SMALL, "realtime": True, "rate": 40, "frames": 20}, outputs={"video": "raw"})
    images = await rig.take(view, 2)
    for image in images:
        assert image.value[:2] == b"\xff\xd8" and (image.extra["width"], image.extra["height"]) == (80, 60)
        with av.open(io.BytesIO(image.value), format="mjpeg") as container:
            picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (80, 60)
    assert viewer.skipped >= 5


async def test_viewer_sends_every_frame_as_h264_a_browser_can_start_at_a_keyframe(rig):
    """Output ``video``: one packet per source frame (not limited to max_fps), baseline H.264 at the viewer's
    size, keyframes on schedule with the SPS/PPS, each with its frame's capture ts; PyAV decodes them."""
    from tasks.media.packets import EncodedPacket

    video, view = await rig.listen("video"), await rig.listen("view")
    await rig.start(VideoViewer, {"max_fps": 2, "max_width": 80, "keyframe_interval": 5, "queue": 100,
                                  "h264": "always"}, inputs={"in": "raw"}, outputs={"view": "view", "video": "video"})
    source = await rig.listen("raw")
    await rig.start(TestPattern, {**SMALL, "frames": 12}, outputs={"video": "raw"})
    raws = await rig.take(source, 12)
    frames = await rig.take(video, 12)
    packets = [EncodedPacket.from_value(f.value) for f in frames]
    assert [f.ts for f in frames] == [r.ts for r in raws]  # every frame, in order, its capture time kept
    assert [p.keyframe for p in packets] == [i % 5 == 0 for i in range(12)]
    first = packets[0]
    assert (first.codec, first.width, first.height) == ("h264", 80, 60)
    assert first.extradata is not None and first.extradata[4] & 0x1F == 7  # the SPS first (Annex B)
    assert first.extradata[5] == 66  # profile_idc 66: baseline, what every browser decoder takes
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = first.extradata
    pictures = [pic for p in packets for pic in decoder.decode(av.Packet(p.data))]
    pictures += decoder.decode(None)
    assert len(pictures) == 12 and (pictures[0].width, pictures[0].height) == (80, 60)
    images = await rig.take(view, 1)  # and the JPEG fallback still comes
    assert images[0].value[:2] == b"\xff\xd8"


async def test_viewer_encodes_h264_while_watched_and_a_keyframe_when_asked(rig, monkeypatch):
    """``h264: watched``: no H.264 until a frame on input ``keyframe`` (the panel's, while a browser plays), then
    from a keyframe on until the lease runs out; a ``true`` there makes the next frame a keyframe, with its
    SPS/PPS, off the schedule; asks closer than MIN_FORCED_GAP make one."""
    from tasks.media import viewer as module
    from tasks.media.packets import EncodedPacket

    monkeypatch.setattr(module, "WATCH_LEASE", 1.0)
    video, view = await rig.listen("video"), await rig.listen("view")
    viewer = await rig.start(VideoViewer, {"max_width": 80, "max_fps": 20, "keyframe_interval": 600, "queue": 100},
                             inputs={"in": "raw", "keyframe": "ask"}, outputs={"view": "view", "video": "video"})
    await rig.start(TestPattern, {**SMALL, "realtime": True, "rate": 20, "frames": 400}, outputs={"video": "raw"})
    await rig.take(view, 4)
    assert video.received == 0 and viewer.unwatched >= 3  # nobody watches: nothing encoded

    await rig.bus.publish(rig.topic("ask"), encode_frame(False))  # a browser plays (no keyframe asked)
    first = EncodedPacket.from_value((await rig.take(video, 1))[0].value)
    assert first.keyframe and viewer.forced == 0  # a fresh encoder starts at a keyframe
    for _ in range(3):
        await rig.bus.publish(rig.topic("ask"), encode_frame(True))
    frames = await rig.take(video, 1, until=lambda got: any(EncodedPacket.from_value(f.value).keyframe for f in got))
    forced = EncodedPacket.from_value(frames[-1].value)
    assert forced.extradata is not None and forced.extradata[4] & 0x1F == 7
    await rig.take(video, 1, timeout=module.MIN_FORCED_GAP * 3, until=lambda got: len(got) >= 12)  # 0.6 s more
    assert viewer.forced == 1 and viewer.in_metrics["keyframe"].frames == 4

    # the lease runs out (1 s here, 15 s by default): the encoder closes, the images go on
    skipped = viewer.unwatched
    await rig.take(view, 1, timeout=10, until=lambda got: viewer.unwatched >= skipped + 5)
    received = video.received
    await rig.take(view, 3)
    assert video.received == received


async def test_viewer_without_h264_sends_only_jpeg(rig):
    video, view = await rig.listen("video"), await rig.listen("view")
    await rig.start(VideoViewer, {"max_fps": 50, "max_width": 80, "h264": "off", "queue": 100},
                    inputs={"in": "raw"}, outputs={"view": "view", "video": "video"})
    await rig.start(TestPattern, {**SMALL, "realtime": True, "rate": 20, "frames": 6}, outputs={"video": "raw"})
    await rig.take(view, 3)
    assert video.received == 0  # sent before each image, so any would be here by now
