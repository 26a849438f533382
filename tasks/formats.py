"""Text documents to values and back: JSON, CSV and YAML (``parse`` and ``format``)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import io
import json
import math
import re
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasks.base import ANY, TEXT, BuiltinTask, is_array, is_pause
from tasks.parts import part_field, size_of

__all__ = ["Format", "Parse", "TextFormatError", "format_text", "parse_text"]

#: the most values a parsed YAML document may expand to (aliases repeat a node without copying it)
MAX_NODES: Final = 1_000_000
#: texts (and values, by their frame's size) larger than this are parsed and written in a worker
#: thread, so a big document does not hold up the agent's other tasks
IN_THREAD: Final = 64 * 1024
_INT = re.compile(r"[+-]?\d{1,300}")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

DocFormat = Literal["json", "csv", "yaml"]


class TextFormatError(ValueError):
    """A text that does not parse in the format, or a value the format cannot write."""


class _CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: DocFormat = Field(default="json", description="the text's format")
    header: bool = Field(default=True, description="csv: the first row names the columns (a list of maps), or not "
                                                   "(a list of lists)")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="csv: the character between cells")


# -- parsing ----------------------------------------------------------------------------------------
def _cell(text: str) -> Any:
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def _plain(value: Any, budget: list[int]) -> Any:
    """A YAML document's value as frames carry it: dates become ISO text, sets lists; at most
    :data:`MAX_NODES` values in all (an alias counts each time it is used)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise TextFormatError(f"the document expands to more than {MAX_NODES} values")
    if isinstance(value, dict):
        return {(_plain(k, budget) if isinstance(k, dt.date) else k): _plain(v, budget) for k, v in value.items()}
    if isinstance(value, list | set | frozenset | tuple):
        return [_plain(v, budget) for v in value]
    if isinstance(value, dt.date):  # and datetime
        return value.isoformat()
    return value


def parse_text(text: str, *, fmt: DocFormat, header: bool = True, delimiter: str = ",",
               numbers: bool = False) -> Any:
    """The value ``text`` holds in ``fmt``; :class:`TextFormatError` with one line if it does not parse."""
    try:
        if fmt == "json":
            return json.loads(text)
        if fmt == "yaml":
            return _plain(yaml.safe_load(text), [MAX_NODES])
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True) if row]
        if numbers:
            rows = [[_cell(cell) for cell in row] for row in rows]
        if not header:
            return rows
        if not rows:
            return []
        names = [str(name) for name in rows[0]]
        result = []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) > len(names):
                raise TextFormatError(f"row {number} has {len(row)} cells, the header {len(names)}")
            result.append({name: row[k] if k < len(row) else None for k, name in enumerate(names)})
        return result
    except json.JSONDecodeError as exc:
        raise TextFormatError(f"not JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise TextFormatError(f"not YAML: {' '.join(str(exc).split())}") from None
    except csv.Error as exc:
        raise TextFormatError(f"not CSV: {exc}") from None
    except RecursionError:
        raise TextFormatError("nested too deeply") from None
    except TextFormatError:
        raise
    except (ValueError, TypeError) as exc:  # valid JSON Python refuses (an integer of over 4300 digits), odd YAML keys
        raise TextFormatError(f"cannot parse as {fmt}: {exc}") from None


class Parse(BuiltinTask):
    """Parse text into a value: JSON, CSV or YAML.

    JSON gives any JSON value. YAML is read with `yaml.safe_load` (no Python objects): dates and
    times become ISO text, sets lists; a document whose aliases expand to more than a million
    values is refused. CSV gives a list of maps keyed by the header row (`header: true`; a row
    shorter than the header has null for the missing cells, a longer one is an error) or a list of
    lists; blank lines are skipped; cells are text, or numbers where they look like one with
    `numbers: true`. Text that does not parse, or is longer than `max_chars`, is an input error
    (counted, one line in the warning); a value other than text is too. The `part` field of a split
    item is kept.
    """

    category = "data"
    stateless = True  # each frame on its own: a spec may give it replicas

    class Config(_CsvOptions):
        numbers: bool = Field(default=False, description="csv: cells that look like numbers become numbers")
        max_chars: int = Field(default=1_000_000, ge=1, le=16 * 1024 * 1024,
                               description="longer texts are input errors (parsing them would hold the agent up)")

    inputs = {"in": TEXT("text")}
    outputs = {"out": ANY("value")}

    async def run(self) -> None:
        config: Parse.Config = self.config
        async for frame in self.receive("in"):
            if is_pause(frame):
                continue
            text = self.text("in", frame)
            if text is None:
                continue
            if len(text) > config.max_chars:
                self.reject("in", f"a text of {len(text)} characters is longer than max_chars ({config.max_chars})")
                continue
            parse = functools.partial(parse_text, text, fmt=config.format, header=config.header,
                                      delimiter=config.delimiter, numbers=config.numbers)
            try:
                value = await asyncio.to_thread(parse) if len(text) > IN_THREAD else parse()
            except TextFormatError as exc:
                self.reject("in", str(exc))
                continue
            await self.send_or_count("in", "out", value, ts=frame.ts, extra=part_field(frame))


# -- formatting -------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if is_array(value):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_jsonable)


def _csv(value: Any, *, header: bool, delimiter: str, columns: list[str]) -> str:
    rows = [value] if isinstance(value, dict) else value
    if not isinstance(rows, list) or not (all(isinstance(r, dict) for r in rows)
                                          or all(isinstance(r, list) for r in rows)):
        raise TextFormatError("csv needs a list of maps, a list of lists or one map")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if rows and isinstance(rows[0], dict):
        names = list(columns) or list(dict.fromkeys(str(k) for row in rows for k in row))
        if header:
            writer.writerow(names)
        for row in rows:
            cells = {str(k): v for k, v in row.items()}
            writer.writerow([_csv_cell(cells.get(name)) for name in names])
    else:
        if header and columns:
            writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(cell) for cell in row])
    return out.getvalue()


