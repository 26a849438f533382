"""The one CBOR codec of edgetasks: frames on data streams, plain values everywhere else.

Every MQTT payload the system sends is CBOR (RFC 8949), encoded and decoded here and
nowhere else. The wire format, for authors of clients in other languages (full text
with examples in ``docs/frames.md``):

A **frame** (one message on a data stream) is one CBOR map with text keys::

    {"ts": int, "seq": int, "value": any, ...}

- ``ts``: integer, milliseconds since the Unix epoch (UTC) when the value was produced;
- ``seq``: non-negative integer, a per-output counter starting at 0;
- ``value``: any CBOR data item (number, text, bytes, array, map, null, bool, tags);
- any other text key is a control field (a paused flag, say): decoders keep the ones
  they do not know in :attr:`Frame.extra`. We write ``ts``, ``seq``, extras, ``value``
  in that order; readers must accept any order.

Numeric arrays (numpy ``ndarray``) travel as RFC 8746 typed arrays: tag 40 (multi-
dimensional array, row-major) holding ``[dimensions, typed array]``, where the typed
array is one of the tags 64..87 wrapping a byte string of the elements. The tag number
is ``0b010_f_s_e_ll``: f=1 for IEEE 754 floats, s=1 for signed integers, e=1 for little
endian, ll = log2 of the element size in bytes for integers, and 0/1/2/3 for
binary16/32/64/128 floats::

    uint8 64   uint16 69   uint32 70   uint64 71      (big endian 65, 66, 67)
    int8  72   int16  77   int32  78   int64  79      (big endian 73, 74, 75)
    float16 84 float32 85  float64 86                 (big endian 80, 81, 82)

We always write tag 40 with little-endian element tags; a 0-d array has an empty
dimensions array, and an empty array a 0 among its dimensions (RFC 8746 wants them
non-zero: strict decoders elsewhere may refuse empty arrays). We read tags 64..87 alone
(a 1-d array), and tag 40 and tag 1040 (column-major, RFC 8746 section 3.1.2) around a
typed array or a classical array of numbers. Not supported: tag 76 (reserved), 83 and 87
(binary128: numpy has no portable IEEE quad type), and dtypes with no tag at all (bool,
complex, datetime, strings, objects, structured), which fail on encode with a hint.

Decoding is untrusted-input safe: anything malformed, oversize (``max_size``, default
:data:`MAX_FRAME_SIZE`) or of the wrong shape raises :class:`~edge.errors.FrameError`
and never anything else. Decoded arrays are **read-only** views (``.copy()`` one to write
to it): a frame whose value is one big array, as :func:`encode_frame` writes it, is read
without any copy, the array viewing the payload itself; other arrays view the byte string
cbor2 extracted, their one copy. A bytearray or memoryview payload is first copied into
bytes (cbor2 would do that too). Maps with a repeated key are refused (readers that keep
the first and readers that keep the last would disagree). Bytes after the top-level item
are ignored (cbor2 does not report them; finding out would double the cost of a small frame).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import operator
import reprlib
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, NoReturn

import cbor2

from edge.errors import FrameError

if TYPE_CHECKING:  # numpy loads with the first array encoded or decoded: not with ``import edge``
    import numpy as np

__all__ = [
    "ALLOWED_TAGS",
    "MAX_BIGNUM_BYTES",
    "MAX_DEPTH",
    "MAX_FRAME_SIZE",
    "MAX_ITEMS",
    "Frame",
    "decode_frame",
    "decode_value",
    "encode_frame",
    "encode_value",
    "now_ms",
    "split_map_tail",
]

MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
"""Default limit for a payload handed to :func:`decode_frame` / :func:`decode_value`."""
MAX_DEPTH: Final = 64
"""Containers (arrays, maps, tags) nest at most this deep in a decoded payload."""
MAX_ITEMS: Final = 1_000_000
"""Data items in one payload, at most: what bounds the memory a small payload can decode into."""
MAX_BIGNUM_BYTES: Final = 1024
"""Bytes of a bignum (tags 2 and 3), at most: 2,466 decimal digits, printable (Python refuses 4,300)."""

_RESERVED_KEYS: Final = frozenset({"ts", "seq", "value"})
# ts is a signed and seq an unsigned 64-bit integer: a bignum there is no time or counter a task can use
_MIN_TS: Final = -(2**63)
_MAX_TS: Final = 2**63 - 1
_MAX_SEQ: Final = 2**64 - 1

# RFC 8746 typed-array tag -> numpy dtype code (64 and 68, "clamped", are both uint8 here).
_DTYPE_CODE_BY_TAG: Final = {
    64: "u1", 65: ">u2", 66: ">u4", 67: ">u8", 68: "u1", 69: "<u2", 70: "<u4", 71: "<u8",
    72: "i1", 73: ">i2", 74: ">i4", 75: ">i8", 77: "<i2", 78: "<i4", 79: "<i8",
    80: ">f2", 81: ">f4", 82: ">f8", 84: "<f2", 85: "<f4", 86: "<f8",
}  # fmt: skip
_dtypes: dict[int, np.dtype[Any]] = {}  # the codes as numpy dtypes, made with the first typed array


def _dtype_by_tag(tag: int) -> np.dtype[Any] | None:
    """The numpy dtype of RFC 8746 typed-array tag ``tag``; None if it is not one."""
    if not _dtypes:
        import numpy as np

        _dtypes.update({t: np.dtype(code) for t, code in _DTYPE_CODE_BY_TAG.items()})
    return _dtypes.get(tag)


def _loaded_numpy() -> Any:
    """numpy if anything loaded it, else None: without it, no value can be an array or a numpy scalar."""
    return sys.modules.get("numpy")
_UNSUPPORTED_TAGS: Final = {
    76: "tag 76 is reserved by RFC 8746 (the little-endian sint8 tag must not be used)",
    83: "tag 83 (IEEE 754 binary128, big endian) is not supported: numpy has no portable quad float",
    87: "tag 87 (IEEE 754 binary128, little endian) is not supported: numpy has no portable quad float",
}
_TAG_MULTI_DIM: Final = 40
_TAG_MULTI_DIM_COLUMN_MAJOR: Final = 1040
_MAX_DIMS: Final = 64  # numpy's own limit

_TAG_POSITIVE_BIGNUM: Final = 2
_TAG_NEGATIVE_BIGNUM: Final = 3
ALLOWED_TAGS: Final = frozenset({
    _TAG_POSITIVE_BIGNUM, _TAG_NEGATIVE_BIGNUM, _TAG_MULTI_DIM, _TAG_MULTI_DIM_COLUMN_MAJOR, *_DTYPE_CODE_BY_TAG,
})
"""The CBOR tags a payload may hold (docs/frames.md); any other tag refuses the payload.

