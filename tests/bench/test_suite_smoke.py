"""The suite runs a quick subset into temporary paths: its report block, plots and notes have their shape.

Figures are not judged; docs/ is never touched (``--report`` and ``--images`` point into tmp_path).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"
HAND_WRITTEN = "# Benchmarks\n\nIntroduction.\n\n## Bus: by hand\n\nKept as it is.\n"


def test_quick_suite_writes_its_block_and_plots_and_keeps_the_rest(tmp_path):
    report = tmp_path / "docs" / "benchmarks.md"
    report.parent.mkdir()
    report.write_text(HAND_WRITTEN)
    images = tmp_path / "docs" / "images"
    out = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--quick", "--only", "codec,cpu", "--out",
                          str(tmp_path / "out"), "--report", str(report), "--images", str(images)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "cores" in out.stdout.splitlines()[0]
    assert "[1/2] codec: ok in" in out.stdout and "[2/2] cpu: ok in" in out.stdout
    assert sorted(p.name for p in images.iterdir()) == ["bench-codec.png", "bench-cpu.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in images.iterdir())

    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nIntroduction.\n\n<!-- suite:begin -->")  # before the first section
    assert text.endswith("<!-- suite:end -->\n\n## Bus: by hand\n\nKept as it is.\n")
    block = text.split("<!-- suite:begin -->")[1].split("<!-- suite:end -->")[0]
    assert "Machine: " in block and "cores" in block
    assert "| CPU per relayed message, mqtt5 transport incl. frames |" in block  # the targets table
    assert "| what | measured | target | met |" in block
    assert "| frame | bytes | encode µs | decode µs | memcpy µs |" in block
    assert "![codec](images/bench-codec.png)" in block and "![cpu](images/bench-cpu.png)" in block
    assert "### Relay against the tools users would pick instead\n\nNot run: " in block  # not in --only
    suite = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert suite["benches"]["codec"]["status"] == "ok" and suite["benches"]["codec"]["quick"] is True

    # run again, plotting only: the block is replaced, not added twice
    again = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--no-run", "--out", str(tmp_path / "out"),
                            "--report", str(report), "--images", str(images)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert report.read_text().count("<!-- suite:begin -->") == 1


def test_a_missing_or_unrunnable_benchmark_is_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import argparse

    from suite import Bench, run_one

    args = argparse.Namespace(quick=True, rounds=None)
    missing = run_one("relay", Bench("no-such-bench.py", lambda _r: [], []), args, tmp_path, 1, 2)
    assert missing["status"] == "missing" and "does not exist" in missing["note"]
    unrunnable = run_one("media", Bench("codec.py", lambda _r: [], [], requires="no_such_module_xyz"), args,
                         tmp_path, 2, 2)
    assert unrunnable["status"] == "skipped" and "no_such_module_xyz" in unrunnable["note"]
    printed = capsys.readouterr().out
    assert "[1/2] relay: bench/no-such-bench.py does not exist here: skipped" in printed
