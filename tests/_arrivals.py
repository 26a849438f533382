"""How many messages arrive on a subscription in a given time: a rate, compared within one run.

Shared by the tests and the benchmarks (``bench/status_traffic.py`` loads this file by path, as
it loads ``tests/agent/sample_tasks.py``).
"""

from __future__ import annotations

import asyncio

from edge.bus import Subscription


async def count_arrivals(sub: Subscription, seconds: float) -> int:
    """The messages ``sub`` hands out during the next ``seconds`` (queued ones count too)."""
    n, loop = 0, asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                await sub.get()
        except TimeoutError:
            break
        n += 1
    return n
