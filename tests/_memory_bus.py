"""An in-process bus for tests: :class:`~edge.bus.Bus`'s publish/subscribe API with no broker.

A publish hands the message to every matching subscription at once (the real
:class:`~edge.bus.Subscription` objects, so callbacks, queues and drop counts behave as on a
bus); retained messages are kept per topic. For tests that feed thousands of frames to a task
(tests/tasks/test_hostile_values.py) or supervise one without a broker; everything that is
about MQTT itself runs on the real brokers.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.bus import Message, Overflow, Subscription
from edge.topics import validate_topic

__all__ = ["MEMORY", "MemoryBus"]

MEMORY = "memory://"
"""The ``url`` that runs a task on a :class:`MemoryBus`."""


class MemoryBus:
    """An in-process bus with :class:`~edge.bus.Bus`'s publish/subscribe API: a publish hands the
    message to every matching subscription at once (retained messages kept per topic)."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._retained: dict[str, bytes] = {}
        self.url = MEMORY

    async def __aenter__(self) -> MemoryBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sub in list(self._subs):
            await sub.aclose()

    def subscribe(self, pattern: str, *, qos: int = 0, maxsize: int | None = None,
                  overflow: Overflow = Overflow.DROP_OLDEST, callback: Callable[[Message], object] | None = None,
                  ) -> Subscription:
        return Subscription(self, pattern, qos=qos, maxsize=maxsize or 1000,  # type: ignore[arg-type]
                            overflow=overflow, callback=callback)

    async def _add_subscription(self, sub: Subscription) -> None:
        self._subs.append(sub)
        for topic, payload in list(self._retained.items()):
            if sub.matches(topic):
                sub.deliver(Message(topic, payload, 1, True))

    async def _remove_subscription(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def _log_callback_error(self, sub: Subscription, message: Message) -> None:
        raise AssertionError(f"the callback of {sub.filter!r} failed on {message.topic!r}")

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        validate_topic(topic)
        if retain:
            if payload:
                self._retained[topic] = bytes(payload)
            else:
                self._retained.pop(topic, None)
        message = Message(topic, bytes(payload), qos, False)
        for sub in [s for s in self._subs if s.matches(topic)]:
            sub.deliver(message)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self.publish_nowait(topic, payload, qos=qos, retain=retain)

    def dropped_offline(self, topic: str) -> int:
        return 0
