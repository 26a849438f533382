"""Metrics batches are bounded: no message over the payload limit, at most MAX_BATCH_PARTS per batch."""

from __future__ import annotations

from typing import Any

from edge.frames import decode_value
from edge.protocol import MAX_BATCH_PARTS, MAX_BATCH_TASKS, MetricsBatch, TaskMetrics
from edge.reporting import MetricsBatcher, chunk


class _Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        assert qos == 0 and not retain
        self.sent.append((topic, payload))


def _metrics(frames: int, ports: int = 1) -> TaskMetrics:
    return TaskMetrics.model_validate({"inputs": {f"in{p}": {"frames": frames, "errors": 0, "rate": 1.5}
                                                  for p in range(ports)}, "outputs": {}, "dropped": 0, "errors": 0})


def _batcher(bus: _Bus, max_payload: int, *, watched: bool = True) -> MetricsBatcher:
    """A batcher a reader holds a lease on (changed metrics go every interval), unless not ``watched``."""
    batcher = MetricsBatcher(bus=bus, topic="edge/v1/t/agents/a1/metrics", interval=2.0,  # type: ignore[arg-type]
                             max_payload=max_payload, identity=lambda: ("boot1", 3))
    if watched:
        batcher.watch(600)
    return batcher


def test_without_a_lease_only_a_full_batch_goes():
    bus = _Bus()
    batcher = _batcher(bus, 64 * 1024, watched=False)
    current = {("d", "t0"): _metrics(0, ports=1)}
    assert batcher.publish(current, full=False) == 0 and bus.sent == []
    assert batcher.publish(current, full=True) == 1
    batcher.watch(600)
    current = {("d", "t0"): _metrics(1, ports=1)}
    assert batcher.publish(current, full=False) == 1


def test_a_batch_stays_within_the_payload_limit_and_the_part_bound():
    bus, max_payload = _Bus(), 64 * 1024
    batcher = _batcher(bus, max_payload)
    current = {("d", f"t{i}"): _metrics(i, ports=4) for i in range(5_000)}
    assert batcher.publish(current, full=True) == MAX_BATCH_PARTS
    assert len(bus.sent) == MAX_BATCH_PARTS
    sent: set[str] = set()
    for i, (_, payload) in enumerate(bus.sent):
        assert len(payload) <= max_payload
        batch = MetricsBatch.model_validate(decode_value(payload))  # what the fleet accepts
        entries, problems = batch.entries()
        assert problems == [] and (batch.part, batch.parts, batch.full, batch.boot) == (i, MAX_BATCH_PARTS, True,
                                                                                          "boot1")
        assert len(entries) <= MAX_BATCH_TASKS
        sent |= {e.task for e in entries}
    assert 0 < len(sent) < 5_000 and batcher.deferred == 5_000 - len(sent)
    # those left out go first in the next batch (unchanged ones are not sent again)
    bus.sent.clear()
    batcher.publish(current, full=False)
    first = MetricsBatch.model_validate(decode_value(bus.sent[0][1])).entries()[0]
    assert all(e.task not in sent for e in first)


def test_only_changed_metrics_are_sent_and_nothing_when_nothing_changed():
    bus = _Bus()
    batcher = _batcher(bus, 1 << 20)
    current = {("d", "a"): _metrics(1), ("d", "b"): _metrics(1)}
    batcher.publish(current, full=False)
    assert len(bus.sent) == 1
    assert batcher.publish(current, full=False) == 0 and len(bus.sent) == 1
    current[("d", "b")] = _metrics(2)
    batcher.publish(current, full=False)
    assert [e["task"] for e in decode_value(bus.sent[-1][1])["tasks"]] == ["b"]


def test_chunk_leaves_out_an_entry_larger_than_a_message():
    entries: list[dict[str, Any]] = [{"n": 1}, {"n": 2}, {"n": 3}]
    assert chunk(entries, [10, 500, 10], limit=100) == [[{"n": 1}, {"n": 3}]]
    assert chunk(entries, [60, 60, 60], limit=100, max_parts=2) == [[{"n": 1}], [{"n": 2}]]
    assert chunk(entries, [1, 1, 1], limit=100, max_tasks=2) == [[{"n": 1}, {"n": 2}], [{"n": 3}]]
