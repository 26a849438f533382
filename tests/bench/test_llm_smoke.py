"""The LLM benchmark runs for a moment (two messages, one round), so it cannot rot; figures not judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_llm_benchmark_runs_and_prints_its_ratio(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "llm.py"), "--prompts", "2", "--tokens", "8", "--embd", "64",
                          "--layers", "2", "--rounds", "1", "--json", str(tmp_path / "llm.json")],
                         capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "2 messages, up to 8 tokens" in lines[0]
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]) and float(lines[-1].split()[1]) > 0
    [round_] = json.loads((tmp_path / "llm.json").read_text())["rounds"]
    assert round_["pieces"] == round_["task_pieces"] > 0  # the same answers' pieces on both sides
