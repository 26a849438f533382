"""How the inspector shows a frame's value: as a number, text, an image, or decoded CBOR.

Images are numpy ``HxW`` or ``HxWxC`` ``uint8`` arrays (C = 1, 3 or 4), which :func:`png_data_url`
turns into a PNG ``data:`` URL with numpy and zlib alone (no PIL, no network), scaled down by
whole steps to at most :data:`MAX_SIDE` pixels so that a 4K frame costs no more than a small
one, or complete JPEG/PNG files as bytes (what ``video_viewer`` publishes), shown as they are.
Everything else becomes one line of text, shortened.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import zlib
from typing import Any, Literal

import numpy as np

__all__ = ["MAX_SIDE", "Kind", "classify", "describe", "encoded_image_mime", "image_data_url", "png", "png_data_url"]

MAX_SIDE = 640
Kind = Literal["number", "text", "image", "other"]
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def is_image(value: object) -> bool:
    return (isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.size > 0
            and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in _COLOR_TYPES)))


def encoded_image_mime(value: object) -> str | None:
    """``image/jpeg`` or ``image/png`` for the bytes of a complete JPEG or PNG file, else None."""
    if not isinstance(value, bytes | bytearray | memoryview):
        return None
    head = bytes(value[:8])
    if head[:3] == b"\xff\xd8\xff" and bytes(value[-2:]) == b"\xff\xd9":
        return "image/jpeg"
    if head == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return None


def image_data_url(value: object) -> str:
    """A ``data:`` URL for an image value: a numpy array (as PNG) or a JPEG/PNG file's bytes as they are."""
    if isinstance(value, np.ndarray):
        return png_data_url(value)
    mime = encoded_image_mime(value)
    if mime is None or not isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"not an image: {type(value).__name__}")
    return f"data:{mime};base64," + base64.b64encode(value).decode("ascii")


def classify(value: object) -> Kind:
    if isinstance(value, bool | int | float) and not (isinstance(value, float) and not math.isfinite(value)):
        return "number"
    if isinstance(value, str):
        return "text"
    if is_image(value) or encoded_image_mime(value) is not None:
        return "image"
    return "other"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(image: np.ndarray[Any, Any]) -> bytes:
    """A PNG of an ``HxW`` or ``HxWxC`` uint8 array (scaled down to :data:`MAX_SIDE`)."""
    if not is_image(image):
        raise ValueError(f"not an image: {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    pixels = image if image.ndim == 3 else image[:, :, None]
    step = max(1, math.ceil(max(pixels.shape[0], pixels.shape[1]) / MAX_SIDE))
    pixels = np.ascontiguousarray(pixels[::step, ::step])
    height, width, channels = pixels.shape
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # filter byte 0 (none) on every row
    rows[:, 1:] = pixels.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + _chunk(b"IEND", b""))


def png_data_url(image: np.ndarray[Any, Any]) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode("ascii")


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return "…"
    if isinstance(value, np.ndarray):
        head = value.reshape(-1)[:8].tolist()
        return f"array {value.dtype} {tuple(value.shape)} {head}{'…' if value.size > 8 else ''}"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"{len(data)} bytes {data[:16].hex()}{'…' if len(data) > 16 else ''}"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value[:50]]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def describe(value: Any, limit: int = 400) -> str:
    """One line of text for any decoded value (JSON where it can be), at most ``limit`` characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(_jsonable(value), ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
