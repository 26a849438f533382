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
* ``Policy.WAIT`` (frames that must not be lost: a sink writing to a file or a database): a
  full lane drops nothing it can make the sender wait for. A QoS 1 message that finds it full
  is *held*: kept past the bound, unacknowledged (the ``ack`` given to ``push``), and let in,
  acknowledged, only when the task takes an item and so makes room. The broker sends no more
  than its in-flight window of unacknowledged messages (our receive maximum), so it stops and
  keeps the rest queued in our session: what a lane holds is bounded by that window. A QoS 0
  message cannot be held (nobody waits for its acknowledgement): on a full lane the oldest
  queued item goes, as with ``OLDEST``, or, when messages are held (everything queued then is
  older than they are, and they must not be lost), the QoS 0 message itself; both counted in
  ``dropped``. A lane whose task takes nothing for ``stall`` seconds while it holds messages is
  *stuck*: it lets them all in (acknowledged, so they no longer take the window every QoS 1
  input of the connection shares) and drops the oldest from then on, counting ``overflow``,
  until its task takes an item again.

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

__all__ = ["QUEUE_BYTES", "QUEUE_FRAMES", "WAIT_STALL", "Inbox", "Lane", "Limits", "Policy"]

T = TypeVar("T")

#: the defaults of EDGE_QUEUE_BYTES and EDGE_QUEUE_SIZE
QUEUE_BYTES = 4 * 1024 * 1024
QUEUE_FRAMES = 10_000
#: the default of EDGE_QUEUE_STALL: s a wait lane may hold messages without its task taking one
WAIT_STALL = 30.0

Ack = Callable[[], None]


class Policy(Enum):
    """What a lane drops when it is full."""

    OLDEST = "oldest"
    KEYFRAME = "keyframe"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one input lane: frames (count ceiling), bytes, and the age of a queued item
    in seconds after which it is stale (None: items never go stale)."""

    frames: int = QUEUE_FRAMES
    bytes: int | None = QUEUE_BYTES
    age: float | None = None
    #: s a ``Policy.WAIT`` lane holds messages without its task taking any before it counts as stuck
    stall: float = WAIT_STALL

    def lane(self, policy: Policy = Policy.OLDEST) -> Lane[Any]:
        return Lane(maxlen=self.frames, max_bytes=self.bytes, max_age=self.age, policy=policy, stall=self.stall)


class Lane(Generic[T]):
    """One input's bounded queue and its drop policy; items carry their arrival number."""

    def __init__(self, *, maxlen: int, max_bytes: int | None = None, max_age: float | None = None,
                 policy: Policy = Policy.OLDEST, stall: float = WAIT_STALL) -> None:
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
        if not stall > 0:
            raise ValueError(f"the stall limit of a lane is a positive number of seconds, not {stall}")
        self.stall = stall
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
        self._synced = policy is not Policy.KEYFRAME
        # Policy.WAIT: messages held past the bound, unacknowledged, newest last, with their ack
        self._held: deque[tuple[int, T, int, float, Ack]] = deque()
        #: WAIT: the most messages it ever held at once; items dropped because it was stuck
        self.held_high_water = 0
        self.overflow = 0
        #: WAIT: items taken so far (the stall check's sign of life), and whether it is stuck now
        self.taken = 0
        self.stuck = False
        #: WAIT: False once its inbox is closed: nothing is held any more, every message acknowledged
        self.holding = True

    def __len__(self) -> int:
        return len(self._items) + len(self._held)

    @property
    def held(self) -> int:
        """Messages held unacknowledged past the bound now (``Policy.WAIT``)."""
        return len(self._held)

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
            gap: bool = False, ack: Ack | None = None) -> bool:
        """Queue ``item`` (``size`` bytes, arrived at ``now``) unless the policy drops it; True if queued.

        ``gap``: frames were lost just before this one. ``ack``: the item's acknowledgement, for a
        ``Policy.WAIT`` lane (None: it cannot wait, QoS 0); called when the item is let in, at once
        if there is room. Other policies ignore it.
        """
        items = self._items
        if self.policy is Policy.WAIT:
            return self._put_wait(order, item, size, now, ack)
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

    def _put_wait(self, order: int, item: T, size: int, now: float, ack: Ack | None) -> bool:
        items, held = self._items, self._held
        if not held and not self._full(size):
            items.append((order, item, size, now, True))
            self.bytes += size
            self.high_water = max(self.high_water, len(items))
            if ack is not None:
                ack()
            return True
        if ack is not None and not self.stuck and self.holding:
            held.append((order, item, size, now, ack))
            self.held_high_water = max(self.held_high_water, len(held))
            return True
        if held:  # QoS 0 behind held messages: everything queued is older and worth more
            self.dropped += 1
            return False
        while self._full(size):  # QoS 0, or a stuck lane: the oldest goes
            self.bytes -= items.popleft()[2]
            self.dropped += 1
            if self.stuck:
                self.overflow += 1
        items.append((order, item, size, now, True))
        self.bytes += size
        if ack is not None:
            ack()
        return True

    def _admit(self) -> None:
        """Let held messages in (acknowledged) while there is room, oldest first."""
        items, held = self._items, self._held
        while held and not self._full(held[0][2]):
            order, item, size, now, ack = held.popleft()
            items.append((order, item, size, now, True))
            self.bytes += size
            ack()

    def release(self) -> int:
        """The lane is stuck: let every held message in (acknowledged, past the bound) and drop the
        oldest from now on until its task takes an item again; how many were let in."""
        held, items = self._held, self._items
        count = len(held)
        self.stuck = True
        while held:
            order, item, size, now, ack = held.popleft()
            items.append((order, item, size, now, True))
            self.bytes += size
            ack()
        self.high_water = max(self.high_water, len(items))
        return count

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
            elif self._held:
                self._admit()
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
        if self.policy is Policy.WAIT:
            self.taken += 1
            self.stuck = False
            if self._held:
                self._admit()
        return item

    def clear(self) -> int:
        """Drop everything queued (counted; held messages acknowledged); returns how many."""
        count = len(self._items) + len(self._held)
        self._items.clear()
        self._let_go()
        self.bytes = 0
        self.dropped += count
        return count

    def _let_go(self) -> list[tuple[int, T]]:
        """Acknowledge and take out every held message (the consumer has them, or nobody will)."""
        held, self._held = self._held, deque()
        for entry in held:
            entry[4]()
        return [(entry[0], entry[1]) for entry in held]


