"""Change the fields of map values by path: set, move and delete, rules applied in order."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator, model_validator

from tasks.base import ANY, BuiltinTask, is_pause
from tasks.parts import part_field
from tasks.payloads import parse_path

__all__ = ["Change", "PathError", "Rule", "apply_rule"]

MAX_RULES = 64
MAX_STEPS = 32

Step = str | int


class PathError(ValueError):
    """A path that goes through something that is not a map or a list, or an index beyond a list."""


def _steps(path: str) -> list[Step]:
    steps = parse_path(path)
    if not steps:
        raise ValueError(f"the path {path!r} names no field")
    if len(steps) > MAX_STEPS:
        raise ValueError(f"the path {path!r} has more than {MAX_STEPS} steps")
    return steps


class Rule(BaseModel):
    """One change: `set` the field at `path` to `value`, `move` it to `to`, or `delete` it."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["set", "move", "delete"] = Field(description="what to do with the field at path")
    path: str = Field(max_length=500, description="the field: a.b.0.c (0: an index of a list), a[0][\"x.y\"]")
    value: JsonValue = Field(default=None, description="set: the value (any JSON value)")
    to: str = Field(default="", max_length=500, description="move: the path it moves to")

    @field_validator("path", "to")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        if value or info.field_name == "path":
            _steps(value)
        return value

    @model_validator(mode="after")
    def _move_has_to(self) -> Rule:
        if self.action == "move" and not self.to:
            raise ValueError("a move rule needs 'to', the path the field moves to")
        return self


def _where(steps: Sequence[Step], depth: int) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps[: depth + 1]).lstrip(".") or "the value"


def _kind(value: Any) -> str:
    return "null" if value is None else "text" if isinstance(value, str) else type(value).__name__


def _index(node: list[Any], step: Step, steps: Sequence[Step], depth: int, *, end: bool = False) -> int:
    """The list index ``step`` names (negative from the end; with ``end``, one past the last appends)."""
    try:
        index = int(step)
    except ValueError:
        raise PathError(f"{_where(steps, depth)}: {step!r} is no index of a list") from None
    if index < 0:
        index += len(node)
    if not 0 <= index < len(node) + (1 if end else 0):
        raise PathError(f"{_where(steps, depth)}: no item {step} in a list of {len(node)}")
    return index


def _container(value: Any, steps: Sequence[Step], *, create: bool) -> dict[Any, Any] | list[Any] | None:
    """The map or list that holds the path's last step; None if a step before it is missing
    (with ``create``, missing steps are made maps); :class:`PathError` if one is no map or list."""
    node = value
    for depth, step in enumerate(steps[:-1]):
        if isinstance(node, dict):
            key = str(step)
            if key not in node:
                if not create:
                    return None
                node[key] = {}
            node = node[key]
        elif isinstance(node, list):
            try:
                node = node[_index(node, step, steps, depth)]
            except PathError:
                if not create:
                    return None
                raise
        else:
            raise PathError(f"{_where(steps, depth - 1)} is {_kind(node)}, not a map or list")
    if not isinstance(node, dict | list):
        raise PathError(f"{_where(steps, len(steps) - 2)} is {_kind(node)}, not a map or list")
    return node


def _take(value: Any, steps: Sequence[Step]) -> tuple[bool, Any]:
    """Remove the field at ``steps``: (True, its value), or (False, None) if there is none."""
    node = _container(value, steps, create=False)
    last = steps[-1]
    if isinstance(node, dict):
        key = str(last)
        return (True, node.pop(key)) if key in node else (False, None)
    if isinstance(node, list):
        try:
            return True, node.pop(_index(node, last, steps, len(steps) - 1))
        except PathError:
            return False, None
    return False, None


def _put(value: Any, steps: Sequence[Step], item: Any) -> None:
    node = _container(value, steps, create=True)
    if isinstance(node, dict):
        node[str(steps[-1])] = item
    elif isinstance(node, list):
        index = _index(node, steps[-1], steps, len(steps) - 1, end=True)
        if index == len(node):
            node.append(item)
        else:
            node[index] = item


def apply_rule(value: Any, rule: Rule) -> None:
    """Change ``value`` in place by ``rule``; :class:`PathError` if its path cannot be followed."""
    steps = _steps(rule.path)
    if rule.action == "set":
        _put(value, steps, copy.deepcopy(rule.value))
        return
    found, item = _take(value, steps)
    if found and rule.action == "move":
        _put(value, _steps(rule.to), item)


class Change(BuiltinTask):
    """Set, move and delete fields of map values by path, with a list of rules applied in order.

    A path names a field: `a.b.c`; a number steps into a list (`items.0.name`, `items[-1]` for the
    last); `["a.b"]` is a key with a dot. `set` puts a value from the config there, making the
    maps on the way that are missing (an index one past a list's end appends); `move` takes the
    field away and sets it at `to`; `delete` removes it. Moving or deleting a field that is not
    there changes nothing. A path that goes through a value that is not a map or list (a number,
    text), an index beyond a list for `set`, or a value that is no map at all is an input error:
    the frame is counted and skipped. Pause frames pass unchanged; the `part` field of a split
    item is kept, so `join` can put changed items back together.
    """

    category = "data"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES,
                                  description="the changes, applied in order: {action: set, path, value}, {action: "
                                              "move, path, to}, {action: delete, path}")

    inputs = {"in": ANY("input")}
    outputs = {"out": ANY("output")}

    async def run(self) -> None:
        config: Change.Config = self.config
        async for frame in self.receive("in"):
            if is_pause(frame):
                await self.send("out", frame.value, ts=frame.ts, paused=True)
                continue
            value = frame.value
            try:
                for rule in config.rules:
                    if not isinstance(value, dict | list):
                        raise PathError(f"the value is {_kind(value)}, not a map")
                    apply_rule(value, rule)
            except PathError as exc:
                self.reject("in", str(exc))
                continue
            await self.send_or_count("in", "out", value, ts=frame.ts, extra=part_field(frame))
