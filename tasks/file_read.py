"""``file_read``: a file under the agent's files folder as frames, read whole or tailed (see :mod:`tasks.files`).

The tail polls (stdlib only, no inotify): it notices a file that was truncated (reads it again
from the start) or rotated (another file under the name: the rest of the old one is read, then
the new one from its start).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.errors import FrameError
from edge.files import check_file_path
from tasks.base import ANY, NUMBER, BuiltinTask, is_pause

__all__ = ["FileRead"]

_CHUNK = 64 * 1024


class FileRead(BuiltinTask):
    """Read a file under the agent's files folder as frames: its lines, JSON lines, CSV rows, or all of it.

    The file is read when the task starts (unless `on_start` is off) and again for each frame on
    `trigger`; `done` then carries how many frames were sent (with `follow`: once, when the task has
    caught up with the end of the file). `text` and `bytes` send the whole file as one frame (at
    most `max_bytes`). With `follow` the task tails the file instead: it sends what is appended,
    starts again from the top when the file is truncated, and follows a rotation (a new file under
    the name; `trigger` is not read then). A line longer than `max_line` bytes, a line that is not
    UTF-8, and a JSON line that does not parse are counted as errors on `out` and skipped; so is a
    missing file; so is a value larger than a frame may be (`EDGE_MAX_PAYLOAD`). CSV rows are maps by
    the header row (`header`), or lists, one a line (a quoted field cannot hold a line break).
    """

    category = "integration"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(default="data.jsonl", description="the file, relative to the agent's files folder")
        format: Literal["lines", "jsonl", "csv", "text", "bytes"] = Field(
            default="lines", description="a frame per line (text), per JSON line (its value), per CSV row, or one "
                                         "frame of the whole file (text or bytes)")
        header: bool = Field(default=True, description="CSV: the first row names the columns; rows are maps")
        follow: bool = Field(default=False, description="tail the file: send what is appended, follow truncation "
                             "and rotation (lines, jsonl, csv)")
        from_end: bool = Field(default=False, description="with follow: start at the end of the file, as tail -f")
        on_start: bool = Field(default=True, description="read the file when the task starts")
        max_line: int = Field(default=65_536, ge=16, le=16 * 1024 * 1024,
                              description="longest line in bytes; longer ones are counted as errors and skipped")
        max_bytes: int = Field(default=1024 * 1024, ge=1, le=256 * 1024 * 1024,
                               description="text, bytes: the largest file sent as one frame")
        poll_ms: int = Field(default=250, ge=10, le=60_000, description="with follow: how often the file is looked at")

        @field_validator("path")
        @classmethod
        def _inside(cls, value: str) -> str:
            return check_file_path(value)

        @model_validator(mode="after")
        def _whole(self) -> FileRead.Config:
            if self.follow and self.format in ("text", "bytes"):
                raise ValueError(f"follow reads lines: it cannot be used with format {self.format!r}")
            return self

    inputs = {"trigger": ANY("read the file again")}
    outputs = {"out": ANY("values"), "done": NUMBER("frames sent by a read")}

    async def run(self) -> None:
        config: FileRead.Config = self.config
        if config.follow:
            await self._tail()
            return
        if config.on_start:
            await self._read_once()
        async for frame in self.receive("trigger"):
            if not is_pause(frame):
                await self._read_once()

    # -- whole reads ------------------------------------------------------------------------------
    async def _read_once(self) -> None:
        config: FileRead.Config = self.config
        path = self.file_path(config.path)
        try:
            f = path.open("rb")
        except OSError as exc:
            self.reject("out", f"cannot open {config.path}: {exc.strerror or exc}")
            return
        with f:
            if config.format in ("text", "bytes"):
                # up to 256 MiB at once: in a thread, so the event loop is not held while the disk reads
                data = await asyncio.to_thread(f.read, config.max_bytes + 1)
                if len(data) > config.max_bytes:
                    self.reject("out", f"{config.path} is larger than max_bytes ({config.max_bytes})")
                    return
                if config.format == "bytes":
                    sent = await self._send_value(data)
                else:
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        self.reject("out", f"{config.path} is not UTF-8 text")
                        return
                    sent = await self._send_value(text)
                await self.send("done", int(sent))
                return
            lines = _Lines(config.max_line)
            sent = 0
            header: list[str] | None = None
            while chunk := f.read(_CHUNK):
                for line in lines.feed(chunk, self):
                    sent, header = await self._emit(line, sent, header)
            rest = lines.rest()
            if rest is not None:
                sent, header = await self._emit(rest, sent, header)
        await self.send("done", sent)

    async def _emit(self, line: bytes, sent: int, header: list[str] | None) -> tuple[int, list[str] | None]:
        """Send ``line`` as the format says; the count of frames sent and the CSV header so far."""
        config: FileRead.Config = self.config
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self.reject("out", "a line is not UTF-8 text")
            return sent, header
        if config.format == "lines":
            return sent + await self._send_value(text), header
        if config.format == "jsonl":
            if not text.strip():
                return sent, header
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as exc:
                self.reject("out", f"a line is not JSON: {str(exc)[:80]}")
                return sent, header
            return sent + await self._send_value(value), header
        row = next(csv.reader([text]), [])
        if config.header and header is None:
            return sent, row
        value = dict(zip(header, row, strict=False)) if config.header and header is not None else row
        return sent + await self._send_value(value), header

    async def _send_value(self, value: Any) -> int:
        """Send ``value`` on ``out``: 1, or 0 (counted) when it cannot be a frame (beyond the payload limit,
        a JSON number beyond a frame's bignum bound)."""
        try:
            await self.send("out", value)
        except FrameError as exc:
            self.reject("out", str(exc)[:160])
            return 0
        return 1

    # -- tailing ----------------------------------------------------------------------------------
    async def _tail(self) -> None:
        config: FileRead.Config = self.config
        path = self.file_path(config.path)
        f: IO[bytes] | None = None
        ident: tuple[int, int] | None = None
        lines = _Lines(config.max_line)
        header: list[str] | None = None
        first = True
        caught_up = False
        sent = 0
        try:
            while True:
                try:
                    st = path.stat()
                except OSError:
                    st = None
                if st is not None and (f is None or (st.st_dev, st.st_ino) != ident):
                    if f is not None:  # rotated: the rest of the old file, then the new one from its start
                        while chunk := f.read(_CHUNK):
                            for line in lines.feed(chunk, self):
                                sent, header = await self._emit(line, sent, header)
                        f.close()
                        f, lines, header = None, _Lines(config.max_line), None
                    try:
                        f = path.open("rb")
                    except OSError as exc:
                        self.reject("out", f"cannot open {config.path}: {exc.strerror or exc}")
                    else:
                        ident = (st.st_dev, st.st_ino)
                        if first and config.from_end:
                            if config.format == "csv" and config.header:
                                header = next(csv.reader([f.readline(config.max_line).decode("utf-8", "replace")
                                                          .rstrip("\r\n")]), None)
                            f.seek(0, os.SEEK_END)
                    first = False
                if f is not None and st is not None:
                    if st.st_size < f.tell():  # truncated: from the top
                        f.seek(0)
                        lines, header = _Lines(config.max_line), None
                    while chunk := f.read(_CHUNK):
                        for line in lines.feed(chunk, self):
                            sent, header = await self._emit(line, sent, header)
                    if not caught_up:
                        caught_up = True
                        await self.send("done", sent)
                await asyncio.sleep(config.poll_ms / 1000)
        finally:
            if f is not None:
                f.close()


class _Lines:
    """Split bytes into lines of at most ``limit`` bytes; a longer one is counted and skipped whole."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.partial = bytearray()
        self.skipping = False

    def feed(self, chunk: bytes, task: BuiltinTask) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not self.skipping:
                    self.partial += chunk[start:]
                    if len(self.partial) > self.limit:
                        self._too_long(task)
                return out
            if self.skipping:
                self.skipping = False
            elif len(self.partial) + end - start > self.limit:
                self._too_long(task)
                self.skipping = False
            else:
                self.partial += chunk[start:end]
                out.append(bytes(self.partial))
            self.partial.clear()
            start = end + 1

    def _too_long(self, task: BuiltinTask) -> None:
        task.reject("out", f"a line is longer than max_line ({self.limit} bytes)")
        self.partial.clear()
        self.skipping = True

    def rest(self) -> bytes | None:
        """The last line when the file does not end with a line break (a whole read only)."""
        if self.skipping or not self.partial:
            return None
        line = bytes(self.partial)
        self.partial.clear()
        return line
