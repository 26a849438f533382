"""The media pieces without a broker: drop policies, the packet map, raw frames, the font, the catalog."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import tasks.media
from agent.registry import discover
from edge._inbox import Inbox, Lane, Policy
from edge.errors import ConfigError, FrameError
from edge.frames import decode_frame, encode_frame
from edge.task import Port, TaskContext
from edge.testing import MemoryBus
from edge.topics import Topics
from tasks.media import TYPES
from tasks.media.font import text_mask
from tasks.media.mediatask import VIDEO_PACKETS, MediaConfig, MediaTask
from tasks.media.packets import EncodedPacket
from tasks.media.raw import RawAudio, RawVideo
from tasks.media.timing import MonotonicPts, SampleClock, TsMap

# -- flow ---------------------------------------------------------------------------------------


def fill(lane: Lane[int], items: list[tuple[int, bool]], *, gaps: frozenset[int] = frozenset()) -> list[bool]:
    """Put the items ``(n, keyframe)``: n as the item, and frames lost just before those in ``gaps``."""
    return [lane.put(i, n, keyframe=key, gap=n in gaps) for i, (n, key) in enumerate(items)]


def test_oldest_policy_drops_the_oldest_and_counts():
    lane: Lane[int] = Lane(maxlen=3)
    for i in range(5):
        lane.put(i, i)
    assert [lane.pop() for _ in range(len(lane))] == [2, 3, 4]
    assert (lane.dropped, lane.high_water) == (2, 3)


def test_keyframe_policy_waits_for_the_first_keyframe():
    lane: Lane[int] = Lane(maxlen=10, policy=Policy.KEYFRAME)
    assert fill(lane, [(5, False), (6, False), (7, True), (8, False)]) == [False, False, True, True]
    assert lane.dropped == 2 and [lane.pop(), lane.pop()] == [7, 8]


def test_keyframe_policy_on_overflow_drops_everything_up_to_the_next_keyframe():
    lane: Lane[int] = Lane(maxlen=3, policy=Policy.KEYFRAME)
    queued = fill(lane, [(0, True), (1, False), (2, False), (3, False), (4, False), (5, True), (6, False)])
    assert queued == [True, True, True, False, False, True, True]
    assert [lane.pop(), lane.pop()] == [5, 6]  # a decodable run again
    assert lane.dropped == 5 and lane.resyncs == 1 and lane.high_water == 3


def test_keyframe_policy_treats_a_gap_as_loss():
    lane: Lane[int] = Lane(maxlen=10, policy=Policy.KEYFRAME)
    queued = fill(lane, [(0, True), (1, False), (3, False), (4, False), (5, True), (6, False)], gaps=frozenset({3}))
    assert queued == [True, True, False, False, True, True]
    assert [lane.pop() for _ in range(len(lane))] == [0, 1, 5, 6]  # 0, 1 came before the gap: kept
    assert lane.resyncs == 1
    assert fill(lane, [(8, True)], gaps=frozenset({8})) == [True]  # a gap just before a keyframe loses nothing
    oldest: Lane[int] = Lane(maxlen=10)
    assert fill(oldest, [(0, False), (2, False)], gaps=frozenset({2})) == [True, True]  # frames stand alone


def test_resync_after_a_decoding_error_skips_to_the_next_queued_keyframe():
    lane: Lane[int] = Lane(maxlen=10, policy=Policy.KEYFRAME)
    fill(lane, [(0, True), (1, False), (2, False), (3, True), (4, False)])
    lane.pop()
    lane.resync()
    assert [lane.pop() for _ in range(len(lane))] == [3, 4] and lane.dropped == 2
    lane.resync()  # nothing queued: wait for a keyframe
    assert fill(lane, [(5, False), (6, True)]) == [False, True]


async def test_lanes_hand_out_items_in_arrival_order():
    lanes: Inbox[str] = Inbox({"a": Lane(maxlen=5), "b": Lane(maxlen=5)})
    for port, item in [("b", "b1"), ("a", "a1"), ("b", "b2")]:
        lanes.push(port, item)
    assert [await lanes.get_any() for _ in range(3)] == [("b", "b1"), ("a", "a1"), ("b", "b2")]
    lanes.push("a", "a2")
    lanes.push("b", "b3")
    assert lanes.drain() == [("a", "a2"), ("b", "b3")] and not len(lanes["a"])


class HeldMedia(MediaTask):
    """An input of packets and one of control values; serve() reads nothing."""

    type_name = "held_media"
    inputs = {"packets": VIDEO_PACKETS, "level": Port(content="number")}
    Config = MediaConfig

    async def serve(self) -> None:
        await asyncio.Event().wait()


def packet(seq: int, keyframe: bool) -> bytes:
    value = EncodedPacket(kind="video", codec="h264", data=b"x", pts=seq, dts=seq, time_base=Fraction(1, 30),
                          keyframe=keyframe).to_value()
    return encode_frame(value, seq=seq, ts=seq)


async def test_a_media_tasks_lanes_are_its_inbox_with_a_policy_per_input():
    """One bounded queue between the bus and serve(): each frame is parsed as it arrives and queued
    in its input's lane, whose policy suits what it carries; every drop is counted once."""
    bus = MemoryBus()
    context = TaskContext(bus=bus, instance_id="d/held", sources={"packets": "in/p", "level": "in/l"}, targets={})
    task = HeldMedia({"queue": 3}, context=context)
    inbox = await task.open_inputs()
    assert task.lanes is inbox  # no pump copying from the runtime's queue into lanes of its own
    for seq, key in enumerate([True, False, False, False, False]):
        bus.publish_nowait("in/p", packet(seq, key))
    lane = task.lanes["packets"]  # the 4th overflowed the 3-packet lane: nothing decodable until a keyframe
    assert (len(lane), lane.dropped, lane.resyncs, lane.synced) == (0, 5, 1, False)
    bus.publish_nowait("in/p", packet(5, True))
    bus.publish_nowait("in/p", encode_frame("not a packet", seq=6))
    assert len(lane) == 1 and task.in_metrics["packets"].errors == 1
    for n in range(20):  # control values: the oldest go (16 at least)
        bus.publish_nowait("in/l", encode_frame(n))
    assert [task.lanes.get_nowait("level").value for _ in range(16)] == list(range(4, 20))
    assert task.dropped() == 5 + 4
    assert task.in_metrics["packets"].frames == 7 and task.in_metrics["level"].frames == 20
    await task.close()