def format_text(value: Any, *, fmt: DocFormat, indent: int = 0, header: bool = True, delimiter: str = ",",
                columns: list[str] | None = None) -> str:
    """``value`` as text in ``fmt``; :class:`TextFormatError` with one line if the format cannot hold it."""
    try:
        if fmt == "json":
            return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_jsonable, indent=indent or None,
                              separators=None if indent else (",", ":"))
        if fmt == "yaml":
            return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
        return _csv(value, header=header, delimiter=delimiter, columns=columns or [])
    except RecursionError:
        raise TextFormatError("nested too deeply") from None
    except yaml.YAMLError as exc:
        raise TextFormatError(f"no YAML form: {' '.join(str(exc).split())}") from None
    except TextFormatError:
        raise
    except (ValueError, TypeError, csv.Error) as exc:
        raise TextFormatError(f"no {fmt.upper()} form: {exc}") from None


def _large(value: Any) -> bool:
    return not isinstance(value, int | float | bool) and value is not None and size_of(value) > IN_THREAD


class Format(BuiltinTask):
    """Write a value as text: JSON, CSV or YAML.

    JSON is strict (NaN and infinities are input errors; arrays are written as lists), compact or
    indented by `indent`. YAML is written with `yaml.safe_dump`, keys in their order. CSV takes a
    list of maps (the columns: `columns`, or every key in the order they first appear; a header
    row with `header`), a list of lists, or one map; cells are text, numbers, `true`/`false`, empty
    for null, and JSON for lists and maps. A value the format cannot hold (bytes in JSON, a number
    in CSV) is an input error, counted. The `part` field of a split item is kept.
    """

    category = "data"
    stateless = True  # each frame on its own: a spec may give it replicas

    class Config(_CsvOptions):
        indent: int = Field(default=0, ge=0, le=16, description="json: spaces of indentation (0: one compact line)")
        columns: list[str] = Field(default_factory=list, max_length=1000,
                                   description="csv: the columns of maps, in order (empty: every key, in order)")

    inputs = {"in": ANY("value")}
    outputs = {"out": TEXT("text")}

    async def run(self) -> None:
        config: Format.Config = self.config
        async for frame in self.receive("in"):
            if is_pause(frame):
                continue
            write = functools.partial(format_text, frame.value, fmt=config.format, indent=config.indent,
                                      header=config.header, delimiter=config.delimiter, columns=config.columns)
            try:
                text = await asyncio.to_thread(write) if _large(frame.value) else write()
            except TextFormatError as exc:
                self.reject("in", str(exc))
                continue
            await self.send_or_count("in", "out", text, ts=frame.ts, extra=part_field(frame))
