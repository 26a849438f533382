"""Every file in examples/ runs as a user runs it, against a real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, broker):
    out = subprocess.run([sys.executable, str(path), str(broker.url)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr


def test_pubsub_prints_what_it_published(broker):
    out = subprocess.run([sys.executable, str(EXAMPLES[0].parent / "pubsub.py"), str(broker.url)],
                         capture_output=True, text=True, timeout=60, check=True)
    values = [line.rsplit("value=", 1)[1] for line in out.stdout.splitlines()]
    assert values == ["20.0", "20.1", "20.2", "20.3", "20.4"]
