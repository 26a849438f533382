"""Video tasks on real brokers: encode/decode round trips, keyframes for late subscribers, slow consumers."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from test_media_rig import Rig, wait_for

from tasks.media import TestPattern, VideoDecoder, VideoEncoder
from tasks.media.packets import EncodedPacket

SMALL = {"width": 160, "height": 120, "audio": False}


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


@pytest.mark.parametrize("codec", ["h264", "mpeg4", "vp9", "mjpeg"])
async def test_pattern_encode_decode_round_trip(rig, codec):
    source_frames = await rig.listen("raw")
    decoded = await rig.listen("decoded")
    packets = await rig.listen("packets")
    await rig.start(VideoDecoder, {"queue": 64}, inputs={"in": "packets"}, outputs={"out": "decoded"})
    encoder = await rig.start(VideoEncoder, {"codec": codec, "queue": 64, "keyframe_interval": 5},
                              inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "frames": 12, "realtime": False}, outputs={"video": "raw"})

    out = await rig.take(decoded, 12)
    sent = await rig.take(source_frames, 12)
    assert encoder.dropped() == 0
    for original, frame in zip(sent, out, strict=True):
        assert frame.value.shape == (120, 160, 3) and frame.value.dtype == np.uint8
        assert frame.extra["pixel_format"] == "rgb24"
        assert frame.ts == original.ts and frame.extra["pts"] == original.extra["pts"]
        error = np.abs(frame.value.astype(int) - original.value.astype(int)).mean()
        assert error < 12, f"{codec}: mean error {error:.1f}"  # lossy, but the same picture
    keyframes = [EncodedPacket.from_value(f.value) for f in rig.drain(packets)]
    assert keyframes[0].keyframe and keyframes[0].codec == codec


async def test_keyframes_carry_extradata_and_the_stream_size(rig):
    packets = await rig.listen("packets")
    await rig.start(VideoEncoder, {"keyframe_interval": 4, "queue": 64}, inputs={"in": "raw"},
                    outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "frames": 10, "rate": 60, "realtime": False}, outputs={"video": "raw"})
    frames = await rig.take(packets, 10)
    decoded = [EncodedPacket.from_value(f.value) for f in frames]
    assert [p.keyframe for p in decoded].count(True) >= 3
    assert decoded[0].keyframe and decoded[4].keyframe and decoded[8].keyframe
    for packet in decoded:
        assert packet.codec == "h264" and packet.kind == "video" and packet.time_base.denominator == 60
        if packet.keyframe:
            assert packet.extradata and packet.extradata.startswith(b"\x00\x00\x00\x01")  # SPS/PPS, Annex B
            assert (packet.width, packet.height, packet.pixel_format) == (160, 120, "yuv420p")
        else:
            assert "extradata" not in frames[decoded.index(packet)].value and packet.width is None
    assert [p.pts for p in decoded] == list(range(10))


async def test_a_late_decoder_starts_at_the_next_keyframe(rig):
    gop = 10
    packets = await rig.listen("packets")
    await rig.start(VideoEncoder, {"keyframe_interval": gop}, inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "rate": 50}, outputs={"video": "raw"})
    # join in the middle of a GOP: after a packet that is neither a keyframe nor the last before one
    await rig.take(packets, 0, until=lambda fs: bool(fs) and fs[-1].value["pts"] % gop in (2, 3, 4, 5))
    decoded = await rig.listen("decoded")
    decoder = await rig.start(VideoDecoder, inputs={"in": "packets"}, outputs={"out": "decoded"})
    frames = await rig.take(decoded, 5)
    assert frames[0].extra["pts"] % gop == 0  # the first picture is a keyframe's
    assert [f.extra["pts"] for f in frames] == list(range(frames[0].extra["pts"], frames[0].extra["pts"] + 5))
    assert decoder.in_metrics["in"].errors == 0
    assert decoder.lanes["in"].dropped >= 1 and decoder.dropped() >= 1  # what came before the keyframe


class SlowDecoder(VideoDecoder):
    """A decoder on a slow device: 30 ms a packet; records what it was given."""

    type_name = "slow_decoder"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.given: list[tuple[int, bool]] = []

    def decode_packet(self, packet):
        self.given.append((packet.pts, packet.keyframe))
        time.sleep(0.03)
        return super().decode_packet(packet)


async def test_a_slow_decoder_drops_until_the_next_keyframe_with_bounded_memory(rig):
    gop = 6
    decoded = await rig.listen("decoded")
    decoder = await rig.start(SlowDecoder, {"queue": 4}, inputs={"in": "packets"}, outputs={"out": "decoded"})
    encoder = await rig.start(VideoEncoder, {"keyframe_interval": gop, "queue": 200, "preset": "ultrafast"},
                              inputs={"in": "raw"}, outputs={"out": "packets"})
    # 100 frames a second for the decoder's 33: it keeps up with a third, in whole GOPs
    pattern = await rig.start(TestPattern, {**SMALL, "frames": 90, "rate": 100}, outputs={"video": "raw"})
    await rig.finished(pattern)
    await wait_for(lambda: encoder.out_metrics["out"].frames == 90)
    await wait_for(lambda: decoder.in_metrics["in"].frames == 90 and not len(decoder.lanes["in"]))
    await wait_for(lambda: decoder.out_metrics["out"].frames == len(decoder.given))  # the one in its hands
    await wait_for(lambda: decoded.queued >= len(decoder.given))  # and the last one through the broker
    lane = decoder.lanes["in"]
    assert lane.high_water <= 4  # bounded, whatever the producer does
    assert lane.dropped > 0 and lane.resyncs > 0 and decoder.dropped() >= lane.dropped
    assert decoder.in_metrics["in"].errors == 0  # every packet it got was decodable
    given = decoder.given
    assert given[0][1]
    for (pts, _), (next_pts, keyframe) in itertools.pairwise(given):
        assert next_pts == pts + 1 or keyframe, f"a gap before {next_pts} that is not at a keyframe"
    frames = rig.drain(decoded)
    assert len(frames) == len(given) and 2 * gop < len(frames) < 90  # decoding resumed after drops
