"""What an agent tells the broker about its tasks: statuses on change, metrics in bounded batches.

A task's retained **status** (``{root}/deployments/{dep}/status/{task}``) says what the task is:
its state, error, crash notice, errors history, type, version. :class:`StatusPublisher` sends it
when one of those changes, never because only counters or rates moved: every retained change
makes the managed Mosquitto save its database, and 10,000 busy tasks republishing their statuses
every 2 s kept it saturated and starved the other deployments on the broker
(``bench/status_traffic.py``). Changes of one task within :data:`COALESCE` seconds go as one
message (``pending``, ``starting``, ``running`` of a deployment's start: only ``running``), so a
state change waits at most that long; the last state is always sent. A status carries a snapshot
of the task's metrics as of its ``ts`` (what they were at that change).

The **metrics** go in batches on ``{root}/agents/{id}/metrics`` (QoS 0, never retained), and only
while someone reads them: a request on ``{root}/agents/{id}/metrics/request``
(:class:`~edge.protocol.MetricsRequest`) opens a **lease** of ``watch`` seconds (later requests
extend it), during which :class:`MetricsBatcher` sends, once per report interval, the metrics of
the tasks whose metrics changed since they were last sent (a task that went idle is sent once
more, with rates 0). With no lease, no batch goes: counters that move every second made every
agent running tasks send a batch every 2 s besides its 5 s heartbeat, 3.0 messages per agent per
5 s where the fleet's target is 1 (``bench/scale.py``); a reader (the panel while a browser shows
it, ``edge ls tasks``) asks and renews (``edge.controller.Fleet.watch``). A batch
is split into at most :data:`~edge.protocol.MAX_BATCH_PARTS` messages of at most
:data:`~edge.protocol.MAX_BATCH_TASKS` tasks and :data:`CHUNK_BYTES` bytes each; tasks that do
not fit wait for the next batch, those sent longest ago first. A **full** batch (every task with
metrics) answers a reader's request on ``{root}/agents/{id}/metrics/request`` at once, at most
once per interval (later requests are answered at the next one), and follows every connect. So an
agent sends at most ``2 * MAX_BATCH_PARTS`` metrics messages per interval (8 a second at the
default 2 s) whatever its task count, and none when no reader holds a lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from edge.bus import Bus
from edge.errors import EdgeError
from edge.frames import encode_value, now_ms
from edge.instance import Instance
from edge.protocol import (
    MAX_BATCH_PARTS,
    MAX_BATCH_TASKS,
    PROTOCOL_REVISION,
    MetricsBatch,
    TaskMetrics,
    TaskMetricsEntry,
    TaskStatusMsg,
)
from edge.topics import Topics

__all__ = ["CHUNK_BYTES", "COALESCE", "MetricsBatcher", "StatusPublisher", "chunk"]

log = logging.getLogger("edge.host")

COALESCE: Final = 0.25  # s a status change may wait for the next changes of the same task
CHUNK_BYTES: Final = 256 * 1024  # bytes of one metrics message, at most (less if the payload limit is lower)
_ENVELOPE: Final = 256  # bytes a batch message takes besides its tasks, at most

Key = tuple[str, str]
#: what a status says: all of it but its time and its metrics snapshot
_MEANING: Final = tuple(name for name in TaskStatusMsg.model_fields if name not in ("ts", "metrics"))


class StatusPublisher:
    """Publishes a task's retained status when what it says changes (see the module docstring)."""

    def __init__(self, *, bus: Bus, topics: Topics, agent_id: str, coalesce: float = COALESCE) -> None:
        self._bus = bus
        self._topics = topics
        self._agent_id = agent_id
        self._coalesce = coalesce
        self._published: dict[Key, tuple[Any, ...]] = {}  # the last status sent per task, less its ts and metrics
        self._pending: dict[Key, Instance] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: retained statuses sent
        self.sent = 0

    def changed(self, instance: Instance) -> None:
        """``instance`` changed state: publish its status within :data:`COALESCE` s."""
        self._pending[instance.assignment.key] = instance
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._coalesce, self.flush)

    def flush(self) -> None:
        """Publish the statuses that wait, now."""
        self._timer = None
        pending, self._pending = self._pending, {}
        for instance in pending.values():
            self.publish(instance)

    def publish(self, instance: Instance, *, status: TaskStatusMsg | None = None, force: bool = False) -> bool:
        """Publish ``instance``'s status (or ``status``, from ``instance.status_msg()``) if its meaning changed
        since it was last sent, or ``force``; True if sent."""
        if status is None:
            status = instance.status_msg(agent=self._agent_id)
        if status.agent != self._agent_id:
            status = status.model_copy(update={"agent": self._agent_id})
        key = instance.assignment.key
        meaning = tuple(getattr(status, name) for name in _MEANING)
        self._pending.pop(key, None)
        if not force and self._published.get(key) == meaning:
            return False
        self._published[key] = meaning
        try:
            self._bus.publish_nowait(self._topics.task_status(*key), encode_value(status.dump()), qos=1, retain=True)
        except EdgeError as exc:
            log.warning("could not publish the status of %s: %s", instance.instance_id, exc)
            return False
        self.sent += 1
        return True

    def forget(self, key: Key) -> None:
        """The task is gone (or its status is about to be sent anew): drop what waits and what was sent."""
        self._pending.pop(key, None)
        self._published.pop(key, None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def chunk(entries: list[dict[str, Any]], sizes: list[int], *, limit: int,
          max_tasks: int = MAX_BATCH_TASKS, max_parts: int = MAX_BATCH_PARTS) -> list[list[dict[str, Any]]]:
    """``entries`` (with their encoded ``sizes``) in order, cut into at most ``max_parts`` lists of at most
    ``max_tasks`` entries and ``limit`` bytes; what does not fit is left out (an entry over ``limit`` alone too)."""
    parts: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for entry, size in zip(entries, sizes, strict=True):
        if size > limit:
            continue
        if current and (used + size > limit or len(current) >= max_tasks):
            parts.append(current)
            current, used = [], 0
            if len(parts) >= max_parts:
                return parts
        current.append(entry)
        used += size
    if current:
        parts.append(current)
    return parts


class MetricsBatcher:
    """Sends the metrics of an agent's tasks in bounded batches (see the module docstring)."""

    def __init__(self, *, bus: Bus, topic: str, interval: float, max_payload: int,
                 identity: Callable[[], tuple[str, int]]) -> None:
        self._bus = bus
        self._topic = topic
        self._interval = interval
        self._limit = max(1024, min(CHUNK_BYTES, max_payload) - _ENVELOPE)
        self._identity = identity  # the agent's (boot, epoch) now
        self._sent: dict[Key, TaskMetrics] = {}  # metrics as last sent, per task
        self._sent_in: dict[Key, int] = {}  # the batch each task was last sent in
        self._full_wanted = True  # a connect (and the start) is followed by a full batch
        self._last_full = -float("inf")
        self._watched_until = -float("inf")  # monotonic time the last lease ends
        self.seq = 0
        #: metrics messages sent; entries that did not fit a batch and waited for the next
        self.messages = 0
        self.deferred = 0

    def want_full(self) -> None:
        self._full_wanted = True

    def watch(self, seconds: float) -> None:
        """A reader wants the changed metrics for ``seconds`` from now (a lease; the longest one stands)."""
        self._watched_until = max(self._watched_until, time.monotonic() + seconds)

    @property
    def watched(self) -> bool:
        """A lease lasts: changed metrics go every interval."""
        return time.monotonic() < self._watched_until

    @property
    def full_allowed(self) -> bool:
        """A full batch may go now (at most one per interval)."""
        return time.monotonic() - self._last_full >= self._interval

    @property
    def full_wanted(self) -> bool:
        return self._full_wanted

    def forget(self, key: Key) -> None:
        self._sent.pop(key, None)
        self._sent_in.pop(key, None)

    def publish(self, current: Mapping[Key, TaskMetrics], *, full: bool) -> int:
        """Send the metrics in ``current`` that changed since they were last sent (all of them if
        ``full``), as one batch; the number of messages sent (none, unless ``full``, without a lease)."""
        if not full and not self.watched:
            return 0
        if full:
            self._full_wanted = False
            self._last_full = time.monotonic()
        keys: Iterable[Key] = current if full else [k for k, m in current.items() if self._sent.get(k) != m]
        ordered = sorted(keys, key=lambda k: self._sent_in.get(k, -1))  # waiting longest first
        if not ordered:
            return 0
        entries = [TaskMetricsEntry(deployment=k[0], task=k[1], metrics=current[k]).dump() for k in ordered]
        sizes = [len(encode_value(e)) for e in entries]
        parts = chunk(entries, sizes, limit=self._limit)
        self.seq += 1
        boot, epoch = self._identity()
        ts, sent = now_ms(), 0
        for i, part in enumerate(parts):
            batch = MetricsBatch(v=PROTOCOL_REVISION, boot=boot, epoch=epoch, seq=self.seq, ts=ts,
                                 interval=float(self._interval), full=full, part=i, parts=len(parts))
            # the entries are dumps of their model already: not serialized again as free-form values
            payload = {**batch.dump(), "tasks": part}
            try:
                self._bus.publish_nowait(self._topic, encode_value(payload), qos=0)
            except EdgeError as exc:
                log.warning("could not publish a metrics batch on %s: %s", self._topic, exc)
                continue
            self.messages += 1
            for entry in part:
                key = (entry["deployment"], entry["task"])
                self._sent[key], self._sent_in[key] = current[key], self.seq
                sent += 1
        self.deferred += len(entries) - sent
        return len(parts)
