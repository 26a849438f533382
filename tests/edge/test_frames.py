"""edge.frames through its public API: round trips, exact wire bytes, interop, and refusals."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import struct
import time

import cbor2
import numpy as np
import pytest
from cbor2 import CBORTag
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.errors import FrameError
from edge.frames import (
    MAX_FRAME_SIZE,
    Frame,
    decode_frame,
    decode_value,
    encode_frame,
    encode_value,
    now_ms,
)

TS = 1_767_225_600_000
SUPPORTED_DTYPES = ["u1", "<u2", "<u4", "<u8", "i1", "<i2", "<i4", "<i8", "<f2", "<f4", "<f8"]
fuzz = settings(max_examples=200, deadline=None)


def rfc8746_little_endian_tag(dtype: np.dtype) -> int:
    """RFC 8746 section 2.1: tag 0b010_f_s_e_ll; 8-bit elements use only the e=0 tags (64, 72)."""
    f = int(dtype.kind == "f")
    s = int(dtype.kind == "i")
    e = int(dtype.itemsize > 1)
    ll = int(math.log2(dtype.itemsize)) - f  # element size is 2 ** (f + ll) bytes
    return 0b010_00000 | f << 4 | s << 3 | e << 2 | ll


def roundtrip_array(arr: np.ndarray) -> np.ndarray:
    out = decode_frame(encode_frame(arr, ts=TS)).value
    assert isinstance(out, np.ndarray)
    return out


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        0, 1, 23, 24, 255, 256, 65536, 2**32, 2**64 - 1, 2**64, 2**70, -1, -24, -25, -(2**64), -(2**70),
        0.0, -0.0, 1.5, -1e300, 5e-324, math.inf, -math.inf,
        True, False, None, "", "héllo wörld ✓", "x" * 1000, b"", b"\x00\xff" * 300,
        [], [1, [2, [3, []]]], {}, {"a": {"b": [1, b"x", None]}, "c": 1.25},
        {1: "int keys are fine inside a value", b"k": 2},
    ],
)  # fmt: skip
def test_values_round_trip(value):
    frame = decode_frame(encode_frame(value, ts=TS, seq=7))
    assert frame == Frame(value=value, ts=TS, seq=7)
    assert type(frame.value) is type(value)
    assert decode_value(encode_value(value)) == value


def test_nan_round_trips():
    assert math.isnan(decode_frame(encode_frame(math.nan, ts=TS)).value)


def test_defaults_ts_now_and_seq_zero():
    before = now_ms()
    frame = decode_frame(encode_frame("x"))
    assert before <= frame.ts <= now_ms()
    assert frame.seq == 0
    assert frame.extra == {}
    assert abs(now_ms() - 1000 * time.time()) < 1000


def test_frame_is_frozen_and_compares_by_value():
    frame = decode_frame(encode_frame(3, ts=TS, seq=2, extra={"paused": True}))
    assert frame == Frame(3, TS, 2, {"paused": True})
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.seq = 3  # type: ignore[misc]


def test_numpy_scalars_become_plain_numbers():
    value = [np.int64(-3), np.uint8(200), np.float32(1.5), np.float64(2.25), np.bool_(True)]
    assert decode_value(encode_value(value)) == [-3, 200, 1.5, 2.25, True]


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (5,), (2, 3, 4), (0, 3), (3, 0, 2), (1, 1, 1, 1, 2)])
def test_arrays_of_every_dtype_and_shape_round_trip(dtype, shape):
    arr = (np.arange(math.prod(shape)) % 100).astype(dtype).reshape(shape)
    out = roundtrip_array(arr)
    assert out.dtype == arr.dtype
    assert out.shape == shape
    assert np.array_equal(out, arr)


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_array_tag_numbers_follow_rfc_8746(dtype):
    arr = np.zeros(2, dtype)
    tag = cbor2.loads(encode_value(arr))
    assert tag.tag == 40
    assert tag.value[1].tag == rfc8746_little_endian_tag(np.dtype(dtype))


def test_float_extremes_and_nan_in_arrays():
    arr = np.array([np.nan, np.inf, -np.inf, -0.0, np.finfo(np.float64).tiny, np.finfo(np.float64).max])
    assert np.array_equal(roundtrip_array(arr), arr, equal_nan=True)
    ints = np.array([np.iinfo(np.int64).min, -1, np.iinfo(np.int64).max])
    assert np.array_equal(roundtrip_array(ints), ints)
    assert np.array_equal(roundtrip_array(np.array([2**64 - 1], np.uint64)), [2**64 - 1])


@pytest.mark.parametrize("dtype", [">u2", ">i4", ">u8", ">f2", ">f4", ">f8"])
def test_big_endian_arrays_decode_to_equal_values(dtype):
    arr = np.arange(-3, 9).astype(dtype).reshape(3, 4) if "u" not in dtype else np.arange(12, dtype=dtype)
    out = roundtrip_array(arr)
    assert np.array_equal(out, arr)
    assert out.dtype == arr.dtype.newbyteorder("<")  # written little endian, the common case


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[:, ::2],
        lambda a: a.T,
        np.asfortranarray,
        lambda a: a[::-1, 1:3],
        lambda a: np.broadcast_to(a[:1], a.shape),
    ],
)
def test_non_contiguous_arrays_are_sent_in_row_major_order(make):
    arr = make(np.arange(24, dtype=np.int32).reshape(4, 6))
    out = roundtrip_array(arr)
    assert out.shape == arr.shape
    assert np.array_equal(out, arr)


def array_base(arr: np.ndarray) -> object:
    """What the array's memory belongs to, past any reshape views."""
    base: object = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return base


