"""The editor's undo and redo: a bounded history of a draft's states.

Every edit of the graph editor records the state the draft had *before* it
(:meth:`History.record`); undo puts that state back and keeps the current one for redo. A run of
edits of one field (a config value typed key by key, a label) is one step: an edit with the same
``key`` as the one before, within :data:`COALESCE_S` seconds of it, records nothing, so undo goes
back to before the whole run. At most :data:`DEPTH` steps are kept (the oldest go first).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["COALESCE_S", "DEPTH", "History"]

DEPTH = 100  # undo steps kept per draft
COALESCE_S = 1.5  # edits of one field closer than this are one step

S = TypeVar("S")


@dataclass
class History(Generic[S]):
    """Undo and redo stacks of states ``S`` (immutable snapshots of a draft)."""

    depth: int = DEPTH
    window: float = COALESCE_S
    clock: Callable[[], float] = time.monotonic
    _undo: deque[S] = field(default_factory=deque)
    _redo: list[S] = field(default_factory=list)
    _last_key: str | None = None
    _last_at: float = float("-inf")

    def record(self, before: S, key: str | None = None) -> bool:
        """An edit was made; ``before`` is the state it started from. ``key`` names the field it
        changes, when edits of it are to coalesce. Returns whether a step was added."""
        now = self.clock()
        coalesced = key is not None and key == self._last_key and now - self._last_at < self.window and self._undo
        self._last_key, self._last_at = key, now
        self._redo.clear()
        if coalesced:
            return False
        self._undo.append(before)
        while len(self._undo) > self.depth:
            self._undo.popleft()
        return True

    def undo(self, current: S) -> S | None:
        """The state to go back to (``current`` is kept for redo); None when there is nothing to undo."""
        if not self._undo:
            return None
        self._redo.append(current)
        self._last_key = None  # the next edit is a step of its own
        return self._undo.pop()

    def redo(self, current: S) -> S | None:
        """The state undone last (``current`` is kept for undo); None when there is nothing to redo."""
        if not self._redo:
            return None
        self._undo.append(current)
        self._last_key = None
        return self._redo.pop()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def __len__(self) -> int:
        return len(self._undo)
