"""Logic on streams: a gate, a switch among several inputs, a set/reset latch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.frames import Frame
from edge.ports import PortRule
from tasks.base import ANY, NUMBER, BuiltinTask, is_pause
from tasks.ordering import SyncFlag, SyncTimeoutMs, handle_inputs

__all__ = ["Gate", "SrLatch", "Switch"]

SWITCH_PAIRS = 4  # the default count of a switch's inputs
MAX_PAIRS = 32


class _Synchronized(BaseModel):
    model_config = ConfigDict(extra="forbid")

    synchronized: SyncFlag = False
    sync_timeout_ms: SyncTimeoutMs = 500


class Gate(BuiltinTask):
    """Pass a stream while a control is on: frames on `in` go to `out` while `control` is above 0.5.

    While the control is unknown (before its first value, after a pause frame on it, after a value
    that is not a number) the gate is open or closed as `fail_mode` says. When the gate closes it
    sends one pause frame (value null) on `out`, so a consumer knows the stream paused rather than
    died. Pause frames on `in` pass through while the gate is open.
    """

    category = "logic"

    class Config(_Synchronized):
        fail_mode: Literal["open", "closed"] = Field(
            default="open", description="whether frames pass while the control value is unknown")
        pause_on_close: bool = Field(default=True, description="send a pause frame on out when the gate closes")

    inputs = {"in": ANY("input"), "control": NUMBER("control")}
    outputs = {"out": ANY("output")}

    async def run(self) -> None:
        config: Gate.Config = self.config
        control: bool | None = None

        def is_open() -> bool:
            return control if control is not None else config.fail_mode == "open"

        async def handle(port: str, frame: Frame) -> None:
            nonlocal control
            if port == "in":
                if is_open():
                    await self.send("out", frame.value, ts=frame.ts, paused=is_pause(frame))
                return
            was_open = is_open()
            control = None if is_pause(frame) else self.flag(port, frame)
            if was_open and not is_open() and config.pause_on_close:
                await self.send("out", None, ts=frame.ts, paused=True)

        await handle_inputs(self, handle, synchronized=config.synchronized, timeout_ms=config.sync_timeout_ms)


class Switch(BuiltinTask):
    """Select one of several inputs by control values: `out` carries `in<k>` whose `control<k>` is highest.

    The config's `inputs` (default 4) is how many pairs `in<k>`, `control<k>` it has (k from 0).

    Only controls above 0.5 take part (ties: the lowest k), so with all controls at 0 nothing
    passes. A pause frame or a value that is not a number (an input error) on a control takes
    that input out of the choice. When the choice becomes nothing, a pause frame (value null) is
    sent on `out`. Pause frames on the selected input pass through. Radio buttons' `opt<k>`
    outputs are made to drive the controls.
    """

    category = "logic"

    class Config(_Synchronized):
        inputs: int = Field(default=SWITCH_PAIRS, ge=1, le=MAX_PAIRS,
                            description="how many inputs in<k>, each with its control<k>")
        pause_on_none: bool = Field(default=True, description="send a pause frame when no input is selected")

    inputs = {**{f"in{k}": ANY(f"input {k}") for k in range(SWITCH_PAIRS)},
              **{f"control{k}": NUMBER(f"control {k}") for k in range(SWITCH_PAIRS)}}
    outputs = {"out": ANY("output")}
    ports_from = (PortRule(side="inputs", field="inputs", kind="count", name="in{}", label="input {}",
                           metadata=ANY("").metadata()),
                  PortRule(side="inputs", field="inputs", kind="count", name="control{}", label="control {}",
                           metadata=NUMBER("").metadata()))

    async def run(self) -> None:
        config: Switch.Config = self.config
        controls: dict[int, float] = {}

        def selected() -> int | None:
            active = [(-value, k) for k, value in controls.items() if value > 0.5]
            return min(active)[1] if active else None

        async def handle(port: str, frame: Frame) -> None:
            if port.startswith("in"):
                if selected() == int(port[2:]):
                    await self.send("out", frame.value, ts=frame.ts, paused=is_pause(frame))
                return
            k = int(port.removeprefix("control"))
            before = selected()
            number = None if is_pause(frame) else self.number(port, frame)
            if number is None:
                controls.pop(k, None)
            else:
                controls[k] = number
            if before is not None and selected() is None and config.pause_on_none:
                await self.send("out", None, ts=frame.ts, paused=True)

        await handle_inputs(self, handle, synchronized=config.synchronized, timeout_ms=config.sync_timeout_ms)


class SrLatch(BuiltinTask):
    """A set/reset latch: `out` turns 1 when `set` is on, 0 when `reset` is on, and holds otherwise.

    `set` and `reset` are levels (on above 0.5), each the last value its input received. When both
    are on, or both off, the latch holds its value. The output (1 or 0) is sent for every frame
    on either input, or only when it changes (`emit: changes`). Values that are not numbers are
    input errors; pause frames are ignored.
    """

    category = "logic"

    type_name = "sr_latch"
    label = "SR latch"

    class Config(_Synchronized):
        initial: bool = Field(default=False, description="the value before anything sets or resets it")
        emit: Literal["always", "changes"] = Field(
            default="always", description="send the value on every input frame, or only when it changes")

    inputs = {"set": NUMBER("set"), "reset": NUMBER("reset")}
    outputs = {"out": NUMBER("state")}

    async def run(self) -> None:
        config: SrLatch.Config = self.config
        levels = {"set": False, "reset": False}
        state = config.initial

        async def handle(port: str, frame: Frame) -> None:
            nonlocal state
            if is_pause(frame):
                return
            level = self.flag(port, frame)
            if level is None:
                return
            levels[port] = level
            before = state
            if levels["set"] != levels["reset"]:
                state = levels["set"]
            if config.emit == "always" or state != before:
                await self.send("out", int(state), ts=frame.ts)

        await handle_inputs(self, handle, synchronized=config.synchronized, timeout_ms=config.sync_timeout_ms)