async def test_a_media_tasks_keyframe_lane_is_told_of_the_holes_its_decoding_finds():
    """The task's stream order is the one place that reads ``seq``: a hole in a stream input makes
    its keyframe lane wait for the next keyframe; a redelivered copy is dropped before the lane and
    costs nothing; a topic input (a producer that may not count) never loses sync to its ``seq``."""
    bus = MemoryBus()
    stream = Topics("ns").stream("d", "enc", "packets")
    context = TaskContext(bus=bus, instance_id="d/held", sources={"packets": stream}, targets={})
    task = HeldMedia({"queue": 16}, context=context)
    await task.open_inputs()
    lane = task.lanes["packets"]
    for seq, key in [(0, True), (1, False), (1, False), (2, False)]:  # the second 1 is a QoS 1 copy
        bus.publish_nowait(stream, packet(seq, key))
    assert (len(lane), lane.resyncs, task.in_metrics["packets"].duplicates) == (3, 0, 1)
    for seq, key in [(5, False), (6, False), (7, True), (8, False)]:  # 3 and 4 were lost
        bus.publish_nowait(stream, packet(seq, key))
    assert [item.pts for item in (lane.pop() for _ in range(len(lane)))] == [0, 1, 2, 7, 8]
    assert (lane.resyncs, lane.dropped, task.in_metrics["packets"].gaps) == (1, 2, 2)
    await task.close()
    topic_fed = HeldMedia({"queue": 16}, context=TaskContext(bus=bus, instance_id="d/t", sources={"packets": "in/p"},
                                                             targets={}))
    await topic_fed.open_inputs()
    for key in [True, False, False]:
        bus.publish_nowait("in/p", packet(0, key))  # a producer that does not count: every frame seq 0
    assert (len(topic_fed.lanes["packets"]), topic_fed.lanes["packets"].resyncs) == (3, 0)
    await topic_fed.close()


