"""The codec benchmark runs for a moment, so it cannot rot; its figures are not judged here (the scale
benchmark has test_scale_smoke.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def test_codec_benchmark_prints_each_case_against_memcpy(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "codec.py"), "--rounds", "1", "--seconds", "0.01",
                          "--json", str(tmp_path / "codec.json")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "cbor2" in lines[0]
    assert lines[1].split() == ["case", "bytes", "encode_us", "decode_us", "memcpy_us", "encode_ratio", "decode_ratio"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert set(rows) == {"scalar", "dict", "image"}
    assert int(rows["image"][0]) > 640 * 480 * 3
    assert all(float(v) > 0 for row in rows.values() for v in row)
    assert re.fullmatch(r"# image np\.copy \d+\.\d\d us; .*", lines[5])
    summary = json.loads((tmp_path / "codec.json").read_text())["summary"]
    assert set(summary) == {"scalar", "dict", "image"}
    assert {"bytes", "encode_us", "decode_us", "memcpy_us", "encode_ratio", "decode_ratio"} <= set(summary["dict"])
    assert "np_copy_us" in summary["image"]