def test_decoded_arrays_are_read_only_views_not_copies():
    arr = np.arange(640 * 480 * 3, dtype=np.uint8).reshape(480, 640, 3)
    wire = encode_frame(arr, ts=TS)
    out = decode_frame(wire).value
    assert not out.flags.writeable
    assert array_base(out) is wire  # a lone array in bytes: a view into the payload, no copy at all
    assert np.array_equal(out, arr)
    copied = decode_frame(bytearray(wire)).value  # a mutable payload is copied once, into bytes
    assert not copied.flags.writeable
    assert isinstance(array_base(copied), bytes)
    assert len(array_base(copied)) == len(wire)
    nested = decode_frame(encode_frame({"img": arr}, ts=TS)).value["img"]  # the byte string cbor2 extracted
    assert not nested.flags.writeable
    assert isinstance(array_base(nested), bytes)
    assert len(array_base(nested)) == arr.nbytes
    assert np.array_equal(copied, arr)
    assert np.array_equal(nested, arr)


def same_decoding(data: bytes) -> None:
    """Whatever decode_frame makes of a lone array (maybe on its zero-copy path), cbor2 reads the same."""
    try:
        frame = decode_frame(data)
    except FrameError:
        return
    if isinstance(frame.value, np.ndarray):
        plain = decode_value(data)  # always through cbor2
        assert isinstance(plain, dict)
        assert (plain["ts"], plain["seq"], {k: v for k, v in plain.items() if k not in ("ts", "seq", "value")}) == (
            frame.ts,
            frame.seq,
            frame.extra,
        )
        assert (plain["value"].dtype, plain["value"].shape) == (frame.value.dtype, frame.value.shape)
        assert plain["value"].tobytes() == frame.value.tobytes()


def lone_array_frame(*, ts: bytes, seq: bytes, dims: list[bytes], tag: bytes, size: bytes, data: bytes) -> bytes:
    """The layout of a frame holding one array, from hand-made CBOR heads."""
    heads = [b"\xa3\x62ts", ts, b"\x63seq", seq, b"\x65value\xd8\x28\x82", bytes([0x80 | len(dims)]), *dims]
    return b"".join([*heads, tag, size, data])


