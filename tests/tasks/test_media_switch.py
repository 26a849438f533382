"""mediaswitch on real brokers: encoded streams switch at keyframes, raw frames at once, timelines continuous."""

from __future__ import annotations

import pytest
from test_media_rig import Rig

from edge.frames import encode_frame
from tasks.media import MediaSwitch, TestPattern, VideoDecoder, VideoEncoder
from tasks.media.packets import EncodedPacket


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


async def test_switching_encoded_video_waits_for_a_keyframe(rig):
    out, decoded = await rig.listen("out"), await rig.listen("decoded")
    switch = await rig.start(MediaSwitch, inputs={"in0": "p0", "in1": "p1", "select": "select"},
                             outputs={"out": "out"})
    decoder = await rig.start(VideoDecoder, {"queue": 100}, inputs={"in": "out"}, outputs={"out": "decoded"})
    for name, size in (("0", (160, 120)), ("1", (128, 96))):
        await rig.start(VideoEncoder, {"keyframe_interval": 10}, inputs={"in": f"r{name}"}, outputs={"out": f"p{name}"})
        await rig.start(TestPattern, {"width": size[0], "height": size[1], "audio": False, "rate": 50},
                        outputs={"video": f"r{name}"})
    before = await rig.take(out, 0, until=lambda fs: len(fs) >= 6 and fs[-1].value["pts"] % 10 == 3)
    await rig.bus.publish(rig.topic("select"), encode_frame(1))
    after = await rig.take(out, 0, until=lambda fs: sum(f.value.get("width") == 128 for f in fs) >= 2)
    packets = [EncodedPacket.from_value(f.value) for f in before + after]
    first_new = next(i for i, p in enumerate(packets) if p.width == 128)
    assert packets[0].keyframe and packets[0].width == 160
    assert packets[first_new].keyframe and packets[first_new].extradata
    assert first_new > len(before)  # the old input kept flowing until the new one had a keyframe
    assert all(p.width in (None, 160) for p in packets[:first_new])
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # one continuous timeline
    assert switch.switches == 1
    frames = await rig.take(decoded, 0, until=lambda fs: any(f.value.shape == (96, 128, 3) for f in fs))
    assert frames[0].value.shape == (120, 160, 3)
    assert decoder.in_metrics["in"].errors == 0


async def test_switching_raw_frames_is_immediate(rig):
    out = await rig.listen("out")
    await rig.start(MediaSwitch, {"active": 1}, inputs={"in0": "r0", "in1": "r1", "select": "select"},
                    outputs={"out": "out"})
    for name, size in (("0", (64, 48)), ("1", (32, 24))):
        await rig.start(TestPattern, {"width": size[0], "height": size[1], "audio": False, "rate": 50},
                        outputs={"video": f"r{name}"})
    first = await rig.take(out, 3)
    assert all(f.value.shape == (24, 32, 3) for f in first)
    await rig.bus.publish(rig.topic("select"), encode_frame("in0"))
    await rig.take(out, 0, until=lambda fs: bool(fs) and fs[-1].value.shape == (48, 64, 3))
    later = await rig.take(out, 3)
    assert all(f.value.shape == (48, 64, 3) and f.extra["pixel_format"] == "rgb24" for f in later)