# -- the packet map -----------------------------------------------------------------------------


def test_packet_map_round_trips_through_a_frame():
    packet = EncodedPacket(kind="video", codec="h264", data=b"\x00\x00\x00\x01e", pts=3, dts=2,
                           time_base=Fraction(1, 90000), keyframe=True, duration=3000, extradata=b"\x01\x02",
                           width=640, height=480, pixel_format="yuv420p")
    value = decode_frame(encode_frame(packet.to_value(), ts=5)).value
    assert value == {"kind": "video", "codec": "h264", "data": b"\x00\x00\x00\x01e", "pts": 3, "dts": 2,
                     "time_base": [1, 90000], "keyframe": True, "duration": 3000, "extradata": b"\x01\x02",
                     "width": 640, "height": 480, "pixel_format": "yuv420p"}
    assert EncodedPacket.from_value(value) == packet
    delta = EncodedPacket(kind="video", codec="h264", data=b"x", pts=4, dts=4, time_base=Fraction(1, 30),
                          keyframe=False, extradata=b"ignored", width=640)
    assert "extradata" not in delta.to_value() and "width" not in delta.to_value()


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "subtitle"}, "'kind' must be 'video' or 'audio'"),
    ({"data": b""}, "'data' must be non-empty bytes"),
    ({"data": "text"}, "'data' must be non-empty bytes"),
    ({"keyframe": 1}, "'keyframe' must be a bool"),
    ({"pts": 1.5}, "'pts' must be an integer"),
    ({"time_base": [1, 0]}, "'time_base' must be"),
    ({"width": -3}, "'width' must be a positive integer"),
    ({"codec": ""}, "'codec' must be a codec name"),
])
def test_bad_packet_maps_are_refused_with_the_reason(change, message):
    value = {"kind": "video", "codec": "h264", "data": b"x", "pts": 0, "dts": 0, "time_base": [1, 30],
             "keyframe": True, **change}
    with pytest.raises(FrameError, match=message):
        EncodedPacket.from_value(value)


# -- raw frames ---------------------------------------------------------------------------------


def test_raw_video_reads_shapes_formats_and_bare_arrays():
    bare = RawVideo.from_frame(decode_frame(encode_frame(np.zeros((4, 6, 3), np.uint8), ts=7)))
    assert (bare.pixel_format, bare.width, bare.height) == ("rgb24", 6, 4)
    assert (bare.pts, bare.time_base) == (7, Fraction(1, 1000))  # no pts: the ts in milliseconds
    yuv = np.zeros((6, 6, 1), np.uint8)
    frame = RawVideo.from_frame(decode_frame(encode_frame(yuv, ts=1, extra={"pixel_format": "yuv420p", "pts": 2,
                                                                              "time_base": [1, 25]})))
    assert (frame.width, frame.height, frame.pts, frame.time_base) == (6, 4, 2, Fraction(1, 25))
    assert frame.to_av().format.name == "yuv420p"
    for bad, message in [(np.zeros((4, 6, 2), np.uint8), "1, 3 or 4 channels"),
                         (np.zeros((4, 6, 3), np.float32), "uint8 array"),
                         ("nope", "uint8 array")]:
        with pytest.raises(FrameError, match=message):
            RawVideo.from_frame(decode_frame(encode_frame(bad)))
    with pytest.raises(FrameError, match="needs 4 channels"):
        RawVideo.from_frame(decode_frame(encode_frame(np.zeros((4, 6, 3), np.uint8), extra={"pixel_format": "rgba"})))


