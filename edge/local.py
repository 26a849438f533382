"""Frames between tasks of one agent, handed over in-process, and who outside watches their streams.

Two tasks of one agent wired together need no broker between them: an array a camera sends to the
encoder beside it does not have to be encoded into CBOR, copied into the broker and back, and
decoded. :class:`LocalStreams` is the agent's switchboard for that:

* An input whose source is the stream topic of a task **on the same agent**, subscribed exactly
  (not through a wildcard) and not waiting for QoS 1 (``overflow="wait"``), is fed in-process: it
  registers with :meth:`LocalStreams.attach` instead of subscribing at the broker.
* A stream whose every consumer is fed that way is **local**: its producer hands each frame to
  them (:meth:`deliver`). A frame whose value is an array of :data:`LOCAL_ONLY_BYTES` or more (video,
  pictures) goes to the broker only while someone outside the agent **watches** the stream
  (:meth:`observed`): it is not even encoded otherwise. Smaller values (numbers, text, audio) are
  published as always, so any MQTT client sees them. A stream with no consumer, with a consumer on
  another agent or through a wildcard or a ``topic:`` edge, goes to the broker as always.
* Watching is a lease: the inspector, the debug sidebar, node status lines and
  ``edge sub`` publish :class:`~edge.protocol.Watch` on ``{root}/watch`` while they look at a topic
  filter (:class:`edge.watch.Watching`), again every ``lease / 3`` seconds; the stream goes to the broker
  until ``lease`` seconds after the last one. A watcher sees frames from its next lease on.

An array in a frame handed over in-process is the producer's own, seen by its consumers through a
read-only view: a task must not write into an array it has sent (arrays decoded from the broker are
read-only too). Values other than arrays and byte strings are encoded and decoded as they would be
through the broker (cheap for small values, and what a consumer gets is the same either way).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from edge.frames import Frame
from edge.topics import matches

__all__ = ["LEASE_MAX", "LOCAL_ONLY_BYTES", "LocalStreams", "local_value", "value_size"]

#: arrays of at least this many bytes between tasks of one agent are not published (nor encoded) unless
#: watched: video and images; smaller values (numbers, text, audio) are published as always, so any MQTT
#: client sees them, and handed over in-process too
LOCAL_ONLY_BYTES = 64 * 1024
LEASE_MAX = 60.0  # s: the longest lease one watch message buys (a longer one is cut to this)
_SMALL = 64  # bytes counted for a value with no size of its own (a queue's byte bound)


def _ndarray() -> Any:
    """numpy's array type if numpy is loaded (no array exists otherwise: not loaded for us alone)."""
    numpy = sys.modules.get("numpy")
    return numpy.ndarray if numpy is not None else None


def value_size(value: Any) -> int:
    """Bytes a value handed over in-process takes, for the receiving queue's byte bound."""
    ndarray = _ndarray()
    if ndarray is not None and isinstance(value, ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray | memoryview | str):
        return len(value)
    return _SMALL


def local_value(value: Any) -> Any | None:
    """What a consumer gets in-process for ``value`` without encoding it (a read-only view of an array,
    a byte string as it is); None where it must go through the encoder to be what the broker would give."""
    if type(value) is bytes:
        return value
    ndarray = _ndarray()
    if ndarray is not None and isinstance(value, ndarray) and value.dtype.kind in "biufc" \
            and value.dtype.byteorder in "=|<":
        view = value.view()
        view.flags.writeable = False
        return view
    return None


class LocalStreams:
    """One agent's in-process consumers by stream topic, its local streams and the watch leases."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._consumers: dict[str, list[Callable[[Frame, int], object]]] = {}
        self._local: frozenset[str] = frozenset()
        self._leases: dict[str, float] = {}  # topic filter -> until (clock)
        self._generation = 0
        self._seen: dict[str, tuple[int, float]] = {}  # topic -> (generation, watched until)
        self._clock = clock
        #: frames handed over in-process
        self.delivered = 0

    # -- the wiring (the agent sets it from its specs) -----------------------------------------------
    def set_local(self, topics: Iterable[str]) -> None:
        """The streams whose every consumer is on this agent and fed in-process."""
        self._local = frozenset(topics)

    def is_local(self, topic: str) -> bool:
        return topic in self._local

    def attach(self, topic: str, put: Callable[[Frame, int], object]) -> Callable[[], None]:
        """Feed ``put(frame, size)`` every frame sent on ``topic`` by a task of this agent; the detach."""
        self._consumers.setdefault(topic, []).append(put)

        def detach() -> None:
            puts = self._consumers.get(topic, [])
            if put in puts:
                puts.remove(put)
            if not puts:
                self._consumers.pop(topic, None)
        return detach

    def consumers(self, topic: str) -> int:
        return len(self._consumers.get(topic, ()))

    def feeds(self, topics: list[str]) -> bool:
        """Whether a task of this agent takes frames on one of ``topics`` in-process (a send asks: with no
        in-process reader on the agent at all, it costs one look at an empty dict)."""
        consumers = self._consumers
        return bool(consumers) and any(topic in consumers for topic in topics)

    def deliver(self, topic: str, frame: Frame, size: int) -> bool:
        """Hand ``frame`` to the in-process consumers of ``topic``; False if it has none."""
        puts = self._consumers.get(topic)
        if not puts:
            return False
        for put in puts:
            put(frame, size)
        self.delivered += 1
        return True

    def needs_broker(self, topic: str) -> bool:
        """Whether a frame on ``topic`` must (also) go to the broker: not a local stream, or watched."""
        return topic not in self._local or self.observed(topic)

    # -- watchers ------------------------------------------------------------------------------------
    def watch(self, pattern: str, lease: float) -> None:
        """Someone outside looks at ``pattern`` (a topic filter) for ``lease`` more seconds."""
        until = self._clock() + min(max(lease, 0.0), LEASE_MAX)
        if until > self._leases.get(pattern, 0.0):
            self._leases[pattern] = until
            self._generation += 1
        if len(self._leases) > 1000:  # many watchers come and go: forget the ones that expired
            now = self._clock()
            self._leases = {p: u for p, u in self._leases.items() if u > now}
            self._generation += 1

    def observed(self, topic: str) -> bool:
        """Whether a watch lease on a filter matching ``topic`` runs now."""
        now = self._clock()
        seen = self._seen.get(topic)
        if seen is None or seen[0] != self._generation:
            until = max((u for p, u in self._leases.items() if matches(p, topic)), default=0.0)
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[topic] = seen = (self._generation, until)
        return now < seen[1]

