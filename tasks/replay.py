"""The replay buffer: record the last frames of a stream, to disk, and play them back with their timing.

A recording file is ``EDGEREC1`` followed by records, each a 4-byte big-endian length and one
frame as CBOR (``docs/frames.md``). It is appended to as frames arrive (no fsync per frame: a
power cut loses at most the unflushed tail, and a truncated last record is dropped on load), and
rewritten atomically (``edge.storage.write_atomic``) with just the kept window when it has grown
to twice the limits, so its size stays bounded.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import FrameError
from edge.files import check_file_path
from edge.frames import Frame, decode_frame, encode_frame, now_ms
from edge.storage import write_atomic
from tasks.base import ANY, NUMBER, BuiltinTask, is_pause, log
from tasks.ordering import handle_inputs

__all__ = ["MAGIC", "Recording", "ReplayBuffer"]

MAGIC: Final = b"EDGEREC1"
_LENGTH: Final = struct.Struct(">I")
MIN_LOOP_GAP: Final = 0.01
"""Seconds between the last frame of a pass and the first of the next, at least."""


def _record(frame: Frame) -> bytes:
    payload = encode_frame(frame.value, ts=frame.ts, seq=frame.seq)
    return _LENGTH.pack(len(payload)) + payload


def read_recording(path: Path) -> tuple[list[Frame], int]:
    """The frames in a recording file and the length of its valid part (a truncated or damaged tail is
    left out); :class:`FrameError` if it is not a recording at all."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise FrameError(f"{path} is not a recording (it does not start with {MAGIC!r})")
    frames: list[Frame] = []
    position = len(MAGIC)
    while position + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, position)
        end = position + _LENGTH.size + size
        if end > len(data):
            break
        try:
            frames.append(decode_frame(data[position + _LENGTH.size:end]))
        except FrameError:  # a damaged record: keep what came before it
            break
        position = end
    return frames, position


def _load(path: Path) -> tuple[list[Frame], int]:
    """:func:`read_recording`, then the file cut after its last good record, so appends stay aligned."""
    frames, valid = read_recording(path)
    with open(path, "r+b") as f:
        f.truncate(valid)
    return frames, valid


class Recording:
    """The newest frames of a stream, at most ``max_frames`` and ``max_bytes``; mirrored to ``path`` if given."""

    def __init__(self, path: Path | None, *, max_frames: int, max_bytes: int) -> None:
        self.path = path
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.frames: deque[tuple[Frame, int]] = deque()  # (frame, its record's size)
        self.size = 0
        self._file: IO[bytes] | None = None
        self._file_records = 0
        self._file_bytes = 0

    async def open(self) -> None:
        """Load what the file holds (if any) and open it for appending."""
        if self.path is None:
            return
        path = self.path
        if path.exists():
            frames, valid = await asyncio.to_thread(_load, path)
            for frame in frames:
                self._keep(frame, len(_record(frame)))
            self._file_records, self._file_bytes = len(frames), valid
        else:
            await asyncio.to_thread(write_atomic, path, MAGIC)
            self._file_bytes = len(MAGIC)
        self._file = await asyncio.to_thread(open, path, "ab")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _keep(self, frame: Frame, size: int) -> None:
        self.frames.append((frame, size))
        self.size += size
        while len(self.frames) > self.max_frames or (self.size > self.max_bytes and len(self.frames) > 1):
            self.size -= self.frames.popleft()[1]

    async def append(self, frame: Frame) -> None:
        record = _record(frame)
        self._keep(frame, len(record))
        if self._file is None:
            return
        self._file.write(record)
        self._file.flush()
        self._file_records += 1
        self._file_bytes += len(record)
        if self._file_records > 2 * self.max_frames or self._file_bytes > 2 * self.max_bytes + len(MAGIC):
            await self._rewrite(_record(f) for f, _ in self.frames)

    async def clear(self) -> None:
        self.frames.clear()
        self.size = 0
        if self._file is not None:
            await self._rewrite(())

    async def _rewrite(self, records: Iterable[bytes]) -> None:
        assert self.path is not None and self._file is not None
        data = b"".join((MAGIC, *records))
        self._file.close()
        await asyncio.to_thread(write_atomic, self.path, data)
        self._file = await asyncio.to_thread(open, self.path, "ab")
        self._file_records, self._file_bytes = len(self.frames), len(data)

    def snapshot(self) -> list[Frame]:
        return [frame for frame, _ in self.frames]


