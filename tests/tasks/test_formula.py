"""The calculator's formula language, exhaustively: precedence, associativity, functions, errors, and no eval."""

from __future__ import annotations

import builtins
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.base import VARIABLES
from tasks.formula import MAX_LENGTH, EvalError, FormulaError, parse


def ev(text: str, **values: float) -> float:
    return parse(text, VARIABLES).evaluate(values)


@pytest.mark.parametrize(("text", "expected"), [
    # arithmetic and precedence
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("8 / 4 / 2", 1), ("2 * 3 % 4", 2),
    ("7 % 3", 1), ("-7 % 3", 2), ("7 % -3", -2), ("7.5 % 2", 1.5), ("1 + 6 / 3 * 2", 5), ("2 + 3 ^ 2", 11),
    ("2 * 3 ^ 2", 18), ("(2 * 3) ^ 2", 36), ("1e3 + .5", 1000.5), ("1.5E-1 * 10", 1.5), ("3.", 3),
    # power: right-associative, tighter than unary minus on its left, takes a unary exponent
    ("2 ^ 3 ^ 2", 512), ("(2 ^ 3) ^ 2", 64), ("2 ** 3 ** 2", 512), ("-2 ^ 2", -4), ("(-2) ^ 2", 4),
    ("2 ^ -1", 0.5), ("2 ^ -1 ^ 2", 0.5), ("-2 ^ -2", -0.25), ("4 ^ 0.5", 2), ("0 ^ 0", 1),
    # unary operators
    ("--2", 2), ("- -2", 2), ("+3", 3), ("-+-3", 3), ("!0", 1), ("!5", 0), ("!!7", 1), ("!-1", 0), ("-!0", -1),
    # comparisons give 1 or 0 and bind looser than arithmetic
    ("1 < 2", 1), ("2 < 1", 0), ("2 <= 2", 1), ("3 >= 4", 0), ("1 + 1 == 2", 1), ("1 != 1", 0),
    ("1 + 2 > 2 + 0.5", 1), ("1 < 2 == 1", 1), ("2 > 1 != 0", 1), ("0.1 + 0.2 == 0.3", 0),
    # logic: non-zero is true, && binds tighter than ||
    ("1 && 0", 0), ("2 && 3", 1), ("0 || 0", 0), ("0 || -1", 1), ("1 || 0 && 0", 1), ("(1 || 0) && 0", 0),
    ("!0 && 1", 1), ("!(1 && 1)", 0), ("1 < 2 && 3 < 4", 1), ("1 < 2 && 3 > 4 || 5 == 5", 1),
    # ternary: loosest, right-associative, any expression in its branches
    ("1 ? 5 : 6", 5), ("0 ? 5 : 6", 6), ("1 + 1 > 1 ? 10 : 20", 10), ("1 ? 2 : 0 ? 3 : 4", 2),
    ("0 ? 2 : 0 ? 3 : 4", 4), ("0 ? 2 : 1 ? 3 : 4", 3), ("1 ? 0 ? 7 : 8 : 9", 8), ("(0 ? 1 : 2) * 3", 6),
    ("0 || 1 ? 5 : 6", 5), ("1 ? 2 + 3 : 4", 5), ("2 * (1 ? 3 : 4)", 6),
    # functions and constants
    ("sin(0)", 0), ("cos(0)", 1), ("tan(0)", 0), ("asin(1)", math.pi / 2), ("acos(1)", 0), ("atan(1)", math.pi / 4),
    ("atan2(1, 1)", math.pi / 4), ("sqrt(16)", 4), ("abs(-3.5)", 3.5), ("floor(-1.5)", -2), ("ceil(-1.5)", -1),
    ("floor(2.7)", 2), ("ceil(2.1)", 3), ("round(2.5)", 3), ("round(-2.5)", -3), ("round(2.4999)", 2),
    ("round(0.49999999999999994)", 0), ("log(e)", 1), ("log(8, 2)", 3), ("log2(8)", 3), ("log10(1000)", 3),
    ("exp(0)", 1), ("min(3, 1, 2)", 1), ("max(3, 1, 2)", 3), ("min(4)", 4), ("max(-1, -2)", -1),
    ("pi", math.pi), ("e", math.e), ("sin(pi / 2)", 1), ("2 * pi", 2 * math.pi), ("max(1, 2) ^ 2", 4),
    ("-sqrt(4)", -2), ("sqrt(2 ^ 2 + 2 * 6)", 4), ("min(1 ? 5 : 6, 3)", 3),
])
def test_evaluates(text, expected):
    assert ev(text) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_variables_are_read_and_reported():
    formula = parse("a > 0 ? b * x : -w", VARIABLES)
    assert formula.variables == {"a", "b", "x", "w"}
    assert formula.evaluate({"a": 1, "b": 2, "x": 3, "w": 4}) == 6
    assert formula.evaluate({"a": 0, "b": 2, "x": 3, "w": 4}) == -4
    assert parse("pi * 2", VARIABLES).variables == frozenset()
    assert parse("a", ["a"]).evaluate({"a": 1.5}) == 1.5


