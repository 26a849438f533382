"""Replicas benchmark: a CPU-bound stateless task with 1 replica, then 2, on 2 agent processes.

One run, one broker (Mosquitto, or the embedded one with ``--broker embedded``) started here on
a free loopback port, two ``edge agent --tasks bench/replica_task.py`` processes (``bench-a1``,
``bench-a2``) and a controller in this process. Two deployments of ``burn`` (about 12 ms of
SHA-256 per frame, ``bench/replica_task.py``), one with ``replicas: 1``, one with ``replicas: 2``
(the controller places the two on the two agents), each fed from a ``topic:.../in`` of its own,
run side by side for the whole run and are measured **in turns** (``--rounds`` turns of
``--seconds`` each, 1 replica then 2): whatever else the machine does meanwhile falls on both
alike. Each turn measures:

* **frames/s**: frames processed per second, closed loop: the load keeps ``--window`` frames in
  flight (sent, no answer yet), each ``{"n": i}`` published at QoS 1, and counts the answers on the
  task's one output stream for ``--seconds`` after a warm-up of one window;
* **lost**: frames sent and never answered (waited for up to 10 s after the turn);
* **duplicated**: answers beyond the first for one frame (a frame two replicas both took).

After the two, each turn runs ``burn`` in a loop in 1, then 2, plain Python processes for
``--seconds`` (no broker, no framework): the ratio the machine itself gives 2 processes over 1
right then, the ceiling of the replicas' ratio on a machine shared with other work.

Every answer is checked (its ``n`` is one that was sent), and after each turn the digests of up
to 100 answers, evenly spread, are recomputed (each costs what a frame costs the task). The
summary gives frames/s over all turns (their frames over their seconds) and the median turn, and
how many frames each replica took (its metrics). Prints ``# <machine>``, a table, the target (2
replicas >= 1.6x the frames/s of 1, nothing lost or duplicated) and, last, ``ratio X``::

    python bench/replicas.py [--rounds 10] [--seconds 2] [--window 8] [--broker mosquitto|embedded]
                             [--json out.json]

``--json`` writes ``{"machine", "bench": "replicas", "broker", "seconds", "window", "rounds": [{"round",
"replicas", "frames", "seconds", "frames_per_s", "sent", "lost", "duplicated", "bad", "stalled",
"load_cpu_ms_per_frame"}], "summary": {replicas: {"frames_per_s", "median_turn", "lost", "duplicated",
"bad", "taken": {"key@agent": frames}}}, "ratio", "plain": {processes: frames/s}, "plain_ratio", "targets"}``
(a plain turn's entry has ``"plain": processes`` where a replicas turn's has ``"replicas"``);
``load_cpu_ms_per_frame`` is the CPU of this process (load generator and controller) per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from loadgen import free_port, machine_info, machine_line  # noqa: E402  (bench/ is no package)
from relay import agent_env, started  # noqa: E402
from replica_task import ROUNDS  # noqa: E402

TASK_FILE = HERE / "replica_task.py"
AGENTS = ("bench-a1", "bench-a2")
TARGET_RATIO = 1.6
DRAIN_TIMEOUT = 10.0
CHECKED = 100  # answers whose digest is recomputed, at most, per run


def expected_digest(n: int) -> str:
    digest = str(n).encode()
    for _ in range(ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@contextlib.asynccontextmanager
async def agent(url: str, ns: str, agent_id: str, data_dir: Path, log: Path) -> AsyncIterator[None]:
    """``edge agent`` offering ``burn`` as a process of its own, for the block (bench/relay.py starts it)."""
    async with started([sys.executable, "-m", "edge", "agent", "--tasks", str(TASK_FILE)], log=log,
                       env=agent_env(url, ns, agent_id, data_dir)):
        yield


async def measure(bus: Any, *, source: str, stream: str, seconds: float, window: int) -> dict[str, Any]:
    """Closed loop: ``window`` frames in flight; answers counted on ``stream`` for ``seconds`` after a warm-up."""
    from edge.frames import decode_frame, encode_frame

    answered: dict[int, int] = {}  # n -> answers
    digests: dict[int, str] = {}  # n -> the digest of its first answer, checked after the run
    bad = 0
    sent = 0
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    def take(message: Any) -> None:
        nonlocal bad
        try:
            value = decode_frame(message.payload).value
            n = value["n"]
            ok = isinstance(n, int) and 0 <= n < sent and isinstance(value["digest"], str)
        except Exception:  # a garbled answer is counted, not fatal
            ok = False
        if not ok:
            bad += 1
            return
        answered[n] = answered.get(n, 0) + 1
        digests.setdefault(n, value["digest"])
        arrived.set()

    async def send_up_to_window() -> None:
        nonlocal sent
        while sent - len(answered) < window:
            await bus.publish(source, encode_frame({"n": sent}, seq=sent), qos=1)
            sent += 1

    async with bus.subscribe(stream, qos=1, callback=take):
        await send_up_to_window()  # warm-up: the first window, answered before the clock starts
        async with asyncio.timeout(60):
            while len(answered) < window:
                arrived.clear()
                await arrived.wait()
        start_count, start, cpu = len(answered), loop.time(), time.process_time()
        deadline = start + seconds
        stalled = False
        while loop.time() < deadline:
            await send_up_to_window()
            arrived.clear()
            try:
                async with asyncio.timeout(min(DRAIN_TIMEOUT, max(0.0, deadline - loop.time()) + 5)):
                    await arrived.wait()
            except TimeoutError:
                stalled = True
                break
        elapsed = loop.time() - start
        done = len(answered) - start_count
        load_cpu = time.process_time() - cpu
        with contextlib.suppress(TimeoutError):  # the frames still in flight: answered, or lost
            async with asyncio.timeout(DRAIN_TIMEOUT):
                while len(answered) < sent:
                    arrived.clear()
                    await arrived.wait()
    # checked after the clock stopped: each check costs what a frame costs the task (every answer's
    # in a short run, else an even sample of CHECKED)
    step = max(1, len(digests) // CHECKED)
    bad += sum(digests[n] != expected_digest(n) for n in sorted(digests)[::step])
    return {"frames": done, "seconds": round(elapsed, 3), "frames_per_s": round(done / elapsed, 1) if elapsed else 0,
            "sent": sent, "lost": sent - len(answered), "duplicated": sum(answered.values()) - len(answered),
            "bad": bad, "stalled": stalled,
            "load_cpu_ms_per_frame": round(load_cpu * 1000 / done, 3) if done else None}


PLAIN = """
import sys, time
sys.path.insert(0, sys.argv[1])
from replica_task import burn
end, n = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    burn({"n": n})
    n += 1
