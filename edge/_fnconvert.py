"""Input conversion of fn_task parameters: a value becomes the annotated type only when that is lossless.

A converter is compiled once per parameter when the function is decorated (an unsupported
annotation is a :class:`TypeError` then, not a surprise at run time). At run time it returns
the value as the annotated type or raises :class:`Mismatch`, which the task counts as an input
error on that port. The rule everywhere: a value converts only if nothing is lost (``2.0``
becomes ``2`` for an ``int``, ``2.5`` does not; an ``int`` becomes a ``float`` only if the float
is exactly that integer); ``bool`` is never taken for a number. The frame codec keeps CBOR
integers as ``int``, so an ``int`` sent to an ``Any``/unannotated parameter stays an ``int``.
"""

from __future__ import annotations

import math
import reprlib
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # numpy loads when a function takes an array (its module imported it), not with fn_task
    import numpy as np

__all__ = ["Converter", "Mismatch", "content_of", "converter_for", "strip_optional"]

SUPPORTED: Final = "int, float, bool, str, bytes, dict, list, tuple, numpy.ndarray, Any, or a union of these"


class Mismatch(ValueError):
    """A value that cannot become the annotated type without losing something."""


@dataclass(frozen=True, slots=True)
class Converter:
    """``exact(v)``: ``v`` already is the type; ``convert(v)``: ``v`` as the type, or :class:`Mismatch`."""

    name: str
    exact: Callable[[Any], bool]
    convert: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        return value if self.exact(value) else self.convert(value)


