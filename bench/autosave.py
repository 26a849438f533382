"""What saving Mosquitto's database costs: on every change (the managed config) against a timer.

A managed Mosquitto (``edge.broker.MosquittoBroker``, the config ``edge broker`` writes) holds N
retained 300-byte statuses, each republished every 2 s as agents do; the broker's CPU over the
run and the size of ``mosquitto.db`` are reported for ``autosave_on_changes true`` (the managed
config: a save after every change) and for a one-second timer (``autosave_on_changes false``).

    python bench/autosave.py [--statuses 200,2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import edge.broker.mosquitto as mosquitto
from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus


async def measure(mode: str, statuses: int, seconds: float) -> dict[str, float]:
    original = mosquitto.render_config

    def config(**kwargs: object) -> str:
        text = original(**kwargs)  # type: ignore[arg-type]
        return text.replace("autosave_on_changes true", "autosave_on_changes false") if mode == "timer" else text

    mosquitto.render_config = config
    try:
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder)
            async with MosquittoBroker(port=free_port(), data_dir=data) as broker, Bus(broker.url) as bus:
                assert broker._proc is not None
                stat = Path(f"/proc/{broker._proc.pid}/stat")

                def cpu() -> float:
                    fields = stat.read_text().split()
                    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")

                payload = os.urandom(300)
                for i in range(statuses):
                    await bus.publish(f"bench/s/{i}", payload, qos=1, retain=True)
                await asyncio.sleep(2)
                start_cpu, start, sent = cpu(), time.monotonic(), 0
                per_tick = max(1, statuses // 20)  # every status every 2 s, in ticks of 0.1 s
                while time.monotonic() - start < seconds:
                    for i in range(per_tick):
                        await bus.publish(f"bench/s/{(sent + i) % statuses}", payload, qos=1, retain=True)
                    sent += per_tick
                    await asyncio.sleep(0.1)
                elapsed = time.monotonic() - start
                used = cpu() - start_cpu
                db = data / "mosquitto.db"
                return {"statuses": statuses, "per_s": sent / elapsed, "cpu_percent": 100 * used / elapsed,
                        "db_kib": db.stat().st_size / 1024 if db.exists() else 0.0}
    finally:
        mosquitto.render_config = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statuses", default="200,2000", help="comma-separated counts of retained statuses")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of republishing per measurement")
    args = parser.parse_args()
    print(f"{'save':10} {'statuses':>8} {'msgs/s':>8} {'broker CPU %':>13} {'db KiB':>8}")
    for statuses in (int(n) for n in args.statuses.split(",")):
        for mode in ("on-change", "timer"):
            r = asyncio.run(measure(mode, statuses, args.seconds))
            print(f"{mode:10} {statuses:>8} {r['per_s']:>8.0f} {r['cpu_percent']:>13.1f} {r['db_kib']:>8.0f}")


if __name__ == "__main__":
    main()
