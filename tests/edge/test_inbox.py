"""The inbox of a task instance: bounded queues per input, read per port or in arrival order.

Each input's queue is bounded by bytes, by a frame-count ceiling and optionally by age, so a
burst of thousands of small frames is absorbed while video frames stay bounded in memory.
"""

from __future__ import annotations

import asyncio

import pytest

from edge._inbox import QUEUE_BYTES, Inbox, Lane, Limits, Policy
from edge.bus import Message


def msg(n: int, size: int = 0) -> Message:
    return Message("t", str(n).encode().ljust(size, b" "))


def push(inbox: Inbox, port: str, message: Message) -> bool:
    return inbox.push(port, message, size=len(message.payload))


def payloads(inbox: Inbox) -> list[int]:
    found = []
    while (item := inbox.pop_any()) is not None:
        found.append(int(item[1].payload))
    return found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pop_any_hands_out_messages_in_arrival_order_across_ports():
    inbox = Inbox(["a", "b", "c"], limits=Limits(frames=10))
    for port, n in [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)]:
        inbox.push(port, msg(n))
    order = []
    while (item := inbox.pop_any()) is not None:
        order.append((item[0], int(item[1].payload)))
    assert order == [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)]


def test_one_port_drops_the_oldest_when_full_and_counts():
    inbox = Inbox(["in"], limits=Limits(frames=2))
    for n in range(5):
        inbox.push("in", msg(n))
    assert inbox["in"].dropped == 3 and inbox.dropped == 3
    assert [int(inbox.pop_any()[1].payload) for _ in range(2)] == [3, 4]
    assert inbox.pop_any() is None


async def test_get_any_and_get_wait_for_a_push():
    inbox = Inbox(["a", "b"], limits=Limits(frames=10))
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


def test_a_burst_of_thousands_of_small_frames_fits_the_default_bounds():
    """MQTT delivers in bursts: 5,000 frames of 64 B (a relay's 2,000-message window and more) are all kept."""
    inbox = Inbox(["in"])
    for n in range(5000):
        assert push(inbox, "in", msg(n, 64))
    assert inbox.dropped == 0 and inbox.queued == 5000 and inbox["in"].bytes == 5000 * 64
    assert payloads(inbox) == list(range(5000))
    assert inbox["in"].bytes == 0


def test_the_byte_bound_keeps_video_frames_bounded_in_memory():
    """By default an input holds at most 4 MiB: 1 MB frames (raw video) stop at four, the oldest go first."""
    inbox = Inbox(["in"])
    for n in range(10):
        push(inbox, "in", msg(n, 1_000_000))
    lane = inbox["in"]
    assert lane.bytes <= QUEUE_BYTES and len(lane) == 4 and lane.dropped == 6
    assert payloads(inbox) == [6, 7, 8, 9]


def test_bytes_and_frames_bound_each_port_on_its_own():
    inbox = Inbox(["a", "b"], limits=Limits(frames=1000, bytes=1000))
    for n in range(20):
        push(inbox, "a", msg(n, 100))  # bytes bind: 10 of 100 B
    for n in range(20):
        push(inbox, "b", msg(n, 1))  # 20 B: nothing dropped
    assert (inbox["a"].dropped, len(inbox["a"]), inbox["a"].bytes) == (10, 10, 1000)
    assert (inbox["b"].dropped, len(inbox["b"])) == (0, 20)
    counted = Inbox(["in"], limits=Limits(frames=3, bytes=None))  # the frame ceiling alone
    for n in range(10):
        push(counted, "in", msg(n, 1))
    assert counted.dropped == 7 and payloads(counted) == [7, 8, 9]


def test_a_frame_larger_than_the_byte_bound_is_kept_alone():
    inbox = Inbox(["in"], limits=Limits(bytes=1000))
    push(inbox, "in", msg(1, 10))
    push(inbox, "in", msg(2, 5000))  # the big one pushes out the rest, but is queued
    assert (inbox.dropped, inbox.queued, inbox["in"].bytes) == (1, 1, 5000)
    push(inbox, "in", msg(3, 10))
    assert inbox.dropped == 2 and payloads(inbox) == [3]