Value sharing (28/29) turns a few hundred bytes into a structure with 2**40 leaves for
whoever walks it; string references (25/256), dates, regular expressions, MIME messages,
bigfloats with huge exponents and the rest are nothing our wire format uses.
"""
# the tags cbor2 decodes by itself (so tag_hook never sees them): each refused by a decoder of ours
_CBOR2_BUILTIN_TAGS: Final = (0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799)
_TAG_NAMES: Final = {28: "value sharing", 29: "value sharing", 25: "string references", 256: "string references"}

# Payloads over this size have their structure walked before cbor2 decodes them (item count,
# depth, tags), so that a big payload of tiny items cannot decode into gigabytes; under it, the
# item count is bounded by the size itself and the walk would only cost time.
_WALK_BYTES: Final = 64 * 1024

# (dtype kind, item size) -> the little-endian typed-array tag we write.
_TAG_BY_KIND_SIZE: Final = {
    ("u", 1): 64, ("u", 2): 69, ("u", 4): 70, ("u", 8): 71,
    ("i", 1): 72, ("i", 2): 77, ("i", 4): 78, ("i", 8): 79,
    ("f", 2): 84, ("f", 4): 85, ("f", 8): 86,
}  # fmt: skip

# Arrays (and payloads) at least this big take the hand-written paths: encoding joins the CBOR
# around the array's own memory, one copy in all (900 KB: 26 us, against 150 us through cbor2's
# buffer); decoding a frame that is one array views the payload (4 us against 60 to 380 us).
_LARGE_ARRAY_BYTES: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """One message on a data stream: a value, when it was made, and its place in the stream."""

    value: Any
    ts: int
    seq: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def paused(self) -> bool:
        """Whether the ``paused`` control field is on: ``true`` or a non-zero integer (anything else,
        an array say, is no pause rather than an error in whoever asks)."""
        flag = self.extra.get("paused", False)
        return flag is True or (type(flag) is int and flag != 0)


def now_ms() -> int:
    """Milliseconds since the Unix epoch, the unit of :attr:`Frame.ts`."""
    return time.time_ns() // 1_000_000


# -- encoding ---------------------------------------------------------------------------------


def encode_frame(
    value: Any,
    *,
    ts: int | None = None,
    seq: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """CBOR bytes of the frame ``{"ts", "seq", **extra, "value"}``; ``ts`` defaults to :func:`now_ms`.

    Raises :class:`FrameError` if ``value`` or an extra holds something CBOR cannot carry,
    ``ts``/``seq`` are not (non-negative, for ``seq``) integers, or an extra key is not a
    string or shadows ``ts``, ``seq`` or ``value``.
    """
    if ts is None:
        ts = time.time_ns() // 1_000_000
    elif type(ts) is not int:
        ts = _as_int(ts, "ts")
    if type(seq) is not int or seq < 0:
        seq = _as_int(seq, "seq")
        if seq < 0:
            raise FrameError(f"frame 'seq' must be a non-negative integer, got {seq}")
    if not extra:
        return _encode({"ts": ts, "seq": seq, "value": value})
    for key in extra:
        if type(key) is not str:
            raise FrameError(f"frame extra keys must be strings, got {key!r}")
        if key in _RESERVED_KEYS:
            raise FrameError(f"frame extra key {key!r} would shadow the frame's own {key!r}")
    return _encode({"ts": ts, "seq": seq, **extra, "value": value})


def encode_value(obj: Any) -> bytes:
    """Plain CBOR for non-frame payloads (catalogs, specs, statuses), numpy arrays included."""
    return _encode(obj)


def _as_int(number: object, name: str) -> int:
    if isinstance(number, bool):
        raise FrameError(f"frame {name!r} must be an integer, not a bool")
    try:
        return operator.index(number)  # type: ignore[arg-type]
    except TypeError:
        raise FrameError(f"frame {name!r} must be an integer, got {type(number).__name__}") from None


class _SpliceArrays(Exception):
    """Raised inside cbor2 to restart the encoding on the path that splices big arrays."""


def _encode(obj: Any) -> bytes:
    try:
        try:
            payload = cbor2.dumps(obj, default=_default_splicing)
        except _SpliceArrays:
            parts: list[bytes | memoryview] = []
            _encode_parts(obj, parts)
            payload = b"".join(parts)
    except FrameError:
        raise
    except (cbor2.CBOREncodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise FrameError(f"cannot encode as CBOR: {exc}") from exc
    # every level starts with a byte of an array, map or tag head: only a payload with more such bytes than
    # the limit can be nested deeper than it (counted at C speed; the walk is for the few that have them)
    if len(payload) > MAX_DEPTH and _holds_containers(obj) and payload.translate(_HEADS).count(1) > MAX_DEPTH \
            and _deeper_than(obj, MAX_DEPTH):
        raise FrameError(f"cannot encode as CBOR: nested deeper than {MAX_DEPTH} levels, which no reader decodes "
                         "(a task wrapping what it received, say)")
    return payload


_HEADS: Final = bytes(1 if 0x80 <= b <= 0xDB else 0 for b in range(256))  # array, map and tag head bytes
_NESTED: Final = (list, tuple, dict)


def _holds_containers(obj: Any) -> bool:
    """Whether ``obj`` is, or (a map: a frame) has a value that is, a list or a map that could nest deep: a
    frame of one array or a scalar, with short flat lists among its extras (a time base), cannot be nested
    too deep, and is not scanned (the scan costs as much as encoding an audio frame's samples)."""
    if isinstance(obj, dict):
        for value in obj.values():  # noqa: SIM110  # a loop, not any(): this runs for every frame sent
            if isinstance(value, _NESTED) and not _short_and_flat(value):
                return True
        return False
    return isinstance(obj, _NESTED) and not _short_and_flat(obj)


def _short_and_flat(container: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> bool:
    """A list or tuple of at most 16 items none of which is a list, tuple or map (a numpy array in it is
    three levels deep at most: far from the limit)."""
    if isinstance(container, dict) or len(container) > 16:
        return False
    for item in container:  # noqa: SIM110  # (as above)
        if isinstance(item, _NESTED):
            return False
    return True


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests containers deeper than the decoder's ``limit`` (a numeric array counts 3:
    its tag's array, the shape's and the typed array's)."""
    np = _loaded_numpy()
    arrays: tuple[type, ...] = (np.ndarray,) if np is not None else ()
    nested = (list, tuple, dict, *arrays)
    stack = [(obj, limit)]
    while stack:
        item, room = stack.pop()
        if arrays and isinstance(item, arrays):
            if room < 3:
                return True
            continue
        if room < 1:
            return True
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, room - 1) for child in children if isinstance(child, nested))
    return False


