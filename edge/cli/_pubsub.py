"""``edge pub`` and ``edge tail``: frames in and out, any payload shown readably and safely."""

from __future__ import annotations

import argparse
import asyncio
import json
import reprlib
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge.cli._output import _printable

if TYPE_CHECKING:
    from edge.settings import Settings



def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, true, lists, maps), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


async def cmd_pub(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.frames import encode_frame

    value = args.value if args.text else _parse_value(args.value)
    async with Bus.from_settings(settings, connect_timeout=args.timeout) as bus:
        for seq in range(args.count):
            payload = args.value.encode() if args.raw else encode_frame(value, seq=seq)
            await bus.publish(args.topic, payload, qos=args.qos, retain=args.retain)
            if seq + 1 < args.count:
                await asyncio.sleep(args.interval)
    return 0


_SHOW_LIMIT = 200  # characters of a value on a text line


_HEX_LIMIT = 64  # bytes of a payload shown in hex


PAYLOAD_FORMATS = ("auto", "cbor", "json", "raw")


def _jsonable(value: Any) -> Any:
    """What json.dumps cannot write, as a short description (an array, bytes, a CBOR tag…)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"<ndarray {value.dtype} {'x'.join(map(str, value.shape))}>"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"<{len(data)} bytes: {data[:_HEX_LIMIT // 2].hex()}{'…' if len(data) > _HEX_LIMIT // 2 else ''}>"
    return f"<{type(value).__name__}: {reprlib.repr(value)}>"


def _show(value: Any, limit: int = _SHOW_LIMIT) -> str:
    """A value on one line as JSON writes it: the text "42" in quotes, the number 42 without."""
    try:
        text = json.dumps(value, default=_jsonable, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:  # a 10 000-digit int, deep nesting
        text = f"<{type(value).__name__} that cannot be shown: {type(exc).__name__}>"
    text = _printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(ts: int, *, utc: bool) -> str:
    """A frame's ts (ms since the epoch) as ISO 8601 with milliseconds, local time or UTC (``Z``)."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
        moment = (moment if utc else moment.astimezone()).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return f"ts={ts}"  # out of datetime's range: the number itself
    return moment.isoformat(timespec="milliseconds") + ("Z" if utc else "")


@dataclass(frozen=True, slots=True)
class _Payload:
    """One message as ``edge tail`` shows it: a frame, or a value in another format, or bytes."""

    format: str  # frame, cbor, json, text or hex
    value: Any
    ts: int | None = None
    seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # why bytes shown in hex are not a frame (a malformed or hostile one)


def _decode_payload(payload: bytes, wanted: str, max_size: int) -> _Payload:
    """``payload`` read as ``wanted`` says; :class:`FrameError` when it is not that.

    auto: a frame, else JSON, else UTF-8 text, else hex (never fails); cbor: a frame, else any one CBOR
    value; json: JSON; raw: UTF-8 text, else hex. Plain CBOR is not guessed: most short texts are CBOR too.
    """
    from edge.errors import FrameError
    from edge.frames import decode_frame, decode_value

    not_frame = None
    if wanted in ("auto", "cbor"):
        try:
            frame = decode_frame(payload, max_size=max_size)
            return _Payload("frame", frame.value, frame.ts, frame.seq, dict(frame.extra))
        except FrameError as exc:
            if wanted == "cbor":
                return _Payload("cbor", decode_value(payload, max_size=max_size))
            not_frame = f"not a frame: {exc}"
    if wanted in ("auto", "json"):
        try:
            return _Payload("json", json.loads(payload))
        except (ValueError, RecursionError) as exc:  # RecursionError: [[[[… a million deep
            if wanted == "json":
                raise FrameError(f"not JSON: {exc}") from None
    try:
        return _Payload("text", payload.decode())
    except UnicodeDecodeError:
        return _Payload("hex", payload[:_HEX_LIMIT].hex() + ("…" if len(payload) > _HEX_LIMIT else ""),
                        note=not_frame)


def _tail_line(topic: str, shown: _Payload, *, utc: bool) -> str:
    topic = _printable(topic)
    if shown.format == "frame":
        assert shown.ts is not None
        extra = "".join(f" {_printable(str(k))}={_show(v, 40)}" for k, v in shown.extra.items())
        return f"{topic}  seq={shown.seq} {_when(shown.ts, utc=utc)}{extra}  {_show(shown.value)}"
    if shown.format == "hex":
        return f"{topic}  hex  {shown.value}" + (f"  ({_printable(shown.note)})" if shown.note else "")
    return f"{topic}  {shown.format}  {_show(shown.value)}"


def _tail_json(topic: str, shown: _Payload, *, utc: bool) -> str:
    """One line of ``tail --json`` (:class:`edge.documents.TailLine`)."""
    from edge.documents import TailLine

    document = TailLine(topic=topic, format=shown.format, ts=shown.ts, seq=shown.seq,
                        time=_when(shown.ts, utc=utc) if shown.ts is not None else None,
                        value=shown.value, extra=shown.extra, note=shown.note).fields()
    try:
        return json.dumps(document, default=_jsonable, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        document["value"] = f"<{type(shown.value).__name__} that cannot be shown: {type(exc).__name__}>"
        document["extra"] = {k: _show(v, 80) for k, v in shown.extra.items()}
        return json.dumps(document, default=_jsonable, ensure_ascii=False)


async def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from edge.bus import Bus
    from edge.errors import FrameError
    from edge.topics import Topics
    from edge.watch import Watching

    seen = bad = 0
    pattern = args.pattern
    if "/" in pattern and "." in pattern.rsplit("/", 1)[-1] and pattern.count("/") == 1:
        dep, task_port = pattern.split("/")  # demo/add.out: a deployment's port by name
        task, port = task_port.split(".", 1)
        pattern = Topics(settings.namespace).stream(dep, task, port)
    # Nothing to flush, and no UNSUBSCRIBE to wait for (the DISCONNECT ends the session): SIGTERM or
    # Ctrl+C exits at once, even when the broker has stopped answering.
    async with Bus.from_settings(settings, connect_timeout=args.timeout, flush_timeout=0) as bus, \
            Watching(bus, Topics(settings.namespace), pattern):  # streams agents hand over in-process too
        sub = await bus.subscribe(pattern, qos=args.qos)
        print(f"tailing {_printable(pattern)} on {bus.url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        async with asyncio.timeout(args.duration):
            async for message in sub:
                try:
                    shown = _decode_payload(message.payload, args.format, settings.max_payload)
                except FrameError as exc:
                    bad += 1
                    print(f"{_printable(message.topic)}  <not {args.format}: {_printable(str(exc))}>",
                          file=sys.stderr, flush=True)
                    continue
                seen += 1
                line = (_tail_json if args.json else _tail_line)(message.topic, shown, utc=args.utc)
                print(line, flush=True)
                if args.count and seen >= args.count:
                    break
    if bad:
        print(f"{bad} message(s) were not {args.format}", file=sys.stderr)
    return 0