def test_raw_audio_needs_a_rate_and_reads_formats_from_dtypes():
    samples = np.zeros((10, 2), np.int16)
    audio = RawAudio.from_frame(decode_frame(encode_frame(samples, ts=3, extra={"rate": 8000})))
    assert (audio.sample_format, audio.channels, audio.rate) == ("s16", 2, 8000)
    assert audio.to_av().samples == 10
    with pytest.raises(FrameError, match="needs an integer 'rate'"):
        RawAudio.from_frame(decode_frame(encode_frame(samples)))
    with pytest.raises(FrameError, match="does not match"):
        RawAudio.from_frame(decode_frame(encode_frame(samples, extra={"rate": 8000, "sample_format": "flt"})))


# -- timing, font -------------------------------------------------------------------------------


def test_timing_helpers():
    pts = MonotonicPts(Fraction(1, 30))
    assert [pts(0, Fraction(1, 30)), pts(0, Fraction(1, 30)), pts(1000, Fraction(1, 1000))] == [0, 1, 30]
    ts = TsMap(limit=2)
    for i in range(3):
        ts.put(i, 100 + i)
    assert ts.pop(2) == 102 and ts.pop(0) == 102  # 0 was forgotten: the newest ts
    clock = SampleClock(16000)
    clock.add(480, 48000, 1000)
    clock.add(480, 48000, 1010)
    assert [clock.ts(0), clock.ts(160), clock.ts(240)] == [1000, 1010, 1015]


def test_font_draws_every_printable_character():
    for code in range(32, 127):
        mask = text_mask(chr(code))
        assert mask.shape == (8, 6) and (code == 32) == (not mask.any())
    assert (text_mask("\x07") == text_mask("?")).all()
    assert text_mask("ab\nc", scale=2).shape == (32, 24)


# -- the catalog --------------------------------------------------------------------------------


def test_every_media_type_is_in_the_catalog_with_defaults():
    names = sorted(t.type_name for t in TYPES)
    assert names == sorted([
        "input_container", "test_pattern", "camera", "microphone", "text_renderer", "video_encoder",
        "video_decoder", "audio_encoder", "audio_decoder", "video_reformatter", "video_mixer", "video_layout",
        "video_activity_meter", "audio_resampler", "audio_mixer", "audio_volume_meter", "audio_volume_scaler",
        "mediaswitch", "output_container", "video_viewer", "audio_output", "image_renderer",
        "audio_frequency_display", "screen_capture"])
    for task_type in TYPES:
        entry = task_type.describe()
        assert entry["description"] and entry["config_schema"]["type"] == "object"
        if task_type.type_name not in ("input_container", "output_container"):  # they need a url
            assert entry["config_default"] is not None
    assert tasks.media.__all__ == sorted(tasks.media.__all__)
    assert all(getattr(tasks.media, name) for name in tasks.media.__all__)


def test_the_entry_point_offers_the_media_types():
    registry = discover()
    assert {t.type_name for t in TYPES} <= set(registry.types)


def test_without_pyav_the_media_entry_point_is_unavailable_with_the_reason():
    code = ("import sys; sys.modules['av'] = None\n"
            "from agent.registry import discover\n"
            "print(discover().unavailable.get('media'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "ModuleNotFoundError" in out.stdout and "av" in out.stdout


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="width"):
        tasks.media.TestPattern.validate_config({"width": 161})
    with pytest.raises(ConfigError, match="codec"):
        tasks.media.VideoEncoder.validate_config({"codec": "h 265"})
    # a name FFmpeg could have: the agent's check looks in its build
    assert tasks.media.VideoEncoder.check({"codec": "h265"})[0].startswith("config.codec: ")


def test_the_catalog_does_not_import_pyav():
    """Listing (and validating) the media types leaves PyAV unimported: ~15 MB less in agents running none."""
    code = ("import sys\n"
            "from agent.registry import discover\n"
            "registry = discover()\n"
            "entries = [t.describe() for t in registry.types.values()]\n"
            "assert 'video_encoder' in registry.types, sorted(registry.types)\n"
            "registry.types['test_pattern'].validate_config({'width': 320, 'height': 240})\n"
            "print('av' in sys.modules)\n"
            "from tasks.media.raw import video_frame\n"
            "import numpy as np\n"
            "print(video_frame(np.zeros((4, 4, 3), np.uint8), 'rgb24').width, 'av' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "4", "True"]