def _default(encoder: cbor2.CBOREncoder, obj: Any) -> None:
    """cbor2 calls this only for types it does not know: numpy arrays and scalars."""
    np = _loaded_numpy()
    if np is not None and isinstance(obj, np.ndarray):
        header, arr = _array_wire(obj)
        encoder.write(header)
        # cbor2's write() is fast for bytes and pathologically slow for memoryviews.
        encoder.write(arr.tobytes())
    elif np is not None and isinstance(obj, np.generic):
        encoder.encode(_numpy_scalar(obj))
    else:
        raise FrameError(
            f"cannot encode {type(obj).__module__}.{type(obj).__qualname__} as CBOR: use numbers, "
            "text, bytes, lists, dicts, None, bools or numpy arrays"
        )


def _default_splicing(encoder: cbor2.CBOREncoder, obj: Any) -> None:
    np = _loaded_numpy()
    if np is not None and isinstance(obj, np.ndarray) and obj.nbytes >= _LARGE_ARRAY_BYTES:
        raise _SpliceArrays
    _default(encoder, obj)


def _encode_parts(obj: Any, parts: list[bytes | memoryview]) -> None:
    """Append the CBOR of ``obj`` to ``parts``: the same bytes cbor2 writes, big arrays uncopied."""
    import numpy as np  # only a big array takes this path

    kind = type(obj)
    if kind is dict:
        parts.append(_head(5, len(obj)))
        for key, item in obj.items():
            parts.append(cbor2.dumps(key, default=_default))
            _encode_parts(item, parts)
    elif kind is list or kind is tuple:
        parts.append(_head(4, len(obj)))
        for item in obj:
            _encode_parts(item, parts)
    elif isinstance(obj, np.ndarray):
        header, arr = _array_wire(obj)
        parts.append(header)
        parts.append(arr.data)
    else:
        parts.append(cbor2.dumps(obj, default=_default))


