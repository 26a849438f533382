"""The speech benchmark runs for a moment (two commands, one round), so it cannot rot; figures not judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_speech_benchmark_runs_and_prints_its_ratio(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "speech.py"), "--utterances", "2", "--rounds", "1",
                          "--json", str(tmp_path / "speech.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "2 commands" in lines[0]
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]) and float(lines[-1].split()[1]) > 0
    rows = {line[:22].strip(): line[22:].split() for line in lines[2:7]}
    assert set(rows) == {"text_to_speech", "speech_recognition", "voice_activity", "deepfilternet", "rnnoise"}
    assert all(float(value) > 0 for row in rows.values() for value in row)
    assert lines[7].startswith("commands heard right: direct ")
    rounds = json.loads((tmp_path / "speech.json").read_text())["rounds"]
    assert len(rounds) == 1 and rounds[0]["speech_recognition"]["task_correct"] > 0
