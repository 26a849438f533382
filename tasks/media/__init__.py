"""Media tasks: video and audio over MQTT with PyAV and numpy (see ``docs/media.md``).

PyAV is checked for first, on purpose: without it this whole entry point fails to load, and
the agent lists the media task types as unavailable with the reason. It is imported only when
a media task first uses it (``tasks/media/_av.py``): an agent that runs none stays ~15 MB
smaller.
"""

from tasks.media._av import available as _av_available

if not _av_available():
    raise ModuleNotFoundError("No module named 'av': the media task types need PyAV: "
                              "pip install 'edgetasks[media]' (or: pip install av)", name="av")

from edge.task import Task
from tasks.media.aprocess import AudioResampler, AudioVolumeMeter, AudioVolumeScaler
from tasks.media.audio import AudioDecoder, AudioEncoder
from tasks.media.demux import InputContainer
from tasks.media.devices import Camera, Microphone
from tasks.media.mixing import AudioMixer, VideoLayout, VideoMixer
from tasks.media.mux import OutputContainer
from tasks.media.playback import AudioOutput, use_system_alsa_config
from tasks.media.screen import ScreenCapture
from tasks.media.spectrum import AudioFrequencyDisplay
from tasks.media.still import ImageRenderer
from tasks.media.switch import MediaSwitch
from tasks.media.synthetic import TestPattern, TextRenderer
from tasks.media.video import VideoDecoder, VideoEncoder
from tasks.media.viewer import VideoViewer
from tasks.media.vprocess import VideoActivityMeter, VideoReformatter

__all__ = [
    "AudioDecoder",
    "AudioEncoder",
    "AudioFrequencyDisplay",
    "AudioMixer",
    "AudioOutput",
    "AudioResampler",
    "AudioVolumeMeter",
    "AudioVolumeScaler",
    "Camera",
    "ImageRenderer",
    "InputContainer",
    "MediaSwitch",
    "Microphone",
    "OutputContainer",
    "ScreenCapture",
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

# now, in the thread that loads the entry point: setting the environment later, from a task's worker
# thread, would race C code reading it in another (playback.py says why it is needed)
use_system_alsa_config()

#: every media task type, as the ``media`` entry point hands them to agents
TYPES: list[type[Task]] = [
    InputContainer, TestPattern, Camera, Microphone, TextRenderer,
    VideoEncoder, VideoDecoder, AudioEncoder, AudioDecoder,
    VideoReformatter, VideoMixer, VideoLayout, VideoActivityMeter,
    AudioResampler, AudioMixer, AudioVolumeMeter, AudioVolumeScaler, MediaSwitch,
    OutputContainer, VideoViewer, AudioOutput, ImageRenderer, AudioFrequencyDisplay, ScreenCapture,
]  # fmt: skip