def _head(major: int, argument: int) -> bytes:
    """The shortest CBOR head (RFC 8949 section 3) of major type ``major``."""
    initial = major << 5
    if argument < 24:
        return bytes((initial | argument,))
    if argument <= 0xFF:
        return struct.pack(">BB", initial | 24, argument)
    if argument <= 0xFFFF:
        return struct.pack(">BH", initial | 25, argument)
    if argument <= 0xFFFFFFFF:
        return struct.pack(">BI", initial | 26, argument)
    return struct.pack(">BQ", initial | 27, argument)


_FOREIGN_BYTE_ORDERS: Final = (">",) if sys.byteorder == "little" else (">", "=")


def _array_wire(arr: np.ndarray[Any, Any]) -> tuple[bytes, np.ndarray[Any, Any]]:
    """The RFC 8746 header of ``arr`` up to the byte-string head, and ``arr`` as C-ordered little endian."""
    import numpy as np

    dtype = arr.dtype
    tag = _TAG_BY_KIND_SIZE.get((dtype.kind, dtype.itemsize))
    if tag is None:
        raise FrameError(_unsupported_dtype(dtype))
    if type(arr) is not np.ndarray:
        masked = sys.modules.get("numpy.ma")
        if masked is not None and isinstance(arr, masked.MaskedArray):
            raise FrameError("cannot encode a masked array: send arr.filled(fill) and the mask separately")
        arr = np.asarray(arr)
    if dtype.byteorder in _FOREIGN_BYTE_ORDERS:
        arr = arr.astype(dtype.newbyteorder("<"), order="C")
    elif not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    return _array_header(arr.shape, tag, arr.nbytes), arr


