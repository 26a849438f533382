"""Bounded queues between a media task's inputs and its (slow) codec work, with drop policies.

The runtime hands a task its input frames through bounded per-port queues (``EDGE_QUEUE_SIZE``
messages each, oldest dropped). A media task drains them at once into :class:`Lanes`, one
short :class:`Lane` per input, and does its heavy work (decode, encode, scale) in a worker
thread while the event loop keeps draining. What a full lane drops depends on what it holds:

* ``Policy.OLDEST`` (raw frames, control values): the oldest queued item goes; every raw
  frame stands on its own.
* ``Policy.KEYFRAME`` (encoded packets): a packet needs the ones before it back to the last
  keyframe. When the lane overflows, when the input's ``seq`` jumps (frames lost on the way:
  in the runtime's queue, the broker, the network), or when the consumer reports a decode
  error, the lane drops everything that depends on the lost packets: queued packets are
  dropped and new ones too, until the next keyframe, which starts a decodable run again.
  Before its first keyframe (a late subscriber) a lane drops everything as well.

Memory is so bounded by ``maxlen`` items per lane; every drop is counted per lane.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Generic, TypeVar

__all__ = ["Lane", "Lanes", "Policy"]

T = TypeVar("T")


class Policy(Enum):
    OLDEST = "oldest"
    KEYFRAME = "keyframe"


class Lane(Generic[T]):
    """One input's bounded queue and its drop policy; items carry their arrival number."""

    def __init__(self, *, maxlen: int, policy: Policy = Policy.OLDEST) -> None:
        if maxlen < 1:
            raise ValueError(f"a lane holds at least 1 item, not {maxlen}")
        self.maxlen = maxlen
        self.policy = policy
        #: items this lane threw away; the most it ever held
        self.dropped = 0
        self.high_water = 0
        #: times the lane lost sync (overflow, seq gap, decode error) and waited for a keyframe
        self.resyncs = 0
        self._items: deque[tuple[int, T, bool]] = deque()
        self._synced = policy is Policy.OLDEST
        self._last_seq: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def synced(self) -> bool:
        """Whether new packets are accepted (False: waiting for a keyframe)."""
        return self._synced

    def put(self, order: int, item: T, *, seq: int | None = None, keyframe: bool = True) -> bool:
        """Queue ``item`` unless the policy drops it; True if it was queued."""
        items = self._items
        if self.policy is Policy.OLDEST:
            if len(items) >= self.maxlen:
                items.popleft()
                self.dropped += 1
            items.append((order, item, keyframe))
            self.high_water = max(self.high_water, len(items))
            return True
        if seq is not None:
            if self._last_seq is not None and seq != self._last_seq + 1 and self._synced:
                self._lose_sync()  # what is queued came before the gap and stays decodable
            self._last_seq = seq
        if len(items) >= self.maxlen:
            self.dropped += len(items)
            items.clear()
            self._lose_sync()
        if not self._synced:
            if not keyframe:
                self.dropped += 1
                return False
            self._synced = True
        items.append((order, item, keyframe))
        self.high_water = max(self.high_water, len(items))
        return True

    def _lose_sync(self) -> None:
        if self._synced:
            self._synced = False
            self.resyncs += 1

    def resync(self) -> None:
        """The consumer could not decode what it got: drop up to the next keyframe (queued or not)."""
        if self.policy is not Policy.KEYFRAME:
            return
        items = self._items
        while items and not items[0][2]:
            items.popleft()
            self.dropped += 1
        if not items:
            self._lose_sync()

    def head(self) -> int | None:
        return self._items[0][0] if self._items else None

    def pop(self) -> T:
        return self._items.popleft()[1]

    def clear(self) -> int:
        """Drop everything queued (counted); returns how many."""
        count = len(self._items)
        self._items.clear()
        self.dropped += count
        return count


class Lanes(Generic[T]):
    """The lanes of one task: filled by its pump, read by one consumer in arrival order."""

    def __init__(self, lanes: Mapping[str, Lane[T]]) -> None:
        self.lanes = dict(lanes)
        self._counter = itertools.count()
        self._waiter: asyncio.Future[None] | None = None

    def __getitem__(self, port: str) -> Lane[T]:
        return self.lanes[port]

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self.lanes.values())

    def put(self, port: str, item: T, *, seq: int | None = None, keyframe: bool = True) -> bool:
        queued = self.lanes[port].put(next(self._counter), item, seq=seq, keyframe=keyframe)
        waiter = self._waiter
        if queued and waiter is not None and not waiter.done():
            waiter.set_result(None)
        return queued

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def get(self, ports: Iterable[str] | None = None) -> tuple[str, T]:
        """The earliest queued item among ``ports`` (default: all), waiting for one."""
        names = list(self.lanes if ports is None else ports)
        while True:
            best: tuple[int, str] | None = None
            for port in names:
                order = self.lanes[port].head()
                if order is not None and (best is None or order < best[0]):
                    best = (order, port)
            if best is not None:
                return best[1], self.lanes[best[1]].pop()
            await self._wait()

    def drain(self) -> list[tuple[str, T]]:
        """Take everything queued, in arrival order (for a task that finishes its work as it stops)."""
        queued = [(order, port, item) for port, lane in self.lanes.items() for order, item, _ in lane._items]
        for lane in self.lanes.values():
            lane._items.clear()
        queued.sort(key=lambda entry: entry[0])
        return [(port, item) for _, port, item in queued]

    def get_nowait(self, port: str) -> T | None:
        lane = self.lanes[port]
        return lane.pop() if len(lane) else None