def test_frames_older_than_the_age_limit_are_stale_dropped_and_counted():
    clock = Clock()
    inbox = Inbox(["a", "b"], limits=Limits(age=2.0), clock=clock)
    push(inbox, "a", msg(1))
    clock.now += 1.5
    push(inbox, "b", msg(2))
    clock.now += 1.0  # a's frame is 2.5 s old, b's 1.0 s
    assert inbox.pop_any()[1].payload == b"2"
    assert (inbox["a"].dropped, inbox["a"].stale, inbox["b"].dropped) == (1, 1, 0)
    push(inbox, "a", msg(3))
    clock.now += 5  # nobody read it in time: a reader finds nothing
    assert inbox.get_nowait("a") is None and inbox.dropped == 2 and inbox["a"].bytes == 0
    never = Inbox(["a"], clock=clock)  # no age limit by default: frames wait as long as it takes
    push(never, "a", msg(4))
    clock.now += 10_000
    assert payloads(never) == [4]


def test_stale_packets_make_a_keyframe_lane_wait_for_the_next_keyframe():
    clock = Clock()
    lane: Lane[int] = Limits(age=1.0).lane(Policy.KEYFRAME)
    inbox = Inbox({"in": lane}, clock=clock)
    for n, key in enumerate([True, False, False]):
        inbox.push("in", n, keyframe=key)
    clock.now += 0.6
    inbox.push("in", 3, keyframe=False)
    clock.now += 0.6  # 0, 1 and 2 are stale; 3 depends on them
    assert inbox.pop_any() is None
    assert (lane.dropped, lane.stale, lane.resyncs) == (4, 3, 1)
    assert not inbox.push("in", 4, keyframe=False)  # still waiting for a keyframe
    assert inbox.push("in", 5, keyframe=True)
    assert inbox.pop_any() == ("in", 5)


@pytest.mark.parametrize("bad", [{"maxlen": 0}, {"maxlen": 1, "max_bytes": 0}, {"maxlen": 1, "max_age": 0}])
def test_a_lane_refuses_bounds_that_hold_nothing(bad):
    with pytest.raises(ValueError, match="lane"):
        Lane(**bad)


async def test_readers_of_different_ports_wait_at_once_without_stealing_wakeups():
    """A task may read two inputs in two coroutines, or wait on an input nothing is wired to."""
    inbox = Inbox(["a", "b", "unwired"])
    readers = [asyncio.ensure_future(inbox.get(port)) for port in ("a", "unwired", "b")]
    await asyncio.sleep(0)
    push(inbox, "a", msg(1))
    push(inbox, "b", msg(2))
    a, unwired, b = readers
    assert (await asyncio.wait_for(a, 1)).payload == b"1"
    assert (await asyncio.wait_for(b, 1)).payload == b"2"
    await asyncio.sleep(0)
    assert not unwired.done()
    unwired.cancel()
    push(inbox, "a", msg(3))  # a cancelled reader leaves nothing behind
    assert inbox.get_nowait("a").payload == b"3"


