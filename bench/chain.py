"""Chain benchmark: five ``add1`` fn_tasks in a row, deployed as one graph, across two agents.

::

    topic:bench/chain/IN -> t0 -> t1 -> t2 -> t3 -> t4 -> (t4's output stream) -> subscriber
                            a     b     a     b     a        (layout "2agents")

One Mosquitto (started here on a free loopback port), ``edge agent`` processes offering the fn_task
of ``bench/relay_task.py`` and started afresh every round, one deployment through the controller
(``t{k}.out -> t{k+1}.value``: every hop goes through the broker, also between two tasks on one
agent). Layouts (``--layouts``): ``2agents`` alternates the tasks between agents a and b, so every
hop crosses from one process to the other; ``1agent`` puts all five on agent a. Rounds
interleaved, medians reported.

The load generator is the one of ``bench/relay.py`` (``bench/loadgen.py``): frames as edge tasks
publish them, 64 B and 1 KiB, each task adds 1 to ``value.n`` and the subscriber checks that the
reply came through all five (``n`` + 5); **throughput** with a credit window of 1000 messages in
flight, **latency** end to end (p50/p99) open loop at 1000 msgs/s; the agents' CPU % (summed) and
RSS (each agent's, the largest reported) sampled meanwhile.

Prints ``# <machine>`` first, then a table, and last ``per hop X ms``: the end-to-end p50 at
1k msgs/s of the first layout with 64 B frames, divided by 5.

    python bench/chain.py [--rounds 3] [--seconds 2] [--layouts 2agents,1agent] [--json out.json]

``--json`` writes the schema of ``bench/relay.py`` with layouts in place of contenders::

    {"machine": {...}, "bench": "chain", "seconds": float, "rounds_requested": int, "hops": 5,
     "contenders": {layout: label},
     "rounds": [{"round", "contender": layout, "size", "bytes", "agents": [agent ids],
                 "throughput": {...}, "latency": {...}}],
     "summary": {layout: {size: {"msgs_per_s", "lost", "p50_ms", "p99_ms", "cpu_pct", "rss_mb",
                                 "cpu_us_per_msg", "cpu_pct_1k", "rss_median_mb", "broker_cpu_pct",
                                 "load_cpu_pct"}}}}

``cpu_pct`` is the agents' CPU summed (100 = one core), ``rss_mb`` the highest RSS of any agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from loadgen import SIZES, free_port, machine_info, machine_line, progress, run_load, summarize, table  # noqa: E402
from relay import agent_argv, agent_env, broker_pid, deploy, started, wait_agents  # noqa: E402

HOPS = 5
LAYOUTS = {"2agents": "5 tasks on 2 agents", "1agent": "5 tasks on 1 agent"}


def chain_spec(dep: str, source: str, agents: list[str]) -> dict[str, Any]:
    """The five tasks, alternating over ``agents``, wired output to input."""
    tasks = [{"id": f"t{k}", "type": "add1", "agent": agents[k % len(agents)]} for k in range(HOPS)]
    edges = [{"from": f"topic:{source}", "to": "t0.value"}]
    edges += [{"from": f"t{k}.out", "to": f"t{k + 1}.value"} for k in range(HOPS - 1)]
    return {"id": dep, "tasks": tasks, "edges": edges}


async def _main(args: argparse.Namespace, layouts: list[str]) -> list[dict[str, Any]]:
    from edge.broker import MosquittoBroker
    from edge.controller import Controller
    from edge.settings import load_settings

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="chain-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "logs").mkdir()
        port = free_port()
        url = f"mqtt://127.0.0.1:{port}"
        ns = f"chain{uuid.uuid4().hex[:6]}"
        settings = load_settings(broker=url, namespace=ns, agent_id="bench-ctl", data_dir=tmp / "ctl")
        async with MosquittoBroker(port=port, data_dir=tmp / "broker", persistence=False) as broker, \
                Controller(settings) as controller:
            for rnd in range(1, args.rounds + 1):
                for layout in layouts:
                    agents = [f"chain-{letter}-{rnd}-{layout}" for letter in ("ab" if layout == "2agents" else "a")]
                    dep, source = f"chain{rnd}{layout}", f"bench/chain/{rnd}/{layout}/in"
                    async with contextlib.AsyncExitStack() as stack:
                        pids = [await stack.enter_async_context(started(
                            agent_argv(), log=tmp / "logs" / f"{agent}.log",
                            env=agent_env(url, ns, agent, tmp / agent))) for agent in agents]
                        await wait_agents(controller, agents, [tmp / "logs" / f"{agent}.log" for agent in agents])
                        await deploy(controller, chain_spec(dep, source, agents))
                        sink = controller.topics.stream(dep, f"t{HOPS - 1}", "out")
                        try:
                            for label, size in SIZES.items():
                                r = await run_load(url, pub=source, sub=sink, size=size, seconds=args.seconds,
                                                   hops=HOPS, pids=pids, broker_pid=broker_pid(broker))
                                rounds.append({"round": rnd, "contender": layout, "size": label, "bytes": size,
                                               "agents": agents, **r})
                                print(progress(rnd, LAYOUTS[layout], label, r), file=sys.stderr, flush=True)
                        finally:
                            await controller.remove(dep)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measured run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of: {', '.join(LAYOUTS)}")
    parser.add_argument("--json", type=Path, help="write the machine, all rounds and the summary here")
    args = parser.parse_args()
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    unknown = [name for name in layouts if name not in LAYOUTS]
    if unknown or not layouts:
        parser.error(f"unknown layout(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(LAYOUTS)}")
    info = machine_info()
    print(machine_line(info), flush=True)
    rounds = asyncio.run(_main(args, layouts))
    summary = summarize(rounds)
    print("\n".join(table(summary, LAYOUTS)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": info, "bench": "chain", "seconds": args.seconds, "rounds_requested": args.rounds,
            "hops": HOPS, "contenders": {name: LAYOUTS[name] for name in layouts}, "rounds": rounds,
            "summary": summary}, indent=1))
    first = summary[layouts[0]]["64B"]
    print(f"# {LAYOUTS[layouts[0]]}, 64 B: end-to-end p50 at 1k msgs/s over {HOPS} hops, per hop")
    print(f"per hop {first['p50_ms'] / HOPS:.3f} ms" if first["p50_ms"] is not None else "per hop - ms")


if __name__ == "__main__":
    main()