@pytest.mark.parametrize(
    ("variant", "outcome"),
    [
        ({}, "view"),
        ({"ts": b"\x3b" + (TS - 1).to_bytes(8, "big")}, "view"),  # ts = -TS
        ({"seq": b"\x1a\x00\x00\x00\x05", "tag": b"\xd9\x00\x55"}, "view"),  # longer heads than needed
        ({"tag": b"\xd8\x51"}, "view"),  # big-endian float32
        ({"dims": [b"\x19\x00\x64", b"\x19\x00\xc8"]}, "view"),
        ({"data": bytes(80_001)}, "copy"),  # a trailing byte: left to cbor2, which ignores it
        ({"size": b"\x5a\x00\x01\x38\x7f"}, "error"),  # one byte short of the dimensions
        ({"dims": [b"\x18\x64", b"\x18\xc9"]}, "error"),
        ({"tag": b"\xd8\x57"}, "error"),  # binary128
        ({"tag": b"\xd8\x4c"}, "error"),  # reserved
        ({"seq": b"\x20"}, "error"),  # seq = -1
        ({"ts": b"\xf9\x3c\x00"}, "error"),  # ts = 1.0
        ({"size": b"\x5f\x5a\x00\x01\x38\x80"}, "error"),  # indefinite-length byte string, no break
    ],
)
def test_the_zero_copy_path_agrees_with_cbor2(variant, outcome):
    parts = {
        "ts": b"\x1b" + TS.to_bytes(8, "big"),
        "seq": b"\x05",
        "dims": [b"\x18\x64", b"\x18\xc8"],  # 100 x 200
        "tag": b"\xd8\x55",  # float32, little endian
        "size": b"\x5a\x00\x01\x38\x80",  # 80000 bytes
        "data": bytes(80_000),
    }
    wire = lone_array_frame(**{**parts, **variant})
    same_decoding(wire)
    if outcome == "error":
        with pytest.raises(FrameError):
            decode_frame(wire)
    else:
        frame = decode_frame(wire)
        assert (frame.seq, frame.value.shape) == (5, (100, 200))
        assert (array_base(frame.value) is wire) == (outcome == "view")


@pytest.mark.parametrize("ts", [TS, -TS])
@pytest.mark.parametrize("key", [b"\x62ts", b"\x63seq", b"\x65value"])
def test_the_zero_copy_path_checks_every_key(ts, key):
    wire = encode_frame(np.zeros(20_000, np.uint8), ts=ts, seq=1)
    broken = wire.replace(key, key[:-1] + b"_", 1)
    same_decoding(broken)
    with pytest.raises(FrameError, match=r"no '(ts|seq|value)' key"):
        decode_frame(broken)


def test_arrays_nested_in_values_and_extras():
    big = np.arange(100_000, dtype=np.float32).reshape(100, 1000)
    small = np.arange(3, dtype=np.int16)
    value = {"img": big, "boxes": [small, (small, big)], "n": 2}
    frame = decode_frame(encode_frame(value, ts=TS, seq=1, extra={"thumb": small, "big": big}))
    assert np.array_equal(frame.value["img"], big)
    assert np.array_equal(frame.value["boxes"][0], small)
    assert np.array_equal(frame.value["boxes"][1][1], big)
    assert np.array_equal(frame.extra["thumb"], small)
    assert np.array_equal(frame.extra["big"], big)


@pytest.mark.parametrize("size", [1, 16 * 1024 - 1, 16 * 1024, 300_000])
@pytest.mark.parametrize("where", ["top", "map", "list", "tuple"])
def test_large_array_wire_bytes_equal_what_plain_cbor2_writes(size, where):
    arr = (np.arange(size) % 251).astype(np.uint8)
    tagged = CBORTag(40, [[size], CBORTag(64, arr.tobytes())])
    wrap = {
        "top": lambda x: x,
        "map": lambda x: {"a": 1, "img": x, "z": [None]},
        "list": lambda x: [1.5, x, "s"],
        "tuple": lambda x: ("t", x),
    }[where]
    assert encode_value(wrap(arr)) == cbor2.dumps(wrap(tagged))
    assert encode_frame(wrap(arr), ts=TS, seq=3) == cbor2.dumps({"ts": TS, "seq": 3, "value": wrap(tagged)})


