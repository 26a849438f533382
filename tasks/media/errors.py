"""The exceptions the media tasks raise on purpose, under edgetasks' one root::

    EdgeError
    ├── FrameError (ValueError)
    │   └── PacketError                 a frame that should hold an encoded packet does not
    └── MediaError
        ├── DeviceNotFoundError (FileNotFoundError)  a camera or microphone is not there
        ├── CodecError                  a codec or container cannot be opened with these settings
        └── ImageError (ValueError)     an image file cannot be shown (missing, too big, not an image)
"""

from __future__ import annotations

from edge.errors import EdgeError, FrameError

__all__ = ["CodecError", "DeviceNotFoundError", "ImageError", "MediaError", "PacketError"]


class MediaError(EdgeError):
    """Root of the media tasks' own errors."""


class PacketError(FrameError):
    """A frame's value is not a valid encoded-packet map (see ``docs/media.md``)."""


class DeviceNotFoundError(MediaError, FileNotFoundError):
    """The capture device a camera or microphone task names does not exist here; ``device`` names it."""

    def __init__(self, message: str, *, device: str) -> None:
        super().__init__(message)
        self.device = device


class CodecError(MediaError):
    """A codec, muxer or demuxer refused the settings; ``codec`` names it."""

    def __init__(self, message: str, *, codec: str) -> None:
        super().__init__(message)
        self.codec = codec


class ImageError(MediaError, ValueError):
    """An image file a task was to show cannot be: missing, too big, or not an image FFmpeg decodes."""
