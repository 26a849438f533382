"""MQTT payloads of other systems to values and back, for the ``mqtt_in`` and ``mqtt_out`` bridges.

Formats: ``json`` (UTF-8 JSON), ``text`` (UTF-8), ``raw`` (the bytes as they are), ``cbor`` (plain
CBOR, :func:`edge.frames.decode_value`) and ``frame`` (an edgetasks frame, its timestamp kept). A
path picks a value out of a decoded document: ``temperature``, ``ENERGY.Power``,
``data[0].value``, ``["key.with.dots"]``; a leading ``$`` or ``$.`` is allowed, as in JSONPath.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from edge.errors import EdgeError, FrameError
from edge.frames import decode_frame, decode_value, encode_frame, encode_value
from tasks.base import is_array

__all__ = ["Format", "PayloadError", "decode_payload", "encode_payload", "extract", "parse_path"]

Format = Literal["json", "text", "raw", "cbor", "frame"]

_STEP: Final = re.compile(r"""
    \.?(?P<name>[^.\[\]"]+)          # .name or name
  | \[(?P<index>-?\d+)\]             # [3]
  | \["(?P<quoted>(?:[^"\\]|\\.)*)"\]  # ["a.b"]
""", re.VERBOSE)


class PayloadError(EdgeError, ValueError):
    """A payload that does not decode in the chosen format, a path that finds nothing, a value that
    cannot be encoded."""


def parse_path(path: str) -> list[str | int]:
    """The steps of a path: names (``str``) and list indices (``int``); ValueError if malformed."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"invalid path {path!r} at character {position + 1}: use name.name[0][\"key\"]")
        if match.group("index") is not None:
            steps.append(int(match.group("index")))
        elif match.group("quoted") is not None:
            steps.append(json.loads(f'"{match.group("quoted")}"'))
        else:
            steps.append(match.group("name"))
        position = match.end()
    return steps


def extract(document: Any, steps: Sequence[str | int]) -> Any:
    """The value at ``steps`` in ``document``; :class:`PayloadError` naming the step that failed."""
    value = document
    for depth, step in enumerate(steps):
        where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps[: depth + 1]).lstrip(".")
        if isinstance(value, Mapping):
            key = step if isinstance(step, str) else str(step)
            if key not in value:
                raise PayloadError(f"no {where} in the payload")
            value = value[key]
        elif isinstance(value, list | tuple):
            try:
                value = value[int(step)]
            except (IndexError, ValueError):
                raise PayloadError(f"no {where} in the payload (a list of {len(value)})") from None
        else:
            raise PayloadError(f"no {where} in the payload: {type(value).__name__} has no members")
    return value


def decode_payload(payload: bytes, fmt: Format, *, max_size: int) -> tuple[Any, int | None]:
    """The value in ``payload`` and, for ``frame``, its timestamp; :class:`PayloadError` if it does not decode."""
    try:
        if fmt == "raw":
            return payload, None
        if fmt == "text":
            return payload.decode("utf-8"), None
        if fmt == "json":
            return json.loads(payload.decode("utf-8")), None
        if fmt == "cbor":
            return decode_value(payload, max_size=max_size), None
        frame = decode_frame(payload, max_size=max_size)
        return frame.value, frame.ts
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("nested too deeply") from None
    except FrameError as exc:
        raise PayloadError(str(exc)) from None
    except ValueError as exc:  # valid JSON Python refuses: an integer of over 4300 digits
        raise PayloadError(f"cannot decode as {fmt}: {exc}") from None


def _jsonable(value: Any) -> Any:
    if is_array(value):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_payload(value: Any, fmt: Format, *, key: str = "", ts: int | None = None) -> bytes:
    """``value`` as a payload; with ``key``, ``json`` and ``cbor`` wrap it as ``{key: value}``.

    ``text`` sends text as it is and anything else as JSON (``1.5``, ``true``); ``raw`` sends bytes
    as they are and text as UTF-8. :class:`PayloadError` for a value the format cannot carry.
    """
    if key and fmt in ("json", "cbor"):
        value = {key: value}
    try:
        if fmt == "raw":
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            if isinstance(value, str):
                return value.encode("utf-8")
            raise PayloadError(f"raw payloads are bytes or text, not {type(value).__name__}")
        if fmt == "text" and isinstance(value, str):
            return value.encode("utf-8")
        if fmt in ("json", "text"):
            if isinstance(value, bytes | bytearray | memoryview):
                raise PayloadError("bytes have no JSON or text form: use the raw or cbor format")
            if isinstance(value, float) and not math.isfinite(value):
                raise PayloadError(f"{value} has no JSON form")
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                              default=_jsonable).encode("utf-8")
        if fmt == "cbor":
            return encode_value(value)
        return encode_frame(value, ts=ts)
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"cannot encode as {fmt}: {exc}") from None
