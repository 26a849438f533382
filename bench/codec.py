"""Codec benchmark: ``edge.frames`` encode and decode against a plain memory copy of the same bytes.

Three payloads, each a frame as a task sends it (``encode_frame(value, ts=..., seq=...)``):

* ``scalar``: a float value (the frame of a sensor reading, ~25 B);
* ``dict``: a small map value (five fields: numbers, text, a bool; ~80 B);
* ``image``: a 640x480x3 uint8 numpy array (921,600 B of pixels), an RFC 8746 typed array.

Per case and per operation, µs per op (wall clock, ``time.perf_counter_ns``, a calibrated loop of
about ``--seconds``): ``encode`` (value -> bytes), ``decode`` (bytes -> :class:`~edge.frames.Frame`,
the image as a read-only view of the payload), and in the same run ``memcpy``:
``bytes(memoryview(payload))`` of the encoded payload (and for the image also ``np.copy`` of the
array), the floor any codec that copies the bytes once pays. Each round runs in a fresh child
process; rounds are interleaved; medians are reported with the ratios to memcpy.

    python bench/codec.py [--rounds 5] [--seconds 0.3] [--json out.json]

JSON: ``{"results": {case: [round, ...]}, "summary": {case: {"bytes", "encode_us", "decode_us",
"memcpy_us", "np_copy_us" (image only), "encode_ratio", "decode_ratio"}}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))
CASES = ("scalar", "dict", "image")
TS = 1_700_000_000_000


def _value(case: str) -> Any:
    import numpy as np

    if case == "scalar":
        return 21.5
    if case == "dict":
        return {"temperature": 21.5, "humidity": 48, "label": "greenhouse-3", "ok": True, "count": 1234}
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)


def _per_op(fn: Callable[[], object], seconds: float) -> float:
    """µs per call of ``fn``: a loop calibrated to last about ``seconds``, best of three such loops."""
    n = 1
    while True:  # calibrate: double until one loop takes a tenth of the budget (bounded: 2**24 calls)
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        dt = time.perf_counter_ns() - t
        if dt > seconds * 1e8 or n >= 1 << 24:
            break
        n *= 2
    n = max(1, int(n * seconds * 1e9 / 3 / max(dt, 1)))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t) / n / 1e3)
    return best


def run_round(seconds: float) -> dict[str, dict[str, Any]]:
    import numpy as np

    from edge.frames import decode_frame, encode_frame

    out: dict[str, dict[str, Any]] = {}
    for case in CASES:
        value = _value(case)
        payload = encode_frame(value, ts=TS, seq=1)
        frame = decode_frame(payload)  # and check it round-trips
        same = np.array_equal(frame.value, value) if case == "image" else frame.value == value
        if not same:
            raise AssertionError(f"{case}: the decoded value differs")
        result = {
            "bytes": len(payload),
            "encode_us": _per_op(lambda v=value: encode_frame(v, ts=TS, seq=1), seconds),
            "decode_us": _per_op(lambda p=payload: decode_frame(p), seconds),
            "memcpy_us": _per_op(lambda p=payload: bytes(memoryview(p)), seconds),
        }
        if case == "image":
            result["np_copy_us"] = _per_op(lambda v=value: np.copy(v), seconds)
        out[case] = result
    return out


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for case, rounds in results.items():
        row = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        row["encode_ratio"] = row["encode_us"] / row["memcpy_us"]
        row["decode_ratio"] = row["decode_us"] / row["memcpy_us"]
        summary[case] = row
    return summary


def machine() -> str:
    from importlib.metadata import version

    from bus import machine as bus_machine

    return f"{bus_machine()}; cbor2 {version('cbor2')}; numpy {version('numpy')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="time budget of each measurement loop")
    parser.add_argument("--json", type=Path, help="write raw results and the summary here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_round(args.seconds)))
        return
    print(machine())
    results: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for rnd in range(args.rounds):
        out = subprocess.run([sys.executable, __file__, "--child", "--seconds", str(args.seconds)],
                             capture_output=True, text=True, timeout=300, check=False)
        if out.returncode != 0:
            raise SystemExit(f"round {rnd + 1} failed:\n{out.stderr[-3000:]}")
        for case, result in json.loads(out.stdout.strip().splitlines()[-1]).items():
            results[case].append(result)
            print(f"round {rnd + 1}: {case:7} encode {result['encode_us']:8.2f} us  "
                  f"decode {result['decode_us']:8.2f} us  memcpy {result['memcpy_us']:8.2f} us", file=sys.stderr)
    summary = summarize(results)
    cols = ["bytes", "encode_us", "decode_us", "memcpy_us", "encode_ratio", "decode_ratio"]
    print(f"{'case':8}" + "".join(f"{c:>14}" for c in cols))
    for case, row in summary.items():
        print(f"{case:8}" + "".join(f"{row[c]:14.0f}" if c == "bytes" else f"{row[c]:14.2f}" for c in cols))
    image = summary["image"]
    print(f"# image np.copy {image['np_copy_us']:.2f} us; ratios are codec / memcpy of the same payload")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
