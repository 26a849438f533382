"""FFmpeg codecs by name: codec_options, auto_h264's choice of a hardware encoder, and the lines an
agent shows (``invalid``) for a codec or option it does not have; round trips on a real broker."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
from test_media_rig import Rig

from edge.bus import Bus
from edge.desired import Removal, encode_record
from edge.frames import decode_value
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.builtin import TYPES
from tasks.media import TYPES as MEDIA_TYPES
from tasks.media import AudioDecoder, AudioEncoder, TestPattern, VideoDecoder, VideoEncoder, codecs
from tasks.media.errors import CodecError
from tasks.media.packets import EncodedPacket
from tasks.media.video import ENCODERS, VideoEncoderConfig

SMALL = {"width": 160, "height": 120, "audio": False, "realtime": False}
TONE = {"video": False, "realtime": False, "frames": 15, "rate": 30}
TIMEOUT = 10.0


@pytest.fixture
async def rig(broker):
    async with Rig(broker.url) as rig:
        yield rig


# -- checks: the lines the panel and `edge deploy` show ---------------------------------------------
def test_a_missing_encoder_is_named_with_the_encoders_of_its_codec_this_agent_has():
    [line] = VideoEncoder.check({"codec": "h264_nosuch"})
    assert line.startswith("config.codec: this agent's FFmpeg has no video encoder 'h264_nosuch'; its h264 encoders: ")
    assert "libx264" in line and "mjpeg" not in line  # its codec's, not every encoder


def test_a_name_of_no_known_codec_lists_the_video_encoders():
    [line] = VideoEncoder.check({"codec": "zzz"})
    assert "its video encoders: " in line and "libx264" in line and "mjpeg" in line and "aac" not in line


def test_a_hardware_encoder_in_the_build_that_does_not_open_says_so(monkeypatch):
    monkeypatch.setattr(codecs, "_opens", lambda name: "Operation not permitted")
    [line] = VideoEncoder.check({"codec": "h264_nvenc"})
    assert line == ("config.codec: the h264_nvenc encoder is in this build but does not open here "
                    "(Operation not permitted)")


def test_unknown_codec_options_are_named():
    assert VideoEncoder.check({"codec": "libx264", "codec_options": {"crf": 20, "no_such_opt": 1}}) == [
        "config.codec_options: libx264 has no option 'no_such_opt'"]
    assert AudioEncoder.check({"codec": "opus", "codec_options": {"frobnicate": "x"}}) == [
        "config.codec_options: libopus has no option 'frobnicate'"]
    assert VideoDecoder.check({"codec": "h264", "codec_options": {"nope": 1}}) == [
        "config.codec_options: h264 has no option 'nope'"]


def test_a_value_the_encoder_refuses_is_a_config_error():
    assert VideoEncoder.check({"codec": "libx264", "codec_options": {"preset": "warp"}}) == [
        "config.codec_options: libx264 refuses preset=warp: Invalid argument"]


def test_known_options_and_codecs_pass():
    assert VideoEncoder.check({"codec": "libx264", "codec_options": {"crf": 18, "profile": "baseline"}}) == []
    assert VideoEncoder.check({"codec": "mjpeg", "codec_options": {"huffman": "optimal"}}) == []
    assert AudioEncoder.check({"codec": "flac", "codec_options": {"compression_level": 8}}) == []
    assert VideoDecoder.check({"codec": "h264"}) == [] and AudioDecoder.check({"codec": "libopus"}) == []


def test_codec_options_are_bounded_and_typed():
    many = {f"o{i}": 1 for i in range(codecs.MAX_OPTIONS + 1)}
    assert VideoEncoder.check({"codec_options": many})[0].startswith("config.codec_options: ")
    assert VideoEncoder.check({"codec_options": {"a b": 1}})[0].startswith("config.codec_options.a b")
    assert VideoEncoder.check({"codec_options": {"x": [1]}})[0].startswith("config.codec_options.x")
    assert VideoEncoder.check({"codec": "libx264; rm"})[0].startswith("config.codec: String should match")
    assert VideoEncoder.check({"codec": "auto_vp8"}) == [
        "config.codec: 'auto_vp8' is not one of the automatic choices (auto_h264, auto_hevc)"]


def test_missing_decoders_are_named():
    [line] = VideoDecoder.check({"codec": "h264_nosuch"})
    assert "no video decoder 'h264_nosuch'; its h264 decoders: " in line and "h264_v4l2m2m" in line
    [line] = AudioDecoder.check({"codec": "opus_nosuch"})
    assert "no audio decoder 'opus_nosuch'" in line and "libopus" in line


# -- auto_h264 ----------------------------------------------------------------------------------------
def test_auto_h264_takes_the_first_encoder_that_opens_in_its_order(monkeypatch):
    opened: list[str] = []

    def opens(name: str) -> str | None:
        opened.append(name)
        return None if name == "h264_nvenc" else "no device"

    monkeypatch.setattr(codecs, "_opens", opens)
    monkeypatch.setattr(codecs, "encoders", lambda kind: ("h264_nvenc", "h264_v4l2m2m", "libx264"))
    assert codecs.resolve_encoder("auto_h264", aliases=ENCODERS) == "h264_nvenc"
    assert opened == ["h264_v4l2m2m", "h264_nvenc"]  # h264_vaapi is not in this (pretended) build: not tried


def test_auto_h264_with_nothing_that_opens_is_invalid_naming_each_try(monkeypatch):
    monkeypatch.setattr(codecs, "_opens", lambda name: "no device")
    monkeypatch.setattr(codecs, "encoders", lambda kind: ("h264_nvenc", "h264_v4l2m2m"))
    [line] = VideoEncoder.check({"codec": "auto_h264"})
    assert line.startswith("config.codec: auto_h264: no encoder of h264_v4l2m2m, h264_vaapi, h264_nvenc")
    assert "h264_vaapi: not in this build" in line and "h264_nvenc: no device" in line
    with pytest.raises(CodecError):
        codecs.resolve_encoder("auto_h264", aliases=ENCODERS)


def test_auto_h264_here_is_libx264_and_the_metadata_says_so():
    # this machine has no codec device: every hardware encoder of the build fails to open
    assert codecs.resolve_encoder("auto_h264", aliases=ENCODERS) == "libx264"
    meta = VideoEncoder.metadata_for(VideoEncoderConfig(codec="auto_h264"), "out", VideoEncoder.outputs["out"])
    assert (meta["codec"], meta["encoder"]) == ("h264", "libx264")
    meta = VideoEncoder.metadata_for(VideoEncoderConfig(codec="mpeg4"), "out", VideoEncoder.outputs["out"])
    assert (meta["codec"], meta["encoder"]) == ("mpeg4", "mpeg4")
    meta = AudioDecoder.metadata_for(AudioDecoder.Config(codec="libopus"), "out", AudioDecoder.outputs["out"])
    assert meta["decoder"] == "libopus"


# -- on a real broker ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("encoder", "options", "decoder", "codec"), [
    ("libx264", {"crf": 10, "profile": "baseline"}, "h264", "h264"),
    ("auto_h264", {}, None, "h264"),
    ("libx265", {"crf": 20}, "hevc", "hevc"),
    ("libvpx", {"quality": "realtime", "lag-in-frames": 0}, "vp8", "vp8"),
])
async def test_video_round_trip_with_an_encoder_and_decoder_by_name(rig, encoder, options, decoder, codec):
    decoded, packets, raw = await rig.listen("decoded"), await rig.listen("packets"), await rig.listen("raw")
    await rig.start(VideoDecoder, {"queue": 64, "codec": decoder}, inputs={"in": "packets"},
                    outputs={"out": "decoded"})
    await rig.start(VideoEncoder, {"codec": encoder, "codec_options": options, "queue": 64, "keyframe_interval": 5},
                    inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "frames": 10}, outputs={"video": "raw"})
    out = await rig.take(decoded, 10)
    sent = await rig.take(raw, 10)
    for original, frame in zip(sent, out, strict=True):
        assert frame.value.shape == (120, 160, 3) and frame.ts == original.ts
        assert np.abs(frame.value.astype(int) - original.value.astype(int)).mean() < 12
    first = EncodedPacket.from_value(rig.drain(packets)[0].value)
    assert first.codec == codec and first.keyframe


async def test_codec_options_reach_the_encoder(rig):
    """crf 0 (lossless) against crf 51: the options change the packets' sizes, by half at least."""
    sizes = {}
    for crf in (0, 51):
        packets = await rig.listen(f"p{crf}")
        await rig.start(VideoEncoder, {"codec": "libx264", "codec_options": {"crf": crf}, "queue": 64},
                        inputs={"in": f"raw{crf}"}, outputs={"out": f"p{crf}"})
        await rig.start(TestPattern, {**SMALL, "frames": 5}, outputs={"video": f"raw{crf}"})
        sizes[crf] = sum(len(EncodedPacket.from_value(f.value).data) for f in await rig.take(packets, 5))
    assert sizes[0] > 1.5 * sizes[51]  # a test pattern compresses well even lossless


