"""FFmpeg encoders and decoders by name: what this agent's FFmpeg has, which hardware ones open, options.

The codec tasks take ``codec`` as one of our short names (``h264``: libx264, ``opus``: libopus…),
any FFmpeg encoder or decoder name (``h264_v4l2m2m``, ``libx265``, ``flac``…), or an ``auto_…``
choice: the first of a list that this FFmpeg build has *and* can open here (a hardware encoder is
compiled into many builds but opens only where its device and driver are). ``codec_options`` are
handed to FFmpeg as they are (its ``-x264-params``-style private and generic options); one that
FFmpeg does not consume is unknown to the encoder, and a config error naming it (found by opening
the encoder once at a probe size, which is also how a bad value shows).

The answers are cached per process: what a build has does not change while it runs, and the
agent asks again for every validation request and every start.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import Field, StringConstraints

from tasks.media.errors import CodecError

if TYPE_CHECKING:
    import av
else:
    from tasks.media._av import av

__all__ = [
    "AUTO",
    "CodecName",
    "CodecOptions",
    "MAX_OPTIONS",
    "codec_problems",
    "decoder_problems",
    "decoders",
    "encoder_candidates",
    "encoder_pixel_format",
    "encoders",
    "hardware_decoders",
    "is_hardware",
    "missing",
    "open_checked",
    "option_values",
    "reason",
    "resolve_encoder",
]

Kind = Literal["video", "audio"]
MAX_OPTIONS: Final = 32

#: an FFmpeg codec name or one of ours: letters, digits, ``_`` and ``-`` (``libvpx-vp9``)
CodecName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
_OptionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-:.]{1,64}$")]
_OptionValue = Annotated[str, StringConstraints(max_length=256)] | bool | int | float
#: FFmpeg options for the codec (``{"preset": "fast", "crf": 20}``); at most 32
CodecOptions = Annotated[dict[_OptionName, _OptionValue], Field(max_length=MAX_OPTIONS)]

#: ``auto_…`` codecs: the encoders tried, in order; the first this build has and can open is used
AUTO: Final[dict[str, tuple[str, ...]]] = {
    "auto_h264": ("h264_v4l2m2m", "h264_vaapi", "h264_nvenc", "h264_qsv", "libx264"),
    "auto_hevc": ("hevc_v4l2m2m", "hevc_vaapi", "hevc_nvenc", "hevc_qsv", "libx265"),
}
#: suffixes of encoders that need a device (and so may be in the build but not open here)
_HARDWARE: Final = re.compile(r"_(v4l2m2m|vaapi|nvenc|qsv|amf|videotoolbox|mf|omx|cuvid|mediacodec|rkmpp)$")
#: a size every video encoder takes (hardware ones refuse tiny frames)
_PROBE_SIZE: Final = (320, 240)
#: names listed at most in a line that says which codecs there are
_MAX_LISTED: Final = 48


def is_hardware(name: str) -> bool:
    """Whether encoder or decoder ``name`` runs on a device (GPU, SoC codec block)."""
    return _HARDWARE.search(name) is not None


def option_values(options: Mapping[str, Any]) -> dict[str, str]:
    """``codec_options`` as FFmpeg takes them: strings (``true`` → ``1``)."""
    return {k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in options.items()}


@functools.cache
def encoders(kind: Kind) -> tuple[str, ...]:
    """The names of this FFmpeg build's ``kind`` encoders, sorted."""
    return _codecs(kind, "w")


@functools.cache
def decoders(kind: Kind) -> tuple[str, ...]:
    """The names of this FFmpeg build's ``kind`` decoders, sorted."""
    return _codecs(kind, "r")


def _codecs(kind: Kind, mode: Literal["r", "w"]) -> tuple[str, ...]:
    names = []
    for name in av.codecs_available:
        try:
            codec = av.Codec(name, mode)
        except (av.error.FFmpegError, ValueError):
            continue
        if codec.type == kind and codec.name == name:  # not "h264" standing for libx264
            names.append(name)
    return tuple(sorted(names))


