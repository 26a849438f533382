"""What split, join and batch share: the ``part`` field of split items, and a bounded store of held values.

``split`` sends each item of a list, text or map in a frame of its own with a ``part`` field
``{"id", "index", "count", "kind"[, "sep"]}`` (the frame's control fields, beside ``ts`` and
``seq``), so ``join`` can put the items back together whatever order they arrive in. Tasks that
build new frames drop the field; ``change``, ``parse`` and ``format`` keep it.

:class:`Held` is every buffer of these tasks: bounded by a count and by bytes (each value's CBOR
size), the oldest value goes when a new one does not fit, and what went is counted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final, Literal

from edge.errors import FrameError
from edge.frames import Frame, encode_value

__all__ = ["MAX_ITEMS", "PART", "Held", "Part", "part_field", "size_of"]

PART: Final = "part"
#: the most items a split sends of one value and a join or batch holds
MAX_ITEMS: Final = 100_000
KINDS: Final = ("list", "text", "map")

Kind = Literal["list", "text", "map"]


@dataclass(frozen=True)
class Part:
    """Item ``index`` of ``count`` of one split value (``id``); text items were cut at ``sep``."""

    id: str
    index: int
    count: int
    kind: Kind
    sep: str = ""

    def field(self) -> dict[str, Any]:
        """The frame's extra fields that carry it."""
        part: dict[str, Any] = {"id": self.id, "index": self.index, "count": self.count, "kind": self.kind}
        if self.kind == "text":
            part["sep"] = self.sep
        return {PART: part}

    @classmethod
    def of(cls, frame: Frame) -> Part | None:
        """The frame's part, or None if it has none or a malformed one (a frame from elsewhere)."""
        raw = frame.extra.get(PART)
        if not isinstance(raw, dict):
            return None
        ident, index, count, kind, sep = (raw.get(k) for k in ("id", "index", "count", "kind", "sep"))
        if not isinstance(ident, str) or len(ident) > 100 or type(index) is not int or type(count) is not int \
                or not 0 <= index < count <= MAX_ITEMS or kind not in KINDS:
            return None
        if kind == "text" and not (isinstance(sep, str) and len(sep) <= 100):
            return None
        return cls(ident, index, count, kind, sep if kind == "text" else "")  # type: ignore[arg-type]


def part_field(frame: Frame) -> dict[str, Any] | None:
    """The ``part`` field of ``frame`` to send on with what is made of it; None if it has no valid one."""
    part = Part.of(frame)
    return part.field() if part is not None else None


def size_of(value: Any) -> int:
    """The bytes ``value`` takes in a frame."""
    try:
        return len(encode_value(value))
    except FrameError:  # what came in a frame encodes: only for safety
        return 0


class Held:
    """Values by key, oldest first, at most ``max_items`` of them and ``max_bytes`` together (one
    larger value is kept alone): putting one that does not fit pushes the oldest out, counted in
    ``overflowed``. Putting a key again replaces its value and makes it the newest."""

    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflowed = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Hashable, value: Any) -> None:
        size = size_of(value)
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.max_items or (self.bytes > self.max_bytes and len(self._items) > 1):
            self._drop_oldest()
            self.overflowed += 1

    def _drop_oldest(self) -> None:
        _, (_, size) = self._items.popitem(last=False)
        self.bytes -= size

    def keep_newest(self, count: int) -> None:
        """Let all but the ``count`` newest go (not counted: the caller sent them)."""
        while len(self._items) > count:
            self._drop_oldest()

    def items(self) -> list[tuple[Hashable, Any]]:
        return [(key, value) for key, (value, _) in self._items.items()]

    def values(self) -> list[Any]:
        return [value for value, _ in self._items.values()]

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
