"""Capture devices: a camera (V4L2) and a microphone (ALSA), read through FFmpeg's device demuxers.

A missing device is an error of the running task, not of its config: the device may be
plugged in later, and the runtime retries with backoff. The error names the device and what
was looked for, and shows in the task's status (``DeviceNotFoundError: camera /dev/video0 …``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import Field

from edge.frames import now_ms
from edge.task import Port
from tasks.media.audio import SampleFormat
from tasks.media.demux import Reader
from tasks.media.errors import DeviceNotFoundError
from tasks.media.mediatask import RAW_AUDIO, RAW_VIDEO, MediaConfig, MediaTask
from tasks.media.playback import use_system_alsa_config
from tasks.media.video import PixelFormat

__all__ = ["Camera", "Microphone", "check_alsa_device", "check_v4l2_device"]

_ALSA_CARD: Final = re.compile(r"^(?:plug)?hw:(?:CARD=)?([^,]+)")


def check_v4l2_device(device: str) -> None:
    """DeviceNotFoundError unless ``device`` is an existing V4L2 device node."""
    path = Path(device)
    if not path.exists():
        present = sorted(str(p) for p in Path("/dev").glob("video*"))
        found = f"video devices here: {', '.join(present)}" if present else "this machine has no /dev/video* device"
        raise DeviceNotFoundError(f"camera device {device} does not exist ({found})", device=device)
    if not path.is_char_device():
        raise DeviceNotFoundError(f"camera device {device} is not a device node", device=device)


def check_alsa_device(device: str, *, sound_dir: Path = Path("/dev/snd")) -> None:
    """DeviceNotFoundError unless ALSA has a capture device for ``device`` (default, hw:N, plughw:N,M)."""
    captures = sorted(p.name for p in sound_dir.glob("pcmC*D*c")) if sound_dir.is_dir() else []
    if not captures:
        raise DeviceNotFoundError(f"microphone device {device!r} is not available: this machine has no ALSA "
                                  f"capture device (none in {sound_dir})", device=device)
    match = _ALSA_CARD.match(device)
    if match and match[1].isdigit() and not any(name.startswith(f"pcmC{match[1]}D") for name in captures):
        raise DeviceNotFoundError(f"microphone device {device!r} is not available: no ALSA capture device on card "
                                  f"{match[1]} (capture devices: {', '.join(captures)})", device=device)


class _Capture(MediaTask):
    """A device read until it ends (or the task stops); frames stamped with the time they were read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader: Reader | None = None

    def open_reader(self) -> Reader:
        raise NotImplementedError

    async def serve(self) -> None:
        self.reader = reader = await self.work(self.open_reader)
        while (outputs := await self.work(reader.read)) is not None:
            for out in outputs:
                await self.emit(out.port, out.value, ts=now_ms(), extra=out.extra)

    def release(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class CameraConfig(MediaConfig):
    device: str = Field(default="/dev/video0", min_length=1, max_length=256, description="V4L2 device node")
    format: str = Field(default="v4l2" if sys.platform.startswith("linux") else "avfoundation", max_length=32,
                        description="FFmpeg input device")
    width: int | None = Field(default=None, ge=16, le=7680, description="capture size; unset: the device's")
    height: int | None = Field(default=None, ge=16, le=4320)
    rate: float | None = Field(default=None, gt=0, le=240, description="capture frame rate; unset: the device's")
    input_format: str | None = Field(default=None, max_length=32, description="what the device sends: mjpeg, "
                                                                              "yuyv422…")
    pixel_format: PixelFormat = "rgb24"


class Camera(_Capture):
    """Capture video from a camera (V4L2 on Linux) as raw frames."""

    Config = CameraConfig
    outputs = {"video": RAW_VIDEO}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        return {**super().metadata_for(config, port, declared), "pixel_format": config.pixel_format}

    def open_reader(self) -> Reader:
        c = self.config
        if c.format == "v4l2":
            check_v4l2_device(c.device)
        options: dict[str, str] = {}
        if c.width and c.height:
            options["video_size"] = f"{c.width}x{c.height}"
        if c.rate:
            options["framerate"] = f"{c.rate:g}"
        if c.input_format:
            options["input_format"] = c.input_format
        return Reader(c.device, format=c.format, options=options, audio=False, pixel_format=c.pixel_format)


class MicrophoneConfig(MediaConfig):
    queue: int = 16
    device: str = Field(default="default", min_length=1, max_length=256, description="ALSA device: default, "
                                                                                     "hw:1, plughw:1,0…")
    format: str = Field(default="alsa", max_length=32, description="FFmpeg input device (alsa, pulse…)")
    rate: int | None = Field(default=None, ge=8000, le=192000, description="sample rate; unset: the device's")
    channels: int | None = Field(default=None, ge=1, le=32)
    sample_format: SampleFormat = "s16"


class Microphone(_Capture):
    """Capture audio from a microphone (ALSA on Linux) as raw samples x channels frames."""

    Config = MicrophoneConfig
    outputs = {"audio": RAW_AUDIO}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        return {**super().metadata_for(config, port, declared), "sample_format": config.sample_format}

    def open_reader(self) -> Reader:
        c = self.config
        if c.format == "alsa":
            check_alsa_device(c.device)
            use_system_alsa_config()
        options: dict[str, str] = {}
        if c.rate:
            options["sample_rate"] = str(c.rate)
        if c.channels:
            options["channels"] = str(c.channels)
        return Reader(c.device, format=c.format, options=options, video=False, sample_format=c.sample_format)
