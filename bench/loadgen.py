"""The load generator of ``bench/relay.py`` and ``bench/chain.py``, and how their runs are summarized.

Run as a child process by :func:`run_load`, one per contender, size and round::

    python bench/loadgen.py --url URL --pub TOPIC --sub TOPIC --size 64 --seconds 2 --hops 1 --pids 1234 \
        [--window 1000]

It publishes frames made with ``edge.frames.encode_frame`` (``{"ts", "seq", "value": {"n": int,
"pad": bytes}}``, ``size`` bytes in all) on ``--pub`` with ``edge.bus`` (MQTT 5, its cheapest
client) and reads the replies on ``--sub``. Message ``i`` carries ``n = 16 * i`` and every relay
hop adds 1, so a reply must carry ``16 * i + hops``: anything else is counted as ``bad``, and
``i`` says which message came back. It probes until the relays answer, warms up for 0.5 s, then

* **throughput**: a credit window of at most ``--window`` messages in flight (1000 by default),
  for ``--seconds``; a message is in flight from its publish until its reply arrives, so the
  window is the largest burst the relay's input queue may have to hold. Lost messages (and
  the ones a relay dropped) are counted: ``lost``; ``msgs_per_s`` = replies / time from the
  first send to the last reply;
* **latency**: open loop at a fixed 1000 msgs/s for ``--seconds``, whatever comes back; the
  latency of a message is from just before it is encoded and published to its reply's arrival.

During both it samples the relay processes ``--pids`` (psutil if installed, else /proc) every
0.1 s: CPU % of one core over the run, RSS peak and median; and the CPU of the broker
(``--broker-pid``) and of itself, to tell which process bounds the throughput. It prints one JSON line, the
``{"throughput": ..., "latency": ...}`` of a round in the schema of ``bench/relay.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
HERE = SELF.parent
sys.path.insert(0, str(HERE.parent))

SIZES = {"64B": 64, "1KiB": 1024}
WINDOW = 1000  # default of the messages in flight in the throughput run (--window)
RATE = 1000  # msgs/s of the open-loop latency run
STRIDE = 16  # message i carries n = STRIDE * i; each hop adds 1, so up to 15 hops can be checked
WARMUP = 0.5  # seconds at full speed before measuring
SAMPLE_EVERY = 0.1  # seconds between samples of the relay processes
READY_TIMEOUT = 60.0  # seconds for the relays to answer the first probe


def pad_for(size: int, hops: int = 0) -> bytes:
    """Padding that makes a frame of a typical message (i ~ 100k) ``size`` bytes long."""
    from edge.frames import encode_frame

    base = len(encode_frame({"n": 100_000 * STRIDE + hops, "pad": b""}, seq=100_000))
    extra = size - base
    # a byte string's header grows from 1 to 2 bytes at 24 and to 3 at 256 bytes
    for header in (1, 2, 3):
        n = max(0, extra - header + 1)
        if len(encode_frame({"n": 100_000 * STRIDE + hops, "pad": b"x" * n}, seq=100_000)) == size:
            return b"x" * n
    return b"x" * max(0, extra)


# -- sampling the relay process ------------------------------------------------------------------


class ProcSampler:
    """CPU time and RSS of some processes: psutil if installed, else /proc (Linux)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        try:
            import psutil

            self._procs: dict[int, Any] | None = {pid: psutil.Process(pid) for pid in pids}
        except ImportError:
            self._procs = None
        self._t0 = 0.0
        self._cpu0: dict[int, float] = {}
        self._rss: dict[int, list[float]] = {}
        self._next = 0.0

    def _cpu(self, pid: int) -> float:
        if self._procs is not None:
            times = self._procs[pid].cpu_times()
            return float(times.user + times.system)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def _rss_mb(self, pid: int) -> float:
        if self._procs is not None:
            return float(self._procs[pid].memory_info().rss) / 2**20
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._cpu0 = {pid: self._cpu(pid) for pid in self.pids}
        self._rss = {pid: [] for pid in self.pids}
        self._next = 0.0
        self.sample(self._t0)

    def sample(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + SAMPLE_EVERY
        for pid in self.pids:
            with contextlib.suppress(OSError, ValueError):
                self._rss[pid].append(self._rss_mb(pid))

    def stop(self) -> list[dict[str, Any]]:
        now = time.perf_counter()
        self._next = 0.0
        self.sample(now)
        wall = max(now - self._t0, 1e-9)
        result = []
        for pid in self.pids:
            try:
                cpu = (self._cpu(pid) - self._cpu0[pid]) / wall * 100
            except (OSError, ValueError):
                cpu = float("nan")
            rss = self._rss[pid] or [float("nan")]
            result.append({"pid": pid, "cpu_pct": cpu, "rss_peak_mb": max(rss), "rss_median_mb": statistics.median(rss),
                           "samples": len(self._rss[pid])})
        return result


# -- the load generator (a child process) -------------------------------------------------------


@dataclass
class _Replies:
    """What the subscriber saw; message ``i`` is the ``i - first``-th of the current run."""

    hops: int
    decode: Callable[[bytes], Any]
    first: int = 0
    received: int = 0
    bad: int = 0
    stale: int = 0
    last_ns: int = 0
    latency: bool = False
    sent_ns: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    credit: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, message: Any) -> None:
        now = time.perf_counter_ns()
        try:
            value = self.decode(message.payload).value
            i, hop = divmod(value["n"], STRIDE)
        except (ValueError, TypeError, KeyError):  # FrameError is a ValueError
            self.bad += 1
            return
        if hop != self.hops:
            self.bad += 1
            return
        self.answered.set()
        if i < self.first:
            self.stale += 1  # a probe, or the warm-up
            return
        self.received += 1
        self.last_ns = now
        if self.latency:
            k = i - self.first
            if k < len(self.sent_ns):
                self.samples.append(now - self.sent_ns[k])
        self.credit.set()