# -- exact wire format and interop ----------------------------------------------------------------


def test_exact_bytes_of_a_small_frame():
    expected = bytes.fromhex(
        "a3"  # map(3)
        "62 7473 1b 0000019b76daa800"  # "ts": 1767225600000 (2026-01-01)
        "63 736571 05"  # "seq": 5
        "65 76616c7565 07"  # "value": 7
    )
    assert encode_frame(7, ts=TS, seq=5) == expected
    assert decode_frame(expected) == Frame(7, TS, 5)


def test_exact_bytes_of_a_tiny_uint8_array():
    wire = encode_value(np.array([1, 2, 3], np.uint8))
    assert wire == bytes.fromhex("d828 82 81 03 d840 43 010203")
    tag = cbor2.loads(wire)
    assert isinstance(tag, CBORTag)
    assert tag.tag == 40
    dims, typed = tag.value
    assert list(dims) == [3]
    assert isinstance(typed, CBORTag)
    assert (typed.tag, typed.value) == (64, b"\x01\x02\x03")


def test_zero_d_array_has_empty_dimensions():
    assert encode_value(np.array(7, np.uint8)) == bytes.fromhex("d828 82 80 d840 41 07")


def test_frames_written_by_plain_cbor2_decode():
    frame = decode_frame(cbor2.dumps({"value": [1, "two"], "seq": 9, "ts": TS, "paused": False}))
    assert frame == Frame([1, "two"], TS, 9, {"paused": False})


def test_our_frames_decode_with_plain_cbor2():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    plain = cbor2.loads(encode_frame({"a": arr}, ts=TS, seq=4, extra={"paused": True}))
    assert list(plain) == ["ts", "seq", "paused", "value"]
    assert (plain["ts"], plain["seq"], plain["paused"]) == (TS, 4, True)
    tag = plain["value"]["a"]
    assert tag.tag == 40
    assert list(tag.value[0]) == [2, 3]
    assert tag.value[1].tag == 85
    assert struct.unpack("<6f", tag.value[1].value) == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


def test_hand_built_rfc8746_arrays_decode():
    f32 = cbor2.dumps(CBORTag(40, [[2, 2], CBORTag(85, struct.pack("<4f", 1.0, -2.5, 3.25, 0.0))]))
    assert np.array_equal(decode_value(f32), [[1.0, -2.5], [3.25, 0.0]])
    bare = decode_value(cbor2.dumps(CBORTag(85, struct.pack("<3f", 1, 2, 3))))
    assert bare.shape == (3,)
    assert bare.dtype == np.dtype("<f4")
    # The example of RFC 8746 section 3.1.1: uint16_t a[2][3], big endian, then as a classical array.
    typed = bytes.fromhex("d828 82 82 02 03 d841 4c 0002 0004 0008 0004 0010 0100")
    classical = bytes.fromhex("d828 82 82 02 03 86 02 04 08 04 10 190100")
    for wire in (typed, classical):
        assert np.array_equal(decode_value(wire), [[2, 4, 8], [4, 16, 256]])
    assert decode_value(typed).dtype == np.dtype(">u2")
    mixed = decode_value(cbor2.dumps(CBORTag(40, [[3], [1, 2.5, -3]])))
    assert mixed.dtype == np.float64
    assert list(mixed) == [1.0, 2.5, -3.0]
    assert decode_value(cbor2.dumps(CBORTag(40, [[2], [2**64 - 1, 0]]))).dtype == np.uint64
    clamped = decode_value(cbor2.dumps(CBORTag(68, b"\x00\xff")))
    assert clamped.dtype == np.uint8
    assert list(clamped) == [0, 255]
    column_major = decode_value(cbor2.dumps(CBORTag(1040, [[2, 3], CBORTag(64, bytes(range(1, 7)))])))
    assert np.array_equal(column_major, [[1, 3, 5], [2, 4, 6]])


@pytest.mark.parametrize("tag", [0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 88, 95, 100, 256, 258, 260, 261,
                                 1234, 55799, 2**32, 2**64 - 1])
