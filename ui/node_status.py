"""The status line under each node of a running graph, as Node-RED shows "connected" under a node.

One short line per task, with a coloured square (a task with replicas: ``x3`` and each replica's
state, :func:`replicas_status`): its shown state (:mod:`edge.controller.views`)
and, while it runs, the last value on its first output, shortened (``running · 42``), with its
age once it is older than :data:`FRESH` seconds; or its error. The truth rule:

* a task whose agent is offline shows ``agent offline 25 s`` and never a value: nothing vouches
  for it (the last value it sent is not current);
* a failed or invalid task shows its error; a running task that crashed lately shows the last
  error of its crash notice until the notice is dismissed (or expires at the agent), and its
  inputs' error count when frames were refused: an error stays until dealt with;
* values of outputs that carry media (video, audio, images) are not fetched: the line gives
  that output's rate from the task's metrics instead.

The values come from one subscription per task's first output with a callback that only keeps
the newest message (nothing queues, whatever the rate); they are decoded once a second, when
the lines are drawn. At most :data:`MAX_LIVE` tasks of a deployment get a live value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nicegui import ui

from edge.bus import Message, Subscription
from edge.controller.views import AGENT_OFFLINE, PENDING, TaskView, deployment_views
from edge.errors import EdgeError, FrameError
from edge.frames import decode_frame
from edge.graph import DeploymentSpec
from edge.ports import catalog_ports
from edge.watch import Watching
from ui.app import Panel
from ui.graph_view import GraphView
from ui.preview import classify, describe

__all__ = ["FRESH", "MAX_LIVE", "NodeStatus", "NodeStatuses", "node_status", "replicas_status"]

log = logging.getLogger("ui")

TICK = 1.0
FRESH = 5.0  # seconds a value is shown without its age
VALUE = 24  # characters of a value shown
ERROR = 60  # characters of an error shown (the whole text is the tooltip)
MAX_LIVE = 100  # tasks of one deployment whose first output is followed
PER_TICK = 10  # subscriptions opened per tick at most
MEDIA = frozenset({"video", "audio", "image"})

Tone = Literal["ok", "warn", "error", "off", "idle"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    text: str
    tone: Tone

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "tone": self.tone}


@dataclass(frozen=True, slots=True)
class LastValue:
    text: str
    age: float  # seconds since the panel received it


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _input_errors(view: TaskView) -> int:
    inputs = view.metrics.get("inputs")
    if not isinstance(inputs, dict):
        return 0
    return sum(int(m.get("errors") or 0) for m in inputs.values() if isinstance(m, dict)
               and isinstance(m.get("errors"), int))


def _rate(view: TaskView, port: str | None) -> str | None:
    outputs = view.metrics.get("outputs")
    if port is None or not isinstance(outputs, dict) or not isinstance(outputs.get(port), dict):
        return None
    rate = outputs[port].get("rate")
    return f"{port} {rate:.1f}/s" if isinstance(rate, int | float) else None


def node_status(view: TaskView, value: LastValue | None, *, media_port: str | None = None) -> NodeStatus:
    """The line under one node (see the module docstring for the rules)."""
    state = view.state
    if state == AGENT_OFFLINE:
        return NodeStatus(view.label, "off")  # never a value: nothing vouches for it
    if state == PENDING:
        return NodeStatus(_cut(f"pending: {view.detail}" if view.detail else "pending", ERROR), "idle")
    if state in ("failed", "invalid"):
        return NodeStatus(_cut(f"{state}: {view.error}" if view.error else state, ERROR), "error")
    last_error = view.status.last_error if view.status is not None else None
    if view.notice is not None:  # crashed lately: the error stays until dismissed, restarting or running
        times = "once" if view.restarts == 1 else f"{view.restarts} times"
        head = "" if state == "running" else f"{state} · "
        return NodeStatus(_cut(f"{head}restarted {times}: {last_error or 'crashed'}", ERROR), "warn")
    if state != "running":
        return NodeStatus(state, "warn" if state == "starting" else "idle")
    parts = ["running"]
    if value is not None:
        parts.append(value.text if value.age < FRESH else f"{value.text} ({int(value.age)} s ago)")
    elif media_port is not None and (rate := _rate(view, media_port)) is not None:
        parts.append(rate)
    errors = _input_errors(view)
    if errors:
        parts.append(f"{errors} input errors")
    return NodeStatus(_cut(" · ".join(parts), ERROR), "error" if errors else "ok")


#: a node's tone is the worst of its replicas'
_TONES: tuple[Tone, ...] = ("error", "warn", "off", "idle", "ok")


def replicas_status(views: list[TaskView], value: LastValue | None, *, media_port: str | None = None) -> NodeStatus:
    """The line under a node with replicas: ``x3`` and each replica's state in order; when all run as one,
    the line of one of them (``x3 · running · 42``), else the first problem's line after the states."""
    lines = [node_status(view, value, media_port=media_port) for view in views]
    tone = min((line.tone for line in lines), key=_TONES.index)
    if tone == "ok" and len({view.label for view in views}) == 1:
        return NodeStatus(_cut(f"x{len(views)} · {lines[0].text}", ERROR), "ok")
    states = ", ".join(view.label for view in views)
    problem = next((line.text for line in lines if line.tone == tone and line.tone != "ok"), "")
    return NodeStatus(_cut(f"x{len(views)}: {states}" + (f" · {problem}" if problem else ""), ERROR), tone)


