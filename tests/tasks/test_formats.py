"""Parse and format, in memory (edge.testing): JSON, CSV and YAML text to values and back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.testing import run_task
from tasks.formats import Format, Parse, TextFormatError, format_text, parse_text

CSV = "name,temp,ok\nkitchen,21.5,true\nhall,-3,\n\nattic\n"


async def test_parse_json_yaml_and_csv():
    async with run_task(Parse) as run:
        await run.feed("in", '{"a": [1, 2.5, null, "x"]}', ts=9)
        frame = await run.next("out")
        assert (frame.value, frame.ts) == ({"a": [1, 2.5, None, "x"]}, 9)
    async with run_task(Parse, {"format": "yaml"}) as run:
        await run.feed("in", "room: kitchen\nwhen: 2026-03-29 07:30:00\nvalues: [1, 2]\nset: !!set {a: null}\n")
        assert (await run.next("out")).value == {"room": "kitchen", "when": "2026-03-29T07:30:00", "values": [1, 2],
                                                 "set": ["a"]}
    async with run_task(Parse, {"format": "csv", "numbers": True}) as run:
        await run.feed("in", CSV)
        assert (await run.next("out")).value == [{"name": "kitchen", "temp": 21.5, "ok": "true"},
                                                 {"name": "hall", "temp": -3, "ok": ""},
                                                 {"name": "attic", "temp": None, "ok": None}]
    async with run_task(Parse, {"format": "csv", "header": False, "delimiter": ";"}) as run:
        await run.feed("in", 'a;"b;c"\n1;2\n')
        assert (await run.next("out")).value == [["a", "b;c"], ["1", "2"]]


@pytest.mark.parametrize(("fmt", "text", "reason"), [
    ("json", "{'a': 1}", "not JSON: Expecting property name"),
    ("json", "1" * 5000, "cannot parse as json: Exceeds the limit"),
    ("json", "[" * 100_000, "nested too deeply"),
    ("yaml", "a: [", "not YAML: while parsing a flow node"),
    ("yaml", "!!python/object:os.system {}", "not YAML: could not determine a constructor"),
    ("yaml", "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
                                                        for p, c in zip("abcdef", "bcdefg", strict=True)),
     "expands to more than 1000000 values"),  # a billion laughs
    ("csv", "a,b\n1,2,3\n", "row 2 has 3 cells, the header 2"),
    ("csv", 'a\n"x"y"\n', "not CSV:"),
])
async def test_text_that_does_not_parse_is_one_counted_line(fmt, text, reason, caplog):
    async with run_task(Parse, {"format": fmt}) as run:
        await run.feed("in", text)
        await run.feed("in", {"json": "1", "yaml": "1", "csv": "a\n1"}[fmt])
        assert (await run.next("out")).value in (1, [{"a": "1"}])
        assert run.task.in_metrics["in"].errors == 1
    lines = [r.getMessage() for r in caplog.records if "skipped a frame" in r.getMessage()]
    assert len(lines) == 1 and reason in lines[0] and "\n" not in lines[0], lines


async def test_parse_refuses_non_text_and_long_text_and_what_no_frame_carries():
    async with run_task(Parse, {"max_chars": 10}) as run:
        for bad in (5, None, b"{}", "[" + "1," * 10 + "1]", '"\\ud800"'):
            await run.feed("in", bad)
        await run.feed("in", "[1]")
        assert (await run.next("out")).value == [1]
        assert run.task.in_metrics["in"].errors == 5  # a lone surrogate parses but no frame can carry it


async def test_format_json_yaml_and_csv():
    async with run_task(Format) as run:
        await run.feed("in", {"a": [1, 2.5, None, "é"], "arr": np.arange(3, dtype=np.int16)}, ts=3)
        frame = await run.next("out")
        assert (frame.value, frame.ts) == ('{"a":[1,2.5,null,"é"],"arr":[0,1,2]}', 3)
    async with run_task(Format, {"indent": 2}) as run:
        await run.feed("in", {"a": 1})
        assert (await run.next("out")).value == '{\n  "a": 1\n}'
    async with run_task(Format, {"format": "yaml"}) as run:
        await run.feed("in", {"b": 1, "a": ["x"]})
        assert (await run.next("out")).value == "b: 1\na:\n- x\n"
    async with run_task(Format, {"format": "csv"}) as run:
        await run.feed("in", [{"name": "k", "t": 21.5}, {"name": "h,1", "ok": True, "tags": [1]}])
        assert (await run.next("out")).value == 'name,t,ok,tags\nk,21.5,,\n"h,1",,true,[1]\n'
    async with run_task(Format, {"format": "csv", "columns": ["t", "name"], "delimiter": ";"}) as run:
        await run.feed("in", {"name": "k", "t": 1, "other": 2})
        assert (await run.next("out")).value == "t;name\n1;k\n"
    async with run_task(Format, {"format": "csv", "header": False}) as run:
        await run.feed("in", [[1, "a"], [None, 2.0]])
        assert (await run.next("out")).value == "1,a\n,2.0\n"


@pytest.mark.parametrize(("fmt", "value", "reason"), [
    ("json", math.nan, "no JSON form: Out of range float values"),
    ("json", b"x", "no JSON form: bytes has no JSON form"),
    ("json", {(1, 2): 1}, "no JSON form: keys must be"),
    ("yaml", np.zeros(2), "no YAML form"),
    ("csv", 5, "csv needs a list of maps, a list of lists or one map"),
    ("csv", [{"a": 1}, [1]], "csv needs"),
    ("csv", [{"a": b"x"}], "no CSV form"),
])
async def test_a_value_the_format_cannot_hold_is_a_counted_input_error(fmt, value, reason, caplog):
    async with run_task(Format, {"format": fmt}) as run:
        await run.feed("in", value)
        await run.feed("in", [{"a": 1}])
        assert (await run.next("out")).value
        assert run.task.in_metrics["in"].errors == 1
    assert reason in caplog.text


@pytest.mark.parametrize("value", [{"a": [1, {"b": None}], "c": "t"}, [1, 2.5, "x", True], "text", 3])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_format_then_parse_gives_the_value_back(fmt, value):
    assert parse_text(format_text(value, fmt=fmt), fmt=fmt) == value


def test_csv_round_trip():
    rows = [{"a": "1", "b": "x y"}, {"a": "2", "b": 'quote "q"'}]
    assert parse_text(format_text(rows, fmt="csv"), fmt="csv") == rows
    with pytest.raises(TextFormatError):
        format_text([1, 2], fmt="csv")


async def test_big_documents_are_parsed_and_written_in_a_worker_thread(monkeypatch):
    import asyncio

    import tasks.formats

    threads = []
    real = asyncio.to_thread

    async def counting(func, *args, **kwargs):
        threads.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(tasks.formats.asyncio, "to_thread", counting)
    rows = [{"n": str(k), "name": f"row {k}"} for k in range(20_000)]
    async with run_task(Format, {"format": "csv"}) as fmt, run_task(Parse, {"format": "csv"}) as parse:
        await fmt.feed("in", rows[:2])  # small: on the event loop
        await parse.feed("in", (await fmt.next("out")).value)
        assert (await parse.next("out")).value == rows[:2] and threads == []
        await fmt.feed("in", rows)
        text = (await fmt.next("out")).value
        assert len(text) > tasks.formats.IN_THREAD
        await parse.feed("in", text)
        assert (await parse.next("out")).value == rows
        assert len(threads) == 2