def test_tags_outside_the_documented_set_are_refused(tag):
    """Only bignums and RFC 8746 arrays: value sharing, string references, dates, regexes... are refused."""
    with pytest.raises(FrameError, match=f"CBOR tag {tag} .*is not allowed"):
        decode_value(cbor2.dumps([CBORTag(tag, "x")]))
    with pytest.raises(FrameError, match=f"CBOR tag {tag} .*is not allowed"):
        decode_frame(cbor2.dumps({"ts": TS, "seq": 0, "value": CBORTag(tag, [1])}))


def test_bytearray_and_memoryview_payloads_decode():
    wire = encode_frame(np.arange(4, dtype=np.int16), ts=TS)
    for data in (bytearray(wire), memoryview(wire), memoryview(b"xx" + wire)[2:]):
        assert np.array_equal(decode_frame(data).value, [0, 1, 2, 3])


def test_extra_keys_are_kept():
    frame = decode_frame(encode_frame(1, ts=TS, extra={"paused": True, "note": {"k": [1]}}))
    assert frame.extra == {"paused": True, "note": {"k": [1]}}
    assert frame.value == 1


# -- refusals ------------------------------------------------------------------------------------


def test_oversize_payloads_are_refused_before_decoding():
    wire = encode_frame("x" * 100, ts=TS)
    with pytest.raises(FrameError, match="over the limit"):
        decode_frame(wire, max_size=len(wire) - 1)
    assert decode_frame(wire, max_size=len(wire)).value == "x" * 100
    huge = cbor2.dumps({"ts": TS, "seq": 0, "value": bytes(MAX_FRAME_SIZE)})
    with pytest.raises(FrameError, match="over the limit"):
        decode_frame(huge)
    with pytest.raises(FrameError, match="over the limit"):
        decode_value(memoryview(huge))