@functools.lru_cache(maxsize=64)
def _array_header(shape: tuple[int, ...], tag: int, nbytes: int) -> bytes:
    """``40([shape, tag(h'...')])`` up to and including the head of the byte string."""
    parts = [_head(6, _TAG_MULTI_DIM), _head(4, 2), _head(4, len(shape))]
    parts.extend([_head(0, dim) for dim in shape])
    parts.append(_head(6, tag))
    parts.append(_head(2, nbytes))
    return b"".join(parts)


def _unsupported_dtype(dtype: np.dtype[Any]) -> str:
    hints = {
        "b": "send it as uint8 with arr.astype(np.uint8)",
        "c": "send real and imaginary parts, e.g. np.stack([arr.real, arr.imag], axis=-1)",
        "M": "send integer ticks with arr.astype(np.int64) and the unit separately",
        "m": "send integer ticks with arr.astype(np.int64) and the unit separately",
        "f": "send it as arr.astype(np.float64)",
        "U": "send text as a list of str: arr.tolist()",
        "S": "send bytes as a list: arr.tolist()",
        "O": "send the objects as a list: arr.tolist()",
        "V": "send each field as its own array",
    }
    hint = hints.get(dtype.kind, "convert it to an integer or float dtype")
    return f"numpy dtype {dtype} has no RFC 8746 typed-array tag (supported: u/int8..64, float16/32/64): {hint}"


def _numpy_scalar(obj: np.generic) -> bool | int | float:
    import numpy as np

    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating) and obj.dtype.itemsize <= 8:
        return float(obj)
    raise FrameError(f"cannot encode numpy scalar of dtype {obj.dtype} as CBOR: {_unsupported_dtype(obj.dtype)}")


# -- decoding ---------------------------------------------------------------------------------


def decode_frame(data: bytes | bytearray | memoryview, *, max_size: int = MAX_FRAME_SIZE) -> Frame:
    """The :class:`Frame` in ``data``; :class:`FrameError` for anything that is not one."""
    if type(data) is not bytes:
        _check_payload(data, max_size)
        data = bytes(data)  # cbor2 would copy it into bytes anyway; as bytes it can take the zero-copy path
    elif len(data) > max_size:
        _check_payload(data, max_size)
    if len(data) >= _LARGE_ARRAY_BYTES:
        frame = _decode_array_frame(data)
        if frame is not None:
            return frame
    obj = _loads(data)
    if type(obj) is not dict:
        raise FrameError(f"a frame is a CBOR map with 'ts', 'seq' and 'value', got {_cbor_kind(obj)}")
    try:
        value = obj["value"]
        ts = obj["ts"]
        seq = obj["seq"]
    except KeyError as exc:
        raise FrameError(f"frame has no {exc.args[0]!r} key (keys: {_short(list(islice(obj, 8)))})") from None
    if type(ts) is not int or not _MIN_TS <= ts <= _MAX_TS:
        raise FrameError(f"frame 'ts' must be an integer of 64 bits (ms since the Unix epoch), got {_cbor_kind(ts)}")
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
        raise FrameError(f"frame 'seq' must be a non-negative integer of 64 bits, got {_cbor_kind(seq)}")
    extra: dict[str, Any] = {}
    if len(obj) > 3:
        for key, item in obj.items():
            if type(key) is not str:
                raise FrameError(f"frame keys must be text strings, got {_cbor_kind(key)}")
            if key not in _RESERVED_KEYS:
                extra[key] = item
    return _new_frame(value, ts, seq, extra)


def decode_value(data: bytes | bytearray | memoryview, *, max_size: int = MAX_FRAME_SIZE) -> Any:
    """The value in a plain CBOR payload (see :func:`encode_value`); :class:`FrameError` if malformed."""
    return _decode(data, max_size)


# Frame's generated __init__ goes through object.__setattr__ (it is frozen); setting the slots
# directly builds the same object in 0.3 us instead of 0.5 us, a fifth of a small frame's decode.
_new_object = object.__new__
_set_value = Frame.__dict__["value"].__set__
_set_ts = Frame.__dict__["ts"].__set__
_set_seq = Frame.__dict__["seq"].__set__
_set_extra = Frame.__dict__["extra"].__set__


def _new_frame(value: Any, ts: int, seq: int, extra: Mapping[str, Any]) -> Frame:
    frame: Frame = _new_object(Frame)
    _set_value(frame, value)
    _set_ts(frame, ts)
    _set_seq(frame, seq)
    _set_extra(frame, extra)
    return frame


