"""The contract between dashboard tasks and the control panel that renders them.

A dashboard task runs on an agent like any task; the panel only draws it. The contract:

* **Catalog**: the type's catalog entry has ``"dashboard": <kind>``, the kind of widget, which is
  the type name (``slider``, ``toggle``, ``radio_buttons``, ``text_input``, ``status_display``,
  ``text_display``, ``value_bar``, ``plot``), so the panel knows which tasks to draw and how.
* **State out**: an output ``view`` whose frames hold a map with ``kind`` and what to draw (the
  fields of each kind are in ``docs/task-library.md``; each kind's model is in ``edge.protocol``,
  ``SliderView`` …, which :meth:`DashboardTask.view` returns and the panel parses with). It is
  published **retained** with QoS 1 on the view output's topics, at start and on every change,
  so a panel that (re)loads gets the current state at once from its stream topic
  ``{root}/streams/{deployment}/{task}/view``. When the task stops, an empty retained payload
  clears it: no view means the task is not running. This is the one output that is retained;
  data outputs never are.
* **Input in** (controls only): an input ``set``. The panel publishes a frame on the control's
  *panel topic*, ``{root}/streams/{deployment}/{task}/set`` (the sibling of its view topic): when
  the spec wires nothing into ``set``, that is where the task reads it. A graph can also drive a
  control by wiring into ``set``, which replaces the panel topic.

A control's value lives in the task (the panel holds no state), so every open panel shows the
same value, and a reload loses nothing; after a restart of the task it starts from its
configured default.

With ``home_assistant`` in its config (and ``EDGE_HASS_DISCOVERY`` on its agent) the task is also
a Home Assistant entity (:mod:`tasks.hass`): announced when it starts, its state sent with every
view, removed when it stops; a control takes Home Assistant's commands as it takes the panel's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from edge.bus import Message
from edge.errors import EdgeError
from edge.frames import Frame, now_ms
from edge.hass import HassSlot
from edge.protocol import (
    COLOR_PATTERN,  # the one colour rule, which the panel checks again
    CatalogEntry,
    DashboardView,
)
from edge.task import Port, Task, TaskContext
from edge.topics import sibling_topic
from tasks.base import BuiltinTask, is_pause
from tasks.hass import (
    CONTROLS,
    Entity,
    HomeAssistant,
    HomeAssistantSetting,
    Rejected,
    entity_fields,
    home_assistant_field,
    option_of,
    parse_command,
    state_text,
)

__all__ = ["COLOR_PATTERN", "VIEW", "ControlConfig", "ControlTask", "DashboardTask", "clear_view", "panel_topic"]

VIEW = Port(label="view", content="view", extra={"retained": True})
"""The ``view`` output of every dashboard task."""
COMMANDS_QUEUED = 16  # Home Assistant's commands waiting for the control (the oldest go first, counted)


def panel_topic(context: TaskContext) -> str | None:
    """Where the panel sends a control its values: the sibling ``set`` of the view output's first topic."""
    views = context.targets.get("view") or []
    return sibling_topic(views[0], "set") if views else None