class _Follow:
    """The newest message on one task's first output; the bus hands each to :meth:`keep` at once."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sub: Subscription | None = None
        self.message: Message | None = None
        self.at = 0.0  # monotonic time it came
        self.shown: LastValue | None = None
        self._decoded: Message | None = None

    def keep(self, message: Message) -> None:
        self.message = message
        self.at = time.monotonic()

    def value(self, now: float) -> LastValue | None:
        message = self.message
        if message is None:
            return None
        if message is not self._decoded:
            self._decoded = message
            try:
                value = decode_frame(message.payload).value
                text = describe(value, VALUE) if classify(value) != "image" else "image"
            except FrameError:
                text = f"not a frame ({len(message.payload)} bytes)"
            self.shown = LastValue(_cut(text, VALUE), 0.0)
        assert self.shown is not None
        return LastValue(self.shown.text, now - self.at)


class NodeStatuses:
    """Keeps the status lines of ``graph`` (a running view's) true, once a second, until the page goes."""

    #: subscriptions open right now, in this process (for the tests: every one closes)
    open_count = 0

    def __init__(self, panel: Panel, dep: str, graph: GraphView) -> None:
        self.panel = panel
        self.dep = dep
        self.graph = graph
        self.follows: dict[str, _Follow] = {}  # task id -> its first output's newest message
        self.media: dict[str, str] = {}  # task id -> its first output, when it carries media
        self._spec: DeploymentSpec | None = None
        self._wanted: dict[str, str] = {}  # task id -> the topic to follow
        self._closed = False
        self._lease: Watching | None = None
        self.timer = ui.timer(TICK, self.update)
        ui.context.client.on_delete(self.close)

    def _first_outputs(self, spec: DeploymentSpec, types: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """Task id -> the stream topic of its first output (those without media), and note the media ones."""
        topics: dict[str, str] = {}
        self.media = {}
        for task in spec.tasks:
            _, outputs = catalog_ports(types.get(task.type, {}), task.config)
            if not outputs:
                continue
            port, meta = next(iter(outputs.items()))
            if meta.get("content") in MEDIA:
                self.media[task.id] = port
            elif len(topics) < MAX_LIVE:
                topics[task.id] = self.panel.controller.topics.stream(spec.id, task.id, port)
        return topics

    async def _follow(self, spec: DeploymentSpec) -> None:
        """Follow the first outputs of a (new) spec: subscribe to what is new, leave what went."""
        self._spec = spec
        wanted = self._first_outputs(spec, self.panel.fleet.types(online_only=False))
        for task, follow in list(self.follows.items()):
            if wanted.get(task) != follow.topic:
                del self.follows[task]
                await self._release(follow)
        self._wanted = wanted
        await self._subscribe_some()

    async def _subscribe_some(self) -> None:
        """Subscribe to at most :data:`PER_TICK` of the wanted outputs not followed yet (the rest at the
        next ticks: a page of 100 tasks does not hold its timer for 100 round trips to the broker)."""
        if not self.panel.bus.is_connected:
            return  # the next tick tries again
        todo = [(task, topic) for task, topic in self._wanted.items() if task not in self.follows]
        if todo and self._lease is None:  # agents handing these streams over in-process publish them meanwhile
            self._lease = Watching(self.panel.bus, self.panel.controller.topics,
                                   self.panel.controller.topics.all_streams(self.dep)).start()
        for task, topic in todo[:PER_TICK]:
            follow = _Follow(topic)
            self.follows[task] = follow
            try:
                sub = await self.panel.bus.subscribe(topic, callback=follow.keep)
            except EdgeError as exc:  # refused (the broker's ACL), or the connection went
                log.warning("status line of %s/%s: cannot follow %s: %s", self.dep, task, topic, exc)
                if not self.panel.bus.is_connected:
                    del self.follows[task]  # tried again once connected
                return
            if self._closed or self.follows.get(task) is not follow:
                await sub.aclose()
                continue
            follow.sub = sub
            NodeStatuses.open_count += 1

    async def _release(self, follow: _Follow) -> None:
        sub, follow.sub = follow.sub, None
        if sub is not None:
            NodeStatuses.open_count -= 1
            await sub.aclose()

    async def close(self) -> None:
        """Stop and unsubscribe (idempotent)."""
        self._closed = True
        self.timer.cancel()
        await self._end_lease()
        follows, self.follows = list(self.follows.values()), {}
        for follow in follows:
            await self._release(follow)

    async def update(self) -> None:
        if self._closed:
            return
        spec = self.panel.fleet.deployments.get(self.dep)
        if spec is None:
            if self.follows:
                await self.close_follows()
            self.graph.set_statuses({})
            return
        if spec is not self._spec:
            await self._follow(spec)
        elif len(self.follows) < len(self._wanted):
            await self._subscribe_some()
        now = time.monotonic()
        by_task: dict[str, list[TaskView]] = {}
        for view in deployment_views(self.panel.fleet, self.dep):
            by_task.setdefault(view.of or view.task, []).append(view)
        lines: dict[str, dict[str, str]] = {}
        for task, views in by_task.items():
            follow = self.follows.get(task)
            value = follow.value(now) if follow is not None else None
            status = node_status(views[0], value, media_port=self.media.get(task)) if len(views) == 1 \
                else replicas_status(views, value, media_port=self.media.get(task))
            lines[task] = status.to_dict()
        self.graph.set_statuses(lines)

    async def _end_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.aclose()

    async def close_follows(self) -> None:
        await self._end_lease()
        follows, self.follows = list(self.follows.values()), {}
        self._spec = None
        self._wanted = {}
        for follow in follows:
            await self._release(follow)
