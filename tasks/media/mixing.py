"""Mixing several inputs into one: video onto a canvas with alpha, audio into one signal.

Both mixers are driven by a **master** input (the first connected one unless configured):
each frame of the master makes one output frame, with the newest frame (video) or the
samples buffered so far (audio) of every other input. Inputs are independent sources whose
clocks drift; the other inputs' lanes keep only their newest frames (video) and their audio
buffers hold at most ``max_buffer_ms`` (older samples are dropped and counted), so a fast or
stalled input never grows memory. An input that stops simply stops appearing (video: its
last frame stays for ``hold_ms``; audio: silence).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.ports import PortRule
from edge.task import Port
from tasks.media.audio import SampleFormat
from tasks.media.mediatask import RAW_AUDIO, RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio, RawVideo, audio_extra, from_float, layout_for, video_array, video_extra
from tasks.media.synthetic import Color
from tasks.media.video import PixelFormat

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt
    from av.video.reformatter import VideoReformatter as Scaler
else:
    from tasks._lazy import numpy as np
    from tasks.media._av import av

    def Scaler() -> Any:
        return av.video.reformatter.VideoReformatter()

__all__ = ["AudioMixer", "Compositor", "Layer", "VideoLayout", "VideoMixer"]

INPUTS = ("in0", "in1", "in2", "in3")  # those of the default config
MAX_INPUTS = 16
#: an input's name: in0, in1, ... (how many there are is the config's ``inputs``)
InputName = Annotated[str, Field(pattern=r"^in(0|[1-9][0-9]?)$")]
InputCount = Annotated[int, Field(ge=1, le=MAX_INPUTS, description="how many inputs in<k> (k from 0)")]


def _count_rule(metadata: dict[str, Any]) -> PortRule:
    return PortRule(side="inputs", field="inputs", kind="count", name="in{}", label="input {}", metadata=metadata)


def _check_inputs(count: int, names: dict[str, str | None]) -> None:
    """ValueError naming the first of ``names`` (field -> input name) beyond ``count`` inputs."""
    for where, name in names.items():
        if name is not None and int(name[2:]) >= count:
            raise ValueError(f"{where} {name!r} is not an input: there are {count} (in0 to in{count - 1}); "
                             f"raise inputs to use it")


class Layer(BaseModel):
    """Where one input goes on the canvas; later layers are drawn over earlier ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: InputName
    x: int = Field(default=0, ge=-7680, le=7680)
    y: int = Field(default=0, ge=-4320, le=4320)
    width: int | None = Field(default=None, ge=2, le=7680, description="unset: the canvas width")
    height: int | None = Field(default=None, ge=2, le=4320, description="unset: the canvas height")
    alpha: float = Field(default=1.0, ge=0, le=1, description="opacity, times the input's own alpha channel")