print(n)
"""


async def plain(processes: int, seconds: float) -> dict[str, Any]:
    """The machine's own figure: ``burn`` called in a loop by ``processes`` plain Python processes at once
    for ``seconds`` (no broker, no framework): what 1 and 2 processes get of this machine right now."""
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", PLAIN, str(HERE), str(seconds),
                                                  stdout=asyncio.subprocess.PIPE) for _ in range(processes)]
    counts = [int((await proc.communicate())[0]) for proc in procs]
    return {"frames": sum(counts), "seconds": seconds, "frames_per_s": round(sum(counts) / seconds, 1)}


async def deploy(controller: Any, dep: str, replicas: int, source: str) -> None:
    from edge.graph import parse_spec

    spec = {"id": dep, "tasks": [{"id": "burn", "type": "burn", "replicas": replicas}],
            "edges": [{"from": f"topic:{source}", "to": "burn.value"}]}
    result = await controller.deploy(parse_spec(spec))
    keys = [key for key, _ in result.spec.task("burn").instances()]
    await controller.fleet.wait_for(lambda f: all((s := f.statuses.get((dep, k))) is not None and s.state == "running"
                                                  for k in keys), 30)


async def split(controller: Any, dep: str, answered: int) -> dict[str, int]:
    """Frames each instance took (its agent's metrics, asked for until they add up to the ``answered``
    frames, at most 5 times), by task key and agent: how the broker shared them out."""
    taken: dict[str, int] = {}
    for _ in range(5):
        await controller.fleet.fresh_metrics()
        taken = {}
        for status in controller.fleet.tasks_of(dep):
            frames = status.metrics.get("inputs", {}).get("value", {}).get("frames")
            if isinstance(frames, int):
                taken[f"{status.task}@{status.agent}"] = frames
        if sum(taken.values()) >= answered:
            break
    return taken


async def run(args: argparse.Namespace, splits: dict[int, dict[str, int]]) -> list[dict[str, Any]]:
    from edge.broker import EmbeddedBroker, MosquittoBroker
    from edge.bus import Bus
    from edge.controller import Controller
    from edge.settings import load_settings

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="replicas-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        url = f"mqtt://127.0.0.1:{port}"
        ns = f"rep{uuid.uuid4().hex[:6]}"
        broker = (MosquittoBroker(port=port, data_dir=tmp / "broker", persistence=False) if args.broker == "mosquitto"
                  else EmbeddedBroker(port=port, data_dir=tmp / "broker"))
        logs = [tmp / f"{a}.log" for a in AGENTS]
        async with broker, contextlib.AsyncExitStack() as stack:
            for agent_id, log in zip(AGENTS, logs, strict=True):
                await stack.enter_async_context(agent(url, ns, agent_id, tmp / agent_id, log))
            settings = load_settings(broker=url, namespace=ns, agent_id="bench-ctl", data_dir=tmp / "ctl")
            controller = await stack.enter_async_context(Controller(settings))
            bus = await stack.enter_async_context(Bus(url))
            try:
                await controller.fleet.wait_for(lambda f: all(a in f.agents and f.agents[a].online
                                                              and f.agents[a].offers("burn") for a in AGENTS), 60)
            except TimeoutError:
                tails = "\n".join(f"--- {log}:\n{log.read_text()[-2000:]}" for log in logs)
                raise SystemExit(f"the agents did not offer burn within 60 s\n{tails}") from None
            # both deployed for the whole run, measured in turns: whatever else the machine does meanwhile
            # falls on both alike (a run of each in a row would compare two moments of a shared machine)
            deps = {replicas: (f"burn{replicas}", f"bench/replicas/{ns}/{replicas}/in") for replicas in (1, 2)}
            for replicas, (dep, source) in deps.items():
                await deploy(controller, dep, replicas, source)
            try:
                for rnd in range(1, args.rounds + 1):
                    for replicas, (dep, source) in deps.items():
                        result = await measure(bus, source=source, stream=controller.topics.stream(dep, "burn", "out"),
                                               seconds=args.seconds, window=args.window)
                        rounds.append({"round": rnd, "replicas": replicas, **result})
                        print(f"round {rnd} replicas {replicas}: {result['frames_per_s']} frames/s, lost "
                              f"{result['lost']}, duplicated {result['duplicated']}", file=sys.stderr, flush=True)
                    for processes in (1, 2):
                        baseline = await plain(processes, args.seconds)
                        rounds.append({"round": rnd, "plain": processes, **baseline})
                        print(f"round {rnd} plain {processes}: {baseline['frames_per_s']} frames/s", file=sys.stderr,
                              flush=True)
                for replicas, (dep, _) in deps.items():
                    answered = sum(r["sent"] - r["lost"] for r in rounds if r.get("replicas") == replicas)
                    splits[replicas] = await split(controller, dep, answered)
            finally:
                for dep, _ in deps.values():
                    await controller.remove(dep)
    return rounds


def summarize(rounds: list[dict[str, Any]], splits: dict[int, dict[str, int]]) -> dict[int, dict[str, Any]]:
    """Per replica count: frames/s over all its turns (frames / seconds), the median turn, the counts."""
    summary: dict[int, dict[str, Any]] = {}
    for replicas in (1, 2):
        mine = [r for r in rounds if r.get("replicas") == replicas]
        seconds = sum(r["seconds"] for r in mine)
        summary[replicas] = {"frames_per_s": round(sum(r["frames"] for r in mine) / seconds, 1) if seconds else 0.0,
                             "median_turn": statistics.median(r["frames_per_s"] for r in mine),
                             "lost": sum(r["lost"] for r in mine), "duplicated": sum(r["duplicated"] for r in mine),
                             "bad": sum(r["bad"] for r in mine), "taken": splits.get(replicas, {})}
    return summary


def plain_summary(rounds: list[dict[str, Any]]) -> dict[int, float]:
    """Frames/s of 1 and 2 plain processes over all their turns."""
    found: dict[int, float] = {}
    for processes in (1, 2):
        mine = [r for r in rounds if r.get("plain") == processes]
        seconds = sum(r["seconds"] for r in mine)
        found[processes] = round(sum(r["frames"] for r in mine) / seconds, 1) if seconds else 0.0
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="turns of each (1 replica, then 2)")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measured turn")
    parser.add_argument("--window", type=int, default=8, help="frames in flight")
    parser.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.rounds < 1 or args.window < 1 or args.seconds <= 0:
        parser.error("--rounds and --window must be at least 1, --seconds above 0")
    info = machine_info()
    started = time.monotonic()
    splits: dict[int, dict[str, int]] = {}
    rounds = asyncio.run(run(args, splits))
    summary = summarize(rounds, splits)
    one, two = summary[1]["frames_per_s"], summary[2]["frames_per_s"]
    ratio = round(two / one, 2) if one else None
    clean = all(s["lost"] == 0 and s["duplicated"] == 0 and s["bad"] == 0 for s in summary.values())
    met = ratio is not None and ratio >= TARGET_RATIO and clean
    print(machine_line(info))
    print(f"# broker {args.broker}; {ROUNDS} SHA-256 per frame; window {args.window}; {args.rounds} turn(s) of "
          f"{args.seconds:g} s each; {time.monotonic() - started:.0f} s in all")
    print(f"{'replicas':>8}{'frames/s':>10}{'median':>8}{'lost':>6}{'dup':>6}{'bad':>6}  frames taken")
    for replicas, row in summary.items():
        taken = ", ".join(f"{k} {v}" for k, v in sorted(row["taken"].items()))
        print(f"{replicas:>8}{row['frames_per_s']:>10.1f}{row['median_turn']:>8.1f}{row['lost']:>6}"
              f"{row['duplicated']:>6}{row['bad']:>6}  {taken}")
    machine = plain_summary(rounds)
    machine_ratio = round(machine[2] / machine[1], 2) if machine[1] else None
    print(f"# plain processes, same turns: 1 -> {machine[1]:.1f} frames/s, 2 -> {machine[2]:.1f} frames/s: the "
          f"machine gave 2 processes {machine_ratio}x of 1")
    print(f"# target: 2 replicas >= {TARGET_RATIO}x the frames/s of 1, nothing lost or duplicated: "
          f"{'met' if met else 'NOT met'}")
    print(f"ratio {ratio if ratio is not None else '-'}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "bench": "replicas", "broker": args.broker, "seconds": args.seconds,
            "window": args.window, "rounds": rounds, "summary": summary, "ratio": ratio,
            "plain": machine, "plain_ratio": machine_ratio,
            "targets": {"replicas_ratio": {"value": ratio, "target": TARGET_RATIO, "op": ">=", "met": met}}},
            indent=1))


if __name__ == "__main__":
    main()
