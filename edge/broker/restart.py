"""The restart policy of a supervised broker: how long to wait before starting it again.

A broker that crashed once comes back almost at once; one that keeps crashing is retried
less and less often (up to :data:`MAX_DELAY`), so a broken installation fills the log with
one line every half minute rather than thousands. A run that lasted :data:`STABLE_AFTER`
seconds counts as healthy and resets the delay.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FIRST_DELAY", "MAX_DELAY", "STABLE_AFTER", "Backoff"]

FIRST_DELAY: Final = 0.1
MAX_DELAY: Final = 30.0
STABLE_AFTER: Final = 60.0


class Backoff:
    """Delays between restarts: :data:`FIRST_DELAY`, doubling up to :data:`MAX_DELAY`."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = FIRST_DELAY

    def delay(self, ran_for: float) -> float:
        """The wait before the next start, given how long the last run lasted (0 for a failed start)."""
        if ran_for >= STABLE_AFTER:
            self._next = FIRST_DELAY
        delay = self._next
        self._next = min(self._next * 2, MAX_DELAY)
        return delay