def test_every_truncation_of_a_frame_is_refused():
    wire = encode_frame({"img": np.arange(10, dtype=np.uint16), "t": "text"}, ts=TS, seq=1)
    for end in range(len(wire)):
        with pytest.raises(FrameError):
            decode_frame(wire[:end])


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([1, 2], "CBOR map"),
        (5, "CBOR map"),
        ({"ts": TS, "seq": 0}, "no 'value' key"),
        ({"value": 1, "seq": 0}, "no 'ts' key"),
        ({"value": 1, "ts": TS}, "no 'seq' key"),
        ({"value": 1, "ts": "now", "seq": 0}, "'ts' must be an integer"),
        ({"value": 1, "ts": 1.5, "seq": 0}, "'ts' must be an integer"),
        ({"value": 1, "ts": True, "seq": 0}, "'ts' must be an integer"),
        ({"value": 1, "ts": None, "seq": 0}, "'ts' must be an integer"),
        ({"value": 1, "ts": TS, "seq": -1}, "'seq' must be a non-negative integer"),
        ({"value": 1, "ts": TS, "seq": 1.0}, "'seq' must be a non-negative integer"),
        ({"value": 1, "ts": TS, "seq": False}, "'seq' must be a non-negative integer"),
        ({"value": 1, "ts": TS, "seq": 0, 7: "x"}, "keys must be text strings"),
        # a time or counter no task can compute with (issue 22.4): 64 bits at most
        ({"value": 1, "ts": 2**63, "seq": 0}, "'ts' must be an integer of 64 bits"),
        ({"value": 1, "ts": -(2**63) - 1, "seq": 0}, "'ts' must be an integer of 64 bits"),
        ({"value": 1, "ts": 10**400, "seq": 0}, "'ts' must be an integer of 64 bits"),
        ({"value": 1, "ts": TS, "seq": 2**64}, "'seq' must be a non-negative integer of 64 bits"),
        # the biggest bignums allowed (MAX_BIGNUM_BYTES) still give a short message
        pytest.param(-(2**8000), "CBOR map", id="huge-int"),
        pytest.param({"value": 1, "ts": TS, "seq": -(2**8000)}, "'seq' must be a non-negative", id="huge-seq"),
        pytest.param({2**8000: 1}, "no 'value' key", id="huge-key"),
        pytest.param({"value": 1, "ts": TS, "seq": 0, (2**8000,): 1}, "keys must be text", id="huge-key-tuple"),
        # bigger ones (their repr() would raise past 4300 digits) are refused by the decoder
        pytest.param({"value": 2**20000, "ts": TS, "seq": 0}, "bignum of 2501 bytes is over the limit", id="bignum"),
    ],
)
def test_maps_that_are_not_frames_are_refused(payload, match):
    with pytest.raises(FrameError, match=match):
        decode_frame(cbor2.dumps(payload))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (CBORTag(40, [[2, 2], CBORTag(64, b"\x01\x02\x03")]), "make 4 elements, it holds 3"),
        (CBORTag(40, [[5], CBORTag(70, b"\x00" * 16)]), "make 5 elements, it holds 4"),
        (CBORTag(40, [[-1], CBORTag(64, b"")]), "unsigned integers"),
        (CBORTag(40, [2, CBORTag(64, b"\x01\x02")]), "dimensions must be an array"),
        (CBORTag(40, [[1.5], CBORTag(64, b"\x01")]), "unsigned integers"),
        pytest.param(CBORTag(40, [[2**8000, 0], CBORTag(64, b"")]), "unsigned integers", id="bignum-dimension"),
        (CBORTag(40, [[1] * 65, CBORTag(64, b"\x01")]), "at most 64"),
        (CBORTag(40, [[2], CBORTag(64, b"\x01\x02"), 3]), r"\[dimensions, elements\]"),
        (CBORTag(40, "nope"), r"\[dimensions, elements\]"),
        (CBORTag(40, [[2], CBORTag(1234, b"\x01\x02")]), "tag 1234 is not allowed"),
        (CBORTag(40, [[2], b"\x01\x02"]), "elements must be a typed array"),
        (CBORTag(40, [[2], ["a", "b"]]), "only integers and floats"),
        (CBORTag(40, [[1], [2**70]]), "64 bits"),
        (CBORTag(40, [[2], [2**63, -1]]), "64 bits"),
        (CBORTag(40, [[2], [1.5, 2**1100]]), "64 bits"),
        (CBORTag(40, [[2], CBORTag(76, b"\x01\x02")]), "reserved"),
        (CBORTag(87, b"\x00" * 16), "binary128"),
        (CBORTag(83, b"\x00" * 16), "binary128"),
        (CBORTag(70, b"\x00" * 5), "not a multiple of its 4-byte elements"),
        (CBORTag(64, "text"), "must hold a byte string"),
        ({CBORTag(64, b"\x01"): 1}, "malformed CBOR"),  # an array cannot be a map key
    ],
)
def test_invalid_typed_arrays_are_refused(value, match):
    wire = cbor2.dumps({"ts": TS, "seq": 0, "value": value})
    with pytest.raises(FrameError, match=match):
        decode_frame(wire)
    with pytest.raises(FrameError, match=match):
        decode_value(cbor2.dumps(value))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff",
        b"\x1c",  # reserved additional information
        b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # a byte string of 2**64-1 bytes, absent
        b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00",  # an array of 2**32 items, absent
        b"\x81" * 100_000,  # nesting far deeper than any frame
        b"\xa1\x62ts",  # truncated map
        b"\x62\xff\xfe",  # invalid UTF-8 text
        b"\xc1\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00",  # epoch datetime of infinity
        bytes.fromhex("a4 62 7473 01 63 736571 00 65 76616c7565 01 65 76616c7565 02"),  # "value" twice
        bytes.fromhex("a3 62 7473 01 63 736571 00 65 76616c7565 a2 6161 01 6161 02"),  # {"a": 1, "a": 2}
    ],
)
def test_malformed_cbor_is_refused(payload):
    with pytest.raises(FrameError):
        decode_frame(payload)
    with pytest.raises(FrameError):
        decode_value(payload)