class DashboardTask(BuiltinTask):
    """A task the control panel draws: marked in the catalog, its state published retained on ``view``."""

    category = "dashboard"

    #: What the panel draws; in the catalog as ``"dashboard"``.
    kind: ClassVar[str] = ""

    @classmethod
    def catalog_entry(cls) -> CatalogEntry:
        return CatalogEntry.model_validate({**super().catalog_entry().dump(), "dashboard": cls.kind})

    def view(self) -> DashboardView:
        """What the panel draws now: the kind's model of :mod:`edge.protocol` (``SliderView``, ...)."""
        raise NotImplementedError

    async def publish_view(self) -> None:
        view = self.view()
        await self.send("view", view.dump(), qos=1, retain=True)
        if self.hass is not None and (state := state_text(view)) is not None:
            self.hass.set_state(state)

    # -- Home Assistant (tasks.hass) -------------------------------------------------------------
    #: the task's entity slot while it is announced to Home Assistant
    hass: HassSlot | None = None

    def home_assistant_entity(self, option: HomeAssistant) -> Entity:
        """The entity Home Assistant is told of (a type with more to say overrides it)."""
        return entity_fields(self.view(), option)

    def entity_slot(self) -> HassSlot | None:
        """Where the entity goes, with ``home_assistant`` set on an agent that has the link; else None."""
        if option_of(self.config) is None or self.context is None:
            return None
        if self.context.hass is None:
            self.warn("hass", "home_assistant is set, but this agent runs without EDGE_HASS_DISCOVERY=true: "
                      "it is not shown in Home Assistant")
        return self.context.hass

    async def announce(self, stack: contextlib.AsyncExitStack) -> None:
        """Publish the entity's discovery config (:mod:`edge.hass`); what it needs while it runs
        (a control's command subscription) goes on ``stack``."""
        option, slot = option_of(self.config), self.entity_slot()
        if option is None or slot is None:
            return
        entity = self.home_assistant_entity(option)
        name = option.name or getattr(self.config, "label", "") or slot.task
        slot.publish(entity.component, slot.config(entity.component, name=name, command=self.kind in CONTROLS,
                                                   fields=entity.fields))
        self.hass = slot

    def clear_view(self) -> None:
        clear_view(self)

    async def serve(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self.announce(stack)
                await self.serve()
            finally:  # cancelled or crashed: the panel must not show a stale state, nor Home Assistant
                self.clear_view()
                if self.hass is not None:
                    self.hass.remove()
                    self.hass = None


class ControlConfig(BaseModel):
    """What every control's config has."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=200, description="the caption the panel shows")
    repeat_ms: int = Field(default=1000, ge=0, le=3_600_000,
                           description="re-send the value at this interval, for consumers that join late "
                                       "(0: only on changes)")
    home_assistant: HomeAssistantSetting = home_assistant_field()


class ControlTask(DashboardTask):
    """A control: its value changes by frames on ``set`` (from the panel), and goes out on its outputs."""

    def __init__(self, config: BaseModel | Mapping[str, Any] | None = None, *,
                 context: TaskContext | None = None) -> None:
        super().__init__(config, context=context)
        if context is not None and "set" not in context.sources:
            topic = panel_topic(context)
            if topic is not None:
                context.sources["set"] = topic

    def apply(self, frame: Frame) -> bool:
        """Take a value from a ``set`` frame; False if it is refused (counted as an input error)."""
        raise NotImplementedError

    async def emit(self) -> None:
        """Send the current value on the data outputs."""
        raise NotImplementedError

    #: Home Assistant's commands, parsed, waiting to be taken (while it is an entity)
    _commands: asyncio.Queue[Frame] | None = None

    async def announce(self, stack: contextlib.AsyncExitStack) -> None:
        # subscribed before the config goes out: Home Assistant may send a command as soon as it sees it
        slot = self.entity_slot()
        if slot is not None:
            self._commands = asyncio.Queue(maxsize=COMMANDS_QUEUED)
            stack.push_async_callback((await slot.commands(self._take_command)).aclose)
        await super().announce(stack)

    def _take_command(self, message: Message) -> None:
        """A command from Home Assistant, parsed (:func:`tasks.hass.parse_command`) and queued as a frame
        on ``set`` would be; one that cannot be is counted as a ``set`` error."""
        waiting = self._commands
        if waiting is None:
            return
        self.in_metrics["set"].frames += 1  # counted as the panel's frames are, good or bad
        try:
            value = parse_command(self.view(), message.payload)
        except Rejected as exc:
            self.reject("set", f"Home Assistant's command on {message.topic}: {exc}")
            return
        if waiting.full():
            waiting.get_nowait()
            self.reject("set", f"more than {COMMANDS_QUEUED} commands from Home Assistant waiting: dropped the oldest")
        waiting.put_nowait(Frame(value=value, ts=now_ms()))

    async def serve(self) -> None:
        self._changing = asyncio.Lock()  # the panel's and Home Assistant's changes, one at a time
        await self.emit()
        await self.publish_view()
        async with asyncio.TaskGroup() as group:
            if self._commands is not None:
                group.create_task(self._take_commands(self._commands))
            await self._take_set()

    async def _take_set(self) -> None:
        repeat = self.config.repeat_ms / 1000 or None
        while True:
            try:
                async with asyncio.timeout(repeat):
                    frame = await self.recv("set")
            except TimeoutError:
                await self.emit()
                continue
            if not is_pause(frame):
                await self._change(frame)

    async def _change(self, frame: Frame) -> None:
        async with self._changing:
            if self.apply(frame):
                await self.emit()
                await self.publish_view()

    async def _take_commands(self, waiting: asyncio.Queue[Frame]) -> None:
        while True:
            await self._change(await waiting.get())


def clear_view(task: Task) -> None:
    """Clear ``task``'s retained view (an empty message on its ``view`` output's topics): the panel
    shows the task as not running. Every task with a dashboard view does this when it stops."""
    if task.context is None:
        return
    for topic in task.context.targets.get("view", ()):
        try:
            task.context.bus.publish_nowait(topic, b"", qos=1, retain=True)
        except EdgeError as exc:
            task.warn("view", "could not clear the view on %s: %s", topic, exc)
