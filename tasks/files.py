"""Files on the agent: ``file_write`` appends values to a file (JSON lines, CSV, text); ``file_read``
(:mod:`tasks.file_read`) reads or tails one as frames.

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

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.files import check_file_path
from tasks.base import ANY, TEXT, BuiltinTask, is_pause

__all__ = ["FileWrite"]

FLUSH_BYTES = 64 * 1024
DAY_S = 86_400
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
        # several rotations within one millisecond: a counter above every file of that stamp still
        # there (not the first free name: once _prune removed the oldest, that would sort as oldest)
        taken = [n for stamp_, n, _ in self._rotated(path) if f"{stamp_}Z" == stamp]
        n = max(taken) + 1 if taken else 0
        target = path.with_name(f"{path.stem}.{stamp}{f'-{n}' if n else ''}{path.suffix}")
        os.replace(path, target)
        self._prune(path)
        self._open(columns=columns)
        await self.send("rotated", target.name)

    def _prune(self, path: Path) -> None:
        """Delete the oldest rotated files of ``path`` beyond ``keep`` (by the stamp in their names)."""
        if not self.config.keep:
            return
        for *_, stale in sorted(self._rotated(path))[:-self.config.keep]:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    @staticmethod
    def _rotated(path: Path) -> list[tuple[str, int, Path]]:
        """The rotated files of ``path``: (stamp, counter, file) each."""
        found: list[tuple[str, int, Path]] = []
        for p in path.parent.iterdir():
            middle = p.name[len(path.stem):len(p.name) - len(path.suffix)]
            match = _STAMP.fullmatch(middle) if p.name.startswith(path.stem) and p.name.endswith(path.suffix) \
                else None
            if match is not None:
                found.append((match[1], int(match[2] or 0), p))
        return found

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
