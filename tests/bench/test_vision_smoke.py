"""The vision benchmark runs for a moment (four frames, one round), so it cannot rot; figures not judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_vision_benchmark_runs_and_prints_its_ratio(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "vision.py"), "--frames", "4", "--rounds", "1",
                          "--json", str(tmp_path / "vision.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "4 frames of 640x480" in lines[0]
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]) and float(lines[-1].split()[1]) > 0
    rows = {line[:20].strip(): line[20:].split() for line in lines[2:4]}
    assert set(rows) == {"full frame", "detect_width 320"}
    assert all(float(value) > 0 for row in rows.values() for value in row)
    assert re.fullmatch(r"CPU ratio \(direct CPU-s / task CPU-s\): \d+\.\d\d, \d+\.\d\d", lines[4])
    assert lines[5] == "same boxes in every frame: yes"
    rounds = json.loads((tmp_path / "vision.json").read_text())["rounds"]
    assert len(rounds) == 1 and rounds[0]["full frame"]["faces"] >= 4  # the photo's face in every frame
