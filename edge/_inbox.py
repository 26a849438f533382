"""The inputs of one task instance: a bounded lane per port that remembers arrival order.

Messages of all inputs arrive on one connection in one order. Each port has its own
:class:`Lane`, and every item carries its arrival number, so a task can read one port
(``get(port)``) or all of them in the order they arrived (``get_any()``) from the same lanes.

A lane is bounded three ways (:class:`Limits`): by the **bytes** it holds (``EDGE_QUEUE_BYTES``,
4 MiB by default: a burst of tens of thousands of small frames fits, a few video frames do), by a
**frame count** ceiling for the per-message overhead (``EDGE_QUEUE_SIZE``, 10,000), and
optionally by **age** (``EDGE_QUEUE_AGE`` seconds: an item queued longer is stale and dropped
instead of handed out). MQTT delivers in bursts, so the queue must hold a burst even when the
task keeps up on average; it drops only when the task really falls behind. What a full lane
drops is its port's :class:`Policy`:

* ``Policy.OLDEST`` (frames of live streams, control values): the oldest item goes; every item
  stands on its own. A single item larger than the byte bound is still queued, alone.
* ``Policy.KEYFRAME`` (encoded media packets): a packet needs the ones before it back to the
  last keyframe. When the lane overflows, when an item goes stale, when the pusher says frames
  were lost before this one (``gap=True``: the task's decoding found a hole in the input's
  ``seq``), or when the consumer reports a decode error (:meth:`Lane.resync`), the lane drops
  everything that depends on the lost packets: queued
  packets, and new ones too until the next keyframe, which starts a decodable run again. Before
  its first keyframe (a late subscriber) a lane drops everything as well.

Every drop is counted per lane (``dropped``); nothing here ever blocks the caller of ``push``
(the bus's receive path).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

__all__ = ["QUEUE_BYTES", "QUEUE_FRAMES", "Inbox", "Lane", "Limits", "Policy"]

T = TypeVar("T")

#: the defaults of EDGE_QUEUE_BYTES and EDGE_QUEUE_SIZE
QUEUE_BYTES = 4 * 1024 * 1024
QUEUE_FRAMES = 10_000


class Policy(Enum):
    """What a lane drops when it is full."""

    OLDEST = "oldest"
    KEYFRAME = "keyframe"


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one input lane: frames (count ceiling), bytes, and the age of a queued item
    in seconds after which it is stale (None: items never go stale)."""

    frames: int = QUEUE_FRAMES
    bytes: int | None = QUEUE_BYTES
    age: float | None = None

    def lane(self, policy: Policy = Policy.OLDEST) -> Lane[Any]:
        return Lane(maxlen=self.frames, max_bytes=self.bytes, max_age=self.age, policy=policy)


