"""Engine models, loaded once per process (agent) and shared by the task instances that use them.

Loading runs in a thread (``asyncio.to_thread``), never on the event loop. Two kinds of sharing:

* :class:`Shared`: one object for every user (eSpeak NG: the library holds one synthesizer per
  process; its users take turns under the object's own lock);
* :class:`Pool`: engines that keep per-stream state (a pocketsphinx decoder, a Silero VAD
  context) are lent to one instance at a time and taken back, reset, when it stops; the next
  instance reuses it instead of loading the model again. ``made`` counts the loads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from tasks._lazy import available

__all__ = ["Pool", "Shared", "installed"]

M = TypeVar("M")
log = logging.getLogger("tasks.inference")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (an engine's C extension costs RSS: it
    is imported when a task first needs it, not when the agent lists the types)."""
    return available(module)


class Shared(Generic[M]):
    """One object made by ``make`` on first use (in a thread), the same for every later user."""

    def __init__(self, name: str, make: Callable[[], M]) -> None:
        self.name = name
        self._make = make
        self._lock = threading.Lock()
        self._value: M | None = None
        self.made = 0

    def _get(self) -> M:
        with self._lock:
            if self._value is None:
                self._value = self._make()
                self.made += 1
            return self._value

    def peek(self) -> M | None:
        """The object if it was made, without making it."""
        return self._value

    async def get(self) -> M:
        if self._value is not None:
            return self._value
        return await asyncio.to_thread(self._get)


class Pool(Generic[M]):
    """Engines made by ``make`` (in a thread), each lent to one user at a time; up to ``keep`` idle
    ones are kept for the next user (``reset`` runs when one comes back)."""

    def __init__(self, name: str, make: Callable[[], M], *, reset: Callable[[M], None] | None = None,
                 keep: int = 4) -> None:
        self.name = name
        self._make = make
        self._reset = reset
        self._keep = keep
        self._idle: list[M] = []
        self._lock = threading.Lock()
        self.made = 0

    def _new(self) -> M:
        engine = self._make()
        with self._lock:
            self.made += 1
        return engine

    async def acquire(self) -> M:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return await asyncio.to_thread(self._new)

    def release(self, engine: M) -> None:
        """Take ``engine`` back (from any thread); one that cannot be reset is dropped."""
        if self._reset is not None:
            try:
                self._reset(engine)
            except Exception as exc:  # a broken engine is not lent again
                log.warning("%s: an engine could not be reset and is dropped: %r", self.name, exc)
                return
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(engine)

    @property
    def idle(self) -> int:
        return len(self._idle)
