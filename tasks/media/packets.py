"""Encoded packets on the wire: one CBOR map per packet, as the value of a frame.

::

    {"kind": "video", "codec": "h264", "data": h'00000001…', "pts": 30, "dts": 30, "duration": 1,
     "time_base": [1, 30], "keyframe": true,
     "extradata": h'0000000167…', "width": 640, "height": 480, "pixel_format": "yuv420p"}

* ``kind``: ``"video"`` or ``"audio"``; ``codec``: FFmpeg's codec name (``h264``, ``mpeg4``, ``vp9``,
  ``mjpeg``, ``aac``, ``opus``, …: what ``avcodec_find_decoder_by_name`` accepts);
* ``data``: the packet's bytes as the encoder wrote them (H.264: Annex B NAL units, with the
  parameter sets in ``extradata`` rather than in-band);
* ``pts``, ``dts``: integers or null, in ``time_base`` (``[numerator, denominator]``);
  ``duration`` (optional) likewise;
* ``keyframe``: whether a decoder can start here;
* on keyframes only (every audio packet is one): ``extradata`` (the codec's global header,
  when it has one: H.264 SPS/PPS, AAC AudioSpecificConfig, OpusHead), and the stream
  parameters a muxer or decoder needs: ``width``, ``height``, ``pixel_format`` for video,
  ``rate``, ``channels`` for audio. A subscriber that joins late drops packets until the
  first keyframe and opens its decoder with what that keyframe carries.

The frame around it keeps its ``ts`` (capture time, ms) from the raw frame the packet was
encoded from, so latency and track alignment survive the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

from tasks.media.errors import PacketError
from tasks.media.raw import INT64_MAX, INT64_MIN, encode_time_base, parse_time_base, short

if TYPE_CHECKING:
    import av
else:
    from tasks.media._av import av

__all__ = ["EncodedPacket", "is_packet"]

_KINDS: Final = ("video", "audio")
_MAX_NAME: Final = 64


def is_packet(value: object) -> bool:
    """Whether a frame value looks like an encoded-packet map (rather than a raw array)."""
    return isinstance(value, dict) and "codec" in value and "data" in value


def _opt_int(value: dict[str, Any], key: str, *, positive: bool = False) -> int | None:
    item = value.get(key)
    if item is None:
        return None
    if type(item) is not int or not (1 if positive else INT64_MIN) <= item <= INT64_MAX:
        raise PacketError(f"packet {key!r} must be {'a positive ' if positive else 'an '}integer of 64 bits or null, "
                          f"got {short(item)}")
    return item


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedPacket:
    """One encoded packet with what a late decoder or a muxer needs (on keyframes)."""

    kind: Literal["video", "audio"]
    codec: str
    data: bytes
    pts: int | None
    dts: int | None
    time_base: Fraction
    keyframe: bool
    duration: int | None = None
    extradata: bytes | None = None
    width: int | None = None
    height: int | None = None
    pixel_format: str | None = None
    rate: int | None = None
    channels: int | None = None
    #: the capture time (ms) of the frame this packet came in or was encoded from: not in the map
    ts: int | None = None

    # -- the wire map ------------------------------------------------------------------------------
    def to_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {"kind": self.kind, "codec": self.codec, "data": self.data, "pts": self.pts,
                                 "dts": self.dts, "time_base": encode_time_base(self.time_base),
                                 "keyframe": self.keyframe}
        if self.duration is not None:
            value["duration"] = self.duration
        if self.keyframe:
            for key in ("extradata", "width", "height", "pixel_format", "rate", "channels"):
                item = getattr(self, key)
                if item is not None:
                    value[key] = item
        return value

    @classmethod
    def from_value(cls, value: object) -> EncodedPacket:
        """The packet of a frame value; :class:`PacketError` saying what is wrong otherwise."""
        if not isinstance(value, dict):
            raise PacketError(f"an encoded packet is a map, got {type(value).__name__}")
        kind, codec, data, keyframe = value.get("kind"), value.get("codec"), value.get("data"), value.get("keyframe")
        if kind not in _KINDS:
            raise PacketError(f"packet 'kind' must be 'video' or 'audio', got {kind!r}")
        if not isinstance(codec, str) or not 0 < len(codec) <= _MAX_NAME:
            raise PacketError(f"packet 'codec' must be a codec name, got {codec!r}")
        if not isinstance(data, bytes) or not data:
            raise PacketError(f"packet 'data' must be non-empty bytes, got {type(data).__name__}")
        if type(keyframe) is not bool:
            raise PacketError(f"packet 'keyframe' must be a bool, got {keyframe!r}")
        extradata = value.get("extradata")
        if extradata is not None and not isinstance(extradata, bytes):
            raise PacketError(f"packet 'extradata' must be bytes, got {type(extradata).__name__}")
        pixel_format = value.get("pixel_format")
        if pixel_format is not None and (not isinstance(pixel_format, str) or len(pixel_format) > _MAX_NAME):
            raise PacketError(f"packet 'pixel_format' must be a pixel format name, got {pixel_format!r}")
        return cls(kind=kind, codec=codec, data=data, pts=_opt_int(value, "pts"), dts=_opt_int(value, "dts"),
                   time_base=parse_time_base(value.get("time_base"), where="packet"), keyframe=keyframe,
                   duration=_opt_int(value, "duration"), extradata=extradata,
                   width=_opt_int(value, "width", positive=True), height=_opt_int(value, "height", positive=True),
                   pixel_format=pixel_format, rate=_opt_int(value, "rate", positive=True),
                   channels=_opt_int(value, "channels", positive=True))

    # -- PyAV -------------------------------------------------------------------------------------
    def to_av(self) -> av.Packet[Any]:
        packet = av.Packet(self.data)
        packet.pts = self.pts
        packet.dts = self.dts
        packet.time_base = self.time_base
        if self.duration is not None:
            packet.duration = self.duration
        packet.is_keyframe = self.keyframe
        return packet

    @classmethod
    def from_av(cls, packet: av.Packet[Any], *, template: EncodedPacket, ts: int | None = None,
                data: bool = True) -> EncodedPacket:
        """A packet PyAV produced, with the stream parameters of ``template`` (kind, codec, sizes).

        ``data=False`` describes the packet without copying its bytes (for a muxer that keeps the
        PyAV packet itself).
        """
        return replace(template, data=bytes(packet) if data else b"", pts=packet.pts, dts=packet.dts,
                       time_base=packet.time_base, keyframe=packet.is_keyframe or template.kind == "audio",
                       duration=packet.duration or None, ts=ts)

    def with_ts(self, ts: int | None) -> EncodedPacket:
        return replace(self, ts=ts)

    def stream_key(self) -> tuple[object, ...]:
        """What a decoder must be reopened for when it changes (on a keyframe)."""
        return (self.kind, self.codec, self.extradata, self.width, self.height, self.rate, self.channels)

    @property
    def seconds(self) -> float | None:
        """The presentation time in seconds (None without a pts)."""
        return None if self.pts is None else float(self.pts * self.time_base)
