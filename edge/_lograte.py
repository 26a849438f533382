"""Logging a recurring problem without flooding the log: once per source, then at most once a minute.

A hostile or broken publisher can send thousands of bad messages a second; each is counted
where it arrives (an input's ``errors``, the agent's or the fleet's ``errors``), and the log
says so once per source (a topic, an input), then once per interval with how many it held back.
"""

from __future__ import annotations

import logging
import time
from typing import Final

__all__ = ["LogLimiter"]

EVERY: Final = 60.0  # s between two log lines of the same source
MAX_SOURCES: Final = 1024  # sources remembered; the oldest is forgotten first (it may log again)


class LogLimiter:
    """``limiter.warning(source, "msg %s", arg)``: logs the first time, then once per ``every`` s."""

    __slots__ = ("_every", "_logger", "_max", "_seen")

    def __init__(self, logger: logging.Logger, *, every: float = EVERY, max_sources: int = MAX_SOURCES) -> None:
        self._logger = logger
        self._every = every
        self._max = max_sources
        self._seen: dict[str, list[float]] = {}  # source -> [when last logged, held back since]

    def warning(self, source: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, source, message, *args)

    def error(self, source: str, message: str, *args: object) -> None:
        self.log(logging.ERROR, source, message, *args)

    def log(self, level: int, source: str, message: str, *args: object) -> None:
        now = time.monotonic()
        entry = self._seen.get(source)
        if entry is None:
            if len(self._seen) >= self._max:
                del self._seen[next(iter(self._seen))]
            self._seen[source] = [now, 0]
            self._logger.log(level, message, *args)
        elif now - entry[0] >= self._every:
            held = int(entry[1])
            entry[0], entry[1] = now, 0
            if held:
                self._logger.log(level, message + " (and %d more from the same source in %.0f s)", *args, held,
                                 self._every)
            else:
                self._logger.log(level, message, *args)
        else:
            entry[1] += 1