def _family(name: str, kind: Kind, mode: Literal["r", "w"]) -> list[str]:
    """The encoders (decoders) of the codec ``name`` seems to be of (``h264_foo``: h264's), else all."""
    have = encoders(kind) if mode == "w" else decoders(kind)
    stem = re.split(r"[_\-]", name.removeprefix("lib"))[0]
    same = [n for n in have if _canonical(n, mode) == stem or n.removeprefix("lib").startswith(stem)]
    return same or list(have)


def _canonical(name: str, mode: Literal["r", "w"]) -> str:
    try:
        return str(av.Codec(name, mode).canonical_name)
    except (av.error.FFmpegError, ValueError):
        return ""


def missing(name: str, kind: Kind, mode: Literal["r", "w"]) -> str:
    """One line: there is no ``kind`` encoder (decoder) ``name`` here, and those it has of the same codec
    (or all, when ``name`` says no codec it has); hardware encoders that do not open here said apart."""
    what = "encoder" if mode == "w" else "decoder"
    everything = encoders(kind) if mode == "w" else decoders(kind)
    family = _family(name, kind, mode)
    if len(family) == len(everything):
        label = f"{kind} {what}s"
    else:
        names = {_canonical(n, mode) for n in family}
        stem = re.split(r"[_\-]", name.removeprefix("lib"))[0]
        label = f"{names.pop()} {what}s" if len(names) == 1 else f"{stem}… {what}s"
    works = [n for n in family if mode == "r" or not is_hardware(n) or _opens(n) is None]
    closed = [n for n in family if n not in works]
    shown = works[:_MAX_LISTED]
    more = f" and {len(works) - len(shown)} more" if len(works) > len(shown) else ""
    line = f"this agent's FFmpeg has no {kind} {what} {name!r}; its {label}: {', '.join(shown)}{more}"
    if closed:
        line += f" ({', '.join(closed)}: in the build, but no device here opens them)"
    return line


@functools.cache
def _opens(name: str) -> str | None:
    """None if video encoder ``name`` opens here with no options; else why not (one line)."""
    try:
        ctx = _probe_context(name, {})
        ctx.open()
    except (av.error.FFmpegError, ValueError, CodecError) as exc:
        return reason(exc)
    return None


def encoder_pixel_format(name: str) -> str:
    """The pixel format frames are converted to for video encoder ``name``: yuv420p where it takes it
    (mjpeg: its full-range yuvj420p)."""
    formats = [f.name for f in av.Codec(name, "w").video_formats or ()]
    for wanted in ("yuvj420p", "yuv420p", "nv12") if name == "mjpeg" else ("yuv420p", "nv12", "yuvj420p"):
        if not formats or wanted in formats:
            return wanted
    return formats[0]


def reason(exc: BaseException) -> str:
    """An FFmpeg error's own words (``Invalid argument``), without PyAV's call text."""
    return str(getattr(exc, "strerror", None) or exc)


def _probe_context(name: str, options: dict[str, str]) -> Any:
    codec = av.Codec(name, "w")
    ctx: Any = av.CodecContext.create(name, "w")
    if codec.type == "video":
        ctx.width, ctx.height = _PROBE_SIZE
        ctx.pix_fmt = encoder_pixel_format(name)
        ctx.time_base = Fraction(1, 30)
        ctx.framerate = Fraction(30)
    else:
        formats = [f.name for f in codec.audio_formats or ()]
        rates = list(codec.audio_rates or ())
        ctx.sample_rate = 48000 if not rates or 48000 in rates else rates[0]
        ctx.layout = "stereo"
        ctx.format = formats[0] if formats else "s16"
        ctx.time_base = Fraction(1, ctx.sample_rate)
    ctx.options = dict(options)
    return ctx


def resolve_encoder(codec: str, *, aliases: Mapping[str, str]) -> str:
    """The FFmpeg encoder that ``codec`` (a short name, an encoder name, ``auto_…``) stands for here.

    An ``auto_…`` choice is the first of its list this build has and can open; CodecError if none
    can (its message names what was tried and why each failed)."""
    if codec in aliases:
        return aliases[codec]
    if codec not in AUTO:
        return codec
    why: list[str] = []
    for name in AUTO[codec]:
        if name not in encoders("video"):
            why.append(f"{name}: not in this build")
            continue
        if (problem := _opens(name)) is None:
            return name
        why.append(f"{name}: {problem}")
    raise CodecError(f"{codec}: no encoder of {', '.join(AUTO[codec])} opens here ({'; '.join(why)})", codec=codec)


