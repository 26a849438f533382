"""Run every benchmark, then plot the medians and write the summary into docs/benchmarks.md.

One command for the lot: each benchmark of this folder runs in its own process with ``--json``
into ``--out`` (``bench/out/``), its stdout and stderr kept there as ``NAME.txt`` / ``NAME.err``;
the console shows which one runs, for how long, and its last progress line. A benchmark that
is missing (``relay.py`` and ``chain.py`` came later), cannot run here (``media`` without PyAV)
or fails is noted and the others go on. Then ``bench/suite_report.py`` draws one PNG per
benchmark (``--images``, ``docs/images/bench-*.png``: the contenders side by side, bars of the
medians) and rewrites the block between ``<!-- suite:begin -->`` and ``<!-- suite:end -->`` of
``--report`` (``docs/benchmarks.md``; the markers are put before the first section when
missing; the hand-written sections stay as they are): the machine, tables of medians, the
targets met or missed, the plots. Benchmarks not run this time keep their last JSON in
``--out``, so ``--only`` refreshes a part of the report without dropping the rest.

    python bench/suite.py [--quick] [--only relay,codec] [--skip soak] [--rounds N]
                          [--out bench/out] [--report docs/benchmarks.md] [--images docs/images]

``--quick`` runs each for a moment (the smoke test uses it with a small ``--only``); its figures
are not worth publishing. ``--rounds`` overrides every benchmark's rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Bench:
    script: str
    full: Callable[[int | None], list[str]]  # rounds override -> arguments (without --json)
    quick: list[str]
    requires: str | None = None  # a module that must be importable
    timeout: float = 1800.0


def _rounds(default: int) -> Callable[[int | None], list[str]]:
    return lambda rounds: ["--rounds", str(rounds or default)]


BENCHES: dict[str, Bench] = {
    "bus": Bench("bus.py", lambda r: [*_rounds(3)(r), "--seconds", "2"], ["--rounds", "1", "--seconds", "0.3"]),
    "cpu": Bench("cpu.py", lambda r: ["--messages", "100000", *_rounds(3)(r)], ["--messages", "2000", "--rounds", "1"]),
    "codec": Bench("codec.py", lambda r: [*_rounds(5)(r), "--seconds", "0.3"],
                   ["--rounds", "1", "--seconds", "0.02"]),
    "footprint": Bench("footprint.py", _rounds(3), ["--rounds", "1"]),
    "scale": Bench("scale.py", _rounds(3), ["--rounds", "1", "--agents", "20", "--procs", "2", "--tasks", "10",
                                            "--task-agents", "2", "--no-browser", "--idle", "1"]),
    "relay": Bench("relay.py", lambda r: [*_rounds(3)(r), "--seconds", "2"],
                   ["--rounds", "1", "--seconds", "0.5", "--contenders", "agent,paho,floor"]),
    "chain": Bench("chain.py", lambda r: [*_rounds(3)(r), "--seconds", "2"],
                   ["--rounds", "1", "--seconds", "0.5", "--layouts", "2agents"]),
    "media": Bench("media.py", _rounds(3), ["--frames", "20", "--rounds", "1", "--width", "160", "--height", "120"],
                   requires="av"),
    # short: two minutes at 200 frames/s, growth measured after 30 s (bench/soak.py's default is 5 minutes)
    "soak": Bench("soak.py", lambda _r: ["--minutes", "2", "--warmup", "30", "--interval", "5"],
                  ["--minutes", "0.15", "--warmup", "2", "--interval", "1", "--rate", "50"]),
}


def run_one(name: str, bench: Bench, args: argparse.Namespace, out: Path, index: int, total: int) -> dict[str, Any]:
    """Run one benchmark, showing its progress; returns its entry of ``suite.json``."""
    started = time.monotonic()
    script = HERE / bench.script
    entry: dict[str, Any] = {"script": f"bench/{bench.script}", "started": _now()}
    if not script.exists():
        entry.update(status="missing", note=f"bench/{bench.script} does not exist here: skipped")
    elif bench.requires and importlib.util.find_spec(bench.requires) is None:
        entry.update(status="skipped", note=f"needs {bench.requires} (not installed): skipped")
    if "status" in entry:
        print(f"[{index}/{total}] {name}: {entry['note']}", flush=True)
        return entry
    json_path = out / f"{name}.json"
    argv = [*(bench.quick if args.quick else bench.full(args.rounds)), "--json", str(json_path)]
    entry["command"] = " ".join(["python", f"bench/{bench.script}", *argv]).replace(str(ROOT) + "/", "")
    json_path.unlink(missing_ok=True)
    timeout = 300.0 if args.quick else bench.timeout
    with open(out / f"{name}.txt", "wb") as stdout, open(out / f"{name}.err", "wb") as stderr:
        # a session of its own: on a timeout its whole group (brokers, agents) goes, and nothing else
        proc = subprocess.Popen([sys.executable, str(script), *argv], stdout=stdout, stderr=stderr, cwd=ROOT,
                                start_new_session=True)
        try:
            _watch(proc, name, index, total, started, timeout, out / f"{name}.err")
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
    entry["seconds"] = round(time.monotonic() - started, 1)
    entry["returncode"] = proc.returncode
    if json_path.exists():
        entry["status"] = "ok" if proc.returncode == 0 else "ok, exit code " + str(proc.returncode)
        if proc.returncode:
            entry["note"] = f"exited with {proc.returncode} (a bound exceeded?); figures kept"
    else:
        tail = (out / f"{name}.err").read_text(errors="replace").strip().splitlines()[-3:]
        entry.update(status="failed", note=f"failed (exit {proc.returncode}): {' / '.join(tail)[:300]}")
    print(f"\r[{index}/{total}] {name}: {entry['status']} in {entry['seconds']:.0f} s" + " " * 30, flush=True)
    return entry


def _watch(proc: subprocess.Popen[bytes], name: str, index: int, total: int, started: float, timeout: float,
           err: Path) -> None:
    """Show the elapsed time and the benchmark's last progress line until it ends (bounded by ``timeout``)."""
    tty = sys.stdout.isatty()
    last_print = -30.0
    while proc.poll() is None:
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            print(f"\n[{index}/{total}] {name}: over {timeout:.0f} s, stopped", flush=True)
            return
        if tty or elapsed - last_print >= 30:
            last_print = elapsed
            line = _last_line(err)
            text = f"[{index}/{total}] {name}: running {elapsed:4.0f} s  {line[:70]}"
            print(f"\r{text:<110}" if tty else text, end="" if tty else "\n", flush=True)
        time.sleep(0.5)


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 2000))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each benchmark for a moment (smoke test)")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHES)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks not to run")
    parser.add_argument("--rounds", type=int, help="rounds of every benchmark (default: each one's own)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="JSON, stdout and stderr of each benchmark")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--no-run", action="store_true", help="only plot and report from the JSON in --out")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHES)
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = [n for n in [*names, *skip] if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    names = [n for n in names if n not in skip]
    args.out.mkdir(parents=True, exist_ok=True)
    suite_json = args.out / "suite.json"
    suite: dict[str, Any] = json.loads(suite_json.read_text()) if suite_json.exists() else {}
    sys.path.insert(0, str(HERE))
    from suite_report import machine, write_report

    suite["machine"] = machine()
    print(suite["machine"], flush=True)
    entries: dict[str, Any] = suite.setdefault("benches", {})
    started = time.monotonic()
    if not args.no_run:
        for i, name in enumerate(names, 1):
            entries[name] = {**run_one(name, BENCHES[name], args, args.out, i, len(names)), "quick": args.quick}
            suite_json.write_text(json.dumps(suite, indent=2))
    print(f"# all done in {time.monotonic() - started:.0f} s; plotting and writing {args.report}", flush=True)
    written = write_report(suite, out=args.out, report=args.report, images=args.images)
    for path in written:
        print(f"wrote {path}")
    failed = [n for n in names if entries.get(n, {}).get("status") == "failed"]
    if failed:
        print(f"# failed: {', '.join(failed)} (see {args.out}/NAME.err)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
