"""The media benchmark runs for a moment (small frames, one round), so it cannot rot; figures not judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_media_benchmark_runs_and_prints_its_ratio(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "media.py"), "--frames", "20", "--rounds", "1",
                          "--width", "160", "--height", "120", "--json", str(tmp_path / "media.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "PyAV" in lines[0]
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]) and float(lines[-1].split()[1]) > 0
    assert re.fullmatch(r"every hop through the broker: ratio \d+\.\d\d", lines[-2])
    assert re.fullmatch(r"latency p50 \d+\.\d ms", lines[-3])
    rows = {line[:22].strip(): line[22:].split() for line in lines[3:-3]}
    assert set(rows) == {"plain PyAV", "edgetasks", "every hop via broker", "edgetasks real time"}
    assert all(float(rows[name][0]) > 0 for name in rows)  # fps
    for name in ("edgetasks", "every hop via broker"):  # in-process or through the broker: nothing lost or dropped
        assert rows[name][-1] == "0" and rows[name][-2] == "0"
    results = json.loads((tmp_path / "media.json").read_text())["results"]
    assert results["edgetasks"][0]["frames"] == results["every hop via broker"][0]["frames"] == 20