def encoder_candidates(codec: str, *, aliases: Mapping[str, str]) -> list[str]:
    """The encoders to try for ``codec``, in order: its one encoder, or (``auto_…``) those of its list this
    build has and that opened at the probe size (a real frame's size may still be refused: then the next)."""
    if codec not in AUTO:
        return [resolve_encoder(codec, aliases=aliases)]
    usable = [name for name in AUTO[codec] if name in encoders("video") and _opens(name) is None]
    return usable or [resolve_encoder(codec, aliases=aliases)]  # none: its error says why each failed


def codec_problems(codec: str, options: Mapping[str, Any], *, kind: Kind, aliases: Mapping[str, str]) -> list[str]:
    """What is wrong with encoding ``kind`` with ``codec`` and ``options`` here, one line each naming
    the field: a missing encoder (and those it has), an ``auto_…`` that opens none, unknown options or
    values the encoder refuses."""
    if codec.startswith("auto_") and codec not in AUTO:
        return [f"config.codec: {codec!r} is not one of the automatic choices ({', '.join(AUTO)})"]
    try:
        name = resolve_encoder(codec, aliases=aliases)
    except CodecError as exc:
        return [f"config.codec: {exc}"]
    if name not in encoders(kind):
        return [f"config.codec: {missing(name, kind, 'w')}"]
    if is_hardware(name) and codec not in AUTO and (problem := _opens(name)) is not None:
        return [f"config.codec: the {name} encoder is in this build but does not open here ({problem})"]
    return [f"config.codec_options: {line}" for line in _option_problems(name, option_values(options))]


@functools.lru_cache(maxsize=64)
def _probe_options(name: str, items: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    try:
        ctx = _probe_context(name, dict(items))
        ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        return (f"{name} refuses {_shown(dict(items))}: {reason(exc)}",)
    unknown = sorted(ctx.options)
    if unknown:
        return (f"{name} has no option {', '.join(repr(k) for k in unknown)}",)
    return ()


def _shown(options: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _option_problems(name: str, options: dict[str, str]) -> list[str]:
    if not options:
        return []
    return list(_probe_options(name, tuple(sorted(options.items()))))


#: hardware decoder families tried by a decoder's ``codec: auto``, in order (qsv is left out: its decoders
#: open without a device and fail only on the first packet)
_HW_DECODERS: Final = ("v4l2m2m", "cuvid")


def hardware_decoders(codec: str) -> list[str]:
    """The hardware decoders of ``codec`` (a stream's codec: ``h264``) this build has, in the order tried."""
    have = decoders("video")
    return [f"{codec}_{family}" for family in _HW_DECODERS if f"{codec}_{family}" in have]


def decoder_problems(codec: str | None, options: Mapping[str, Any], *, kind: Kind) -> list[str]:
    """What is wrong with decoding with decoder ``codec`` (None: FFmpeg's default for the stream)."""
    if codec is not None and codec not in decoders(kind):
        return [f"config.codec: {missing(codec, kind, 'r')}"]
    if codec is None or not options:
        return []
    try:
        ctx = av.CodecContext.create(codec, "r")
        ctx.options = option_values(options)
        ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        return [f"config.codec_options: {codec} refuses {_shown(option_values(options))}: {reason(exc)}"]
    unknown = sorted(ctx.options)
    return [f"config.codec_options: {codec} has no option {', '.join(repr(k) for k in unknown)}"] if unknown else []


def open_checked(ctx: Any, name: str, options: Mapping[str, str], *, what: str) -> None:
    """Open codec context ``ctx`` (encoder or decoder ``name``) with ``options``; CodecError if it
    cannot, or if FFmpeg left an option unused (unknown to it)."""
    ctx.options = dict(options)
    try:
        ctx.open()
    except av.error.FFmpegError as exc:
        raise CodecError(f"cannot open the {name} {what}: {reason(exc)}", codec=name) from exc
    if unknown := sorted(set(ctx.options) & set(options)):
        raise CodecError(f"the {name} {what} has no option {', '.join(repr(k) for k in unknown)}", codec=name)
