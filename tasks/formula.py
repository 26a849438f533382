"""The calculator's formula language: parsed once, evaluated per input frame, never through ``eval``.

Grammar, from the loosest binding to the tightest::

    expr     = or_ [ "?" expr ":" expr ]            ternary, right-associative
    or_      = and_ { "||" and_ }
    and_     = equality { "&&" equality }
    equality = compare [ ("==" | "!=") compare ]    not chained: a == b == c is refused
    compare  = sum [ ("<" | "<=" | ">" | ">=") sum ] not chained: 1 < a < 3 is refused
    sum      = product { ("+" | "-") product }
    product  = unary { ("*" | "/" | "%") unary }
    unary    = ("-" | "+" | "!") unary | power
    power    = primary [ ("^" | "**") unary ]       right-associative: 2^3^2 = 2^9, -2^2 = -4, 2^-1 = 0.5
    primary  = NUMBER | NAME | NAME "(" expr { "," expr } ")" | "(" expr ")"

Values are floats. A condition is true when it is not 0; comparisons and ``&& || !`` give 1 or 0;
``&&``, ``||`` and ``?:`` evaluate only the side they need, so ``b != 0 ? a / b : 0`` never divides
by zero. ``%`` takes the sign of the divisor (as Python's does), ``round`` rounds halves away from
zero. Names are the variables the caller allows, the constants ``pi`` and ``e``, and the functions
of :data:`FUNCTIONS`. Division by zero, a math domain error (``sqrt(-1)``, ``log(0)``), an overflow
or a result that is not finite raise :class:`EvalError`; anything else wrong with the text is a
:class:`FormulaError` when it is parsed, with the position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from edge.errors import ConfigError, EdgeError

__all__ = ["CONSTANTS", "FUNCTIONS", "EvalError", "Formula", "FormulaError", "parse"]

MAX_LENGTH: Final = 1000
"""Longest formula, in characters."""
MAX_DEPTH: Final = 32
"""Most nested parentheses, calls, unary operators and ternaries: each costs the parser stack."""
MAX_CHAIN: Final = 250
"""Most operations on one path of the formula's tree: each costs one stack frame when evaluated."""
MAX_NAME: Final = 64
"""Longest variable name (a variable is an input port: a port id)."""
MAX_VARIABLES: Final = 64
"""Most distinct variables of one formula (each is an input)."""

Env = Mapping[str, float]
Node = Callable[[Env], float]


class FormulaError(ConfigError):
    """A formula that cannot be parsed, or names something unknown; ``position`` is a 0-based offset."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at position {position + 1})",
                         field="formula")
        self.position = position


class EvalError(EdgeError, ArithmeticError):
    """A formula could not be evaluated with these values (division by zero, domain error, overflow)."""


def _round(x: float) -> float:
    """Halves away from zero (2.5 -> 3, -2.5 -> -3), unlike Python's round-half-to-even."""
    magnitude = abs(x)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return math.copysign(float(whole), x)


def _log(x: float, base: float | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


CONSTANTS: Final[Mapping[str, float]] = {"pi": math.pi, "e": math.e}

#: name -> (least arguments, most arguments or None for any, function)
FUNCTIONS: Final[Mapping[str, tuple[int, int | None, Callable[..., float]]]] = {
    "sin": (1, 1, math.sin), "cos": (1, 1, math.cos), "tan": (1, 1, math.tan),
    "asin": (1, 1, math.asin), "acos": (1, 1, math.acos), "atan": (1, 1, math.atan),
    "atan2": (2, 2, math.atan2), "sqrt": (1, 1, math.sqrt), "abs": (1, 1, abs),
    "floor": (1, 1, lambda x: float(math.floor(x))), "ceil": (1, 1, lambda x: float(math.ceil(x))),
    "round": (1, 1, _round), "log": (1, 2, _log), "log2": (1, 1, math.log2), "log10": (1, 1, math.log10),
    "exp": (1, 1, math.exp), "min": (1, None, lambda *xs: min(xs)), "max": (1, None, lambda *xs: max(xs)),
}  # fmt: skip

_TOKEN: Final = re.compile(r"""
    \s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\*\*|&&|\|\||==|!=|<=|>=|[-+*/%^()<>!?:,])
    )""", re.VERBOSE)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, name, op, end
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].isspace():
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            start = position + len(text[position:]) - len(text[position:].lstrip())
            raise FormulaError(f"unexpected character {text[start]!r}", position=start)
        tokens.append(_Token(match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup)))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


