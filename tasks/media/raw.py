"""Raw video and audio frames on the wire: numpy arrays plus a few control fields.

A raw video frame is a frame (``edge.frames``) whose value is a ``uint8`` array and whose
control fields say how to read it::

    {"ts": 1767225600000, "seq": 7, "pixel_format": "rgb24", "pts": 7, "time_base": [1, 30],
     "value": 40([[120, 160, 3], 64(h'...')])}

* packed formats are H x W x C: ``rgb24``/``bgr24`` (C = 3), ``rgba``/``bgra`` (C = 4), ``gray`` (C = 1);
* ``yuv420p`` is (H * 3 / 2) x W x 1: the Y plane, then U, then V, as FFmpeg lays them out (half
  the bytes of rgb24 and no colour conversion next to a codec); width and height must be even.

A raw audio frame holds a samples x channels array (interleaved) of the sample format::

    {"ts": …, "seq": …, "sample_format": "s16", "rate": 48000, "pts": 96000, "time_base": [1, 48000],
     "value": 40([[1024, 2], 77(h'...')])}

with ``u8`` (uint8), ``s16`` (int16), ``s32`` (int32), ``flt`` (float32), ``dbl`` (float64).

``pts`` and ``time_base`` are the media timeline (optional: without them ``ts`` in milliseconds
is used). A frame without ``pixel_format`` is read by its shape (3 channels: rgb24, 4: rgba,
1: gray) and one without ``sample_format`` by its dtype, so a plain script can send a bare
array; audio needs its ``rate``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

from edge.errors import FrameError
from edge.frames import Frame

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

__all__ = [
    "AUDIO_FORMATS",
    "INT32_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "MS",
    "VIDEO_FORMATS",
    "RawAudio",
    "RawVideo",
    "audio_array",
    "audio_frame",
    "encode_time_base",
    "layout_for",
    "parse_time_base",
    "short",
    "video_array",
    "video_frame",
]

#: pixel formats that travel, with their channel count (yuv420p: one, planar rows).
VIDEO_FORMATS: Final = {"rgb24": 3, "bgr24": 3, "rgba": 4, "bgra": 4, "gray": 1, "yuv420p": 1}
#: sample formats that travel (packed, interleaved), with the name of their numpy dtype (names, not dtypes:
#: numpy loads with the first frame, not with the catalog).
AUDIO_FORMATS: Final[dict[str, str]] = {"u8": "uint8", "s16": "int16", "s32": "int32", "flt": "float32",
                                        "dbl": "float64"}
_FORMAT_BY_DTYPE: Final = {dtype: name for name, dtype in AUDIO_FORMATS.items()}
_FORMAT_BY_CHANNELS: Final = {3: "rgb24", 4: "rgba", 1: "gray"}
MS: Final = Fraction(1, 1000)
# the ranges of FFmpeg's fields: pts in int64, rationals and sample rates in int32
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
INT32_MAX: Final = 2**31 - 1


def encode_time_base(time_base: Fraction) -> list[int]:
    return [time_base.numerator, time_base.denominator]


def parse_time_base(value: object, *, where: str = "frame") -> Fraction:
    """``[num, den]`` of positive 32-bit integers (FFmpeg's rational) as a Fraction; FrameError otherwise."""
    if (isinstance(value, list | tuple) and len(value) == 2
            and all(type(v) is int and 0 < v <= INT32_MAX for v in value)):
        return Fraction(value[0], value[1])
    raise FrameError(f"{where} 'time_base' must be [numerator, denominator] of positive 32-bit integers, "
                     f"got {short(value)}")


def _pts(extra: Mapping[str, Any], ts: int, where: str) -> tuple[int, Fraction]:
    pts = extra.get("pts")
    if pts is None:
        return ts, MS
    if type(pts) is not int or not INT64_MIN <= pts <= INT64_MAX:
        raise FrameError(f"{where} 'pts' must be an integer of 64 bits, got {short(pts)}")
    return pts, parse_time_base(extra.get("time_base"), where=where)


def short(value: object) -> str:
    """A bounded repr for an error message (a control field may hold anything a frame can)."""
    try:
        return reprlib.repr(value)
    except Exception:  # repr of an int over 4300 digits raises; a message must not
        return f"<{type(value).__name__}>"


def layout_for(channels: int) -> str:
    """FFmpeg's default channel layout name for a channel count (1: mono, 2: stereo, 6: 5.1)."""
    return str(av.AudioLayout({1: "mono", 2: "stereo"}.get(channels, f"{channels}c")).name)


# -- video ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RawVideo:
    """One received raw video frame: the array (read-only), its format and times."""

    array: npt.NDArray[np.uint8]
    pixel_format: str
    pts: int
    time_base: Fraction
    ts: int

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        rows = int(self.array.shape[0])
        return rows * 2 // 3 if self.pixel_format == "yuv420p" else rows

    @classmethod
    def from_frame(cls, frame: Frame) -> RawVideo:
        array = frame.value
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise FrameError(f"a raw video frame holds a uint8 array H x W x C, got {_describe(array)}")
        if array.ndim == 2:
            array = array[:, :, np.newaxis]
        fmt = frame.extra.get("pixel_format")
        if fmt is None:
            fmt = _FORMAT_BY_CHANNELS.get(array.shape[2])
            if fmt is None:
                raise FrameError(f"a raw video frame without 'pixel_format' has 1, 3 or 4 channels, not {array.shape}")
        elif not isinstance(fmt, str) or fmt not in VIDEO_FORMATS:
            raise FrameError(f"unsupported pixel_format {short(fmt)} (supported: {', '.join(VIDEO_FORMATS)})")
        if array.shape[2] != VIDEO_FORMATS[fmt]:
            raise FrameError(f"pixel_format {fmt} needs {VIDEO_FORMATS[fmt]} channels, the array is {array.shape}")
        if fmt == "yuv420p" and (array.shape[0] % 3 or array.shape[1] % 2 or (array.shape[0] // 3) % 2):
            raise FrameError(f"a yuv420p frame is (H*3/2) x W x 1 with even H and W, got {array.shape}")
        if 0 in array.shape:
            raise FrameError(f"an empty video frame: {array.shape}")
        pts, time_base = _pts(frame.extra, frame.ts, "raw video frame")
        return cls(array, fmt, pts, time_base, frame.ts)

    def extra(self) -> dict[str, Any]:
        return video_extra(self.pixel_format, self.pts, self.time_base)

    def to_av(self) -> av.VideoFrame:
        frame = video_frame(self.array, self.pixel_format)
        frame.pts = self.pts
        frame.time_base = self.time_base
        return frame


def video_extra(pixel_format: str, pts: int, time_base: Fraction) -> dict[str, Any]:
    return {"pixel_format": pixel_format, "pts": pts, "time_base": encode_time_base(time_base)}


def video_array(frame: av.VideoFrame, pixel_format: str) -> npt.NDArray[np.uint8]:
    """The wire array of a decoded frame in ``pixel_format`` (converted by swscale if needed)."""
    if frame.format.name != pixel_format:
        frame = frame.reformat(format=pixel_format)
    array = frame.to_ndarray()
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return array  # type: ignore[return-value]  # uint8 for every format in VIDEO_FORMATS


def video_frame(array: npt.NDArray[np.uint8], pixel_format: str) -> av.VideoFrame:
    """A PyAV frame of a wire array, without copying it when its rows are contiguous.

    The frame then uses the array's memory (a received payload is immutable bytes, so nothing
    changes it under the codec): 5 us instead of 100 us (yuv420p) to 500 us (rgb24) at 640x480.
    """
    if VIDEO_FORMATS[pixel_format] == 1:
        array = array[:, :, 0]
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return av.VideoFrame.from_numpy_buffer(array, format=pixel_format)


# -- audio ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RawAudio:
    """One received raw audio frame: samples x channels (read-only), format, rate and times."""

    samples: npt.NDArray[Any]
    sample_format: str
    rate: int
    pts: int
    time_base: Fraction
    ts: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @classmethod
    def from_frame(cls, frame: Frame) -> RawAudio:
        samples = frame.value
        if not isinstance(samples, np.ndarray) or samples.ndim not in (1, 2):
            raise FrameError(f"a raw audio frame holds a samples x channels array, got {_describe(samples)}")
        if samples.ndim == 1:
            samples = samples[:, np.newaxis]
        fmt = frame.extra.get("sample_format")
        if fmt is None:
            fmt = _FORMAT_BY_DTYPE.get(samples.dtype.newbyteorder("=").name)
            if fmt is None:
                raise FrameError(f"no sample format for dtype {samples.dtype} (use {', '.join(AUDIO_FORMATS)})")
        elif not isinstance(fmt, str) or AUDIO_FORMATS.get(fmt) != samples.dtype.newbyteorder("=").name:
            raise FrameError(f"sample_format {short(fmt)} does not match the array's dtype {samples.dtype}")
        if samples.dtype.byteorder == ">":
            samples = samples.astype(samples.dtype.newbyteorder("="))
        rate = frame.extra.get("rate")
        if type(rate) is not int or not 0 < rate <= INT32_MAX:
            raise FrameError(f"a raw audio frame needs an integer 'rate' in samples per second, got {short(rate)}")
        if not 1 <= samples.shape[1] <= 64 or samples.shape[0] == 0:
            raise FrameError(f"a raw audio frame needs 1..64 channels and some samples, got {samples.shape}")
        pts, time_base = _pts(frame.extra, frame.ts, "raw audio frame")
        return cls(samples, fmt, rate, pts, time_base, frame.ts)

    def extra(self) -> dict[str, Any]:
        return audio_extra(self.sample_format, self.rate, self.pts, self.time_base)

    def to_av(self) -> av.AudioFrame:
        frame = audio_frame(self.samples, self.sample_format, self.rate)
        frame.pts = self.pts
        frame.time_base = self.time_base
        return frame

    def as_float(self) -> npt.NDArray[np.float32]:
        """The samples as float32 in [-1, 1] (full scale of the integer formats)."""
        return to_float(self.samples)


def audio_extra(sample_format: str, rate: int, pts: int, time_base: Fraction) -> dict[str, Any]:
    return {"sample_format": sample_format, "rate": rate, "pts": pts, "time_base": encode_time_base(time_base)}


_FULL_SCALE: Final = {"u1": 128.0, "i2": 32768.0, "i4": 2147483648.0}


def to_float(samples: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    kind = samples.dtype.str[1:]
    if kind == "u1":
        return (samples.astype(np.float32) - 128.0) / 128.0
    scale = _FULL_SCALE.get(kind)
    if scale is None:
        return samples.astype(np.float32, copy=False)
    return samples.astype(np.float32) / np.float32(scale)


def from_float(samples: npt.NDArray[np.floating[Any]], sample_format: str) -> npt.NDArray[Any]:
    """Float samples (full scale 1.0) in ``sample_format``, clipped."""
    dtype = np.dtype(AUDIO_FORMATS[sample_format])
    result: npt.NDArray[Any]
    if dtype.kind == "f":
        result = samples.astype(dtype, copy=False)
    elif dtype == np.uint8:
        result = np.clip(np.rint(samples * 128.0 + 128.0), 0, 255).astype(np.uint8)
    else:
        scale = _FULL_SCALE[dtype.str[1:]]
        result = np.clip(np.rint(samples * scale), -scale, scale - 1).astype(dtype)
    return result


def audio_array(frame: av.AudioFrame) -> tuple[npt.NDArray[Any], str]:
    """samples x channels of a decoded frame, and its packed sample format (planar is interleaved)."""
    fmt = frame.format
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if fmt.is_planar:
        return np.ascontiguousarray(array.T), fmt.packed.name
    return array.reshape(-1, channels), fmt.name


def audio_frame(samples: npt.NDArray[Any], sample_format: str, rate: int) -> av.AudioFrame:
    channels = int(samples.shape[1])
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format=sample_format,
                                       layout=layout_for(channels))
    frame.sample_rate = rate
    return frame


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return type(value).__name__