class Compositor:
    """Draws the newest frame of each layer's input onto an rgb24 canvas (worker thread only)."""

    def __init__(self, width: int, height: int, background: Color) -> None:
        self.width, self.height = width, height
        self.canvas = np.empty((height, width, 3), dtype=np.uint8)
        self.background = np.asarray(background, dtype=np.uint8)
        self._scalers: dict[int, Scaler] = {}

    def compose(self, layers: list[Layer], frames: dict[str, RawVideo]) -> npt.NDArray[np.uint8]:
        canvas = self.canvas
        canvas[:] = self.background
        for index, layer in enumerate(layers):
            raw = frames.get(layer.input)
            if raw is None or layer.alpha <= 0:
                continue
            width, height = layer.width or self.width, layer.height or self.height
            x0, y0 = max(layer.x, 0), max(layer.y, 0)
            x1, y1 = min(layer.x + width, self.width), min(layer.y + height, self.height)
            if x0 >= x1 or y0 >= y1:
                continue
            has_alpha = raw.pixel_format in ("rgba", "bgra")
            fmt = "rgba" if has_alpha else "rgb24"
            scaler = self._scalers.setdefault(index, Scaler())
            frame = scaler.reformat(raw.to_av(), width=width, height=height, format=fmt)
            src = video_array(frame, fmt)[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x]
            dst = canvas[y0:y1, x0:x1]
            if not has_alpha and layer.alpha >= 1:
                dst[:] = src
                continue
            weight = np.full(src.shape[:2], round(layer.alpha * 255), dtype=np.uint16)
            if has_alpha:
                weight = weight * src[:, :, 3] // 255
            weight = weight[:, :, np.newaxis]
            mixed = src[:, :, :3].astype(np.uint16) * weight + dst.astype(np.uint16) * (255 - weight) + 127
            dst[:] = (mixed // 255).astype(np.uint8)
        return canvas


def _even(value: int) -> int:
    if value % 2:
        raise ValueError("must be even")
    return value


class CanvasConfig(MediaConfig):
    queue: int = Field(default=2, ge=1, le=10_000)
    inputs: InputCount = len(INPUTS)
    width: int = Field(default=640, ge=16, le=7680)
    height: int = Field(default=480, ge=16, le=4320)
    background: Color = (0, 0, 0)
    pixel_format: PixelFormat = "rgb24"
    master: InputName | None = Field(default=None, description="the input whose frames make output frames; unset: "
                                                               "the first connected one")
    hold_ms: int = Field(default=2000, ge=0, le=600_000, description="how long an input's last frame stays "
                                                                     "after it stops")

    _even = field_validator("width", "height")(_even)

    @model_validator(mode="after")
    def _inputs(self) -> CanvasConfig:
        layers = {f"layers.{i}.input": layer.input for i, layer in enumerate(self.placed_layers())}
        _check_inputs(self.inputs, {"master": self.master, **layers})
        return self

    def placed_layers(self) -> list[Layer]:
        return []


class _Canvas(MediaTask):
    """Shared loop of video_mixer and video_layout."""

    Config = CanvasConfig
    inputs = {name: RAW_VIDEO for name in INPUTS}
    outputs = {"out": RAW_VIDEO}
    ports_from = (_count_rule(RAW_VIDEO.metadata()),)
    drop_oldest = frozenset(f"in{k}" for k in range(MAX_INPUTS))

    def layers(self, connected: list[str]) -> list[Layer]:
        raise NotImplementedError

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        return {**super().metadata_for(config, port, declared), "width": c.width, "height": c.height,
                "pixel_format": c.pixel_format}

    def _compose(self, compositor: Compositor, layers: list[Layer], frames: dict[str, RawVideo]) -> Any:
        canvas = compositor.compose(layers, frames)
        fmt = self.config.pixel_format
        if fmt == "rgb24":
            return canvas.copy()
        return video_array(av.VideoFrame.from_ndarray(canvas, format="rgb24"), fmt)

    async def serve(self) -> None:
        c = self.config
        connected = [p for p in self.inputs if p in self._ctx().sources]
        if not connected:
            return
        master = c.master or connected[0]
        layers = self.layers(connected)
        compositor = Compositor(c.width, c.height, c.background)
        frames: dict[str, RawVideo] = {}
        while True:
            port, item = await self.lanes.get_any()
            assert isinstance(item, RawVideo)
            frames[port] = item
            if port != master:
                continue
            current = {p: f for p, f in frames.items() if item.ts - f.ts <= c.hold_ms}
            canvas = await self.work(self._compose, compositor, layers, current)
            await self.emit("out", canvas, ts=item.ts, extra=video_extra(c.pixel_format, item.pts, item.time_base))


class VideoMixerConfig(CanvasConfig):
    layers: list[Layer] = Field(default_factory=list, max_length=16, description="unset: every connected input "
                                                                                  "over the whole canvas, in0 first")

    def placed_layers(self) -> list[Layer]:
        return list(self.layers)


class VideoMixer(_Canvas):
    """Compose video inputs onto one canvas, each at its place and size with its opacity (and alpha).

    The config's `inputs` (default 4) is how many inputs `in<k>` it has (k from 0).
    """

    Config = VideoMixerConfig

    def layers(self, connected: list[str]) -> list[Layer]:
        return list(self.config.layers) or [Layer(input=p) for p in connected]


class VideoLayoutConfig(CanvasConfig):
    layout: Literal["grid", "side_by_side", "pip"] = Field(default="grid", description="grid: tiles; side_by_side: "
                                                           "columns; pip: the first input full, the others small")
    pip_scale: float = Field(default=0.3, gt=0, le=1, description="size of the small pictures of pip")
    margin: int = Field(default=8, ge=0, le=1000)


class VideoLayout(_Canvas):
    """Arrange the connected video inputs automatically: a grid, side by side, or picture-in-picture."""

    Config = VideoLayoutConfig

    def layers(self, connected: list[str]) -> list[Layer]:
        c = self.config
        count = len(connected)
        if c.layout == "pip":
            width, height = _even_floor(c.width * c.pip_scale), _even_floor(c.height * c.pip_scale)
            layers = [Layer(input=connected[0])]
            for i, port in enumerate(connected[1:]):
                layers.append(Layer(input=port, width=width, height=height,
                                    x=c.width - width - c.margin, y=c.height - (height + c.margin) * (i + 1)))
            return layers
        columns = count if c.layout == "side_by_side" else math.ceil(math.sqrt(count))
        rows = math.ceil(count / columns)
        width, height = _even_floor(c.width / columns), _even_floor(c.height / rows)
        return [Layer(input=port, x=(i % columns) * width, y=(i // columns) * height,
                      width=width, height=height) for i, port in enumerate(connected)]


def _even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


class AudioMixerConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000)
    rate: int = Field(default=48000, ge=8000, le=192000)
    channels: int = Field(default=2, ge=1, le=8)
    sample_format: SampleFormat = "s16"
    inputs: InputCount = len(INPUTS)
    gains: list[float] = Field(default_factory=list, max_length=MAX_INPUTS,
                               description="linear gain of in0, in1, ... (default 1)")
    master: InputName | None = Field(default=None, description="the input whose frames make output frames; unset: "
                                                               "the first connected one")
    max_buffer_ms: int = Field(default=500, ge=20, le=60_000, description="samples an input may have waiting")

    @field_validator("gains")
    @classmethod
    def _gains(cls, value: list[float]) -> list[float]:
        if any(not 0 <= g <= 16 for g in value):
            raise ValueError("gains are linear factors from 0 to 16")
        return value

    @model_validator(mode="after")
    def _inputs(self) -> AudioMixerConfig:
        _check_inputs(self.inputs, {"master": self.master})
        if len(self.gains) > self.inputs:
            raise ValueError(f"{len(self.gains)} gains for {self.inputs} inputs")
        return self


class AudioMixer(MediaTask):
    """Mix audio inputs into one (resampled to the output's rate and channels), with a gain each.

    The config's `inputs` (default 4) is how many inputs `in<k>` it has (k from 0).
    """

    Config = AudioMixerConfig
    inputs = {name: RAW_AUDIO for name in INPUTS}
    outputs = {"out": RAW_AUDIO}
    ports_from = (_count_rule(RAW_AUDIO.metadata()),)
    drop_oldest = frozenset(f"in{k}" for k in range(MAX_INPUTS))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.buffers = {p: np.zeros((0, c.channels), dtype=np.float32) for p in self.inputs}
        self._converters: dict[str, tuple[tuple[str, int, int], av.AudioResampler]] = {}
        #: samples dropped from inputs that ran ahead of the master, and how many times
        self.trimmed = 0
        self.trims = 0

    def dropped(self) -> int:
        return super().dropped() + self.trims

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        return {**super().metadata_for(config, port, declared), "rate": c.rate, "channels": c.channels,
                "sample_format": c.sample_format}

    def _to_float(self, port: str, raw: RawAudio) -> npt.NDArray[np.float32]:
        c = self.config
        key = (raw.sample_format, raw.rate, raw.channels)
        known = self._converters.get(port)
        if (raw.rate, raw.channels) == (c.rate, c.channels):
            return raw.as_float()
        if known is None or known[0] != key:
            known = (key, av.AudioResampler(format="flt", layout=layout_for(c.channels), rate=c.rate))
            self._converters[port] = known
        frame = raw.to_av()
        frame.pts = None
        parts = [p.to_ndarray().reshape(-1, c.channels) for p in known[1].resample(frame)]
        return np.concatenate(parts) if parts else np.zeros((0, c.channels), dtype=np.float32)

    def _mix(self, port: str, raw: RawAudio, master: str) -> npt.NDArray[Any] | None:
        c = self.config
        buffer = np.concatenate([self.buffers[port], self._to_float(port, raw)])
        limit = c.rate * c.max_buffer_ms // 1000
        if len(buffer) > limit:
            self.trimmed += len(buffer) - limit
            self.trims += 1
            buffer = buffer[-limit:]
        self.buffers[port] = buffer
        if port != master or not len(buffer):
            return None
        count = len(buffer)
        mixed = np.zeros((count, c.channels), dtype=np.float32)
        for index, name in enumerate(self.inputs):
            data = self.buffers[name][:count]
            gain = c.gains[index] if index < len(c.gains) else 1.0
            if len(data):
                mixed[: len(data)] += data * np.float32(gain)
            self.buffers[name] = self.buffers[name][len(data):]
        return from_float(np.clip(mixed, -1.0, 1.0), c.sample_format)

    async def serve(self) -> None:
        c = self.config
        connected = [p for p in self.inputs if p in self._ctx().sources]
        if not connected:
            return
        master = c.master or connected[0]
        position = 0
        time_base = Fraction(1, c.rate)
        while True:
            port, item = await self.lanes.get_any()
            assert isinstance(item, RawAudio)
            samples = await self.work(self._mix, port, item, master)
            if samples is not None:
                await self.emit("out", samples, ts=item.ts,
                                extra=audio_extra(c.sample_format, c.rate, position, time_base))
                position += len(samples)
