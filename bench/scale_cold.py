"""A cold controller against the retained messages of a big fleet, without simulating the agents.

``bench/scale.py`` runs real ``Host`` agents, which on a shared 2-core machine stop fitting at a few
thousand. This publishes what such a fleet leaves retained on the broker, as ``edge agent`` would
publish it (each agent's birth, ~210 B, and its full catalog, ~80 KB: the same entries, its own
id, epoch and boot), from one process, then enters a :class:`~edge.controller.Controller` (what
``edge ls agents`` and the panel do at start) and times ``synced()`` and the full listing, and
the controller process's CPU and RSS.

``--catalog shared`` publishes the catalogs as agents with ``EDGE_SHARED_CATALOG`` do (one document
under ``{root}/catalogs/{hash}``, each agent's catalog naming it); ``both`` (the default) runs the
two forms in alternate rounds. Each round also prints the retained bytes the fleet leaves at the
broker (payloads of the namespace) and how much Mosquitto's RSS grew by holding them.

    python bench/scale_cold.py [--agents 10000] [--rounds 3] [--catalog inline|shared|both] [--json out.json]

Target (issue 20): a cold controller lists 10,000 agents within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
TARGET = 10.0
WAIT = 120.0


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_round(url: str, agents: int, entries: list[dict[str, Any]], tmp: Path, *, shared: bool,
                    broker_pid: int) -> dict[str, float]:
    from edge.bus import Bus
    from edge.controller import Controller
    from edge.frames import encode_value, now_ms
    from edge.presence import catalog_hash
    from edge.protocol import PROTOCOL_REVISION, CatalogDocument
    from edge.settings import load_settings
    from edge.topics import Topics

    ns = f"cold{uuid.uuid4().hex[:6]}"
    topics = Topics(ns)
    ids = [f"sim-{i:05d}" for i in range(agents)]
    document = encode_value(CatalogDocument(v=PROTOCOL_REVISION, types=entries).dump())
    digest = catalog_hash(document)
    stored, broker_before = 0, rss_mb(broker_pid)
    async with Bus(url, max_payload=1 << 20) as bus:
        if shared:  # as each agent does before its catalog: the same bytes, one retained copy
            await bus.publish(topics.catalog_document(digest), document, qos=1, retain=True)
            stored += len(document)
        for agent in ids:
            boot = uuid.uuid4().hex[:16]
            state = {"v": PROTOCOL_REVISION, "online": True, "epoch": 1, "boot": boot, "ts": now_ms(),
                     "version": "0.1.0", "host": {"name": agent}, "metrics": {"cpu_percent": 1.0, "rss_mb": 50.0},
                     "report_interval": 2.0}
            catalog = {"v": PROTOCOL_REVISION, "agent": agent, "epoch": 1, "boot": boot,
                       **({"catalog": digest} if shared else {"types": entries})}
            payloads = encode_value(state), encode_value(catalog)
            await bus.publish(topics.agent_state(agent), payloads[0], qos=1, retain=True)
            await bus.publish(topics.agent_catalog(agent), payloads[1], qos=1, retain=True)
            stored += sum(len(p) for p in payloads)
        marker = f"{topics.root}/bench/done"
        async with bus.subscribe(marker) as done:
            await bus.publish(marker, b"1", qos=1)
            await asyncio.wait_for(done.get(), WAIT)  # the broker has everything before it
    broker_grew = rss_mb(broker_pid) - broker_before
    settings = load_settings(broker=url, namespace=ns, agent_id="bench", data_dir=tmp / ns)
    started, cpu = time.perf_counter(), time.process_time()
    async with Controller(settings, client_id=f"cold-{ns}") as controller:
        synced = time.perf_counter() - started
        fleet = controller.fleet

        def count() -> int:
            return sum(1 for a in ids if (info := fleet.agents.get(a)) is not None and info.online and info.types)

        at_synced = count()
        await fleet.wait_for(lambda _f: count() == agents, WAIT)
        listed = time.perf_counter() - started
        result = {"cold_synced_s": synced, "listed_at_synced": float(at_synced), "cold_listed_s": listed,
                  "cpu_s": time.process_time() - cpu, "rss_mb": rss_mb(), "retained_mb": stored / 2**20,
                  "broker_rss_grew_mb": broker_grew}
    async with Bus(url) as bus:  # leave the broker as it was
        for agent in ids:
            await bus.publish(topics.agent_state(agent), b"", qos=1, retain=True)
            await bus.publish(topics.agent_catalog(agent), b"", qos=1, retain=True)
        await bus.publish(topics.catalog_document(digest), b"", qos=1, retain=True)
    return result


async def _main(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    from agent.registry import discover
    from edge.broker import MosquittoBroker, free_port
    from edge.host import Host
    from edge.settings import load_settings

    registry = discover()
    with tempfile.TemporaryDirectory() as tmp:
        host = Host(load_settings(broker="mqtt://127.0.0.1:1", namespace="x", agent_id="x", data_dir=Path(tmp) / "h"),
                    types=list(registry.types.values()), unavailable=registry.unavailable, persist=False)
        entries = host.catalog()
        async with MosquittoBroker(port=free_port(), data_dir=Path(tmp) / "broker", persistence=False) as broker:
            assert broker._proc is not None
            forms = ["inline", "shared"] if args.catalog == "both" else [args.catalog]
            rounds: dict[str, list[dict[str, float]]] = {form: [] for form in forms}
            for rnd in range(args.rounds):
                for form in forms:  # interleaved: the machine's load falls on both alike
                    result = await one_round(broker.url.geturl(), args.agents, entries, Path(tmp),
                                             shared=form == "shared", broker_pid=broker._proc.pid)
                    rounds[form].append(result)
                    print(f"round {rnd + 1} {form}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()),
                          file=sys.stderr, flush=True)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--catalog", choices=["inline", "shared", "both"], default="both",
                        help="the agents' catalogs: full inline (EDGE_SHARED_CATALOG off), shared, or both in turn")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import os

    by_form = asyncio.run(_main(args))
    summaries = {}
    for form, rounds in by_form.items():
        summary = summaries[form] = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        verdict = "met" if summary["cold_listed_s"] <= TARGET else "missed"
        print(f"# {args.agents} agents retained ({form} catalogs), Mosquitto, load average "
              f"{os.getloadavg()[0]:.1f}, medians of {args.rounds} rounds")
        print(f"retained at the broker               {summary['retained_mb']:8.2f} MB "
              f"(Mosquitto's RSS grew {summary['broker_rss_grew_mb']:.1f} MB)")
        print(f"cold controller synced after        {summary['cold_synced_s']:8.2f} s  "
              f"(with {int(min(r['listed_at_synced'] for r in rounds))}/{args.agents} listed, fewest of the rounds)")
        print(f"cold controller lists them all after {summary['cold_listed_s']:8.2f} s  "
              f"(target {TARGET:g} s: {verdict})")
        print(f"... its CPU meanwhile                {summary['cpu_s']:8.2f} s")
        print(f"controller RSS                       {summary['rss_mb']:8.2f} MB (target 400 MB: "
              f"{'met' if summary['rss_mb'] <= 400 else 'missed'})")
    if args.json:
        args.json.write_text(json.dumps({"args": {"agents": args.agents, "rounds": args.rounds,
                                                  "catalog": args.catalog},
                                         "rounds": by_form, "summary": summaries}, indent=2))


if __name__ == "__main__":
    main()
