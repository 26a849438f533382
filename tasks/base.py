"""What the built-in tasks share: port declarations, reading values out of frames, counting bad input.

Every built-in task derives from :class:`BuiltinTask`, a plain :class:`edge.task.Task` with a few
helpers, so that all of them treat input the same way:

* a frame whose value has the wrong type (text into a number input, say) is an **input error**:
  counted in that port's ``errors`` metric (the agent publishes it in the task's status),
  logged as a warning with the instance id and port (then at most every 10 s per port), and
  skipped; the task keeps running;
* a **pause frame** (a frame whose ``paused`` flag is set, see ``docs/tasks.md``) is a control
  signal, not a value: tasks that compute values skip it, pass-through tasks forward it;
* a number is a finite ``int`` or ``float`` that a float can hold; ``bool`` counts as 1 or 0 (CBOR
  keeps it apart). NaN, infinities and bignums beyond a float's range (a CBOR frame can carry
  them) are input errors like text is, so no task ever meets a value it cannot compute with;
* a control input is on when its number is above 0.5, so 1/0, ``true``/``false`` and a 0..1
  slider all work.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING, Any, Final

from edge.errors import FrameError
from edge.frames import Frame
from edge.task import Port, Task

if TYPE_CHECKING:
    from edge.settings import Settings

__all__ = [
    "ANY",
    "agent_settings",
    "NUMBER",
    "TEXT",
    "VARIABLES",
    "BuiltinTask",
    "as_number",
    "content_of",
    "is_array",
    "is_pause",
]

log = logging.getLogger("tasks")

VARIABLES: Final = ("a", "b", "c", "d", "x", "y", "z", "w")
"""The named inputs of the calculator and the text formatter (``e`` is the constant, so it is no input)."""


# the smallest int that float() refuses (it rounds up to 2**1024): larger bignums are no number
_FLOAT_LIMIT: Final = 2**1024 - 2**970


def agent_settings(settings: Settings | None) -> Settings | None:
    """``settings``, or (None) what this process's environment says: for an ``unavailable_reason`` that
    reads a setting. None when the environment's settings are invalid (the agent refuses them anyway)."""
    if settings is not None:
        return settings
    from edge.settings import load_settings  # on first use: a module of task types loads no settings

    try:
        return load_settings()
    except ValueError:
        return None


def ANY(label: str) -> Port:
    """A port whose content is not fixed: a pass-through or a config-dependent value.

    Its metadata is ``{"any": true}``: it shares no key with ``content`` so the catalog check
    lets it connect to anything, and two ``any`` ports agree with each other.
    """
    return Port(label=label, extra={"any": True})


def NUMBER(label: str) -> Port:
    return Port(content="number", label=label)


def TEXT(label: str) -> Port:
    return Port(content="text", label=label)


def content_of(*values: Any) -> dict[str, Any]:
    """The IO metadata of an output that sends only ``values`` (from a config): ``content: number`` if
    all are numbers, ``content: text`` if all are text, else ``any``."""
    if values and all(as_number(v) is not None for v in values):
        return {"content": "number"}
    if values and all(isinstance(v, str) for v in values):
        return {"content": "text"}
    return {"any": True}


def is_array(value: Any) -> bool:
    """Whether ``value`` is a numpy array, without importing numpy: a value can only be one once something
    (a frame that carried an array, a task that made one) has imported it."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def is_pause(frame: Frame) -> bool:
    """Whether ``frame`` is a pause signal rather than a value."""
    return frame.paused


def as_number(value: Any) -> float | int | None:
    """``value`` as a number (a bool as 1 or 0), or None if it is not one: the one conversion every
    built-in task uses, so ``float(n)``, ``math`` and comparisons of what it returns never fail."""
    kind = type(value)
    if kind is bool:
        return int(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return value if -_FLOAT_LIMIT < value < _FLOAT_LIMIT else None
    return None



class BuiltinTask(Task):
    """A :class:`~edge.task.Task` with the input helpers every built-in uses."""

    logger = log

    # -- bad input ------------------------------------------------------------------------------
    def reject(self, port: str, reason: str) -> None:
        """Count an input error on ``port`` (an output, for a task with no inputs) and warn."""
        metrics = self.in_metrics[port] if port in self.in_metrics else self.out_metrics[port]
        self.count_error(metrics, port, "skipped a frame on %r: %s", port, reason)

    # -- reading values -------------------------------------------------------------------------
    def number(self, port: str, frame: Frame) -> float | int | None:
        """The frame's value as a finite number; None (counted as an input error) if it is not one."""
        number = as_number(frame.value)
        if number is None:
            self.reject(port, f"expected a finite number, got {_kind(frame.value)}")
        return number

    def text(self, port: str, frame: Frame) -> str | None:
        """The frame's value as text; None (counted as an input error) if it is not text."""
        if isinstance(frame.value, str):
            return frame.value
        self.reject(port, f"expected text, got {_kind(frame.value)}")
        return None

    def flag(self, port: str, frame: Frame) -> bool | None:
        """A control value: on above 0.5; None (counted as an input error) if it is not a number."""
        number = self.number(port, frame)
        return None if number is None else number > 0.5

    async def send_or_count(self, port: str, output: str, value: Any, *, ts: int | None = None,
                            extra: dict[str, Any] | None = None) -> bool:
        """Send ``value`` on ``output``; a value no frame can carry (larger than the payload limit, text
        CBOR cannot encode) is an input error on ``port``, the input it came from. Whether it went out."""
        try:
            await self.send(output, value, ts=ts, extra=extra)
        except FrameError as exc:
            self.reject(port, f"the result cannot be sent: {exc}")
            return False
        return True

    def connected(self, port: str) -> bool:
        return self.context is not None and port in self.context.sources


def _kind(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return f"text {value[:40]!r}"
    if kind is float:
        return str(value)
    if kind is int:
        return f"an integer of {value.bit_length()} bits (beyond a float's range)"
    return kind.__name__
