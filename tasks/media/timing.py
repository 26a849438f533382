"""Media time: capture timestamps carried through codecs, real-time pacing, monotonic pts.

Three clocks meet in a media graph: ``ts`` (ms since the epoch, when a frame was captured,
carried unchanged through every task so the sink can measure latency and align tracks),
``pts`` in a stream's ``time_base`` (the media timeline a codec and a container need), and
the event loop's monotonic clock (pacing a source in real time).
"""

from __future__ import annotations

import asyncio
from collections import deque
from fractions import Fraction

__all__ = ["MonotonicPts", "Pacer", "SampleClock", "TsMap"]


class TsMap:
    """pts -> capture ts for frames inside a codec (bounded: codecs hold a few frames at most)."""

    def __init__(self, limit: int = 256) -> None:
        self._map: dict[int, int] = {}
        self._limit = limit
        self.last: int | None = None

    def put(self, pts: int, ts: int) -> None:
        self._map[pts] = ts
        self.last = ts
        while len(self._map) > self._limit:
            del self._map[next(iter(self._map))]

    def pop(self, pts: int | None) -> int | None:
        """The ts of ``pts`` (forgotten afterwards), or the newest ts put."""
        if pts is not None and pts in self._map:
            return self._map.pop(pts)
        return self.last


class MonotonicPts:
    """Rescales incoming pts into one time base and keeps them strictly increasing."""

    def __init__(self, time_base: Fraction) -> None:
        self.time_base = time_base
        self.last: int | None = None

    def __call__(self, pts: int, time_base: Fraction) -> int:
        if time_base != self.time_base:
            pts = round(pts * time_base / self.time_base)
        if self.last is not None and pts <= self.last:
            pts = self.last + 1
        self.last = pts
        return pts


class Pacer:
    """Real-time pacing: ``await pacer.wait(media_seconds)`` returns when that moment is due.

    ``speed`` 2.0 plays twice as fast. ``lag`` reports how late the caller is for a moment, so a
    source can drop frames instead of falling ever further behind.
    """

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._origin: tuple[float, float] | None = None  # (loop time, media seconds)

    def _due(self, media: float) -> float:
        loop = asyncio.get_running_loop()
        if self._origin is None:
            self._origin = (loop.time(), media)
        start, first = self._origin
        return start + (media - first) / self.speed

    def lag(self, media: float) -> float:
        return asyncio.get_running_loop().time() - self._due(media)

    async def wait(self, media: float) -> None:
        delay = self._due(media) - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def reset(self) -> None:
        self._origin = None


class SampleClock:
    """Capture ts of audio samples after resampling and re-framing.

    Each input frame marks where its first sample lands in the output sample count; the ts of
    an output position is that of the mark before it plus the time the samples in between last.
    """

    def __init__(self, rate: int, marks: int = 64) -> None:
        self.rate = rate
        self.position = 0.0
        self._marks: deque[tuple[float, int]] = deque(maxlen=marks)

    def add(self, samples: int, rate: int, ts: int) -> None:
        self._marks.append((self.position, ts))
        self.position += samples * self.rate / rate

    def ts(self, position: int | None) -> int | None:
        if not self._marks:
            return None
        if position is None:
            return self._marks[-1][1]
        mark_pos, mark_ts = self._marks[0]
        for pos, ts in reversed(self._marks):
            if pos <= position:
                mark_pos, mark_ts = pos, ts
                break
        return mark_ts + round((position - mark_pos) * 1000 / self.rate)
