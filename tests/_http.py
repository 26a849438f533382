"""Waiting for a page to answer, for tests that start a server process."""

from __future__ import annotations

import time
import urllib.request


def wait_http(url: str, timeout: float) -> str:
    """The body of ``url`` once it answers; the last error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
