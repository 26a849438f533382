"""The calculator: a formula over number inputs, in the language of :mod:`tasks.formula`."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.frames import Frame
from edge.ports import PortRule
from tasks.base import NUMBER, BuiltinTask, is_pause, log
from tasks.formula import CONSTANTS, FUNCTIONS, MAX_NAME, EvalError, Formula, parse
from tasks.ordering import SyncFlag, SyncTimeoutMs, handle_inputs

__all__ = ["Calculator"]


class Calculator(BuiltinTask):
    """Compute a formula over number inputs, e.g. `a > 0 ? 5 : a * 2`: its inputs are its variables.

    Each name in the formula that is not a constant (`pi`, `e`) or a function is a variable, and
    each variable is an input port of that name (`p * q` has inputs `p` and `q`; the default
    formula `a` has `a`): the editor redraws the inputs as the formula changes. Operators
    `+ - * / % ^` (power, right-associative; `**` works too), comparisons `< <= > >= == !=`,
    `&& || !` and the ternary `c ? x : y`; functions `sin cos tan asin acos atan atan2 sqrt abs
    floor ceil round log log2 log10 exp min max`; constants `pi` and `e`. A result is computed
    each time a variable of the formula gets a frame, once every variable has a value (from a
    frame, or from `defaults`); its timestamp is the newest among the values used. A value that
    is not a number is an input error on its port; a formula that cannot be evaluated with the
    current values (division by zero, `sqrt(-1)`, an overflow, a result that is not finite) is an
    input error on the port whose frame triggered it, and gives no output.
    """

    category = "logic"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        formula: str = Field(default="a", description="the formula; each of its variables is an input of that name",
                             max_length=1000)
        defaults: dict[str, float] = Field(
            default_factory=dict,
            description="a value for variables before their first frame (a variable with none must receive a "
                        "frame before the first result)")
        synchronized: SyncFlag = False
        sync_timeout_ms: SyncTimeoutMs = 500

        @field_validator("formula")
        @classmethod
        def _formula(cls, value: str) -> str:
            parse(value)
            return value

        @field_validator("defaults")
        @classmethod
        def _defaults(cls, value: dict[str, float]) -> dict[str, float]:
            for name, number in value.items():
                if not (name.isidentifier() and name.isascii() and len(name) <= MAX_NAME) or name in CONSTANTS \
                        or name in FUNCTIONS:
                    raise ValueError(f"{name[:70]!r} is not a variable name (letters, digits and _, no constant "
                                     f"or function)")
                if not math.isfinite(number):
                    raise ValueError(f"the default of {name!r} must be a finite number")
            return value

    inputs = {"a": NUMBER("variable a")}  # those of the default formula
    outputs = {"out": NUMBER("result")}
    ports_from = (PortRule(side="inputs", field="formula", kind="variables", label="variable {}",
                           metadata=NUMBER("").metadata(), exclude=tuple(CONSTANTS)),)

    async def run(self) -> None:
        config: Calculator.Config = self.config
        formula = parse(config.formula)
        needed = formula.variables
        values: dict[str, float] = {k: v for k, v in config.defaults.items() if k in needed}
        stamps: dict[str, int] = {}
        unfed = sorted(v for v in needed if not self.connected(v) and v not in values)
        if unfed:
            log.warning("%s: variable(s) %s of %r are not connected and have no default: no result will be computed "
                        "until each gets a frame (injected)", self.instance_id, ", ".join(unfed), config.formula)
        if not needed:  # a constant: one result, now
            await self._compute(formula, values, stamps, None)

        async def handle(port: str, frame: Frame) -> None:
            if port not in needed or is_pause(frame):
                return
            number = self.number(port, frame)
            if number is None:
                return
            values[port] = float(number)
            stamps[port] = frame.ts
            if len(values) == len(needed):
                await self._compute(formula, values, stamps, port)

        await handle_inputs(self, handle, synchronized=config.synchronized, timeout_ms=config.sync_timeout_ms)

    async def _compute(self, formula: Formula, values: dict[str, float], stamps: dict[str, int],
                       port: str | None) -> None:
        try:
            result = formula.evaluate(values)
        except EvalError as exc:
            if port is None:
                log.warning("%s: %r cannot be evaluated: %s", self.instance_id, formula.source, exc)
            else:
                self.reject(port, f"{formula.source!r} cannot be evaluated: {exc}")
            return
        await self.send("out", result, ts=max(stamps.values()) if stamps else None)