async def test_a_decoder_of_another_codec_counts_errors_and_sends_nothing(rig):
    decoded, packets = await rig.listen("decoded"), await rig.listen("packets")
    decoder = await rig.start(VideoDecoder, {"queue": 64, "codec": "vp9"}, inputs={"in": "packets"},
                              outputs={"out": "decoded"})
    await rig.start(VideoEncoder, {"keyframe_interval": 2, "queue": 64}, inputs={"in": "raw"},
                    outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "frames": 6}, outputs={"video": "raw"})
    await rig.take(packets, 6)
    async with asyncio.timeout(TIMEOUT):
        while decoder.in_metrics["in"].errors < 3:  # a keyframe every 2 frames: each refused
            await asyncio.sleep(0.02)
    assert rig.drain(decoded) == []


@pytest.mark.parametrize(("encoder", "options", "codec"), [
    ("flac", {"compression_level": 2}, "flac"),
    ("libmp3lame", {}, "mp3"),
    ("pcm_s16le", {}, "pcm_s16le"),
])
async def test_audio_round_trip_with_an_encoder_by_name(rig, encoder, options, codec):
    packets, decoded = await rig.listen("packets"), await rig.listen("decoded")
    await rig.start(AudioDecoder, {"queue": 200}, inputs={"in": "packets"}, outputs={"out": "decoded"})
    await rig.start(AudioEncoder, {"codec": encoder, "codec_options": options, "queue": 200},
                    inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.start(TestPattern, {**TONE, "amplitude": 0.5}, outputs={"audio": "raw"})
    frames = await rig.take(decoded, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 12000)
    assert EncodedPacket.from_value(rig.drain(packets)[0].value).codec == codec
    samples = np.concatenate([f.value for f in frames]).astype(np.float64) / 32768
    assert np.sqrt(np.mean(samples[4096:] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.15)


# -- deployed: the agent marks the task invalid with the line ------------------------------------------
async def _status(bus: Bus, topics: Topics, task: str, state: str) -> dict:
    async with bus.subscribe(topics.task_status("cod", task)) as sub, asyncio.timeout(TIMEOUT):
        while True:
            message = await sub.get()
            value = decode_value(message.payload) if message.payload else None
            if value is not None and value["state"] == state:
                return value


async def test_an_agent_without_the_encoder_marks_the_task_invalid_naming_those_it_has(broker, tmp_path):
    topics = Topics(f"t{uuid.uuid4().hex[:10]}")
    settings = load_settings(broker=str(broker.url), namespace=topics.namespace, agent_id="pi",
                             data_dir=tmp_path / "data")
    spec = {"id": "cod", "tasks": [
        {"id": "enc", "agent": "pi", "type": "video_encoder", "config": {"codec": "h264_omx"}},
        {"id": "opt", "agent": "pi", "type": "video_encoder", "config": {"codec_options": {"tuning": "x"}}},
        {"id": "ok", "agent": "pi", "type": "video_encoder", "config": {"codec": "auto_h264"}},
    ], "edges": []}
    async with Bus(str(broker.url)) as bus, \
            Host(settings, types=[*TYPES, *MEDIA_TYPES], persist=False, status_interval=0.1) as host:
        await bus.publish(topics.deployment("cod"), encode_spec(parse_spec(spec)), qos=1, retain=True)
        enc = await _status(bus, topics, "enc", "invalid")
        assert "no video encoder 'h264_omx'; its h264 encoders: libx264" in enc["error"]
        opt = await _status(bus, topics, "opt", "invalid")
        assert "config.codec_options: libx264 has no option 'tuning'" in opt["error"]
        await _status(bus, topics, "ok", "running")
        await bus.publish(topics.deployment("cod"), encode_record(Removal("cod", 1000)), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while host.instances:
                await asyncio.sleep(0.02)


async def test_a_frame_the_encoder_cannot_take_is_an_input_error_and_the_next_one_encodes(rig):
    from edge.frames import encode_frame

    packets = await rig.listen("packets")
    encoder = await rig.start(VideoEncoder, {"queue": 64}, inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.bus.publish(rig.topic("raw"), encode_frame(np.zeros((1, 4, 3), np.uint8)))  # libx264 refuses 4x1
    await rig.bus.publish(rig.topic("raw"), encode_frame(np.zeros((16, 16, 3), np.uint8)))
    [frame] = await rig.take(packets, 1)
    assert EncodedPacket.from_value(frame.value).width == 16 and encoder.in_metrics["in"].errors == 1


async def test_auto_h264_falls_back_when_its_choice_refuses_the_real_frames(rig, monkeypatch):
    """h264_nvenc passes the probe (pretended here) but cannot open for the stream: libx264 takes over."""
    monkeypatch.setattr(codecs, "_opens", lambda name: None if name in ("h264_nvenc", "libx264") else "no device")
    assert codecs.encoder_candidates("auto_h264", aliases=ENCODERS) == ["h264_nvenc", "libx264"]
    packets = await rig.listen("packets")
    encoder = await rig.start(VideoEncoder, {"codec": "auto_h264", "queue": 64}, inputs={"in": "raw"},
                              outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "frames": 3}, outputs={"video": "raw"})
    first = EncodedPacket.from_value((await rig.take(packets, 3))[0].value)
    assert first.codec == "h264" and first.keyframe and encoder.state.name == "libx264"
    assert encoder.in_metrics["in"].errors == 0


async def test_a_decoder_on_auto_falls_back_to_ffmpegs_own_where_no_hardware_one_opens(rig):
    # this build has h264_v4l2m2m and h264_cuvid; neither opens on this machine (no device, no GPU)
    assert codecs.hardware_decoders("h264") == ["h264_v4l2m2m", "h264_cuvid"]
    assert VideoDecoder.check({"codec": "auto"}) == []
    decoded = await rig.listen("decoded")
    decoder = await rig.start(VideoDecoder, {"queue": 64, "codec": "auto"}, inputs={"in": "packets"},
                              outputs={"out": "decoded"})
    await rig.start(VideoEncoder, {"queue": 64}, inputs={"in": "raw"}, outputs={"out": "packets"})
    await rig.start(TestPattern, {**SMALL, "frames": 4}, outputs={"video": "raw"})
    frames = await rig.take(decoded, 4)
    assert frames[0].value.shape == (120, 160, 3) and decoder.state.name == "h264"
    assert decoder.in_metrics["in"].errors == 0


async def test_the_controllers_validation_shows_the_lines_before_deploying(broker, tmp_path):
    """What the panel and `edge deploy` show: the agent that offers the type runs its check."""
    from agent import Agent
    from edge.controller import Controller
    from edge.errors import SpecError
    from edge.graph import parse_spec as parse

    ns = f"v{uuid.uuid4().hex[:10]}"

    def settings(name):
        return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id=name, data_dir=tmp_path / name)

    spec = {"id": "cam", "tasks": [
        {"id": "enc", "type": "video_encoder", "agent": "pi", "config": {"codec": "h264_omx"}},
        {"id": "dec", "type": "audio_encoder", "agent": "pi", "config": {"codec": "aac", "codec_options": {"zz": 1}}},
    ]}
    async with Agent(settings("pi"), persist=False), Controller(settings("ctl")) as controller:
        await controller.fleet.wait_for(lambda f: "pi" in f.agents and f.agents["pi"].offers("video_encoder"),
                                        TIMEOUT)
        report = await controller.validate(spec)
        assert len(report.errors) == 2 and report.unchecked == ()
        assert report.errors[0].startswith("task 'enc': config.codec: this agent's FFmpeg has no video encoder "
                                           "'h264_omx'; its h264 encoders: libx264")
        assert report.errors[1] == "task 'dec': config.codec_options: aac has no option 'zz'"
        with pytest.raises(SpecError):
            await controller.deploy(parse(spec))
        assert "cam" not in controller.fleet.deployments