def test_short_circuit_avoids_errors():
    assert ev("b != 0 ? a / b : 0", a=1, b=0) == 0
    assert ev("b == 0 || a / b > 1", a=1, b=0) == 1
    assert ev("b != 0 && a / b > 1", a=1, b=0) == 0
    assert ev("1 ? 2 : 1 / 0") == 2


@pytest.mark.parametrize(("text", "message"), [
    ("1 / 0", "division by zero"), ("1 % 0", "division by zero"), ("a / b", "division by zero"),
    ("0 ^ -1", "division by zero"), ("sqrt(-1)", "domain"), ("log(0)", "domain"), ("log(-1)", "domain"),
    ("asin(2)", "domain"), ("acos(-2)", "domain"), ("log(8, 1)", "division by zero"),
    ("(-8) ^ (1 / 3)", "fractional power"), ("10 ^ 400", "overflow"), ("exp(1000)", "overflow"),
    ("1e308 * 10", "not a finite number"), ("1e308 * 10 - 1e308 * 10", "not a finite number"),
    ("1e400", "not a finite number"), ("floor(1e308 * 10)", "overflow"),
])
def test_evaluation_errors(text, message):
    with pytest.raises(EvalError, match=message):
        ev(text, a=1, b=0)


def test_intermediate_infinity_is_fine_when_the_result_is_finite():
    assert ev("1 / (1e308 * 10)") == 0


@pytest.mark.parametrize(("text", "message", "position"), [
    ("", "empty", None), ("   ", "empty", None), ("1 +", "expected a number", 4), ("1 2", "unexpected '2'", 3),
    ("(1", "expected ')'", 3), ("1)", "unexpected ')'", 2), ("1 ? 2", "expected ':'", 6), ("? 1", "expected", 1),
    ("q + 1", "unknown name 'q'", 1), ("E", "unknown name 'E'", 1), ("foo(1)", "unknown function 'foo'", 1),
    ("sin", "sin is a function", 1), ("pi(2)", "unknown function 'pi'", 1), ("sin()", "takes 1 argument", 1),
    ("sin(1, 2)", "takes 1 argument", 1), ("atan2(1)", "takes 2 argument", 1), ("log(1, 2, 3)", "1 to 2", 1),
    ("max()", "1 or more", 1), ("min(1,)", "expected a number", 7), ("1 < 2 < 3", "do not chain", 7),
    ("1 == 1 != 0", "do not chain", 8), ("a $ b", "unexpected character '$'", 3), ("2 ^^ 3", "expected a number", 4),
    ("1 = 1", "unexpected character '='", 3), ("a & b", "unexpected character '&'", 3), ("1..2", "unexpected", 3),
])
def test_syntax_errors_say_what_and_where(text, message, position):
    with pytest.raises(FormulaError, match=re.escape(message)) as info:
        parse(text, VARIABLES)
    assert info.value.position == (position - 1 if position is not None else None)
    assert isinstance(info.value, ValueError)  # pydantic reports it as a config error


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "().__class__.__bases__", "a.__class__", "open('/etc/passwd')",
    "eval('1')", "exec('x = 1')", "lambda: 1", "[1, 2]", "{1: 2}", "'text'", '"text"', "a; b", "a = 1",
    "globals()", "__builtins__", "sin.__globals__", "a if b else c", "1 and 2", "not a", "import os",
    "breakpoint()", "print(1)", "x[0]", "getattr(a, 'b')",
])
def test_no_python_gets_through(text):
    with pytest.raises(FormulaError):
        parse(text, VARIABLES)


