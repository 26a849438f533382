"""audio_frequency_display: a live spectrum of raw audio, drawn on the deployment's dashboard.

The task keeps the last ``fft_size`` samples (mixed to mono) and, at most ``rate`` times a second,
takes their spectrum (Hann window, real FFT) and sums the power in ``bands`` bands between
``min_freq`` and ``max_freq`` (spaced logarithmically, as the ear hears, or linearly). Each band's
level is in dB relative to a full-scale sine, which reads 0 in its band; silence reads ``floor_db``.

It is a dashboard type (``"dashboard": "audio_frequency_display"`` in its catalog entry, the contract
of :mod:`tasks.dashboard`): its ``view`` output carries :class:`edge.protocol.SpectrumView` maps,
retained so a panel that loads draws the last one at once, cleared when the task stops. Unlike a
control's, the view is refreshed many times a second and a lost one is replaced at once: they go
at QoS 0. The levels also go out on ``levels`` (a list of numbers), for graphs and alarms.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from edge.protocol import MAX_BANDS, CatalogEntry, SpectrumView
from edge.task import Port
from tasks.dashboard import VIEW, clear_view
from tasks.media.mediatask import RAW_AUDIO, MediaConfig, MediaTask
from tasks.media.raw import RawAudio, to_float

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

__all__ = ["AudioFrequencyDisplay", "Spectrum", "band_edges"]

KIND: Final = "audio_frequency_display"


def band_edges(bands: int, low: float, high: float, spacing: str) -> npt.NDArray[np.float64]:
    """``bands + 1`` edges in Hz from ``low`` to ``high``."""
    if spacing == "log":
        return np.geomspace(low, high, bands + 1)
    return np.linspace(low, high, bands + 1)


class Spectrum:
    """The band levels of the last ``size`` samples of a stream at one rate (numpy only)."""

    def __init__(self, *, size: int, rate: int, edges: npt.NDArray[np.float64], floor_db: float) -> None:
        self.size, self.rate, self.floor_db = size, rate, floor_db
        self.edges = edges
        self.window = np.hanning(size)
        # a full-scale sine's power over its bins (Parseval: N · Σw² · (1/2)², one side of the spectrum)
        self.reference = size * float(np.sum(self.window**2)) / 4
        bins = np.fft.rfftfreq(size, 1 / rate)
        #: each band's first and last+1 FFT bin (a band narrower than a bin takes the bin its centre is in)
        self.slices: list[tuple[int, int]] = []
        for lo, hi in itertools.pairwise(edges):
            start, stop = int(np.searchsorted(bins, lo)), int(np.searchsorted(bins, hi))
            if stop <= start:
                start = min(int(np.searchsorted(bins, (lo + hi) / 2)), len(bins) - 1)
                stop = start + 1
            self.slices.append((start, stop))
        self.buffer = np.zeros(size, np.float64)
        self.filled = 0

    def add(self, mono: npt.NDArray[np.float64]) -> None:
        """Append samples (the oldest fall out)."""
        if len(mono) >= self.size:
            self.buffer[:] = mono[-self.size:]
        else:
            self.buffer = np.roll(self.buffer, -len(mono))
            self.buffer[-len(mono):] = mono
        self.filled = min(self.size, self.filled + len(mono))

    def levels(self) -> list[float]:
        power = np.abs(np.fft.rfft(self.buffer * self.window)) ** 2
        floor = self.floor_db
        out = []
        for start, stop in self.slices:
            total = float(np.sum(power[start:stop])) / self.reference
            out.append(round(max(floor, 10 * np.log10(total)) if total > 0 else floor, 2))
        return out


class AudioFrequencyDisplayConfig(MediaConfig):
    queue: int = Field(default=16, ge=1, le=10_000, description="audio frames the input lane holds")
    label: str = Field(default="", max_length=200, description="the caption the panel shows")
    bands: int = Field(default=24, ge=2, le=MAX_BANDS, description="frequency bands shown")
    min_freq: float = Field(default=50.0, gt=0, le=96_000, description="lowest band's lower edge, Hz")
    max_freq: float = Field(default=16_000.0, gt=0, le=96_000, description="highest band's upper edge, Hz (at "
                                                                            "most half the sample rate: clipped)")
    spacing: Literal["log", "linear"] = Field(default="log", description="log: each band an equal musical "
                                                                         "interval; linear: equal Hz")
    fft_size: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = Field(
        default=2048, description="samples per spectrum: more resolves low frequencies, reacts slower")
    rate: float = Field(default=10.0, gt=0, le=30, description="spectra per second at most")
    floor_db: float = Field(default=-90.0, ge=-200, le=-1, description="the level silence reads")

    @model_validator(mode="after")
    def _range(self) -> AudioFrequencyDisplayConfig:
        if self.min_freq >= self.max_freq:
            raise ValueError(f"min_freq ({self.min_freq:g}) must be below max_freq ({self.max_freq:g})")
        return self


class AudioFrequencyDisplay(MediaTask):
    """A live spectrum of raw audio on the dashboard: the level of each frequency band, a few times a second."""

    Config = AudioFrequencyDisplayConfig
    inputs = {"in": RAW_AUDIO}
    outputs = {"view": VIEW, "levels": Port(content="data", label="levels (dB per band)")}
    drop_oldest = frozenset({"in"})
    #: what the panel draws, as a DashboardTask's ``kind`` (a media task, so not one of them)
    kind: ClassVar[str] = KIND

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spectrum: Spectrum | None = None
        #: spectra left out to keep to ``rate``
        self.skipped = 0

    @classmethod
    def catalog_entry(cls) -> CatalogEntry:
        return CatalogEntry.model_validate({**super().catalog_entry().dump(), "dashboard": cls.kind})

    def spectrum_for(self, rate: int) -> Spectrum:
        c = self.config
        if self.spectrum is None or self.spectrum.rate != rate:
            high = min(c.max_freq, rate / 2)
            low = min(c.min_freq, high / 2)
            self.spectrum = Spectrum(size=c.fft_size, rate=rate, edges=band_edges(c.bands, low, high, c.spacing),
                                     floor_db=c.floor_db)
        return self.spectrum

    def take(self, raw: RawAudio) -> None:
        spectrum = self.spectrum_for(raw.rate)
        spectrum.add(to_float(raw.samples).astype(np.float64).mean(axis=1))

    def view(self, levels: list[float]) -> SpectrumView:
        assert self.spectrum is not None
        return SpectrumView(kind=KIND, label=self.config.label, edges=[round(float(e), 2) for e in self.spectrum.edges],
                            levels=levels, floor_db=self.config.floor_db, rate=self.spectrum.rate)

    async def serve(self) -> None:
        interval = 1 / self.config.rate
        last: float | None = None
        try:
            while True:
                _, item = await self.lanes.get_any()
                assert isinstance(item, RawAudio)
                await self.work(self.take, item)
                now = time.monotonic()
                if last is not None and now - last < interval:
                    self.skipped += 1
                    continue
                last = now
                levels = await self.work(self.spectrum_for(item.rate).levels)
                await self.send("view", self.view(levels).dump(), ts=item.ts, qos=0, retain=True)
                await self.emit("levels", levels, ts=item.ts)
        finally:
            self.clear_view()

    def clear_view(self) -> None:
        """An empty retained view: the panel shows the task as not running (tasks.dashboard's contract)."""
        clear_view(self)

