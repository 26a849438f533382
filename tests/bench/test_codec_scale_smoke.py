"""The codec and scale benchmarks run for a moment, so they cannot rot; their figures are not judged here."""

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


def test_scale_benchmark_lists_the_fleet_and_runs_the_deployment(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--rounds", "1", "--agents", "6", "--procs", "2",
                          "--tasks", "4", "--task-agents", "2", "--no-browser", "--json", str(tmp_path / "scale.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("# ") and "cores" in lines[0] and "brokers mosquitto, embedded" in lines[0]
    assert lines[1] == "# mosquitto:"
    assert re.fullmatch(r"6 agents listed after go +\d+\.\d\d s +\(target 5 s: (met|missed)\)", lines[2])
    assert re.fullmatch(r"cold controller lists them all after +\d+\.\d\d s +\(synced with \d+/6 listed, .*\)",
                        lines[3])
    assert re.fullmatch(r"4 tasks on 2 agents running after +\d+\.\d\d s +\(target 10 s: (met|missed)\)", lines[4])
    assert lines[5] == "# page loads skipped (--no-browser)"
    assert lines[6].startswith("# embedded: listed ")
    result = json.loads((tmp_path / "scale.json").read_text())
    assert set(result["brokers"]) == {"mosquitto", "embedded"}
    for broker in result["brokers"].values():
        (round_,) = broker["rounds"]
        assert round_["cold_listed"] == 6 and round_["listed_at_synced"] == 6  # a fleet under any broker's bound
        assert {"listed_s", "cold_listed_s", "cold_synced_s", "deploy_running_s"} <= set(broker["summary"])
    assert set(result["met"]) == {"listed_s", "deploy_running_s"}
