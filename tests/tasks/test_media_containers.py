"""Containers on real brokers: files made here with PyAV read in, files written and read back with PyAV."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from test_media_rig import Rig, make_media_file, probe, wait_for

from edge.errors import ConfigError
from tasks.media import AudioEncoder, InputContainer, OutputContainer, TestPattern, VideoDecoder, VideoEncoder
from tasks.media.mux import Muxer
from tasks.media.packets import EncodedPacket


@pytest.fixture
async def rig(broker, tmp_path_factory):
    # the agent's files folder: the session's temporary folder, which holds every file these tests make
    async with Rig(broker.url, files_dir=tmp_path_factory.getbasetemp()) as rig:
        yield rig


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "in.mp4"
    make_media_file(path, frames=30)
    return path


async def test_input_container_reads_an_mp4_as_raw_frames(rig, mp4):
    video, audio = await rig.listen("video"), await rig.listen("audio")
    source = await rig.start(InputContainer, {"url": str(mp4), "realtime": False, "pixel_format": "yuv420p"},
                             outputs={"video": "video", "audio": "audio"})
    await rig.finished(source)
    frames = await rig.take(video, 30)
    assert [f.extra["pts"] for f in frames] == sorted(f.extra["pts"] for f in frames)
    assert all(f.value.shape == (180, 160, 1) and f.extra["pixel_format"] == "yuv420p" for f in frames)
    first_bar = frames[0].value[:120, :, 0]  # the Y plane: a bright bar at the left of the first frame
    assert first_bar[:, :8].mean() > 200 and first_bar[:, 40:].mean() < 40
    sound = await rig.take(audio, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 47000)
    assert all(f.extra["rate"] == 48000 and f.value.shape[1] == 2 and f.value.dtype == np.int16 for f in sound)
    assert not rig.drain(video)  # exactly the file's frames


async def test_input_container_reads_a_wav_in_real_time_and_loops(rig, tmp_path):
    wav = tmp_path / "tone.wav"
    make_media_file(wav, frames=6, rate=30, video=False)  # 0.2 s of audio
    audio = await rig.listen("audio")
    await rig.start(InputContainer, {"url": str(wav), "loop": True, "speed": 2.0}, outputs={"audio": "audio"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    frames = await rig.take(audio, 0, until=lambda fs: sum(len(f.value) for f in fs) >= 3 * 9600)
    elapsed = loop.time() - started
    assert 0.2 <= elapsed < 5  # 0.6 s of audio at twice real time: paced, not a burst
    pts = [f.extra["pts"] for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # looping keeps the timeline going
    assert frames[0].extra["sample_format"] == "s16" and frames[0].extra["rate"] == 48000


async def test_input_container_sends_the_files_packets_without_decoding(rig, mp4):
    packets, decoded = await rig.listen("packets"), await rig.listen("decoded")
    await rig.start(VideoDecoder, {"queue": 100}, inputs={"in": "packets"}, outputs={"out": "decoded"})
    await rig.start(InputContainer, {"url": str(mp4), "realtime": False, "decode": False, "audio": False},
                    outputs={"video": "packets"})
    frames = await rig.take(decoded, 30)
    first = EncodedPacket.from_value((await rig.take(packets, 1))[0].value)
    assert first.keyframe and first.codec == "h264" and first.extradata and (first.width, first.height) == (160, 120)
    assert frames[-1].value.shape == (120, 160, 3)


async def test_output_container_writes_both_tracks_in_sync(rig, tmp_path):
    path = tmp_path / "out.mp4"
    sink = await rig.start(OutputContainer, {"url": str(path)}, inputs={"video": "vp", "audio": "ap"})
    video_enc = await rig.start(VideoEncoder, {"queue": 100}, inputs={"in": "v"}, outputs={"out": "vp"})
    await rig.start(AudioEncoder, {"queue": 100}, inputs={"in": "a"}, outputs={"out": "ap"})
    pattern = await rig.start(TestPattern, {"width": 160, "height": 120, "frames": 30, "rate": 60},
                              outputs={"video": "v", "audio": "a"})
    await rig.finished(pattern)
    await wait_for(lambda: sink.in_metrics["video"].frames == video_enc.out_metrics["out"].frames == 30)
    await wait_for(lambda: sink.in_metrics["audio"].frames >= 20)
    await rig.stop(sink)  # writes what it received, then the trailer
    info = probe(path)
    assert set(info) == {"video", "audio"}
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert info["video"]["frames"] == 30
    assert info["audio"]["samples"] >= 20 * 1024
    assert info["video"]["first"] == pytest.approx(0, abs=0.05)
    assert info["audio"]["first"] == pytest.approx(0, abs=0.05)  # both start together
    assert info["video"]["last"] == pytest.approx(29 / 60, abs=0.02)


async def test_output_container_encodes_raw_input(rig, tmp_path):
    path = tmp_path / "raw.mkv"
    sink = await rig.start(OutputContainer, {"url": str(path), "video_codec": "mpeg4", "audio_codec": "opus",
                                             "queue": 200}, inputs={"video": "v", "audio": "a"})
    await rig.start(TestPattern, {"width": 160, "height": 120, "frames": 20, "realtime": False},
                    outputs={"video": "v", "audio": "a"})
    await wait_for(lambda: sink.in_metrics["video"].frames == 20)
    await rig.stop(sink)
    info = probe(path)
    assert info["video"]["codec"] == "mpeg4" and info["video"]["frames"] == 20
    assert info["audio"]["codec"] == "opus"


async def test_remux_keeps_duration_and_tracks(rig, mp4, tmp_path):
    path = tmp_path / "copy.mkv"
    sink = await rig.start(OutputContainer, {"url": str(path), "queue": 500}, inputs={"video": "v", "audio": "a"})
    source = await rig.start(InputContainer, {"url": str(mp4), "realtime": False, "decode": False},
                             outputs={"video": "v", "audio": "a"})
    await rig.finished(source)
    await wait_for(lambda: sink.in_metrics["video"].frames == 30 and not len(sink.lanes["audio"]))
    await rig.stop(sink)
    original, copy = probe(mp4), probe(path)
    assert set(copy) == set(original) == {"video", "audio"}
    assert copy["video"]["frames"] == original["video"]["frames"] == 30
    assert copy["video"]["last"] - copy["video"]["first"] == pytest.approx(
        original["video"]["last"] - original["video"]["first"], abs=0.04)
    assert copy["audio"]["samples"] == pytest.approx(original["audio"]["samples"], rel=0.05)


def test_output_destinations_are_validated_without_connecting():
    assert Muxer("rtmp://127.0.0.1/live/key", format=None, options={}, video_codec="h264", audio_codec="aac",
                 wanted=["video"]).format == "flv"
    assert Muxer("srt://127.0.0.1:9000", format=None, options={}, video_codec="h264", audio_codec="aac",
                 wanted=["video"]).format == "mpegts"
    assert Muxer("rtsp://127.0.0.1/x", format=None, options={}, video_codec="h264", audio_codec="aac",
                 wanted=["video"]).format == "rtsp"
    OutputContainer.validate_config({"url": "rtmps://127.0.0.1/live/key"})
    with pytest.raises(ConfigError, match="unsupported URL scheme 'ftp'"):
        OutputContainer.validate_config({"url": "ftp://127.0.0.1/x.mp4"})
    with pytest.raises(ConfigError, match="no 'nosuchformat' format"):
        OutputContainer.validate_config({"url": "x.bin", "format": "nosuchformat"})
    with pytest.raises(ConfigError, match="url"):
        InputContainer.validate_config({})
    with pytest.raises(ConfigError, match="unsupported URL scheme 'gopher'"):
        InputContainer.validate_config({"url": "gopher://127.0.0.1/"})


async def test_output_container_lines_up_tracks_by_capture_time(rig, tmp_path):
    path = tmp_path / "late_audio.mkv"
    sink = await rig.start(OutputContainer, {"url": str(path), "queue": 200}, inputs={"video": "vp", "audio": "ap"})
    await rig.start(VideoEncoder, {"queue": 100}, inputs={"in": "v"}, outputs={"out": "vp"})
    await rig.start(AudioEncoder, {"queue": 100}, inputs={"in": "a"}, outputs={"out": "ap"})
    video = await rig.start(TestPattern, {"width": 160, "height": 120, "frames": 40, "rate": 50, "audio": False},
                            outputs={"video": "v"})
    await wait_for(lambda: video.out_metrics["video"].frames >= 15)  # 0.3 s in, the microphone joins
    audio = await rig.start(TestPattern, {"frames": 25, "rate": 50, "video": False}, outputs={"audio": "a"})
    await rig.finished(video)
    await rig.finished(audio)
    await wait_for(lambda: sink.in_metrics["video"].frames == 40 and sink.in_metrics["audio"].frames >= 20)
    await rig.stop(sink)
    info = probe(path)
    assert info["video"]["first"] == pytest.approx(0, abs=0.03)
    video_start = video.out_metrics["video"].last_ts - 39 * 20  # ts of frame 0 (frames are 20 ms apart)
    audio_start = audio.out_metrics["audio"].last_ts - 24 * 20  # ts of the first 20 ms audio frame
    assert audio_start - video_start > 250
    assert info["audio"]["first"] == pytest.approx((audio_start - video_start) / 1000, abs=0.06)