@dataclass(frozen=True)
class Formula:
    """A parsed formula: ``evaluate({"a": 1.0})``; ``variables`` are the names it reads."""

    source: str
    variables: frozenset[str]
    _root: Node = field(repr=False, compare=False)

    def evaluate(self, values: Env) -> float:
        """The result for these variable values; :class:`EvalError` if there is none."""
        try:
            result = self._root(values)
        except ZeroDivisionError:
            raise EvalError("division by zero") from None
        except OverflowError:
            raise EvalError("numeric overflow") from None
        except ValueError as exc:  # math domain errors
            raise EvalError(f"math domain error: {exc}") from None
        except KeyError as exc:
            raise EvalError(f"no value for variable {exc.args[0]!r}") from None
        if not math.isfinite(result):
            raise EvalError(f"the result is not a finite number ({result})")
        return result


def parse(text: str, variables: Collection[str] | None = None) -> Formula:
    """Parse ``text`` allowing the variable names ``variables`` (None: any name that is no constant or
    function, at most :data:`MAX_NAME` characters, at most :data:`MAX_VARIABLES` of them);
    :class:`FormulaError` if it is not valid."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula is text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"the formula is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise FormulaError("the formula is empty")
    parser = _Parser(_tokens(text), None if variables is None else frozenset(variables))
    root, _ = parser.expr(0)
    parser.expect_end()
    return Formula(text, frozenset(parser.used), root)


# Each parse method returns the compiled node and its depth: deep trees would overflow the
# interpreter's stack when evaluated, so they are refused here.
Compiled = tuple[Node, int]

_COMPARE: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__,
    "==": float.__eq__, "!=": float.__ne__,
}


def _arith(op: str, left: Node, right: Node) -> Node:
    match op:
        case "+":
            return lambda env: left(env) + right(env)
        case "-":
            return lambda env: left(env) - right(env)
        case "*":
            return lambda env: left(env) * right(env)
        case "/":
            return lambda env: left(env) / right(env)
        case "%":
            return lambda env: left(env) % right(env)
    raise AssertionError(op)


def _power(base: Node, exponent: Node) -> Node:
    def power(env: Env) -> float:
        result: float | complex = base(env) ** exponent(env)
        if isinstance(result, complex):
            raise ValueError("a negative number raised to a fractional power")
        return result

    return power


def _compare(op: str, left: Node, right: Node) -> Node:
    test = _COMPARE[op]
    return lambda env: 1.0 if test(float(left(env)), float(right(env))) else 0.0


class _Parser:
    def __init__(self, tokens: list[_Token], variables: frozenset[str] | None) -> None:
        self.tokens = tokens
        self.index = 0
        self.variables = variables
        self.used: set[str] = set()

    # -- tokens ---------------------------------------------------------------------------------
    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self, *ops: str) -> _Token | None:
        token = self.token
        if token.kind == "op" and token.text in ops:
            self.index += 1
            return token
        return None

    def expect(self, op: str, context: str) -> None:
        if self.take(op) is None:
            raise FormulaError(f"expected {op!r} {context}, found {self.describe(self.token)}",
                               position=self.token.position)

    def expect_end(self) -> None:
        if self.token.kind != "end":
            raise FormulaError(f"unexpected {self.describe(self.token)}", position=self.token.position)

    @staticmethod
    def describe(token: _Token) -> str:
        return "the end of the formula" if token.kind == "end" else repr(token.text)

    @staticmethod
    def deeper(depth: int, position: int) -> int:
        if depth >= MAX_DEPTH:
            raise FormulaError(f"the formula nests deeper than {MAX_DEPTH} levels", position=position)
        return depth + 1

    # -- grammar --------------------------------------------------------------------------------
    def expr(self, depth: int) -> Compiled:
        depth = self.deeper(depth, self.token.position)
        condition, d1 = self.or_(depth)
        if self.take("?") is None:
            return condition, d1
        then, d2 = self.expr(depth)
        self.expect(":", "after the '?' branch of a condition")
        otherwise, d3 = self.expr(depth)
        return (lambda env: then(env) if condition(env) != 0.0 else otherwise(env)), 1 + max(d1, d2, d3)

    def or_(self, depth: int) -> Compiled:
        left, d = self.and_(depth)
        while self.take("||"):
            right, d2 = self.and_(depth)
            left, d = self.logical(left, right, want=True), self.check_depth(1 + max(d, d2))
        return left, d

    def and_(self, depth: int) -> Compiled:
        left, d = self.equality(depth)
        while self.take("&&"):
            right, d2 = self.equality(depth)
            left, d = self.logical(left, right, want=False), self.check_depth(1 + max(d, d2))
        return left, d

    @staticmethod
    def logical(left: Node, right: Node, *, want: bool) -> Node:
        if want:  # ||
            return lambda env: 1.0 if left(env) != 0.0 or right(env) != 0.0 else 0.0
        return lambda env: 1.0 if left(env) != 0.0 and right(env) != 0.0 else 0.0

    def equality(self, depth: int) -> Compiled:
        return self.comparison(depth, ("==", "!="), self.compare)

    def compare(self, depth: int) -> Compiled:
        return self.comparison(depth, ("<", "<=", ">", ">="), self.sum)

    def comparison(self, depth: int, ops: tuple[str, ...], operand: Callable[[int], Compiled]) -> Compiled:
        left, d = operand(depth)
        token = self.take(*ops)
        if token is None:
            return left, d
        right, d2 = operand(depth)
        if self.token.kind == "op" and self.token.text in ops:
            raise FormulaError(f"comparisons do not chain: write 'a {token.text} b && b {self.token.text} c'",
                               position=self.token.position)
        return _compare(token.text, left, right), self.check_depth(1 + max(d, d2))

    def sum(self, depth: int) -> Compiled:
        left, d = self.product(depth)
        while (token := self.take("+", "-")) is not None:
            right, d2 = self.product(depth)
            left, d = _arith(token.text, left, right), self.check_depth(1 + max(d, d2))
        return left, d

    def product(self, depth: int) -> Compiled:
        left, d = self.unary(depth)
        while (token := self.take("*", "/", "%")) is not None:
            right, d2 = self.unary(depth)
            left, d = _arith(token.text, left, right), self.check_depth(1 + max(d, d2))
        return left, d

    def unary(self, depth: int) -> Compiled:
        token = self.take("-", "+", "!")
        if token is None:
            return self.power(depth)
        operand, d = self.unary(self.deeper(depth, token.position))
        if token.text == "-":
            return (lambda env: -operand(env)), d + 1
        if token.text == "!":
            return (lambda env: 1.0 if operand(env) == 0.0 else 0.0), d + 1
        return operand, d

    def power(self, depth: int) -> Compiled:
        base, d = self.primary(depth)
        if self.take("^", "**") is None:
            return base, d
        exponent, d2 = self.unary(self.deeper(depth, self.token.position))
        return _power(base, exponent), self.check_depth(1 + max(d, d2))

    def primary(self, depth: int) -> Compiled:
        token = self.token
        if token.kind == "number":
            self.index += 1
            value = float(token.text)
            return (lambda env: value), 1
        if token.kind == "name":
            self.index += 1
            if self.take("("):
                return self.call(token, depth)
            return self.name(token), 1
        if self.take("("):
            inner, d = self.expr(depth)
            self.expect(")", "to close '('")
            return inner, d
        raise FormulaError(f"expected a number, a name or '(', found {self.describe(token)}",
                           position=token.position)

    def name(self, token: _Token) -> Node:
        name = token.text
        if self.variables is not None and name in self.variables:
            self.used.add(name)
            return lambda env: float(env[name])
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda env: value
        if name in FUNCTIONS:
            raise FormulaError(f"{name} is a function: call it as {name}(...)", position=token.position)
        if self.variables is None:
            if len(name) > MAX_NAME:
                raise FormulaError(f"the variable name {name[:20]!r}… is longer than {MAX_NAME} characters",
                                   position=token.position)
            self.used.add(name)
            if len(self.used) > MAX_VARIABLES:
                raise FormulaError(f"more than {MAX_VARIABLES} variables", position=token.position)
            return lambda env: float(env[name])
        known = ", ".join(sorted(self.variables)) or "none"
        raise FormulaError(f"unknown name {name!r} (variables: {known}; constants: pi, e)", position=token.position)

    def call(self, token: _Token, depth: int) -> Compiled:
        entry = FUNCTIONS.get(token.text)
        if entry is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise FormulaError(f"unknown function {token.text!r} (functions: {known})", position=token.position)
        least, most, function = entry
        args: list[Node] = []
        arg_depth = 0
        if self.take(")") is None:
            while True:
                arg, d = self.expr(self.deeper(depth, self.token.position))
                args.append(arg)
                arg_depth = max(arg_depth, d)
                if self.take(")"):
                    break
                self.expect(",", f"or ')' in the arguments of {token.text}()")
        if len(args) < least or (most is not None and len(args) > most):
            wanted = f"{least}" if least == most else f"{least} or more" if most is None else f"{least} to {most}"
            raise FormulaError(f"{token.text}() takes {wanted} argument(s), got {len(args)}", position=token.position)
        if len(args) == 1:
            (only,) = args
            return (lambda env: float(function(only(env)))), self.check_depth(arg_depth + 1)
        return (lambda env: float(function(*[arg(env) for arg in args]))), self.check_depth(arg_depth + 1)

    def check_depth(self, depth: int) -> int:
        if depth > MAX_CHAIN:
            raise FormulaError(f"the formula is too deeply nested ({depth} operations in a chain)",
                               position=self.token.position)
        return depth
