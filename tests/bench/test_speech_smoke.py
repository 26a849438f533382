"""The speech benchmark runs for a moment (two commands, one round), so it cannot rot; figures not judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_speech_benchmark_runs_and_prints_its_ratio(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "speech.py"), "--utterances", "2", "--tts-repeat", "2",
                          "--vad-utterances", "2", "--rounds", "2", "--json", str(tmp_path / "speech.json")],
                         capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "2 commands" in lines[0]
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]) and float(lines[-1].split()[1]) > 0
    rows = {line[:26].strip(): line[26:].split() for line in lines[2:8]}
    assert set(rows) == {"text_to_speech 4096", "text_to_speech 1024", "speech_recognition", "voice_activity",
                         "deepfilternet", "rnnoise"}
    # outputs, frames, direct s, task s, ratio, CPU-s direct, CPU-s task, CPU ratio, same, of which decoding
    assert all(float(value) > 0 for row in rows.values() for value in row[:8])
    assert all(row[8] == "yes" for row in rows.values()), "the two sides made different outputs"
    assert int(rows["text_to_speech 4096"][0]) == 4 and int(rows["speech_recognition"][0]) >= 1
    assert lines[8].startswith("text_to_speech 4096: commands heard right: direct ")
    assert lines[9].startswith("speech_recognition: commands heard right: direct ")
    rounds = json.loads((tmp_path / "speech.json").read_text())["rounds"]
    assert len(rounds) == 2 and rounds[0]["speech_recognition"]["correct"] > 0
    assert all(r[name]["same"] for r in rounds for name in rows)
