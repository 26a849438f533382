"""Bus benchmark: edge.bus with each of its transports against a bare paho-mqtt client with ``loop_start()``.

One run, one Mosquitto (started here on a free loopback port), each contender in its own
process, rounds interleaved so all see the same machine state; medians reported.

* throughput: a publisher and a subscriber in one process, QoS 0, a credit window of
  in-flight messages so nothing is lost (loss is still checked), 64 B and 64 KiB payloads;
* round trip: one client publishes to a topic it subscribes to and waits for it, p50/p99;
* latency at 1k msgs/s: open loop, one client publishes 64 B on a fixed schedule (whatever
  comes back) to a topic it subscribes to; each payload carries its send time; p50/p99.

Prints a table and a last line ``ratio <x>``: edge.bus with its default transport (``auto``,
which picks MQTT 5 against Mosquitto) / bare paho, 64 B throughput.

    python bench/bus.py [--seconds 2] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

WINDOW = 1000
SIZES = {"64B": 64, "64KiB": 64 * 1024}
RATE = 1000  # msgs/s of the open-loop latency run


# -- contenders (run in a child process) ------------------------------------------------------
def run_edge(url: str, kind: str, size: int, seconds: float, transport: str) -> dict[str, Any]:
    from edge.bus import Bus

    def bus() -> Bus:
        return Bus(url, transport=transport)  # type: ignore[arg-type]

    async def throughput() -> dict[str, Any]:
        async with bus() as pub, bus() as sub_bus:
            received = 0
            credit = asyncio.Event()

            def on_msg(_m: Any) -> None:
                nonlocal received
                received += 1
                credit.set()

            async with sub_bus.subscribe("bench/t", callback=on_msg):
                payload = b"x" * size
                sent = 0
                t0 = time.perf_counter()
                deadline = t0 + seconds
                while True:
                    while sent - received < WINDOW:
                        pub.publish_nowait("bench/t", payload)
                        sent += 1
                    if time.perf_counter() > deadline:
                        break
                    credit.clear()
                    await credit.wait()
                end_wait = time.perf_counter() + 5
                while received < sent and time.perf_counter() < end_wait:
                    credit.clear()
                    try:
                        await asyncio.wait_for(credit.wait(), 1)
                    except TimeoutError:
                        break
                dt = time.perf_counter() - t0
                return {"msgs": received, "sent": sent, "seconds": dt, "rate": received / dt,
                        "transport": pub.transport}

    async def rtt() -> dict[str, Any]:
        async with bus() as client:
            samples = []
            got = asyncio.Event()
            async with client.subscribe("bench/rtt", callback=lambda _m: got.set()):
                payload = b"x" * 64
                n = 0
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline and n < 20000:
                    got.clear()
                    t = time.perf_counter()
                    client.publish_nowait("bench/rtt", payload)
                    await asyncio.wait_for(got.wait(), 2)
                    samples.append(time.perf_counter() - t)
                    n += 1
            return _percentiles(samples)

    async def latency() -> dict[str, Any]:
        async with bus() as client:
            samples: list[float] = []
            done = asyncio.Event()
            count = max(1, int(seconds * RATE))

            def on_msg(m: Any) -> None:
                samples.append((time.perf_counter_ns() - int.from_bytes(m.payload[:8], "big")) / 1e9)
                if len(samples) >= count:
                    done.set()

            async with client.subscribe("bench/lat", callback=on_msg):
                pad = b"x" * 56
                start = time.perf_counter()
                for i in range(count):
                    delay = start + i / RATE - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    client.publish_nowait("bench/lat", time.perf_counter_ns().to_bytes(8, "big") + pad)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 2)
            return {**_percentiles(samples), "sent": count}

    runs = {"throughput": throughput, "rtt": rtt, "latency": latency}
    return asyncio.run(runs[kind]())


def run_paho(url: str, kind: str, size: int, seconds: float, transport: str) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = url.removeprefix("mqtt://").split(":")

    def client() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2)
        c.connect(host, int(port))
        c.loop_start()
        return c

    cond = threading.Condition()
    received = 0
    subscribed = threading.Event()

    def on_msg(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal received
        with cond:
            received += 1
            cond.notify()

    if kind == "throughput":
        sub = client()
        sub.on_message = on_msg
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.subscribe("bench/t")
        subscribed.wait(5)
        pub = client()
        payload = b"x" * size
        sent = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            with cond:
                while sent - received >= WINDOW:
                    cond.wait(1)
            pub.publish("bench/t", payload)
            sent += 1
        with cond:
            cond.wait_for(lambda: received >= sent, 5)
        dt = time.perf_counter() - t0
        pub.loop_stop()
        sub.loop_stop()
        return {"msgs": received, "sent": sent, "seconds": dt, "rate": received / dt}

    if kind == "latency":
        lat = client()
        samples: list[float] = []
        count = max(1, int(seconds * RATE))
        all_in = threading.Event()

        def on_lat(_c: Any, _u: Any, m: Any) -> None:
            samples.append((time.perf_counter_ns() - int.from_bytes(m.payload[:8], "big")) / 1e9)
            if len(samples) >= count:
                all_in.set()

        lat.on_message = on_lat
        lat.on_subscribe = lambda *a: subscribed.set()
        lat.subscribe("bench/lat")
        subscribed.wait(5)
        pad = b"x" * 56
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            lat.publish("bench/lat", time.perf_counter_ns().to_bytes(8, "big") + pad)
        all_in.wait(2)
        lat.loop_stop()
        return {**_percentiles(list(samples)), "sent": count}

    c = client()
    got = threading.Event()
    c.on_message = lambda *a: got.set()
    c.on_subscribe = lambda *a: subscribed.set()
    c.subscribe("bench/rtt")
    subscribed.wait(5)
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(samples) < 20000:
        got.clear()
        t = time.perf_counter()
        c.publish("bench/rtt", b"x" * 64)
        if not got.wait(2):
            break
        samples.append(time.perf_counter() - t)
    c.loop_stop()
    return _percentiles(samples)


def _percentiles(samples: list[float]) -> dict[str, Any]:
    samples.sort()
    n = len(samples)
    return {"n": n, "p50_ms": samples[n // 2] * 1e3, "p99_ms": samples[min(n - 1, int(n * 0.99))] * 1e3}


# name -> (runner, transport)
CONTENDERS = {"edge.bus/mqtt5": (run_edge, "mqtt5"), "edge.bus/paho": (run_edge, "paho"),
              "paho loop_start": (run_paho, "")}
KINDS = ("rtt", "latency")


# -- orchestration ---------------------------------------------------------------------------------
def _child(args: argparse.Namespace) -> None:
    runner, transport = CONTENDERS[args.contender]
    if args.kind == "which":
        print(json.dumps({"transport": _auto_choice(args.url)}))
        return
    result = runner(args.url, args.kind, args.size, args.seconds, transport)
    print(json.dumps(result))


def _auto_choice(url: str) -> str:
    """The transport edge.bus's default (``auto``) picks for this broker."""
    from edge.bus import Bus

    async def which() -> str:
        async with Bus(url) as bus:
            return bus.transport

    return asyncio.run(which())


