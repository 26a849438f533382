"""The panel's H.264 feed (ui/video_feed.py) without a browser: what a packet becomes on the websocket, the
codec string read from the SPS, hostile frames refused in one line, a slow browser resumed at a keyframe."""

from __future__ import annotations

import json
import struct
from fractions import Fraction

import numpy as np
import pytest

from edge.bus import Message
from edge.frames import encode_frame
from ui.video_feed import MAX_WAITING, FeedError, _Waiting, browser_message, codec_string

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)  # the ui fixtures start one


def packets(count: int = 3, keyframe_interval: int = 2) -> list[bytes]:
    """Frames of the viewer's ``video`` output, as the viewer publishes them."""
    pytest.importorskip("av")
    from tasks.media.raw import RawVideo
    from tasks.media.viewer import H264Encoder

    encoder = H264Encoder(keyframe_interval)
    out = []
    for i in range(count):
        image = np.full((48, 64, 3), i * 40, dtype=np.uint8)
        raw = RawVideo(image, "rgb24", i, Fraction(1, 30), 1000 + i)
        out += [encode_frame(p.to_value(), ts=p.ts) for p in encoder.encode(raw, 64, 48)]
    return out


def split(message: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack(">I", message[:4])
    return json.loads(message[4:4 + length]), message[4 + length:]


def test_a_keyframe_carries_its_codec_size_and_parameter_sets():
    first, second, third = packets()
    message, key = browser_message(first)
    head, data = split(message)
    assert key and head.pop("codec").startswith("avc1.42")  # baseline profile, read from the SPS
    assert head == {"ts": 1000, "key": True, "width": 64, "height": 48}
    assert data[:4] == b"\x00\x00\x00\x01" and data[4] & 0x1F == 7  # the SPS in band, then the PPS and the slice
    message, key = browser_message(second)
    assert not key and split(message)[0] == {"ts": 1001, "key": False}
    assert browser_message(third)[1]  # keyframe_interval 2


def test_the_codec_string_is_read_from_the_sps():
    assert codec_string(b"\x00\x00\x00\x01\x67\x64\x00\x28\xac") == "avc1.640028"
    assert codec_string(b"\x00\x00\x01\x68\xce\x00\x00\x01\x67\x42\xc0\x1e\x00") == "avc1.42c01e"  # after a PPS
    assert codec_string(b"\x00\x00\x01\x65\x88") is None
    assert codec_string(b"") is None


@pytest.mark.parametrize(("payload", "why"), [
    (b"\xff\x00 not CBOR", "not a frame: "),
    (encode_frame("text", ts=1), "not an encoded packet but str"),
    (encode_frame({"codec": "h264", "data": b""}, ts=1), "not an encoded packet but dict"),
    (encode_frame({"codec": "vp9", "data": b"\x01", "keyframe": True}, ts=1), "the stream is 'vp9', not H.264"),
    (encode_frame({"codec": ["h264"] * 1000, "data": b"\x01"}, ts=1), "the stream is \"['h264', 'h264'"),
], ids=["not-cbor", "text", "empty-packet", "vp9", "huge-codec"])  # fixed ids: every xdist worker collects the same
def test_what_is_not_an_h264_packet_is_refused_in_one_line(payload, why):
    with pytest.raises(FeedError) as caught:
        browser_message(payload)
    assert str(caught.value).startswith(why) and "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_hostile_keyframe_fields_do_not_reach_the_header():
    payload = encode_frame({"codec": "h264", "data": b"\x00\x00\x01\x65", "keyframe": True, "width": "<b>",
                            "height": 2**70, "extradata": "not bytes"})
    head, data = split(browser_message(payload)[0])
    assert head == {"ts": head["ts"], "key": True, "codec": "avc1.42e01e"} and data == b"\x00\x00\x01\x65"


def test_a_slow_browser_skips_to_the_next_keyframe():
    key, delta = packets(2, keyframe_interval=100)
    waiting = _Waiting()
    waiting.put(Message("t", delta))  # joined mid-stream: from the first keyframe on
    assert not waiting.items
    waiting.put(Message("t", key))
    for _ in range(MAX_WAITING - 1):
        waiting.put(Message("t", delta))
    assert len(waiting.items) == MAX_WAITING and waiting.dropped == 0
    waiting.put(Message("t", delta))  # one too many: all dropped, nothing until a keyframe
    assert not waiting.items and waiting.dropped == MAX_WAITING
    waiting.put(Message("t", key))
    assert len(waiting.items) == 1 and browser_message(key)[0] == waiting.items[0]
    waiting.put(Message("t", encode_frame("garbage")))
    assert waiting.error == "not an encoded packet but str" and waiting.ready.is_set()
