"""The replay buffer on real brokers, and its recording file."""

from __future__ import annotations

import time

import pytest
from task_harness import running

from edge.errors import ConfigError, FrameError
from edge.frames import Frame
from tasks.replay import MAGIC, Recording, ReplayBuffer, read_recording


async def record(h, frames: list[tuple[object, int]]) -> None:
    for value, ts in frames:
        await h.feed("in", value, ts=ts)
    await h.processed("in", len(frames))


async def play(h, on: bool, count: int) -> None:
    await h.feed("play", int(on))
    await h.processed("play", count)


async def test_plays_back_with_the_original_timing(broker):
    async with running(ReplayBuffer, broker.url, {"persist": False}) as h:
        await record(h, [("a", 1000), ("b", 1100), ("c", 1300)])
        started = time.monotonic()
        await play(h, True, 1)
        frames = [await h.next() for _ in range(4)]
        assert time.monotonic() - started >= 0.28
        assert [f.value for f in frames] == ["a", "b", "c", None] and frames[3].extra == {"paused": True}
        assert [f.ts - frames[0].ts for f in frames[:3]] == [0, 100, 300]  # moved to the present, gaps kept
        assert frames[0].ts > 1_000_000
        await play(h, True, 2)  # still on: no restart
        await play(h, False, 3)  # the playback had ended: no second pause
        await play(h, True, 4)  # a new rising edge plays it again
        assert await h.values(4) == ["a", "b", "c", None]


async def test_loops_until_play_turns_off(broker):
    async with running(ReplayBuffer, broker.url, {"persist": False, "loop": True}) as h:
        await record(h, [(1, 0), (2, 20)])
        await play(h, True, 1)
        assert await h.values(5) == [1, 2, 1, 2, 1]
        await play(h, False, 2)
        while (frame := await h.next()).value is not None:
            assert frame.value in (1, 2)
        assert frame.extra == {"paused": True}
        await h.silence(seconds=0.1)


async def test_a_frame_after_a_pause_starts_a_new_recording(broker):
    async with running(ReplayBuffer, broker.url, {"persist": False, "max_frames": 2}) as h:
        await record(h, [("old", 1), ("older", 2)])
        await h.feed("in", None, paused=True)
        await record(h, [("x", 10), ("y", 20), ("z", 30)])  # the pause frame counts as a frame taken
        await play(h, True, 1)
        assert await h.values(3) == ["y", "z", None]  # the new recording, its newest two
        await h.feed("play", "yes")  # not a number: counted
        await h.errors("play", 1)


async def test_recording_survives_a_restart_in_the_files_folder(broker, tmp_path):
    async with running(ReplayBuffer, broker.url, context_attrs={"files_dir": tmp_path}) as h:
        assert h.task.recording_path() == tmp_path.resolve() / "replay" / "d" / "t.rec"  # one file per instance
        await record(h, [("kept", 5), ({"n": [1, 2]}, 6)])
    async with running(ReplayBuffer, broker.url, context_attrs={"files_dir": tmp_path}) as h:
        await play(h, True, 1)
        assert await h.values(3) == ["kept", {"n": [1, 2]}, None]
    path = tmp_path / "mine" / "rec.bin"
    async with running(ReplayBuffer, broker.url, {"file": "mine/rec.bin"}, context_attrs={"files_dir": tmp_path}) as h:
        await record(h, [("named", 1)])
    assert [f.value for f in read_recording(path)[0]] == ["named"]


async def test_without_a_files_folder_it_records_in_memory(broker, caplog):
    async with running(ReplayBuffer, broker.url) as h:
        assert h.task.recording_path() is None
        await record(h, [(1, 1)])
        await play(h, True, 1)
        assert await h.values(2) == [1, None]
    assert "recording in memory only" in caplog.text


async def test_recording_file_is_bounded_and_tolerates_a_torn_tail(tmp_path):
    path = tmp_path / "r.rec"
    recording = Recording(path, max_frames=5, max_bytes=10_000)
    await recording.open()
    for i in range(23):
        await recording.append(Frame(i, 1000 + i))
    recording.close()
    frames, valid = read_recording(path)
    assert len(frames) <= 10 and frames[-1].value == 22 and valid == path.stat().st_size
    path.write_bytes(path.read_bytes() + b"\x00\x00\x01\x00partial")  # a record cut short by a power cut
    again = Recording(path, max_frames=5, max_bytes=10_000)
    await again.open()
    assert [f.value for f in again.snapshot()] == [18, 19, 20, 21, 22]
    await again.append(Frame(23, 2000))
    again.close()
    assert read_recording(path)[0][-1].value == 23  # appended after the good part
    by_bytes = Recording(None, max_frames=1000, max_bytes=1024)
    for i in range(100):
        await by_bytes.append(Frame(b"x" * 100, i))
    assert by_bytes.size <= 1024 and len(by_bytes.snapshot()) < 10
    (tmp_path / "other").write_bytes(b"not a recording")
    with pytest.raises(FrameError, match="not a recording"):
        await Recording(tmp_path / "other", max_frames=5, max_bytes=10_000).open()
    assert (tmp_path / "other").read_bytes() == b"not a recording"  # left alone
    assert MAGIC == b"EDGEREC1"


def test_config_is_checked():
    with pytest.raises(ConfigError, match="out of the agent's files folder"):
        ReplayBuffer.validate_config({"file": "../escape.rec"})
    with pytest.raises(ConfigError, match="max_bytes"):
        ReplayBuffer.validate_config({"max_bytes": 10})
