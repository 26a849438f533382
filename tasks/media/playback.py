"""audio_output: raw audio played on a sound device, through FFmpeg's output devices (ALSA, PulseAudio, OSS).

The device is opened with the first frame, at the config's rate and channels or else the input's
(and opened again when an unset one changes in the input), and fed signed 16-bit samples through
a resampler, so any raw audio plays. Writing blocks at the device's pace, in the task's worker
thread: when the input comes faster than the device plays it (or the device stalls), the input
lane holds ``queue`` frames and drops the oldest, so the delay to the speaker stays bounded.

A device that cannot be opened (unplugged, busy, no such PCM) is an error of the running task
(``DeviceNotFoundError``, retried with backoff), as the microphone's is; an output FFmpeg lacks
(``pulse`` in a build without it) is a config error the agent's check names, with the outputs it has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field

from tasks.media.codecs import reason
from tasks.media.errors import DeviceNotFoundError
from tasks.media.mediatask import RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio, layout_for

if TYPE_CHECKING:
    import av
    import av.container
else:
    from tasks.media._av import av

__all__ = ["AUDIO_OUTPUTS", "AudioOutput", "AudioOutputConfig", "use_system_alsa_config"]

#: FFmpeg's audio output devices, of which a build has some
AUDIO_OUTPUTS: Final = ("alsa", "pulse", "oss", "sndio", "audiotoolbox")
_SYSTEM_ALSA_CONFIG: Final = Path("/usr/share/alsa/alsa.conf")


def use_system_alsa_config() -> None:
    """Point ALSA at the system's configuration, unless the environment already does.

    PyAV's wheels carry their own libasound, built to read its configuration under its build
    prefix (``/tmp/vendor/share/alsa``), which no machine has: every PCM name but ``hw:N`` is then
    unknown (``default``, ``plughw``, ``null``, ``file``). The system's (Debian: ``libasound2-data``)
    is the one the machine's sound setup is in."""
    if "ALSA_CONFIG_PATH" not in os.environ and _SYSTEM_ALSA_CONFIG.is_file():
        os.environ["ALSA_CONFIG_PATH"] = str(_SYSTEM_ALSA_CONFIG)


def audio_outputs() -> list[str]:
    """The audio output devices of this FFmpeg build."""
    have = set(av.formats_available)
    return [name for name in AUDIO_OUTPUTS if name in have]


class AudioOutputConfig(MediaConfig):
    queue: int = Field(default=8, ge=1, le=10_000, description="frames waiting for the device at most "
                                                               "(the oldest dropped): bounds the delay")
    device: str = Field(default="default", min_length=1, max_length=256,
                        description="ALSA PCM (default, hw:1, plughw:1,0, null, file:FILE=/path,FORMAT=raw…), "
                                    "PulseAudio sink name (default) or OSS device (/dev/dsp)")
    format: str = Field(default="alsa", pattern=r"^[a-z0-9_]{1,32}$",
                        description="FFmpeg output device: alsa, pulse (if this FFmpeg has it), oss")
    rate: int | None = Field(default=None, ge=8000, le=192_000, description="sample rate played; unset: the input's")
    channels: int | None = Field(default=None, ge=1, le=8, description="channels played; unset: the input's")


class Player:
    """An open output device fed s16 at one rate and layout (worker thread only)."""

    def __init__(self, config: AudioOutputConfig, rate: int, channels: int) -> None:
        self.key = (rate, channels)
        if config.format == "alsa":
            use_system_alsa_config()
        where = f"audio output {config.device!r} ({config.format})"
        self.hint = " (`aplay -L` lists the ALSA PCMs)" if config.format == "alsa" else ""
        try:
            container = av.open(config.device, "w", format=config.format)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise DeviceNotFoundError(f"{where} cannot be opened: {reason(exc)}{self.hint}",
                                      device=config.device) from exc
        assert isinstance(container, av.container.OutputContainer)
        self.container = container
        layout = layout_for(channels)
        stream = container.add_stream("pcm_s16le", rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = layout
        stream.time_base = Fraction(1, rate)
        self.stream = stream
        self.resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        self.where = where
        self.next_pts = 0
        self.started = False

    def play(self, raw: RawAudio) -> int:
        """Write one frame to the device (blocks at its pace); the samples written."""
        frame = raw.to_av()
        frame.pts = None
        written = 0
        for out in self.resampler.resample(frame):
            out.pts = self.next_pts
            out.time_base = self.stream.time_base
            self.next_pts += out.samples
            written += out.samples
            try:
                self.container.mux(self.stream.encode(out))
            except (av.error.FFmpegError, OSError) as exc:
                if not self.started:  # ALSA opens its PCM with the header, at the first write
                    raise DeviceNotFoundError(f"{self.where} cannot be opened: {reason(exc)}{self.hint}",
                                              device=self.container.name) from exc
                raise
            self.started = True
        return written

    def close(self) -> None:
        try:
            if self.started:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()


class AudioOutput(MediaTask):
    """Play raw audio on a speaker: an ALSA PCM (or PulseAudio sink, OSS device) through FFmpeg's outputs."""

    Config = AudioOutputConfig
    inputs = {"in": RAW_AUDIO}
    outputs = {}
    drop_oldest = frozenset({"in"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.player: Player | None = None
        #: samples written to the device
        self.played = 0

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> list[str]:
        if problems := super().check(config):
            return problems
        c = cls.Config.model_validate(dict(config))
        have = audio_outputs()
        if c.format not in have:
            return [f"config.format: this agent's FFmpeg has no {c.format!r} audio output; "
                    f"its audio outputs: {', '.join(have) or 'none'}"]
        return []

    def play(self, raw: RawAudio) -> int:
        c = self.config
        key = (c.rate or raw.rate, c.channels or raw.channels)
        if self.player is not None and self.player.key != key:
            self.logger.info("%s: the input is now %d Hz, %d channels: reopening %s", self.instance_id, *key, c.device)
            self.release()
        if self.player is None:
            self.player = Player(c, *key)
        return self.player.play(raw)

    async def serve(self) -> None:
        while True:
            _, item = await self.lanes.get_any()
            assert isinstance(item, RawAudio)
            self.played += await self.work(self.play, item)

    def release(self) -> None:
        player, self.player = self.player, None
        if player is not None:
            player.close()
