"""``python -m edge agent`` as a process of its own, for end-to-end tests of what a user runs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["agent_process"]


@contextlib.contextmanager
def agent_process(env: Mapping[str, str], log_path: Path, *,
                  args: Sequence[str] = ("-m", "edge", "agent"),
                  tracebacks: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """Run an agent (``python <args>``) with ``env`` for the block (its stderr in ``log_path``: a file, not
    a pipe nothing reads); then stop it with SIGTERM and check it exited cleanly, without a traceback
    (``tracebacks``: its log may hold some, of a task that is meant to crash)."""
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, *args], env=dict(env),
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    stderr = log_path.read_text()
    assert proc.returncode == 0 and (tracebacks or "Traceback" not in stderr), stderr[-3000:]