def _decode_array_frame(data: bytes) -> Frame | None:
    """The frame encode_frame writes for a lone array, decoded with no copy at all; else None.

    That is ``{"ts": int, "seq": uint, "value": 40([[dims], typed array])}`` ending with the
    array's bytes: the array is a read-only view into ``data``. Anything else, valid or not,
    is left to cbor2.
    """
    if not data.startswith(b"\xa3\x62ts"):
        return None
    try:
        major, ts, pos = _read_head(data, 4)
        if major == 1:
            ts = -1 - ts
        elif major != 0:
            return None
        if not _MIN_TS <= ts <= _MAX_TS:
            return None  # cbor2's path refuses it with the reason
        if data[pos : pos + 4] != b"\x63seq":
            return None
        major, seq, pos = _read_head(data, pos + 4)
        if major != 0 or data[pos : pos + 9] != b"\x65value\xd8\x28\x82":
            return None
        major, ndim, pos = _read_head(data, pos + 9)
        if major != 4 or ndim > _MAX_DIMS:
            return None
        dims = []
        for _ in range(ndim):
            major, dim, pos = _read_head(data, pos)
            if major != 0:
                return None
            dims.append(dim)
        major, tag, pos = _read_head(data, pos)
        dtype = _dtype_by_tag(tag) if major == 6 else None
        major, size, pos = _read_head(data, pos)
    except IndexError:  # a truncated head
        return None
    if dtype is None or major != 2 or pos + size != len(data) or size != math.prod(dims) * dtype.itemsize:
        return None
    import numpy as np

    array = np.frombuffer(data, dtype, count=size // dtype.itemsize, offset=pos).reshape(dims)
    return _new_frame(array, ts, seq, {})


def _read_head(data: bytes, pos: int) -> tuple[int, int, int]:
    """Major type, argument and end of the definite-length CBOR head at ``pos`` (IndexError if none)."""
    initial = data[pos]
    info = initial & 0x1F
    if info < 24:
        return initial >> 5, info, pos + 1
    if info > 27:  # indefinite length or reserved
        raise IndexError(pos)
    end = pos + 1 + (1 << (info - 24))
    if end > len(data):
        raise IndexError(pos)
    return initial >> 5, int.from_bytes(data[pos + 1 : end], "big"), end


def _decode(data: bytes | bytearray | memoryview, max_size: int) -> Any:
    if type(data) is not bytes or len(data) > max_size:
        _check_payload(data, max_size)
    return _loads(data)


def _loads(data: bytes | bytearray | memoryview) -> Any:
    """cbor2 with our limits: tags outside :data:`ALLOWED_TAGS` refused, depth and items bounded."""
    if len(data) > _WALK_BYTES:
        _walk(memoryview(data).cast("B"))
    try:
        return cbor2.loads(data, tag_hook=_tag_hook, semantic_decoders=_SEMANTIC_DECODERS,
                           allow_duplicate_keys=False, max_depth=MAX_DEPTH)
    except Exception as exc:  # untrusted input: every way the decoder can fail is a FrameError
        raise FrameError(_reason(exc)) from exc


def split_map_tail(data: bytes, key: str, *, max_head: int = 4096) -> tuple[dict[str, Any], bytes] | None:
    """A CBOR map whose last entry is ``key``, split in two: its other entries, decoded as :func:`decode_value`
    decodes (same limits, :class:`FrameError` if malformed), and the raw bytes of ``key``'s value, neither
    decoded nor checked. None when ``data`` is not a map of at most 23 entries ending so within ``max_head``
    bytes: decode it whole. A reader of a big value many messages repeat byte for byte (the fleet's agent
    catalogs: edge.controller.fleet) keys what it made of the value by its bytes and decodes it once."""
    if not data or not 0xA1 <= data[0] <= 0xB7:
        return None
    entries = data[0] - 0xA0
    stream = io.BytesIO(data)
    stream.seek(1)
    decoder = cbor2.CBORDecoder(stream, tag_hook=_tag_hook, semantic_decoders=_SEMANTIC_DECODERS)
    try:
        for _ in range(entries - 1):  # find where the last key starts; the head is decoded again below
            decoder.decode()
            decoder.decode()
            if stream.tell() > max_head:
                return None
        head_end = stream.tell()
        if decoder.decode() != key or stream.tell() > max_head:
            return None
    except FrameError:
        raise
    except Exception as exc:  # untrusted input: every way the decoder can fail is a FrameError
        raise FrameError(_reason(exc)) from exc
    head = decode_value(bytes((0xA0 + entries - 1,)) + data[1:head_end])
    if not isinstance(head, dict):
        return None
    return head, data[stream.tell():]


def _refused_tag(number: int) -> str:
    name = _TAG_NAMES.get(number)
    return f"CBOR tag {number}{f' ({name})' if name else ''} is not allowed (docs/frames.md lists the tags)"


def _refuse(number: int) -> Any:
    def decoder(value: Any, immutable: bool) -> NoReturn:
        raise FrameError(_refused_tag(number))

    return decoder


def _bignum(negative: bool) -> Any:
    def decoder(value: Any, immutable: bool) -> int:
        if type(value) is not bytes:
            raise FrameError(f"a bignum (tag {3 if negative else 2}) holds a byte string, got {_cbor_kind(value)}")
        if len(value) > MAX_BIGNUM_BYTES:
            raise FrameError(f"a bignum of {len(value)} bytes is over the limit of {MAX_BIGNUM_BYTES} bytes")
        number = int.from_bytes(value, "big")
        return -1 - number if negative else number

    return decoder


_SEMANTIC_DECODERS: Final[dict[int, Any]] = {
    **{tag: _refuse(tag) for tag in _CBOR2_BUILTIN_TAGS},
    _TAG_POSITIVE_BIGNUM: _bignum(negative=False),
    _TAG_NEGATIVE_BIGNUM: _bignum(negative=True),
}


def _walk(data: memoryview) -> None:
    """Check the structure of a big payload without building it: well-formed heads, at most
    :data:`MAX_ITEMS` items and :data:`MAX_DEPTH` levels, only :data:`ALLOWED_TAGS`.

    Iterative (an explicit stack of items left per open container), so neither deep nesting
    nor a huge count in a head costs more than the bytes that are there.
    """
    end = len(data)
    pos = 0
    items = 0
    left: list[int] = []  # items still to read in each open container; -1: indefinite, until a break
    while True:
        if pos >= end:
            raise FrameError("malformed CBOR: the payload ends inside an item")
        if data[pos] == 0xFF:  # the break that closes an indefinite-length container
            if not left or left[-1] != -1:
                raise FrameError("malformed CBOR: a break outside an indefinite-length item")
            left.pop()
            pos += 1
        else:
            items += 1
            if items > MAX_ITEMS:
                raise FrameError(f"a payload of more than {MAX_ITEMS} items is over the limit")
            pos, opened = _walk_item(data, pos, end)
            if opened:
                left.append(opened)
                if len(left) > MAX_DEPTH:
                    raise FrameError(f"containers nest deeper than the limit of {MAX_DEPTH}")
                continue
        # an item (or a container) is complete: count it off its container, closing finished ones
        while left and left[-1] > 0:
            left[-1] -= 1
            if left[-1]:
                break
            left.pop()
        if not left:
            return


def _walk_item(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Past the head at ``pos`` (and a definite string's bytes): the next position, and the number
    of items the item opens (0: none, -1: indefinite until a break)."""
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        argument = info
    elif info < 28:
        size = 1 << (info - 24)
        if pos + size > end:
            raise FrameError("malformed CBOR: the payload ends inside an item")
        argument = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    elif info == 31 and major in (2, 3, 4, 5):
        return pos, -1  # an indefinite string's chunks are definite strings, then a break
    else:
        raise FrameError(f"malformed CBOR: reserved additional information {info} (major type {major})")
    if major in (2, 3):
        if argument > end - pos:
            raise FrameError(f"malformed CBOR: a string of {argument} bytes, {end - pos} left")
        return pos + argument, 0
    if major in (4, 5):
        count = argument * 2 if major == 5 else argument
        if count > end - pos:  # every item takes at least one byte
            raise FrameError(f"malformed CBOR: a container of {argument} items, {end - pos} bytes left")
        return pos, count
    if major == 6:
        if argument not in ALLOWED_TAGS:
            raise FrameError(_refused_tag(argument))
        return pos, 1  # the tag's content
    return pos, 0


def _check_payload(data: object, max_size: int) -> None:
    """Refuse what is not a bytes-like object of at most ``max_size`` bytes, before decoding it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FrameError(f"a CBOR payload is bytes, bytearray or memoryview, not {type(data).__name__}")
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > max_size:
        raise FrameError(f"payload of {size} bytes is over the limit of {max_size} bytes")


def _reason(exc: BaseException) -> str:
    """Our own message if one of our tag decoders refused the input, else cbor2's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FrameError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return f"malformed CBOR: {exc or type(exc).__name__}"


def _tag_hook(tag: cbor2.CBORTag, immutable: bool) -> Any:
    """cbor2 calls this for tags it has no decoder for: RFC 8746 arrays, and refusals."""
    number = tag.tag
    dtype = _dtype_by_tag(number)
    if dtype is not None:
        return _typed_array(number, dtype, tag.value)
    if number in (_TAG_MULTI_DIM, _TAG_MULTI_DIM_COLUMN_MAJOR):
        return _multi_dim(tag.value, number)
    if number in _UNSUPPORTED_TAGS:
        raise FrameError(_UNSUPPORTED_TAGS[number])
    raise FrameError(_refused_tag(number))


def _typed_array(tag: int, dtype: np.dtype[Any], data: Any) -> np.ndarray[Any, Any]:
    if type(data) is not bytes:
        raise FrameError(f"typed array tag {tag} must hold a byte string, got {_cbor_kind(data)}")
    if len(data) % dtype.itemsize:
        raise FrameError(
            f"typed array tag {tag} holds {len(data)} bytes, not a multiple of its {dtype.itemsize}-byte elements"
        )
    import numpy as np

    return np.frombuffer(data, dtype)


def _multi_dim(content: Any, tag: int) -> np.ndarray[Any, Any]:
    import numpy as np

    if type(content) not in (list, tuple) or len(content) != 2:
        _bad_multi_dim(tag, f"must hold [dimensions, elements], got {_cbor_kind(content)}")
    dims, elements = content
    if type(dims) not in (list, tuple) or len(dims) > _MAX_DIMS:
        _bad_multi_dim(tag, f"dimensions must be an array of at most {_MAX_DIMS} unsigned integers")
    for dim in dims:
        if type(dim) is not int or not 0 <= dim < 1 << 64:
            _bad_multi_dim(tag, f"dimensions must be unsigned integers, got {_cbor_kind(dim)}")
    if type(elements) in (list, tuple):
        elements = _classical_array(elements, tag)
    elif not isinstance(elements, np.ndarray) or elements.ndim != 1:
        what = _cbor_kind(elements)
        _bad_multi_dim(tag, f"elements must be a typed array (tags 64..87) or an array, got {what}")
    count = math.prod(dims)
    if count != elements.size:
        _bad_multi_dim(tag, f"dimensions {_short(list(dims))} make {count} elements, it holds {elements.size}")
    if tag == _TAG_MULTI_DIM_COLUMN_MAJOR:
        return elements.reshape(dims, order="F")
    return elements.reshape(dims)


def _classical_array(elements: list[Any] | tuple[Any, ...], tag: int) -> np.ndarray[Any, Any]:
    kinds = {type(item) for item in elements}
    if not kinds <= {int, float}:
        _bad_multi_dim(tag, "a classical elements array must hold only integers and floats")
    import numpy as np

    for dtype in (np.float64,) if float in kinds else (np.int64, np.uint64):
        with contextlib.suppress(OverflowError):
            return np.array(elements, dtype=dtype)
    _bad_multi_dim(tag, "its numbers do not fit 64 bits")


def _bad_multi_dim(tag: int, problem: str) -> NoReturn:
    raise FrameError(f"invalid RFC 8746 multi-dimensional array (tag {tag}): {problem}")


def _cbor_kind(obj: object) -> str:
    """A short description of a decoded item for an error message."""
    if isinstance(obj, cbor2.CBORTag):
        return f"tag {obj.tag}"
    return f"{type(obj).__name__} {_short(obj)}"


def _short(obj: object) -> str:
    """A bounded repr that never raises (repr fails for ints over 4300 digits, for one)."""
    try:
        return reprlib.repr(obj)
    except Exception:
        return f"<{type(obj).__name__}>"