# -- Policy.WAIT: a full lane holds QoS 1 messages unacknowledged instead of dropping ----------------
class Acks:
    """The acknowledgements of pushed messages, by payload number, in the order they were made."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.event = asyncio.Event()

    def of(self, n: int):
        def ack() -> None:
            self.done.append(n)
            self.event.set()
        return ack


def wait_inbox(maxlen: int = 2, *, stall: float = 30.0) -> Inbox:
    return Inbox({"in": Lane(maxlen=maxlen, policy=Policy.WAIT, stall=stall)})


def test_a_wait_lane_acknowledges_at_once_while_it_has_room_then_holds():
    inbox, acks = wait_inbox(), Acks()
    for n in range(5):
        assert inbox.push("in", msg(n), ack=acks.of(n))
    lane = inbox["in"]
    assert acks.done == [0, 1] and lane.held == 3 and len(lane) == 5 and inbox.held == 3
    assert lane.dropped == 0 and lane.held_high_water == 3
    # each item taken lets the oldest held one in, acknowledged: the broker may send one more
    assert int(inbox.get_nowait("in").payload) == 0
    assert acks.done == [0, 1, 2] and lane.held == 2
    assert payloads(inbox) == [1, 2, 3, 4]
    assert acks.done == [0, 1, 2, 3, 4] and lane.held == 0 and lane.taken == 5


def test_qos0_on_a_full_wait_lane_drops_the_oldest_or_itself_behind_held_messages():
    inbox, acks = wait_inbox(), Acks()
    push(inbox, "in", msg(0))
    push(inbox, "in", msg(1))
    assert push(inbox, "in", msg(2))  # nothing held: the oldest goes, as in Policy.OLDEST
    assert inbox["in"].dropped == 1
    inbox.push("in", msg(3), ack=acks.of(3))  # held
    assert not push(inbox, "in", msg(4))  # everything queued is older and held: the QoS 0 one goes
    assert inbox["in"].dropped == 2
    assert payloads(inbox) == [1, 2, 3] and acks.done == [3]


def test_drain_and_close_let_go_of_held_messages():
    inbox, acks = wait_inbox(1), Acks()
    for n in range(3):
        inbox.push("in", msg(n), ack=acks.of(n))
    assert [int(m.payload) for _, m in inbox.drain()] == [0, 1, 2] and acks.done == [0, 1, 2]
    for n in range(3, 6):
        inbox.push("in", msg(n), ack=acks.of(n))
    inbox.close()
    assert acks.done == [0, 1, 2, 3, 4, 5] and inbox.held == 0
    assert payloads(inbox) == [3, 4, 5] and inbox.dropped == 0
    inbox.push("in", msg(6), ack=acks.of(6))
    inbox.push("in", msg(7), ack=acks.of(7))  # closed: never held again, even after a take
    assert acks.done[-2:] == [6, 7] and inbox.held == 0


def test_a_wait_lane_keeps_arrival_order_with_other_lanes():
    inbox = Inbox({"w": Lane(maxlen=1, policy=Policy.WAIT), "o": Lane(maxlen=10)})
    acks = Acks()
    inbox.push("w", msg(0), ack=acks.of(0))
    inbox.push("w", msg(1), ack=acks.of(1))  # held
    push(inbox, "o", msg(2))
    assert [int(m.payload) for _, m in (inbox.pop_any(), inbox.pop_any(), inbox.pop_any())] == [0, 1, 2]


async def test_a_stuck_wait_lane_lets_go_and_drops_the_oldest_counted_until_its_task_takes_again():
    stalls: list[tuple[str, int]] = []
    inbox = Inbox({"in": Lane(maxlen=2, policy=Policy.WAIT, stall=0.05)}, on_stall=lambda *s: stalls.append(s))
    acks = Acks()
    for n in range(4):
        inbox.push("in", msg(n), ack=acks.of(n))
    assert acks.done == [0, 1]
    acks.event.clear()
    async with asyncio.timeout(5):
        await acks.event.wait()  # nothing taken for a stall interval: the held ones are let go
    lane = inbox["in"]
    assert acks.done == [0, 1, 2, 3] and lane.stuck and inbox.stalls == 1 and lane.held == 0
    assert stalls == [("in", 2)]
    inbox.push("in", msg(4), ack=acks.of(4))  # stuck: acknowledged at once, the oldest dropped
    assert acks.done[-1] == 4 and lane.overflow == 3 and lane.dropped == 3 and len(lane) == 2
    assert int(inbox.get_nowait("in").payload) == 3 and not lane.stuck  # its task took one: it waits again
    inbox.push("in", msg(5), ack=acks.of(5))
    inbox.push("in", msg(6), ack=acks.of(6))
    assert lane.held == 1 and acks.done[-1] == 5
    inbox.close()


async def test_a_slow_wait_lane_that_keeps_taking_is_not_stuck():
    inbox, acks = wait_inbox(1, stall=0.05), Acks()
    n = 0
    inbox.push("in", msg(n), ack=acks.of(n))
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.3  # six stall intervals
    while loop.time() < end:
        n += 1
        inbox.push("in", msg(n), ack=acks.of(n))  # held behind the one queued
        await asyncio.sleep(0.02)  # the slow consumer's work
        inbox.get_nowait("in")
    assert inbox.stalls == 0 and inbox["in"].overflow == 0 and inbox.dropped == 0
    inbox.close()
