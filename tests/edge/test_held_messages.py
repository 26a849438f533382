"""Held QoS 1 messages: one PUBACK once every holding subscription has let go (edge.bus._message),
and a holding subscription's queue (edge.bus._subscription), without a broker."""

from __future__ import annotations

import asyncio

from edge.bus import Message, Subscription
from edge.bus._message import HeldMessage


class Owner:
    """What a subscription asks of its bus, doing nothing."""

    async def _add_subscription(self, sub: Subscription, /) -> None:
        pass

    async def _remove_subscription(self, sub: Subscription, /) -> None:
        pass

    def _log_callback_error(self, sub: Subscription, message: Message, /) -> None:
        raise AssertionError("no callback here")


def held(n: int, releases: list[int], *, holders: int = 1) -> HeldMessage:
    message = HeldMessage("t", b"%d" % n, 1, False, holders=holders)
    assert message.defer(lambda: releases.append(n))
    return message


def test_the_puback_goes_once_the_last_of_its_holders_acks():
    releases: list[int] = []
    message = held(7, releases, holders=3)
    message.ack()
    message.ack()
    assert releases == [] and message.held
    message.ack()
    assert releases == [7] and not message.held
    message.ack()  # one too many: nothing more
    assert releases == [7]


def test_a_message_its_holders_took_during_delivery_is_not_deferred():
    message = HeldMessage("t", b"x", 1, False, holders=2)
    message.ack()
    message.ack()
    assert not message.defer(lambda: None)  # the transport acknowledges it as any other


def test_a_plain_message_is_never_held():
    message = Message("t", b"x", 1)
    message.ack()
    assert not message.held


async def test_a_holding_queue_keeps_held_messages_past_maxsize_and_acks_as_the_reader_takes():
    releases: list[int] = []
    sub = Subscription(Owner(), "t", qos=1, maxsize=2, hold=True)
    for n in range(4):
        sub.deliver(held(n, releases))
    assert sub.queued == 4 and sub.dropped == 0 and releases == []
    sub.deliver(Message("t", b"zero", 0))  # QoS 0 behind held messages: it goes, they stay
    assert sub.queued == 4 and sub.dropped == 1
    assert int((await sub.get()).payload) == 0 and releases == [0]
    assert int(sub.get_nowait().payload) == 1 and releases == [0, 1]


def test_a_queue_that_does_not_hold_never_acks_a_shared_held_message():
    releases: list[int] = []
    sub = Subscription(Owner(), "t", qos=1, maxsize=1)
    message = held(1, releases)
    sub.deliver(message)
    sub.deliver(held(2, releases))  # full: the oldest is dropped, but it is not this queue's to ack
    assert sub.get_nowait().payload == b"2"
    assert releases == [] and message.held


def test_queue_get_of_a_closed_empty_subscription_still_ends():
    sub = Subscription(Owner(), "t", qos=1, hold=True)
    sub._closed = True

    async def read() -> None:
        try:
            await sub.get()
        except StopAsyncIteration:
            return
        raise AssertionError("no end")

    asyncio.run(read())
