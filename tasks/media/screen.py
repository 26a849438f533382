"""``screen_capture``: the picture of an X display as raw video, read through FFmpeg's ``x11grab`` input.

Like a camera, a display that is not there is an error of the running task, not of its config
(the X server may start later; the runtime retries with backoff): a local display (``:0``) is
looked for as its X server's socket before FFmpeg is asked, so the error names the display and
the displays this machine has. Frames are stamped with the time they were grabbed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field, model_validator

from edge.task import Port
from tasks.media.demux import Reader
from tasks.media.devices import _Capture
from tasks.media.errors import CodecError, DeviceNotFoundError
from tasks.media.mediatask import RAW_VIDEO, MediaConfig
from tasks.media.video import PixelFormat

if TYPE_CHECKING:
    import av
else:
    from tasks.media._av import av

__all__ = ["ScreenCapture", "check_x_display", "x_displays"]

#: ``[host]:display[.screen]``, as X names a display
DISPLAY_PATTERN: Final = r"^[A-Za-z0-9._-]{0,253}:\d{1,5}(\.\d{1,3})?$"
_SOCKETS: Final = Path("/tmp/.X11-unix")
_ABSTRACT: Final = re.compile(r"@/tmp/\.X11-unix/X(\d+)$")


def x_displays(*, sockets: Path = _SOCKETS, unix: Path = Path("/proc/net/unix")) -> list[int]:
    """The numbers of the X displays with a server on this machine (a socket file or an abstract one)."""
    found = {int(p.name[1:]) for p in sockets.glob("X*") if p.name[1:].isdigit()} if sockets.is_dir() else set()
    try:
        lines = unix.read_text(errors="replace").splitlines() if unix.is_file() else []
    except OSError:
        lines = []
    for line in lines:
        match = _ABSTRACT.search(line)
        if match:
            found.add(int(match[1]))
    return sorted(found)


def check_x_display(display: str, **where: Any) -> None:
    """DeviceNotFoundError unless a local ``display`` (``:N`` or ``:N.S``) has an X server here; a display
    on another host is left to FFmpeg."""
    host, _, number = display.partition(":")
    if host not in ("", "unix", "localhost"):
        return
    present = x_displays(**where)
    if int(number.split(".")[0]) not in present:
        listed = ", ".join(f":{n}" for n in present)
        found = f"X displays here: {listed}" if present else "no X server runs on this machine"
        raise DeviceNotFoundError(f"X display {display} is not running ({found})", device=display)


class ScreenCaptureConfig(MediaConfig):
    queue: int = Field(default=2, ge=1, le=10_000)
    display: str = Field(default=":0", pattern=DISPLAY_PATTERN, description="X display: :0, :1.0, host:0")
    x: int = Field(default=0, ge=0, le=65_535, description="left edge of the area in pixels")
    y: int = Field(default=0, ge=0, le=65_535, description="top edge of the area in pixels")
    width: int | None = Field(default=None, ge=16, le=7680, description="area size (both or neither; needed with "
                                                                        "an offset); unset: the whole screen")
    height: int | None = Field(default=None, ge=16, le=4320)
    rate: float = Field(default=10, gt=0, le=120, description="frames per second grabbed")
    draw_mouse: bool = Field(default=True, description="draw the mouse pointer into the picture")
    pixel_format: PixelFormat = Field(default="rgb24", description="pixel format of the frames sent")

    @model_validator(mode="after")
    def _area(self) -> ScreenCaptureConfig:
        if (self.width is None) != (self.height is None):
            raise ValueError("set both width and height, or neither (the whole screen)")
        if (self.x or self.y) and self.width is None:
            raise ValueError("an area at an offset (x, y) needs its width and height")
        return self


class ScreenCapture(_Capture):
    """Capture an X display (or an area of it) as raw video frames, through FFmpeg's x11grab input.

    ``display`` names the X display (``:0``; under Xvfb the number it was started with); ``x``,
    ``y``, ``width`` and ``height`` choose an area (unset size: the whole screen), ``rate`` the
    frames per second. A display with no X server is an error of the running task, retried.
    """

    Config = ScreenCaptureConfig
    outputs = {"video": replace(RAW_VIDEO, label="the screen (or its area)")}

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Port) -> dict[str, Any]:
        c = config
        extra = {"width": c.width, "height": c.height, "rate": c.rate, "pixel_format": c.pixel_format}
        return {**super().metadata_for(config, port, declared), **{k: v for k, v in extra.items() if v is not None}}

    def open_reader(self) -> Reader:
        c = self.config
        check_x_display(c.display)
        if "x11grab" not in av.formats_available:
            raise CodecError("this PyAV's FFmpeg has no x11grab input: no screen capture here", codec="x11grab")
        options = {"framerate": f"{c.rate:g}", "draw_mouse": "1" if c.draw_mouse else "0"}
        if c.width and c.height:
            options["video_size"] = f"{c.width}x{c.height}"
        url = f"{c.display}+{c.x},{c.y}" if c.x or c.y else c.display
        try:
            return Reader(url, format="x11grab", options=options, audio=False, pixel_format=c.pixel_format)
        except av.error.FFmpegError as exc:
            what = f"the {c.width}x{c.height} area at {c.x},{c.y} of" if c.width else "the screen of"
            hint = ": is the area inside the screen?" if c.width else ""
            raise CodecError(f"x11grab cannot grab {what} X display {c.display} ({exc.strerror}){hint}",
                             codec="x11grab") from None