async def _drain(replies: _Replies, sent: int, quiet: float = 1.0) -> None:
    """Wait until every message came back, or none came for ``quiet`` seconds (at most 10 s)."""
    end = time.perf_counter() + 10
    while replies.received < sent and time.perf_counter() < end:
        before = replies.received
        replies.credit.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(replies.credit.wait(), quiet)
        if replies.received == before:
            break


async def load(url: str, pub: str, sub: str, size: int, seconds: float, hops: int,
               pids: list[int], broker_pid: int | None = None, window: int = WINDOW) -> dict[str, Any]:
    from edge.bus import Bus
    from edge.frames import decode_frame, encode_frame

    pad = pad_for(size, hops)
    replies = _Replies(hops=hops, decode=decode_frame)
    # the relays, and for the record the broker and this load generator (the others on the machine)
    others = [pid for pid in (broker_pid, os.getpid()) if pid]
    sampler = ProcSampler(pids + others)

    def split(sampled: list[dict[str, Any]]) -> dict[str, Any]:
        by_pid = {p["pid"]: p for p in sampled}
        return {"procs": [by_pid[pid] for pid in pids],
                "broker_cpu_pct": by_pid[broker_pid]["cpu_pct"] if broker_pid else None,
                "load_cpu_pct": by_pid[os.getpid()]["cpu_pct"]}
    counter = 0

    def frame() -> bytes:
        nonlocal counter
        payload = encode_frame({"n": counter * STRIDE, "pad": pad}, seq=counter)
        counter += 1
        return payload

    async def throughput(duration: float) -> dict[str, Any]:
        replies.first, replies.received, replies.bad, replies.latency = counter, 0, 0, False
        sent = 0
        stalled = False
        t0 = time.perf_counter()
        t0_ns = time.perf_counter_ns()
        deadline = t0 + duration
        sampler.start()
        while True:
            while sent - replies.received < window:
                bus.publish_nowait(pub, frame())
                sent += 1
            now = time.perf_counter()
            sampler.sample(now)
            if now > deadline:
                break
            replies.credit.clear()
            try:
                await asyncio.wait_for(replies.credit.wait(), 2)
            except TimeoutError:
                stalled = True  # messages were lost and took the window's credit with them
                break
        await _drain(replies, sent)
        sampled = split(sampler.stop())
        elapsed = (replies.last_ns - t0_ns) / 1e9 if replies.received else time.perf_counter() - t0
        return {"sent": sent, "received": replies.received, "lost": sent - replies.received, "bad": replies.bad,
                "window": window, "seconds": elapsed, "msgs_per_s": replies.received / elapsed if elapsed > 0 else 0.0,
                "stalled": stalled, **sampled}

    async def latency(duration: float) -> dict[str, Any]:
        count = max(1, int(duration * RATE))
        replies.first, replies.received, replies.bad, replies.latency = counter, 0, 0, True
        replies.sent_ns = [0] * count
        replies.samples = []
        sampler.start()
        start = time.perf_counter()
        for k in range(count):
            delay = start + k / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            replies.sent_ns[k] = time.perf_counter_ns()
            bus.publish_nowait(pub, frame())
            sampler.sample(time.perf_counter())
        await _drain(replies, count)
        sampled = split(sampler.stop())
        samples = sorted(replies.samples)
        n = len(samples)
        return {"sent": count, "received": replies.received, "lost": count - replies.received, "bad": replies.bad,
                "p50_ms": samples[n // 2] / 1e6 if n else None,
                "p99_ms": samples[min(n - 1, int(n * 0.99))] / 1e6 if n else None,
                "p999_ms": samples[min(n - 1, int(n * 0.999))] / 1e6 if n else None,
                "max_ms": samples[-1] / 1e6 if n else None, **sampled}

    async with Bus(url, client_id=f"bench-load-{uuid.uuid4().hex[:8]}") as bus:
        await bus.subscribe(sub, callback=replies.on_message)
        replies.first = 1 << 62  # everything before the first run is a probe
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                while not replies.answered.is_set():
                    bus.publish_nowait(pub, frame())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(replies.answered.wait(), 0.05)
        except TimeoutError:
            raise SystemExit(f"the relay never answered on {sub} within {READY_TIMEOUT:.0f} s") from None
        await throughput(min(WARMUP, seconds))
        result = {"throughput": await throughput(seconds)}
        await asyncio.sleep(0.2)
        result["latency"] = await latency(seconds)
    return result


# -- running it, and summarizing ---------------------------------------------------------------


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a process so far, from /proc; 0 if unknown or gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    from edge.broker.ports import free_port as pick  # outside the ephemeral range: see its docstring

    return pick("127.0.0.1")


async def run_load(url: str, *, pub: str, sub: str, size: int, seconds: float, hops: int,
                   pids: list[int], broker_pid: int | None = None, window: int = WINDOW) -> dict[str, Any]:
    """Run the load generator in its own process against a started relay; its result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SELF), "--url", url, "--pub", pub, "--sub", sub,
        "--size", str(size), "--seconds", str(seconds), "--hops", str(hops), "--pids", ",".join(map(str, pids)),
        "--window", str(window),
        *(["--broker-pid", str(broker_pid)] if broker_pid else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), READY_TIMEOUT + 4 * seconds + 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError("the load generator hung") from None
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def progress(rnd: int, label: str, size: str, r: dict[str, Any]) -> str:
    t, lat = r["throughput"], r["latency"]
    procs = t["procs"]
    cpu = sum(p["cpu_pct"] for p in procs) if procs else float("nan")
    rss = max((p["rss_peak_mb"] for p in procs), default=float("nan"))
    p50 = f"{lat['p50_ms']:.3f}" if lat["p50_ms"] is not None else "-"
    p99 = f"{lat['p99_ms']:.3f}" if lat["p99_ms"] is not None else "-"
    return (f"round {rnd}: {label:18} {size:5} {t['msgs_per_s']:9.0f} msgs/s ({t['received']}/{t['sent']}, "
            f"lost {t['lost']}, bad {t['bad']}), 1k/s p50 {p50} p99 {p99} ms ({lat['received']}/{lat['sent']}), "
            f"CPU {cpu:.0f}%, RSS {rss:.1f} MB; broker CPU {t['broker_cpu_pct'] or 0:.0f}%, "
            f"load generator {t['load_cpu_pct']:.0f}%")


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and v == v]  # drop None and NaN
    return statistics.median(values) if values else None


def summarize(rounds: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rounds:
        summary.setdefault(r["contender"], {}).setdefault(r["size"], {"_runs": []})["_runs"].append(r)
    for by_size in summary.values():
        for label, row in by_size.items():
            runs = row.pop("_runs")
            tput = [r["throughput"] for r in runs]
            lat = [r["latency"] for r in runs]
            peaks = [p["rss_peak_mb"] for r in runs for run in (r["throughput"], r["latency"]) for p in run["procs"]]
            by_size[label] = {
                "msgs_per_s": _median([t["msgs_per_s"] for t in tput]),
                "lost": sum(t["lost"] + t["bad"] for t in tput) + sum(x["lost"] + x["bad"] for x in lat),
                "p50_ms": _median([x["p50_ms"] for x in lat]),
                "p99_ms": _median([x["p99_ms"] for x in lat]),
                "cpu_pct": _median([sum(p["cpu_pct"] for p in t["procs"]) for t in tput if t["procs"]]),
                "rss_mb": max((p for p in peaks if p == p), default=None),
                "cpu_us_per_msg": _median([sum(p["cpu_pct"] for p in t["procs"]) * 1e4 / t["msgs_per_s"]
                                           for t in tput if t["procs"] and t["msgs_per_s"]]),
                "cpu_pct_1k": _median([sum(p["cpu_pct"] for p in x["procs"]) for x in lat if x["procs"]]),
                "broker_cpu_pct": _median([t["broker_cpu_pct"] for t in tput]),
                "load_cpu_pct": _median([t["load_cpu_pct"] for t in tput]),
                "rss_median_mb": _median([max(p["rss_median_mb"] for p in run["procs"])
                                          for r in runs for run in (r["throughput"], r["latency"]) if run["procs"]]),
            }
    return summary


def table(summary: dict[str, dict[str, dict[str, Any]]], labels: dict[str, str]) -> list[str]:
    cols = [("msgs/s", "msgs_per_s", "{:.0f}"), ("lost", "lost", "{:d}"), ("p50 ms", "p50_ms", "{:.3f}"),
            ("p99 ms", "p99_ms", "{:.3f}"), ("CPU %", "cpu_pct", "{:.0f}"), ("us/msg", "cpu_us_per_msg", "{:.1f}"),
            ("CPU% 1k", "cpu_pct_1k", "{:.0f}"),
            ("RSS MB", "rss_mb", "{:.1f}"), ("RSS med", "rss_median_mb", "{:.1f}"),
            ("broker %", "broker_cpu_pct", "{:.0f}"), ("load %", "load_cpu_pct", "{:.0f}")]
    lines = [f"{'contender':20}{'size':>6}" + "".join(f"{c[0]:>10}" for c in cols)]
    for name, by_size in summary.items():
        for size, row in by_size.items():
            cells = "".join(f"{(fmt.format(row[key]) if row[key] is not None else '-'):>10}" for _, key, fmt in cols)
            lines.append(f"{labels.get(name, name):20}{size:>6}{cells}")
    return lines


def machine_info(extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The machine and the versions, for the record."""
    from importlib.metadata import PackageNotFoundError, version

    from bus import cpu_model, mosquitto_version

    versions: dict[str, str] = {}
    for package in ("edgetasks", "paho-mqtt", "mqtt5", "cbor2"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    mosq = mosquitto_version()
    if mosq:
        versions["mosquitto"] = mosq.removeprefix("mosquitto version ")
    versions.update(extra or {})
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(), "versions": versions}


def machine_line(info: dict[str, Any]) -> str:
    versions = "; ".join(f"{k} {v}" for k, v in info["versions"].items())
    return f"# {info['cores']} cores, {info['cpu']}; Python {info['python']}; {versions}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pub", required=True, help="topic the frames go to")
    parser.add_argument("--sub", required=True, help="topic the replies come from")
    parser.add_argument("--size", type=int, default=64, help="bytes per frame")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measured run")
    parser.add_argument("--hops", type=int, default=1, help="relays in the path, each adding 1")
    parser.add_argument("--pids", default="", help="comma-separated pids of the relay processes to sample")
    parser.add_argument("--broker-pid", type=int, help="the broker's pid, to sample its CPU too")
    parser.add_argument("--window", type=int, default=WINDOW, help="messages in flight in the throughput run")
    args = parser.parse_args()
    if args.window < 1:
        parser.error("--window must be at least 1")
    pids = [int(p) for p in args.pids.split(",") if p]
    print(json.dumps(asyncio.run(load(args.url, args.pub, args.sub, args.size, args.seconds, args.hops, pids,
                                      args.broker_pid, args.window))))


if __name__ == "__main__":
    main()