@pytest.mark.parametrize("payload", ["text", None, 5, [1, 2]])
def test_non_bytes_payloads_are_refused(payload):
    with pytest.raises(FrameError, match="bytes, bytearray or memoryview"):
        decode_frame(payload)


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.array([True, False]), r"astype\(np.uint8\)"),
        (np.array([1 + 2j]), "real and imaginary"),
        (np.array(["a"]), "list of str"),
        (np.array([b"a"]), "list"),
        (np.array([object()]), "list"),
        (np.array(["2026-01-01"], dtype="datetime64[ms]"), r"astype\(np.int64\)"),
        (np.array([1], dtype="timedelta64[s]"), r"astype\(np.int64\)"),
        (np.zeros(2, dtype=[("x", "i4"), ("y", "f4")]), "each field"),
    ],
)
def test_unsupported_dtypes_are_refused_with_a_hint(arr, match):
    with pytest.raises(FrameError, match=match):
        encode_frame(arr, ts=TS)
    with pytest.raises(FrameError, match="no RFC 8746 typed-array tag"):
        encode_value({"nested": [arr]})


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize == 8, reason="long double is float64 here")
def test_long_double_is_refused():
    with pytest.raises(FrameError, match="float64"):
        encode_value(np.zeros(2, np.longdouble))
    with pytest.raises(FrameError):
        encode_value(np.longdouble(1))


def test_masked_arrays_are_refused():
    with pytest.raises(FrameError, match="masked"):
        encode_value(np.ma.masked_array([1, 2], mask=[0, 1]))


@pytest.mark.parametrize("value", [object(), {"k": ...}, [lambda: 0], np.datetime64("2026-01-01")])
def test_values_cbor_cannot_carry_are_refused(value):
    with pytest.raises(FrameError, match="cannot encode"):
        encode_frame(value, ts=TS)


def test_cyclic_values_are_refused():
    cyclic: list[object] = [np.zeros(20_000, np.uint8)]
    cyclic.append(cyclic)
    with pytest.raises(FrameError):
        encode_value(cyclic)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ts": "now"}, "'ts' must be an integer"),
        ({"ts": 1.5}, "'ts' must be an integer"),
        ({"ts": True}, "not a bool"),
        ({"seq": -1}, "non-negative"),
        ({"seq": 2.0}, "'seq' must be an integer"),
        ({"extra": {"ts": 1}}, "shadow"),
        ({"extra": {"value": 1}}, "shadow"),
        ({"extra": {1: "x"}}, "must be strings"),
    ],
)
def test_bad_frame_fields_are_refused_on_encode(kwargs, match):
    with pytest.raises(FrameError, match=match):
        encode_frame(1, **kwargs)


def test_numpy_integers_are_accepted_for_ts_and_seq():
    frame = decode_frame(encode_frame(1, ts=np.int64(TS), seq=np.uint32(4)))
    assert (frame.ts, frame.seq) == (TS, 4)


# -- properties ----------------------------------------------------------------------------------

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
array_dtypes = st.sampled_from([*SUPPORTED_DTYPES, ">u2", ">i4", ">u8", ">f2", ">f4", ">f8"]).map(np.dtype)
arrays = array_dtypes.flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
)


@fuzz
@given(value=cbor_values, ts=st.integers(-(2**63), 2**63 - 1), seq=st.integers(0, 2**64 - 1))
def test_any_cbor_value_round_trips(value, ts, seq):
    assert decode_frame(encode_frame(value, ts=ts, seq=seq)) == Frame(value, ts, seq)
    assert decode_value(encode_value(value)) == value


@fuzz
@given(arr=arrays)
def test_any_numpy_array_round_trips(arr):
    out = roundtrip_array(arr)
    assert out.shape == arr.shape
    assert (out.dtype.kind, out.dtype.itemsize) == (arr.dtype.kind, arr.dtype.itemsize)
    assert np.array_equal(out, arr, equal_nan=arr.dtype.kind == "f")
    assert not out.flags.writeable


def decodes_or_frame_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError:
        pass
    else:
        assert isinstance(frame, Frame)
    with contextlib.suppress(FrameError):
        decode_value(data)


