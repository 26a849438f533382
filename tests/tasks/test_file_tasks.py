"""file_write and file_read in-process (edge.testing): formats, rotation, tailing, bad values, the folder rule."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from task_harness import MEMORY, running

from edge.errors import ConfigError
from edge.files import files_folder
from edge.testing import run_task
from tasks.file_read import FileRead
from tasks.files import FileWrite

TIMEOUT = 5.0


async def until(predicate: Callable[[], bool], what: str = "the condition") -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {TIMEOUT} s")
        await asyncio.sleep(0.005)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- file_write ------------------------------------------------------------------------------------
async def test_jsonl_lines_are_appended_and_flushed(tmp_path: Path) -> None:
    target = tmp_path / "logs" / "values.jsonl"
    async with run_task(FileWrite, {"path": "logs/values.jsonl", "flush_ms": 10}, files_dir=tmp_path) as run:
        for value in [1, "two", {"three": [3]}, None, True]:
            await run.feed("in", value)
        await until(lambda: len(lines(target)) == 5, "five lines")
    assert [json.loads(line) for line in lines(target)] == [1, "two", {"three": [3]}, None, True]


async def test_buffered_records_are_written_when_the_task_stops(tmp_path: Path) -> None:
    async with run_task(FileWrite, {"path": "v.jsonl", "flush_ms": 3_600_000, "include_ts": True},
                        files_dir=tmp_path) as run:
        await run.feed("in", 20.5, ts=1234)
        await until(lambda: run.task.in_metrics["in"].frames == 1)
        assert lines(tmp_path / "v.jsonl") == []  # not yet: buffered
    assert lines(tmp_path / "v.jsonl") == ['{"ts":1234,"value":20.5}']


async def test_csv_takes_its_columns_from_the_first_map_and_from_an_existing_header(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    config = {"path": "t.csv", "format": "csv", "flush_ms": 10}
    async with run_task(FileWrite, config, files_dir=tmp_path) as run:
        await run.feed("in", {"temp": 21.5, "room": "hall, upstairs"})
        await run.feed("in", {"room": "kitchen", "temp": 19, "extra": 1})
        await run.feed("in", [1, 2])
        await until(lambda: len(lines(target)) == 4)
    assert lines(target) == ["temp,room", '21.5,"hall, upstairs"', "19,kitchen", "1,2"]
    async with run_task(FileWrite, config, files_dir=tmp_path) as run:  # again: the header names the columns
        await run.feed("in", {"room": "attic", "temp": 15})
        await until(lambda: len(lines(target)) == 5)
    assert lines(target)[-1] == "15,attic" and lines(target).count("temp,room") == 1


async def test_a_first_map_that_cannot_be_a_row_names_no_columns(tmp_path: Path) -> None:
    target = tmp_path / "f.csv"
    async with run_task(FileWrite, {"path": "f.csv", "format": "csv", "flush_ms": 10}, files_dir=tmp_path) as run:
        await run.feed("in", {"x": b"bytes"})  # refused: its keys name no columns
        await run.feed("in", {"a": 1, "b": 2})
        await until(lambda: len(lines(target)) == 2)
        assert run.task.in_metrics["in"].errors == 1
    assert lines(target) == ["a,b", "1,2"]


async def test_a_file_holding_only_a_header_is_not_rotated(tmp_path: Path) -> None:
    config = {"path": "h.csv", "format": "csv", "columns": ["a"], "rotate_s": 1, "rotate_bytes": 8, "flush_ms": 10}
    async with run_task(FileWrite, config, files_dir=tmp_path) as run:
        await run.feed("in", {"a": "longer than eight bytes"})  # into the new file, after its header
        await until(lambda: lines(tmp_path / "h.csv") == ["a", "longer than eight bytes"])
        await run.feed("in", {"a": 2})  # over rotate_bytes: a new file, with its header
        rotated = (await run.next("rotated")).value
        await until(lambda: lines(tmp_path / "h.csv") == ["a", "2"])
        assert lines(tmp_path / rotated) == ["a", "longer than eight bytes"]
        old = (await run.next("rotated", timeout=3)).value  # a second later: the file with a record goes
        await until(lambda: lines(tmp_path / "h.csv") == ["a"])
        assert lines(tmp_path / old) == ["a", "2"]
        with pytest.raises(TimeoutError):  # the new file holds only its header: it stays
            await run.next("rotated", timeout=1.5)


async def test_csv_columns_from_the_config_with_the_timestamp(tmp_path: Path) -> None:
    target = tmp_path / "c.csv"
    async with run_task(FileWrite, {"path": "c.csv", "format": "csv", "columns": ["a", "b"], "include_ts": True,
                                    "flush_ms": 10}, files_dir=tmp_path) as run:
        await run.feed("in", {"b": None, "a": [1, 2]}, ts=7)
        await until(lambda: len(lines(target)) == 2)
    assert lines(target) == ["ts,a,b", '7,"[1,2]",']


@pytest.mark.parametrize(("fmt", "bad"), [
    ("jsonl", [math.nan, math.inf, b"\x00", 10**5000]),
    ("csv", [1, "text", None, {}, {"a": b"x"}]),
    ("text", [1, "two\nlines", b"x", None]),
])
async def test_values_the_format_cannot_hold_are_counted_and_skipped(tmp_path: Path, fmt: str, bad: list) -> None:
    good = {"jsonl": [1], "csv": {"a": 1}, "text": "ok"}[fmt]
    target = tmp_path / f"x.{fmt}"
    async with run_task(FileWrite, {"path": target.name, "format": fmt, "flush_ms": 10}, files_dir=tmp_path) as run:
        for value in bad:
            await run.feed("in", value)
        await until(lambda: run.task.in_metrics["in"].errors == len(bad), f"{len(bad)} errors")
        await run.feed("in", good)
        await until(lambda: len(lines(target)) >= 1)
    assert lines(target)[-1] == {"jsonl": "[1]", "csv": "1", "text": "ok"}[fmt]


async def test_rotates_by_size_and_keeps_the_newest_old_files(tmp_path: Path) -> None:
    target = tmp_path / "r.jsonl"
    async with run_task(FileWrite, {"path": "r.jsonl", "rotate_bytes": 20, "keep": 2, "flush_ms": 10},
                        files_dir=tmp_path) as run:
        for k in range(8):
            await run.feed("in", f"value-{k:04d}")  # 13 bytes a line: one per file
        rotated = [(await run.next("rotated")).value for _ in range(7)]
        await until(lambda: lines(target) == ['"value-0007"'])
    old = {p.name for p in tmp_path.iterdir() if p.name != "r.jsonl"}  # noqa: ASYNC240
    assert old == set(rotated[-2:]) and len(set(rotated)) == 7
    assert all(re.fullmatch(r"r\.\d{8}T\d{6}\.\d{3}Z(-\d+)?\.jsonl", name) for name in old), old
    assert [lines(tmp_path / name) for name in rotated[-2:]] == [['"value-0005"'], ['"value-0006"']]


async def test_rotates_by_time_with_a_new_csv_header(tmp_path: Path) -> None:
    async with run_task(FileWrite, {"path": "t.csv", "format": "csv", "rotate_s": 1, "flush_ms": 10},
                        files_dir=tmp_path) as run:
        await run.feed("in", {"a": 1})
        old = (await run.next("rotated", timeout=3)).value  # the next flush tick after a second
        await run.feed("in", {"a": 2})
        await until(lambda: lines(tmp_path / "t.csv") == ["a", "2"])
    assert lines(tmp_path / old) == ["a", "1"]


def test_a_path_outside_the_files_folder_is_a_config_error(tmp_path: Path) -> None:
    with files_folder(tmp_path):
        assert FileWrite.check({"path": "../secrets.yaml"}) == [
            f"config.path: '../secrets.yaml' is outside this agent's files folder {tmp_path}: use a path inside "
            "the agent's files folder (EDGE_FILES_DIR)"]
        assert len(FileRead.check({"path": "/etc/passwd"})) == 1
        assert FileRead.check({"path": "a/b.txt", "format": "text", "follow": True}) == [
            "config: follow reads lines: it cannot be used with format 'text'"]


async def test_a_failed_write_is_the_tasks_error_not_a_crash_of_the_runtime(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()  # root may write anywhere; a folder in the file's place fails for all
    with pytest.raises(IsADirectoryError):
        async with run_task(FileWrite, {"path": "dir.jsonl"}, files_dir=tmp_path) as run:
            await until(run.runner.done, "the task to end")


async def test_a_symlink_out_of_the_folder_made_after_the_check_is_refused_at_open(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("key: value\n")
    with files_folder(files):
        assert FileWrite.check({"path": "log.jsonl"}) == []
    (files / "log.jsonl").symlink_to(secrets)  # made after the check
    for task_type in (FileWrite, FileRead):
        with pytest.raises(ConfigError, match="through a symlink"):
            async with run_task(task_type, {"path": "log.jsonl"}, files_dir=files) as run:
                await until(run.runner.done, "the task to end")
    assert secrets.read_text() == "key: value\n"


# -- file_read -------------------------------------------------------------------------------------
async def test_reads_lines_at_start_and_again_on_trigger(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\r\nthree")
    async with run_task(FileRead, {"path": "a.txt"}, files_dir=tmp_path) as run:
        assert [(await run.next("out")).value for _ in range(3)] == ["one", "two", "three"]
        assert (await run.next("done")).value == 3
        (tmp_path / "a.txt").write_text("four\n")
        await run.feed("trigger", 1)
        assert (await run.next("out")).value == "four" and (await run.next("done")).value == 1


async def test_jsonl_and_long_lines_are_counted_errors(tmp_path: Path) -> None:
    (tmp_path / "v.jsonl").write_bytes(b'{"a": 1}\n' + b"x" * 100 + b"\nnot json\n\xff\xfe\n[2]\n")
    async with run_task(FileRead, {"path": "v.jsonl", "format": "jsonl", "max_line": 64}, files_dir=tmp_path) as run:
        assert [(await run.next("out")).value for _ in range(2)] == [{"a": 1}, [2]]
        assert (await run.next("done")).value == 2
        assert run.task.out_metrics["out"].errors == 3  # too long, not JSON, not UTF-8


async def test_csv_rows_as_maps_or_lists(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text('room,temp\n"hall, up",21.5\nkitchen,19\n')
    async with run_task(FileRead, {"path": "t.csv", "format": "csv"}, files_dir=tmp_path) as run:
        assert [(await run.next("out")).value for _ in range(2)] == [{"room": "hall, up", "temp": "21.5"},
                                                                    {"room": "kitchen", "temp": "19"}]
    async with run_task(FileRead, {"path": "t.csv", "format": "csv", "header": False}, files_dir=tmp_path) as run:
        assert (await run.next("out")).value == ["room", "temp"]


async def test_whole_file_as_text_or_bytes_within_max_bytes(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"\x00\x01\n\x02")
    async with run_task(FileRead, {"path": "w.bin", "format": "bytes"}, files_dir=tmp_path) as run:
        assert (await run.next("out")).value == b"\x00\x01\n\x02"
    (tmp_path / "w.txt").write_text("héllo\nworld\n")
    async with run_task(FileRead, {"path": "w.txt", "format": "text"}, files_dir=tmp_path) as run:
        assert (await run.next("out")).value == "héllo\nworld\n"
    async with run_task(FileRead, {"path": "w.txt", "format": "text", "max_bytes": 4}, files_dir=tmp_path) as run:
        await until(lambda: run.task.out_metrics["out"].errors == 1)
        assert run.frames("out") == []


async def test_a_file_larger_than_a_frame_is_counted_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 4096)
    async with running(FileRead, MEMORY, {"path": "big.bin", "format": "bytes"},
                       context_attrs={"files_dir": tmp_path, "max_payload": 2048}) as h:
        assert (await h.next("done")).value == 0
        assert h.task.out_metrics["out"].errors == 1 and h.drain("out") == []


async def test_a_missing_file_is_counted_not_a_crash(tmp_path: Path) -> None:
    async with run_task(FileRead, {"path": "nothing.txt"}, files_dir=tmp_path) as run:
        await until(lambda: run.task.out_metrics["out"].errors == 1)
        (tmp_path / "nothing.txt").write_text("now\n")
        await run.feed("trigger", 1)
        assert (await run.next("out")).value == "now"


async def test_tail_sends_what_the_file_holds_then_what_is_appended(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("one\ntwo\n")
    async with run_task(FileRead, {"path": "a.log", "follow": True, "poll_ms": 10}, files_dir=tmp_path) as run:
        assert [(await run.next("out")).value for _ in range(2)] == ["one", "two"]
        assert (await run.next("done")).value == 2
        with (tmp_path / "a.log").open("a") as f:
            f.write("three\n")
        assert (await run.next("out")).value == "three"


async def test_tail_follows_appends_truncation_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old\n")
    async with run_task(FileRead, {"path": "app.log", "follow": True, "from_end": True, "poll_ms": 10},
                        files_dir=tmp_path) as run:
        assert (await run.next("done")).value == 0  # caught up with the end: what was there is left out
        with log.open("a") as f:
            f.write("new 1\nnew ")
        assert (await run.next("out")).value == "new 1"
        with log.open("a") as f:
            f.write("2\n")
        assert (await run.next("out")).value == "new 2"  # a partial line waits for its end
        log.write_text("cut\n")  # truncated and written again (copytruncate), shorter than what was read
        assert (await run.next("out")).value == "cut"
        with log.open("a") as f:
            f.write("last of the old file\n")
        os.rename(log, tmp_path / "app.log.1")
        log.write_text("first of the new file\n")
        assert [(await run.next("out")).value for _ in range(2)] == ["last of the old file", "first of the new file"]
        assert run.frames("out") == []


async def test_tail_of_csv_from_the_end_keeps_the_header(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    async with run_task(FileRead, {"path": "t.csv", "format": "csv", "follow": True, "from_end": True,
                                   "poll_ms": 10}, files_dir=tmp_path) as run:
        assert (await run.next("done")).value == 0
        with (tmp_path / "t.csv").open("a") as f:
            f.write("3,4\n")
        assert (await run.next("out")).value == {"a": "3", "b": "4"}