def test_never_uses_eval_or_exec(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile was called")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    assert parse("a > 0 ? max(a, 2) ^ 2 : -sqrt(4)", VARIABLES).evaluate({"a": 3}) == 9


def test_size_limits():
    with pytest.raises(FormulaError, match="longer than"):
        parse("1" + " " * MAX_LENGTH, VARIABLES)
    with pytest.raises(FormulaError, match="nests deeper"):
        parse("(" * 40 + "1" + ")" * 40, VARIABLES)
    with pytest.raises(FormulaError, match="nests deeper"):
        parse("-" * 40 + "1", VARIABLES)
    with pytest.raises(FormulaError, match="too deeply nested"):
        parse("+".join(["1"] * 300), VARIABLES)
    assert parse("(" * 30 + "a" + ")" * 30, VARIABLES).evaluate({"a": 2}) == 2
    assert parse("+".join(["1"] * 200), VARIABLES).evaluate({}) == 200


# -- random arithmetic against Python's own evaluation ------------------------------------------------

numbers = st.one_of(st.integers(0, 1000).map(str),
                    st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(lambda f: repr(round(f, 3))))


def _expressions() -> st.SearchStrategy[tuple[str, str]]:
    """(formula, python) pairs: the same tree, rendered with ^ and with **, parentheses at random."""
    leaves = numbers.map(lambda n: (n, f"{float(n)!r}"))

    def extend(children: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
        binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "%", "^"]), children, st.booleans())
        unary = st.tuples(st.sampled_from(["-", "+"]), children, st.booleans())

        def render_binary(parts: tuple[tuple[str, str], str, tuple[str, str], bool]) -> tuple[str, str]:
            (lf, lp), op, (rf, rp), wrap = parts  # operands in parentheses: the tree decides, not precedence
            formula, python = f"({lf}) {op} ({rf})", f"({lp}) {'**' if op == '^' else op} ({rp})"
            return (f"({formula})", f"({python})") if wrap else (formula, python)

        def render_unary(parts: tuple[str, tuple[str, str], bool]) -> tuple[str, str]:
            op, (f, p), wrap = parts
            return (f"{op}({f})", f"{op}({p})") if wrap else (f"{op}{f}", f"{op}{p}")

        return st.one_of(binary.map(render_binary), unary.map(render_unary))

    return st.recursive(leaves, extend, max_leaves=12)


def _flat_expressions() -> st.SearchStrategy[tuple[str, str]]:
    """Chains of operators without parentheses: precedence and associativity decide."""
    ops = st.sampled_from(["+", "-", "*", "/", "%", "^"])
    return st.tuples(numbers, st.lists(st.tuples(ops, st.sampled_from(["", "-"]), numbers), min_size=1,
                                       max_size=6)).map(_render_flat)


def _render_flat(parts: tuple[str, list[tuple[str, str, str]]]) -> tuple[str, str]:
    first, rest = parts
    formula, python = [first], [repr(float(first))]
    for op, sign, number in rest:
        formula += [op, f"{sign}{number}"]
        python += ["**" if op == "^" else op, f"{sign}{float(number)!r}"]
    return " ".join(formula), " ".join(python)


def _python(python: str) -> float | None:
    """What Python makes of it; None where we must raise EvalError."""
    try:
        result = eval(python, {"__builtins__": {}})  # the oracle, on text built from numbers and operators only
    except (ZeroDivisionError, OverflowError, TypeError):  # TypeError: a complex intermediate, e.g. (-1) ** 1.5
        return None
    if isinstance(result, complex) or not math.isfinite(result):
        return None
    return float(result)


def _check(pair: tuple[str, str]) -> None:
    formula, python = pair
    expected = _python(python)
    if expected is None:
        with pytest.raises(EvalError):
            parse(formula, VARIABLES).evaluate({})
    else:
        assert parse(formula, VARIABLES).evaluate({}) == pytest.approx(expected, rel=1e-9, abs=1e-9), formula


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_random_arithmetic_matches_python(pair):
    _check(pair)


@settings(max_examples=300, deadline=None)
@given(_flat_expressions())
def test_random_precedence_matches_python(pair):
    _check(pair)
