"""Media tasks: video and audio over MQTT with PyAV and numpy (see ``docs/media.md``).

PyAV is imported first, on purpose: without it this whole entry point fails to load, and
the agent lists the media task types as unavailable with the reason.
"""

import av  # noqa: F401  (the dependency check described above)

from edge.task import Task
from tasks.media.aprocess import AudioResampler, AudioVolumeMeter, AudioVolumeScaler
from tasks.media.audio import AudioDecoder, AudioEncoder
from tasks.media.demux import InputContainer
from tasks.media.devices import Camera, Microphone
from tasks.media.mixing import AudioMixer, VideoLayout, VideoMixer
from tasks.media.mux import OutputContainer
from tasks.media.switch import MediaSwitch
from tasks.media.synthetic import TestPattern, TextRenderer
from tasks.media.video import VideoDecoder, VideoEncoder
from tasks.media.viewer import VideoViewer
from tasks.media.vprocess import VideoActivityMeter, VideoReformatter

__all__ = [
    "AudioDecoder",
    "AudioEncoder",
    "AudioMixer",
    "AudioResampler",
    "AudioVolumeMeter",
    "AudioVolumeScaler",
    "Camera",
    "InputContainer",
    "MediaSwitch",
    "Microphone",
    "OutputContainer",
    "TYPES",
    "TestPattern",
    "TextRenderer",
    "VideoActivityMeter",
    "VideoDecoder",
    "VideoEncoder",
    "VideoLayout",
    "VideoMixer",
    "VideoReformatter",
    "VideoViewer",
]

#: every media task type, as the ``media`` entry point hands them to agents
TYPES: list[type[Task]] = [
    InputContainer, TestPattern, Camera, Microphone, TextRenderer,
    VideoEncoder, VideoDecoder, AudioEncoder, AudioDecoder,
    VideoReformatter, VideoMixer, VideoLayout, VideoActivityMeter,
    AudioResampler, AudioMixer, AudioVolumeMeter, AudioVolumeScaler, MediaSwitch,
    OutputContainer, VideoViewer,
]  # fmt: skip