class ReplayBuffer(BuiltinTask):
    """Record a stream and play it back with its original timing, once or in a loop.

    Every frame on `in` is recorded; the recording keeps the newest `max_frames` frames (and at
    most `max_bytes`), and a frame that follows a pause frame starts a new recording (with
    `restart_after_pause`). When `play` turns on (crosses 0.5 upwards) the recording is played
    from its start on `out`, with the gaps between frames as recorded and timestamps moved to the
    present; when `play` turns off, or the recording ends (without `loop`), a pause frame (value
    null) follows. A `play` that stays on (a toggle repeating its value) does not restart it.

    The recording is kept in a file in the agent's files folder (`EDGE_FILES_DIR`): `file`, or
    `replay/{deployment}/{task}.rec` by default, so it survives a restart; a `file` outside that
    folder makes the task invalid. Without a files folder from the runtime, or with
    `persist: false`, it is kept in memory only.
    """

    category = "timing"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        loop: bool = Field(default=False, description="play the recording over and over until play turns off")
        persist: bool = Field(default=True, description="keep the recording in a file, not only in memory")
        file: str | None = Field(default=None, min_length=1, max_length=1024,
                                 description="the recording file, in the agent's files folder (EDGE_FILES_DIR); "
                                             "unset: replay/{deployment}/{task}.rec there")
        max_frames: int = Field(default=10_000, ge=1, le=1_000_000, description="most frames kept (the newest)")
        max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1024**3,
                               description="most bytes of frames kept (the newest)")
        restart_after_pause: bool = Field(default=True,
                                          description="a frame after a pause frame on in starts a new recording")

        @field_validator("file")
        @classmethod
        def _file(cls, value: str | None) -> str | None:
            return None if value is None else check_file_path(value)

    inputs = {"in": ANY("recorded"), "play": NUMBER("play")}
    outputs = {"out": ANY("replay")}

    def recording_path(self) -> Path | None:
        """Where the recording is kept; None: in memory."""
        config: ReplayBuffer.Config = self.config
        if not config.persist:
            return None
        if self.context is None or self.context.files_dir is None:  # not every runtime provides one
            log.warning("%s: no files folder from the runtime: recording in memory only", self.instance_id)
            return None
        return self.file_path(config.file or f"replay/{self.instance_id}.rec")

    async def run(self) -> None:
        config: ReplayBuffer.Config = self.config
        recording = Recording(self.recording_path(), max_frames=config.max_frames, max_bytes=config.max_bytes)
        await recording.open()
        player: asyncio.Task[None] | None = None
        playing = False
        after_pause = False
        try:
            async with asyncio.TaskGroup() as group:

                async def stop() -> None:
                    nonlocal player
                    if player is not None and not player.done():
                        player.cancel()
                        await asyncio.wait([player])
                        await self.send("out", None, paused=True)
                    player = None

                async def handle(port: str, frame: Frame) -> None:
                    nonlocal player, playing, after_pause
                    if port == "in":
                        if is_pause(frame):
                            after_pause = True
                            return
                        if after_pause and config.restart_after_pause:
                            await recording.clear()
                        after_pause = False
                        await recording.append(frame)
                        return
                    if is_pause(frame):
                        return
                    on = self.flag(port, frame)
                    if on is None or on == playing:
                        return
                    playing = on
                    await stop()
                    if on:
                        player = group.create_task(self._play(recording.snapshot(), loop=config.loop))

                await handle_inputs(self, handle)
        finally:
            recording.close()

    async def _play(self, frames: list[Frame], *, loop: bool) -> None:
        if not frames:
            return
        clock = asyncio.get_running_loop()
        first = frames[0].ts
        span = frames[-1].ts - first
        gap = max(span / 1000 / max(len(frames) - 1, 1), MIN_LOOP_GAP)
        start, start_ms = clock.time(), now_ms()
        while True:
            for frame in frames:
                offset = max(frame.ts - first, 0)
                delay = start + offset / 1000 - clock.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.send("out", frame.value, ts=start_ms + offset)
            if not loop:
                break
            start += span / 1000 + gap
            start_ms += span + round(gap * 1000)
        await self.send("out", None, paused=True)
