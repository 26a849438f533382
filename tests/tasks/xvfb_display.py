"""Shared helper of the screen capture tests (no tests here): an Xvfb X server of their own, and painting it.

:func:`xvfb` starts ``Xvfb`` on a display number it picks itself and waits until it accepts
clients: Xvfb writes the number to ``-displayfd`` once it does (a signal, not a sleep).
``-noreset`` keeps the root window's colour after ``xsetroot`` disconnects (without it the
server resets when its last client leaves, and the screen goes black again).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["needs_xvfb", "paint", "xvfb"]

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("xsetroot") is None,
                                reason="Xvfb and xsetroot are not installed (apt-get install xvfb x11-xserver-utils)")


@contextmanager
def xvfb(width: int, height: int, *, timeout: float = 10.0) -> Iterator[str]:
    """A fresh Xvfb of ``width`` x ``height`` (24 bits): its display name (``:N``) while it runs."""
    ready, writer = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(writer), "-screen", "0", f"{width}x{height}x24",
                               "-nolisten", "tcp", "-noreset"], pass_fds=(writer,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    os.close(writer)
    try:
        number = b""
        while not number.endswith(b"\n"):
            if not select.select([ready], [], [], timeout)[0]:
                pytest.fail(f"Xvfb did not start in {timeout} s")
            chunk = os.read(ready, 16)
            if not chunk:
                pytest.fail(f"Xvfb exited: {server.communicate(timeout=10)[1].decode(errors='replace')[-500:]}")
            number += chunk
        yield f":{int(number)}"
    finally:
        os.close(ready)
        server.terminate()
        server.communicate(timeout=10)


def paint(display: str, color: str) -> None:
    """Fill the screen of ``display`` with ``color`` (an X colour name or #rrggbb)."""
    subprocess.run(["xsetroot", "-display", display, "-solid", color], check=True, timeout=10)
