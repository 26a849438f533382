"""Files on the agent: append values to a file (JSON lines, CSV, text), read or tail one as frames.

Both types take their path through :mod:`edge.files`: relative to the agent's files folder
(``EDGE_FILES_DIR``), never outside it (the config check refuses such a path in one line, and the
path is checked again when the file is opened).

Writes never wait on the disk for long: records are encoded at once (a value that cannot be is an
input error) and kept in a buffer that is written when it reaches :data:`FLUSH_BYTES`, every
``flush_ms``, before a rotation and when the task stops. A write of 64 KiB to the page cache took
18 µs (median; 64 µs at the 99th percentile, a few ms at worst when the kernel was writing back) on
the development machine, so it is done in the event loop, not in a thread. A write that fails (disk
full, permission denied, the path is a folder) ends ``run()`` with the ``OSError``: the agent shows
it as the task's error and restarts the task with a growing delay.

The reader polls (stdlib only, no inotify): a tail notices a file that was truncated (reads it
again from the start) or rotated (another file under the name: the rest of the old one is read,
then the new one from its start).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import time
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.errors import FrameError
from edge.files import check_file_path
from tasks.base import ANY, NUMBER, TEXT, BuiltinTask, is_pause

__all__ = ["FileRead", "FileWrite"]

FLUSH_BYTES = 64 * 1024
DAY_S = 86_400
_CHUNK = 64 * 1024
_STAMP = re.compile(r"\.(\d{8}T\d{6}\.\d{3})Z(?:-(\d+))?")  # what a rotation puts before the extension


def _json_line(value: Any) -> str:
    """``value`` as one line of strict JSON; ValueError/TypeError if it has no such form (NaN, bytes, arrays)."""
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":")) + "\n"


def _cell(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _json_line(value).rstrip("\n")  # finite, not beyond the int-to-text limit
    if isinstance(value, list | dict):
        return _json_line(value).rstrip("\n")
    raise TypeError(f"a CSV cell cannot hold {type(value).__name__}")


def _csv_line(cells: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


class FileWrite(BuiltinTask):
    """Append each value to a file under the agent's files folder: JSON lines, CSV rows or text lines.

    `jsonl` writes each value as one line of JSON (with `include_ts`: `{"ts": ..., "value": ...}`).
    `csv` writes a map as a row of the `columns` (none given: the first map's keys, or the header of
    the file when it already has one) and a list as a row as it is; a new file starts with a header
    row. `text` writes text values as lines. A value the format cannot hold (NaN in JSON, bytes, a
    scalar for CSV, a line break in text) is an input error, skipped. Pause frames are skipped.

    The file is rotated when it would grow beyond `rotate_bytes`, or `rotate_s` seconds after it was
    opened: renamed with a UTC timestamp before its extension (`log.20261205T101500.123Z.jsonl`) and a new
    one started; with `keep`, only that many old files stay. Records are buffered and written every
    `flush_ms` (and when the task stops). A failed write (disk full, no permission) is the task's
    error: the agent shows it and restarts the task.
    """

    category = "integration"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(default="data.jsonl", description="the file, relative to the agent's files folder")
        format: Literal["jsonl", "csv", "text"] = Field(default="jsonl", description="how each value is written")
        include_ts: bool = Field(default=False, description="write each frame's timestamp (ms) too: a ts key in "
                                 "JSON lines, a first column ts in CSV")
        columns: list[str] = Field(default_factory=list, max_length=256,
                                   description="CSV: the columns, in order (empty: the first map's keys)")
        rotate_bytes: int = Field(default=0, ge=0, description="start a new file before this one grows beyond "
                                  "this many bytes (0: never)")
        rotate_s: int = Field(default=0, ge=0, le=366 * DAY_S,
                              description="start a new file this many seconds after opening one (0: never)")
        keep: int = Field(default=0, ge=0, le=100_000, description="old (rotated) files kept, the newest; 0: all")
        flush_ms: int = Field(default=1000, ge=10, le=3_600_000,
                              description="buffered records are written at least this often")

        @field_validator("path")
        @classmethod
        def _inside(cls, value: str) -> str:
            return check_file_path(value)

    inputs = {"in": ANY("values")}
    outputs = {"rotated": TEXT("name of each rotated file")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._file: IO[str] | None = None
        self._buffer: list[str] = []
        self._buffered = 0
        self._size = 0
        self._opened = 0.0
        self._records = 0  # written to the file open now (a header is none)
        self._columns: list[str] = []
        self._path: Path | None = None

    # -- the file ---------------------------------------------------------------------------------
    def _open(self, *, columns: list[str] | None = None) -> None:
        """Open the file for appending; CSV: its columns (``columns``: a rotation's, else the config's or the
        header of the file), and a header row in a new file once they are known."""
        path = self._path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", newline="")
        self._size = self._file.tell()
        self._records = 1 if self._size else 0
        self._opened = time.monotonic()
        config: FileWrite.Config = self.config
        if config.format == "csv":
            self._columns = columns or list(config.columns) or (self._header(path) if self._size else [])
            if self._columns and not self._size:
                self._queue(_csv_line(self._header_row()))

    def _header(self, path: Path) -> list[str]:
        """The columns of an existing CSV file's header, without ``ts`` (read up to its first line)."""
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            first = f.readline(FLUSH_BYTES)
        columns = next(csv.reader([first]), [])
        return columns[1:] if self.config.include_ts and columns[:1] == ["ts"] else columns

    def _header_row(self) -> list[str]:
        return (["ts"] if self.config.include_ts else []) + self._columns

    def _flush(self) -> None:
        if self._buffer and self._file is not None:
            data = "".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            self._file.write(data)
            self._file.flush()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._flush()
            finally:
                self._file.close()
                self._file = None

    def _queue(self, line: str) -> None:
        self._buffer.append(line)
        size = len(line.encode()) if not line.isascii() else len(line)
        self._buffered += size
        self._size += size
        if self._buffered >= FLUSH_BYTES:
            self._flush()

    async def _rotate(self) -> None:
        path = self._path
        assert path is not None
        columns = self._columns
        self._close()
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        target = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
        n = 1
        while target.exists():
            target = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
            n += 1
        os.replace(path, target)
        self._prune(path)
        self._open(columns=columns)
        await self.send("rotated", target.name)

    def _prune(self, path: Path) -> None:
        """Delete the oldest rotated files of ``path`` beyond ``keep`` (by the stamp in their names)."""
        if not self.config.keep:
            return
        old: list[tuple[str, int, Path]] = []
        for p in path.parent.iterdir():
            middle = p.name[len(path.stem):len(p.name) - len(path.suffix)]
            match = _STAMP.fullmatch(middle) if p.name.startswith(path.stem) and p.name.endswith(path.suffix) \
                else None
            if match is not None:
                old.append((match[1], int(match[2] or 0), p))
        for *_, stale in sorted(old)[:-self.config.keep]:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    # -- records ----------------------------------------------------------------------------------
    def _record(self, value: Any, ts: int) -> str | None:
        """The line for ``value``, or None (counted) when the format cannot hold it."""
        config: FileWrite.Config = self.config
        try:
            if config.format == "jsonl":
                return _json_line({"ts": ts, "value": value} if config.include_ts else value)
            if config.format == "text":
                if not isinstance(value, str) or "\n" in value or "\r" in value:
                    raise ValueError("expected text without line breaks")
                return value + "\n"
            return self._row(value, ts)
        except (ValueError, TypeError, RecursionError) as exc:
            self.reject("in", f"cannot write it as {config.format}: {str(exc)[:100]}")
            return None

    def _row(self, value: Any, ts: int) -> str:
        prefix = [ts] if self.config.include_ts else []
        if isinstance(value, dict):
            columns = self._columns
            if not columns:
                if not all(isinstance(k, str) for k in value) or not value:
                    raise ValueError("the first map names the columns: it needs text keys")
                columns = list(value)[:256]
            row = _csv_line(prefix + [_cell(value.get(c)) for c in columns])
            if columns is self._columns:
                return row
            self._columns = columns  # the first map that makes a row names the columns
            return (_csv_line(self._header_row()) if self._size == 0 else "") + row
        if isinstance(value, list):
            return _csv_line(prefix + [_cell(v) for v in value])
        raise ValueError(f"a CSV row is a map or a list, not {type(value).__name__}")

    async def run(self) -> None:
        config: FileWrite.Config = self.config
        self._path = self.file_path(config.path)
        loop = asyncio.get_running_loop()
        interval = config.flush_ms / 1000
        self._open()
        try:
            next_flush = loop.time() + interval
            while True:
                try:
                    async with asyncio.timeout_at(next_flush):
                        frame = await self.recv("in")
                except TimeoutError:
                    self._flush()
                    next_flush = loop.time() + interval
                    if config.rotate_s and time.monotonic() - self._opened >= config.rotate_s and self._records:
                        await self._rotate()
                    continue
                if is_pause(frame):
                    continue
                line = self._record(frame.value, frame.ts)
                if line is None:
                    continue
                if self._records and (
                        (config.rotate_bytes and self._size + len(line.encode()) > config.rotate_bytes)
                        or (config.rotate_s and time.monotonic() - self._opened >= config.rotate_s)):
                    await self._rotate()
                self._queue(line)
                self._records += 1
        finally:
            self._close()


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
                data = f.read(config.max_bytes + 1)
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