class Inbox(Generic[T]):
    """The lanes of one task: filled as messages arrive, read by one consumer per port or in arrival order.

    ``Inbox(lanes)`` with a lane per port, or ``Inbox(ports, limits=Limits(...))`` for lanes that
    all drop the oldest item. ``clock`` (seconds, monotonic) dates items for the age limit;
    ``on_stall(port, count)`` hears of a wait lane found stuck (it let ``count`` messages go).
    """

    def __init__(self, lanes: Mapping[str, Lane[T]] | Iterable[str], *, limits: Limits | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_stall: Callable[[str, int], object] | None = None) -> None:
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
        only = next(iter(self.lanes.items())) if len(self.lanes) == 1 else None
        # the one-lane shortcut of pop_any skips Lane.pop, which a wait lane needs to let held messages in
        self._only = only if only is not None and only[1].policy is not Policy.WAIT else None
        self._wait_lanes = [lane for lane in self.lanes.values() if lane.policy is Policy.WAIT]
        #: told (port, messages let go) when a wait lane is found stuck
        self._on_stall = on_stall
        self._stall_timer: asyncio.TimerHandle | None = None
        self._stall_taken: list[int] = []
        #: times a wait lane was found stuck and let go of what it held
        self.stalls = 0

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
        """Items waiting, on all ports (held ones included)."""
        return sum(map(len, self.lanes.values()))

    @property
    def held(self) -> int:
        """Messages the wait lanes hold unacknowledged now."""
        return sum(lane.held for lane in self._wait_lanes)

    def push(self, port: str, item: T, *, size: int = 0, keyframe: bool = True, gap: bool = False,
             ack: Callable[[], None] | None = None) -> bool:
        """Queue ``item`` of ``size`` bytes on ``port`` (the port's policy may drop it); True if queued.

        ``gap``: frames of the input were lost just before this one. ``ack``: for a wait lane, the
        item's acknowledgement (called once it is let in)."""
        lane = self.lanes[port]
        now = self._clock() if self._aged else 0.0
        if self._aged:
            lane.expire(now)
        queued = lane.put(next(self._counter), item, size=size, now=now, keyframe=keyframe, gap=gap, ack=ack)
        if queued and self._waiters:
            self._wake()
        if lane._held and self._stall_timer is None:
            self._watch()
        return queued

    # -- wait lanes that stop taking ---------------------------------------------------------------
    def _watch(self) -> None:
        """Look again in ``stall`` s whether the wait lanes that hold messages took any meanwhile."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pushed from outside a loop (a unit test): nobody to look later
            return
        self._stall_taken = [lane.taken for lane in self._wait_lanes]
        self._stall_timer = loop.call_later(min(lane.stall for lane in self._wait_lanes), self._check_stalls)

    def _check_stalls(self) -> None:
        self._stall_timer = None
        for lane, taken in zip(self._wait_lanes, self._stall_taken, strict=True):
            if lane._held and lane.taken == taken:  # held the whole interval, took nothing
                self.stalls += 1
                count = lane.release()
                if self._on_stall is not None:
                    self._on_stall(next(port for port, each in self.lanes.items() if each is lane), count)
                if self._waiters:
                    self._wake()
        if any(lane._held for lane in self._wait_lanes):
            self._watch()

    def close(self) -> None:
        """Stop watching for stuck lanes and let go of every held message (acknowledged: nobody will
        take it now), as of any that still comes; the queued items stay for :meth:`drain`."""
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        for lane in self._wait_lanes:
            lane.release()
            lane.stuck = False
            lane.holding = False

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
        for port, lane in self.lanes.items():
            queued += [(order, port, item) for order, item in lane._let_go()]
            lane._items.clear()
            lane.bytes = 0
        queued.sort(key=lambda entry: entry[0])
        return [(port, item) for _, port, item in queued]