class Lane(Generic[T]):
    """One input's bounded queue and its drop policy; items carry their arrival number."""

    def __init__(self, *, maxlen: int, max_bytes: int | None = None, max_age: float | None = None,
                 policy: Policy = Policy.OLDEST) -> None:
        if maxlen < 1:
            raise ValueError(f"a lane holds at least 1 item, not {maxlen}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"a lane holds at least 1 byte, not {max_bytes}")
        if max_age is not None and not max_age > 0:
            raise ValueError(f"the age limit of a lane is a positive number of seconds, not {max_age}")
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.policy = policy
        #: items this lane threw away; of them, the ones that went stale; the most it ever held
        self.dropped = 0
        self.stale = 0
        self.high_water = 0
        #: bytes queued now (as given to ``put``)
        self.bytes = 0
        #: times the lane lost sync (overflow, staleness, seq gap, decode error) and waited for a keyframe
        self.resyncs = 0
        # (arrival number, item, size, arrival time, keyframe)
        self._items: deque[tuple[int, T, int, float, bool]] = deque()
        self._synced = policy is Policy.OLDEST

    def __len__(self) -> int:
        return len(self._items)

    @property
    def synced(self) -> bool:
        """Whether new packets are accepted (False: waiting for a keyframe)."""
        return self._synced

    def _full(self, size: int) -> bool:
        items = self._items
        if not items:
            return False
        return len(items) >= self.maxlen or (self.max_bytes is not None and self.bytes + size > self.max_bytes)

    def put(self, order: int, item: T, *, size: int = 0, now: float = 0.0, keyframe: bool = True,
            gap: bool = False) -> bool:
        """Queue ``item`` (``size`` bytes, arrived at ``now``) unless the policy drops it; True if queued.
        ``gap``: frames were lost just before this one."""
        items = self._items
        if self.policy is Policy.OLDEST:
            while self._full(size):
                self.bytes -= items.popleft()[2]
                self.dropped += 1
        else:
            if gap:
                self._lose_sync()  # what is queued came before the gap and stays decodable
            if self._full(size):
                self.clear()
                self._lose_sync()
            if not self._synced:
                if not keyframe:
                    self.dropped += 1
                    return False
                self._synced = True
        items.append((order, item, size, now, keyframe))
        self.bytes += size
        self.high_water = max(self.high_water, len(items))
        return True

    def expire(self, now: float) -> int:
        """Drop the items queued more than ``max_age`` seconds before ``now`` (counted); how many."""
        if self.max_age is None:
            return 0
        items, cutoff, count = self._items, now - self.max_age, 0
        while items and items[0][3] < cutoff:
            self.bytes -= items.popleft()[2]
            count += 1
        if count:
            self.dropped += count
            self.stale += count
            if self.policy is Policy.KEYFRAME:  # what follows the stale packets cannot be decoded
                self.resync()
        return count

    def _lose_sync(self) -> None:
        if self._synced:
            self._synced = False
            self.resyncs += 1

    def resync(self) -> None:
        """The consumer could not decode what it got: drop up to the next keyframe (queued or not)."""
        if self.policy is not Policy.KEYFRAME:
            return
        items = self._items
        while items and not items[0][4]:
            self.bytes -= items.popleft()[2]
            self.dropped += 1
        if not items:
            self._lose_sync()

    def head(self) -> int | None:
        return self._items[0][0] if self._items else None

    def pop(self) -> T:
        _, item, size, _, _ = self._items.popleft()
        self.bytes -= size
        return item

    def clear(self) -> int:
        """Drop everything queued (counted); returns how many."""
        count = len(self._items)
        self._items.clear()
        self.bytes = 0
        self.dropped += count
        return count


class Inbox(Generic[T]):
    """The lanes of one task: filled as messages arrive, read by one consumer per port or in arrival order.

    ``Inbox(lanes)`` with a lane per port, or ``Inbox(ports, limits=Limits(...))`` for lanes that
    all drop the oldest item. ``clock`` (seconds, monotonic) dates items for the age limit.
    """

    def __init__(self, lanes: Mapping[str, Lane[T]] | Iterable[str], *, limits: Limits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(lanes, Mapping):
            self.lanes: dict[str, Lane[T]] = dict(lanes)
        else:
            made = limits or Limits()
            self.lanes = {port: made.lane() for port in lanes}
        self._counter = itertools.count()
        self._clock = clock
        #: one future per coroutine waiting in wait(): readers of different ports may wait at once
        self._waiters: list[asyncio.Future[None]] = []
        self._aged = any(lane.max_age is not None for lane in self.lanes.values())
        self._only = next(iter(self.lanes.items())) if len(self.lanes) == 1 else None

    def __getitem__(self, port: str) -> Lane[T]:
        return self.lanes[port]

    def __contains__(self, port: object) -> bool:
        return port in self.lanes

    @property
    def dropped(self) -> int:
        """Items dropped on all ports (full lanes, stale items, packets that lost their keyframe)."""
        return sum(lane.dropped for lane in self.lanes.values())

    @property
    def queued(self) -> int:
        """Items waiting, on all ports."""
        return sum(map(len, self.lanes.values()))

    def push(self, port: str, item: T, *, size: int = 0, keyframe: bool = True, gap: bool = False) -> bool:
        """Queue ``item`` of ``size`` bytes on ``port`` (the port's policy may drop it); True if queued.
        ``gap``: frames of the input were lost just before this one."""
        lane = self.lanes[port]
        now = self._clock() if self._aged else 0.0
        if self._aged:
            lane.expire(now)
        queued = lane.put(next(self._counter), item, size=size, now=now, keyframe=keyframe, gap=gap)
        if queued and self._waiters:
            self._wake()
        return queued

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def feeder(self, port: str) -> Callable[[T, int], object]:
        """``put(item, size)`` for ``port``: :meth:`push` without ``keyframe`` and ``gap``, made once per
        port for the receive path (a relay calls it for every frame)."""
        lane = self.lanes[port]
        if lane.policy is not Policy.OLDEST or lane.max_age is not None:
            return lambda item, size: self.push(port, item, size=size)
        items, maxlen, counter, waiters = lane._items, lane.maxlen, self._counter, self._waiters
        cap = lane.max_bytes if lane.max_bytes is not None else 1 << 62

        def put(item: T, size: int) -> None:
            if items and (len(items) >= maxlen or lane.bytes + size > cap):
                lane.put(next(counter), item, size=size)  # full: the lane drops and counts
            else:
                items.append((next(counter), item, size, 0.0, True))
                lane.bytes += size
                if len(items) > lane.high_water:  # noqa: PLR1730 (no call to max() per frame)
                    lane.high_water = len(items)
            if waiters:
                self._wake()
        return put

    def expire(self) -> int:
        """Drop the stale items of every lane (reading does this too); how many."""
        if not self._aged:
            return 0
        now = self._clock()
        return sum(lane.expire(now) for lane in self.lanes.values())

    async def wait(self) -> None:
        """Until the next push. Look at the lanes first: a push while nobody waits wakes nobody later."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)

    def get_nowait(self, port: str) -> T | None:
        """The oldest item of ``port``, or None."""
        lane = self.lanes[port]
        if self._aged:
            lane.expire(self._clock())
        return lane.pop() if len(lane) else None

    async def get(self, port: str) -> T:
        """The oldest item of ``port``, waiting for one (forever on a port nothing feeds)."""
        while (item := self.get_nowait(port)) is None:
            await self.wait()
        return item

    def pop_any(self, ports: Iterable[str] | None = None) -> tuple[str, T] | None:
        """The earliest arrival among ``ports`` (default: all), or None if they are empty (readers
        drain batches with it)."""
        if self._aged:
            self.expire()
        if self._only is not None and ports is None:  # one input, the common case: no need to compare
            port, lane = self._only
            if not lane._items:
                return None
            entry = lane._items.popleft()
            lane.bytes -= entry[2]
            return port, entry[1]
        first: tuple[int, str] | None = None
        lanes = self.lanes
        for port in lanes if ports is None else ports:
            items = lanes[port]._items
            if items and (first is None or items[0][0] < first[0]):
                first = (items[0][0], port)
        return None if first is None else (first[1], lanes[first[1]].pop())

    async def get_any(self, ports: Iterable[str] | None = None) -> tuple[str, T]:
        """The earliest arrival among ``ports`` (default: all), waiting for one."""
        names = None if ports is None else list(ports)
        while (item := self.pop_any(names)) is None:
            await self.wait()
        return item

    def drain(self) -> list[tuple[str, T]]:
        """Take everything queued, in arrival order (for a task that finishes its work as it stops)."""
        queued = [(entry[0], port, entry[1]) for port, lane in self.lanes.items() for entry in lane._items]
        for lane in self.lanes.values():
            lane._items.clear()
            lane.bytes = 0
        queued.sort(key=lambda entry: entry[0])
        return [(port, item) for _, port, item in queued]