@fuzz
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_frame_error(data):
    decodes_or_frame_error(data)


valid_frames = st.sampled_from(
    [
        encode_frame(21.5, ts=TS, seq=3),
        encode_frame({"a": [1, "x", b"y", None]}, ts=TS, seq=1, extra={"paused": True}),
        encode_frame(np.arange(12, dtype=np.float32).reshape(3, 4), ts=TS, seq=2),
        encode_frame([np.array(1, np.int8), np.zeros((2, 0), np.uint16)], ts=TS),
        cbor2.dumps({"ts": TS, "seq": 0, "value": CBORTag(40, [[2, 2], [1, 2, 3, 4]])}),
        encode_frame(np.arange(20_000, dtype=np.uint8).reshape(4, 50, 100), ts=-TS, seq=2**40),
    ]
)


@fuzz
@given(wire=valid_frames, data=st.data())
def test_mutated_frames_decode_or_raise_frame_error(wire, data):
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), label="kind")
        if not mutated:
            break
        at = data.draw(st.integers(0, min(len(mutated) - 1, 60)) | st.integers(0, len(mutated) - 1), label="at")
        if kind == "flip":
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            mutated[at] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete":
            del mutated[at]
        else:
            del mutated[at:]
    decodes_or_frame_error(bytes(mutated))
    same_decoding(bytes(mutated))


@pytest.mark.parametrize("ts", [2**63, 2**64 - 1, -(2**64)])
def test_a_lone_array_frame_with_a_ts_beyond_64_bits_is_refused(ts):
    """The zero-copy path of a big array frame reads ts from its head: it must refuse what cbor2's does."""
    payload = encode_frame(np.zeros(32 * 1024, np.uint8), ts=ts)
    with pytest.raises(FrameError, match="'ts' must be an integer of 64 bits"):
        decode_frame(payload)


def test_what_the_encoder_sends_the_decoder_takes_nesting_included():
    """A value nested deeper than the decoder takes (a task wrapping what it received, say) is refused when
    sent, not by every reader: 64 levels in all, a numeric array counting 3."""
    def nest(value: object, depth: int) -> object:
        for _ in range(depth):
            value = [value]
        return value

    assert decode_value(encode_value(nest(1, 64))) == nest(1, 64)
    with pytest.raises(FrameError, match="nested deeper than 64 levels"):
        encode_value(nest(1, 65))
    assert decode_frame(encode_frame(nest(1, 63), ts=TS)).value == nest(1, 63)  # the frame's map is a level
    with pytest.raises(FrameError, match="nested deeper"):
        encode_frame(nest(1, 64), ts=TS)
    with pytest.raises(FrameError, match="nested deeper"):
        encode_frame({"a": nest({"b": 1}, 63)}, ts=TS)
    deep_array = nest(np.arange(3), 60)
    assert np.array_equal(nest_leaf(decode_frame(encode_frame(deep_array, ts=TS)).value, 60), np.arange(3))
    with pytest.raises(FrameError, match="nested deeper"):
        encode_frame(nest(np.arange(3), 61), ts=TS)
    # wide is not deep: many containers side by side pass
    assert len(decode_frame(encode_frame([[i] for i in range(1000)], ts=TS)).value) == 1000
    # a media frame's short flat lists (a time base) are not deep, and do not hide a deep value beside them
    media = decode_frame(encode_frame(np.arange(3), ts=TS, extra={"time_base": [1, 22050], "shape": (3,)}))
    assert media.extra["time_base"] == [1, 22050] and np.array_equal(media.value, np.arange(3))
    with pytest.raises(FrameError, match="nested deeper"):
        encode_frame(nest(1, 64), ts=TS, extra={"time_base": [1, 22050]})
    with pytest.raises(FrameError, match="nested deeper"):
        encode_frame(1, ts=TS, extra={"time_base": [1, 22050], "deep": nest(1, 64)})


def nest_leaf(value: object, depth: int) -> object:
    for _ in range(depth):
        assert isinstance(value, list)
        value = value[0]
    return value