def _run_child(contender: str, url: str, kind: str, size: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--contender", contender, "--url", url, "--kind", kind,
         "--size", str(size), "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{contender} {kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from edge.broker import MosquittoBroker

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with MosquittoBroker(port=_free_port(), data_dir=Path(tmp), persistence=False) as broker:
            url = broker.url.geturl()
            results["auto"] = _run_child("edge.bus/mqtt5", url, "which", 0, 0)["transport"]
            for rnd in range(args.rounds):
                for name in CONTENDERS:
                    for label, size in SIZES.items():
                        r = _run_child(name, url, "throughput", size, args.seconds)
                        results.setdefault(name, {}).setdefault(label, []).append(r)
                        print(f"round {rnd + 1}: {name:16} {label:7} {r['rate']:9.0f} msgs/s "
                              f"({r['msgs']}/{r['sent']} received)", file=sys.stderr)
                    for kind in KINDS:
                        r = _run_child(name, url, kind, 64, args.seconds)
                        results.setdefault(name, {}).setdefault(kind, []).append(r)
                        print(f"round {rnd + 1}: {name:16} {kind:7} p50 {r['p50_ms']:.3f} ms "
                              f"p99 {r['p99_ms']:.3f} ms ({r['n']} samples)", file=sys.stderr)
    return results


def cpu_model() -> str:
    """The CPU's model name (Linux), for the machine line of every benchmark."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def mosquitto_version() -> str:
    """Mosquitto's first help line (``mosquitto version 2.0.11``), or "" where it is not installed."""
    try:
        out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.split("\n")[0].strip()


def machine() -> str:
    """One line naming the machine and the versions, for the record."""
    import os
    import platform
    from importlib.metadata import version

    return (f"# {os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()}; "
            f"paho-mqtt {version('paho-mqtt')}; {mosquitto_version() or 'mosquitto ?'}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, by_kind in results.items():
        if name == "auto":
            continue
        row: dict[str, Any] = {}
        for label, size in SIZES.items():
            runs = by_kind[label]
            row[f"{label} msgs/s"] = statistics.median(r["rate"] for r in runs)
            row[f"{label} MB/s"] = row[f"{label} msgs/s"] * size / 1e6
            row[f"{label} lost"] = sum(r["sent"] - r["msgs"] for r in runs)
        for kind in KINDS:
            label = "1k/s" if kind == "latency" else kind
            row[f"{label} p50 ms"] = statistics.median(r["p50_ms"] for r in by_kind[kind])
            row[f"{label} p99 ms"] = statistics.median(r["p99_ms"] for r in by_kind[kind])
        summary[name] = row
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write raw results and the summary here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    print(machine())
    results = asyncio.run(_main(args))
    summary = summarize(results)
    cols = ["64B msgs/s", "64KiB MB/s", "rtt p50 ms", "rtt p99 ms", "1k/s p50 ms", "1k/s p99 ms", "64B lost"]
    print(f"{'contender':18}" + "".join(f"{c:>12}" for c in cols))
    for name, row in summary.items():
        print(f"{name:18}" + "".join(f"{row[c]:12.3f}" if c.endswith(" ms") else f"{row[c]:12.0f}" for c in cols))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    default = f"edge.bus/{results['auto']}"
    print(f"# edge.bus's default transport (auto) picked {results['auto']} here: the ratio is {default} / paho")
    ratio = summary[default]["64B msgs/s"] / summary["paho loop_start"]["64B msgs/s"]
    print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
