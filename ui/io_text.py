"""IO metadata as people read it: ``{"content": "video", "codec": "h264", "packets": True}`` is
``video · codec h264 · packets``, not a Python repr. Used by the Task types page and the graph's
port tooltips."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["io_text"]


def _value(value: object) -> str:
    if isinstance(value, list | tuple):
        return " or ".join(map(_value, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def io_text(meta: object, *, empty: str = "any") -> str:
    """The content first, then each other key: ``key value``, a true flag as its name, a false one as ``no key``."""
    if not isinstance(meta, Mapping) or not meta:
        return empty
    parts = [_value(meta["content"])] if meta.get("content") not in (None, "") else []
    for key, value in sorted(meta.items()):
        if key == "content" or value is None:
            continue
        if value is True:
            parts.append(str(key))
        elif value is False:
            parts.append(f"no {key}")
        else:
            parts.append(f"{key} {_value(value)}")
    return " · ".join(parts) or empty