def _is_array(value: Any) -> bool:
    """Whether ``value`` is a numpy array; without numpy loaded, nothing is one."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _describe(value: Any) -> str:
    if _is_array(value):
        return f"ndarray of {value.dtype} {value.shape}"
    try:
        return f"{type(value).__name__} {reprlib.repr(value)}"
    except Exception:  # repr of untrusted data must not turn a mismatch into a crash
        return type(value).__name__


def _refuse(name: str, value: Any) -> Mismatch:
    return Mismatch(f"expected {name}, got {_describe(value)}")


# -- scalars ------------------------------------------------------------------------------------


def _to_int(value: Any) -> int:
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    raise _refuse("int", value)


def _to_float(value: Any) -> float:
    if type(value) is int:
        try:
            converted = float(value)
        except OverflowError:
            raise _refuse("float", value) from None
        if converted == value:  # int/float comparison is exact in Python
            return converted
    raise _refuse("float", value)


def _to_bool(value: Any) -> bool:
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise _refuse("bool", value)


def _never(name: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        raise _refuse(name, value)

    return convert


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytearray):
        return bytes(value)
    raise _refuse("bytes", value)


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, tuple):
        return list(value)
    if _is_array(value):
        return typing.cast(list[Any], value.tolist())
    raise _refuse("list", value)


def _to_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, list):
        return tuple(value)
    raise _refuse("tuple", value)


def _exactly(kind: type) -> Callable[[Any], bool]:
    return lambda value: type(value) is kind


_SCALARS: Final[dict[type, Converter]] = {
    int: Converter("int", _exactly(int), _to_int),
    float: Converter("float", _exactly(float), _to_float),
    bool: Converter("bool", _exactly(bool), _to_bool),
    str: Converter("str", _exactly(str), _never("str")),
    bytes: Converter("bytes", _exactly(bytes), _to_bytes),
    dict: Converter("dict", lambda v: isinstance(v, dict), _never("dict")),
    list: Converter("list", lambda v: isinstance(v, list), _to_list),
    tuple: Converter("tuple", lambda v: isinstance(v, tuple), _to_tuple),
}
_ANY: Final = Converter("any value", lambda _: True, lambda v: v)


# -- numpy arrays -------------------------------------------------------------------------------


def _array_converter(dtype_arg: Any) -> Converter:
    """``np.ndarray`` (any numeric dtype) or ``NDArray[np.float32]``-style (that dtype, or a kind)."""
    import numpy as np

    target: np.dtype[Any] | None = None
    kind: type | None = None
    if isinstance(dtype_arg, type) and issubclass(dtype_arg, np.generic):
        try:
            target = np.dtype(dtype_arg)
        except TypeError:  # an abstract kind such as np.floating or np.integer
            kind = dtype_arg
    name = f"ndarray of {target or (kind.__name__ if kind else 'numbers')}"

    def exact(value: Any) -> bool:
        if not isinstance(value, np.ndarray):
            return False
        if target is not None:
            return bool(value.dtype == target)
        return bool(np.issubdtype(value.dtype, kind)) if kind else value.dtype.kind in "biuf"

    def convert(value: Any) -> np.ndarray[Any, Any]:
        if isinstance(value, np.ndarray):
            array = value
        elif isinstance(value, list | tuple):
            try:
                array = np.asarray(value)
            except (ValueError, TypeError, OverflowError):  # ragged or mixed lists
                raise _refuse(name, value) from None
            if array.dtype.kind not in "biuf":
                raise _refuse(name, value)
            if exact(array):
                return array
        else:
            raise _refuse(name, value)
        if target is None:
            raise _refuse(name, value)
        with np.errstate(all="ignore"):
            try:
                converted = array.astype(target)
            except (ValueError, TypeError, OverflowError):
                raise _refuse(name, value) from None
            both_float = array.dtype.kind == "f" and converted.dtype.kind == "f"
            if not np.array_equal(converted, array, equal_nan=both_float):
                raise _refuse(name, value)
        return converted

    return Converter(name, exact, convert)


# -- unions and the entry point -----------------------------------------------------------------


def _union_converter(members: tuple[Converter, ...], allow_none: bool) -> Converter:
    name = " or ".join([m.name for m in members] + (["None"] if allow_none else []))

    def exact(value: Any) -> bool:
        return (allow_none and value is None) or any(m.exact(value) for m in members)

    def convert(value: Any) -> Any:
        for member in members:  # exact matches were tried first, so an int stays an int in int | float
            try:
                return member.convert(value)
            except Mismatch:
                continue
        raise _refuse(name, value)

    return Converter(name, exact, convert)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def strip_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    if _is_union(annotation):
        args = typing.get_args(annotation)
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) < len(args):
            return (rest[0] if len(rest) == 1 else typing.Union[rest]), True  # noqa: UP007
    return annotation, False


def converter_for(annotation: Any) -> Converter:
    """The converter of a parameter annotation; :class:`TypeError` if the type is not supported."""
    if annotation is Any or annotation is object or annotation is None:
        return _ANY
    if typing.get_origin(annotation) is typing.Annotated:
        return converter_for(typing.get_args(annotation)[0])
    if _is_union(annotation):
        args = typing.get_args(annotation)
        members = tuple(converter_for(a) for a in args if a is not type(None))
        return _union_converter(members, allow_none=len(members) < len(args))
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    if origin in (dict, list, tuple):
        return _SCALARS[origin]  # element types are not checked: they are documentation
    numpy = sys.modules.get("numpy")  # an annotation that names numpy's array was made with numpy loaded
    if numpy is not None and annotation is numpy.ndarray:
        return _array_converter(None)
    if numpy is not None and origin is numpy.ndarray:
        args = typing.get_args(annotation)
        dtype_args = typing.get_args(args[1]) if len(args) == 2 else ()
        return _array_converter(dtype_args[0] if dtype_args else None)
    raise TypeError(f"unsupported type {annotation!r}: use {SUPPORTED}")


def content_of(annotation: Any) -> str | None:
    """The IO ``content`` a type implies: number, text or bytes (None if it implies none)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    annotation, _ = strip_optional(annotation)
    if _is_union(annotation):
        contents = {content_of(a) for a in typing.get_args(annotation)}
        return contents.pop() if len(contents) == 1 else None
    if annotation in (int, float, bool):
        return "number"
    if annotation is str:
        return "text"
    if annotation is bytes:
        return "bytes"
    return None
