"""The inbox of a task instance: bounded queues per input, read per port or in arrival order."""

from __future__ import annotations

import asyncio

from edge._inbox import Inbox
from edge.bus import Message


def msg(n: int) -> Message:
    return Message("t", str(n).encode())


def test_pop_any_hands_out_messages_in_arrival_order_across_ports():
    inbox = Inbox(["a", "b", "c"], maxsize=10)
    for port, n in [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)]:
        inbox.push(port, msg(n))
    order = []
    while (item := inbox.pop_any()) is not None:
        order.append((item[0], int(item[1].payload)))
    assert order == [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)]


def test_one_port_drops_the_oldest_when_full_and_counts():
    inbox = Inbox(["in"], maxsize=2)
    for n in range(5):
        inbox.push("in", msg(n))
    assert inbox.dropped == {"in": 3}
    assert [int(inbox.pop_any()[1].payload) for _ in range(2)] == [3, 4]
    assert inbox.pop_any() is None


async def test_get_any_and_get_wait_for_a_push():
    inbox = Inbox(["a", "b"], maxsize=10)
    waiting = asyncio.ensure_future(inbox.get_any())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.push("b", msg(7))
    port, message = await asyncio.wait_for(waiting, 1)
    assert (port, message.payload) == ("b", b"7")
    one = asyncio.ensure_future(inbox.get("a"))
    inbox.push("b", msg(8))  # another port: get("a") goes on waiting
    await asyncio.sleep(0)
    assert not one.done()
    inbox.push("a", msg(9))
    assert (await asyncio.wait_for(one, 1)).payload == b"9"
    assert inbox.pop_any()[1].payload == b"8"
