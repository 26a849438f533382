"""The agent's own CPU and memory use, from /proc where there is one (no psutil needed)."""

from __future__ import annotations

import os
import resource
import time
from typing import Any

__all__ = ["ProcessMetrics"]


class ProcessMetrics:
    """CPU % since the previous call and resident memory, for the agent state."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), self._cpu_seconds())
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    @staticmethod
    def _cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def rss_bytes(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __call__(self) -> dict[str, Any]:
        now, cpu = time.monotonic(), self._cpu_seconds()
        last_t, last_cpu = self._last
        self._last = (now, cpu)
        elapsed = now - last_t
        percent = 100.0 * (cpu - last_cpu) / elapsed if elapsed > 0 else 0.0
        return {"cpu_percent": round(percent, 1), "rss_mb": round(self.rss_bytes() / 2**20, 1)}
