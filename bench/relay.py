"""Relay benchmark: publisher -> Mosquitto -> relay (decode CBOR, add 1, encode) -> Mosquitto -> subscriber.

One run, one Mosquitto (started here on a free loopback port, stock configuration), each relay
in its own process, started afresh every round; rounds interleaved so all contenders see the
same machine state; medians reported. The contenders (``--contenders``, comma-separated keys):

* ``agent``: the ``@fn_task`` of ``bench/relay_task.py`` (``add1(value: dict) -> dict``) deployed
  through the controller on an ``edge agent`` process (``--tasks bench/relay_task.py``); the
  subscriber reads the task's output stream topic;
* ``agent-core``: the same agent with PyAV hidden, as the core install (no ``media`` extra) runs
  it: the media task types import PyAV with the catalog, ~20 MB of RSS;
* ``script``: the same fn_task as a script wired from its command line
  (``python bench/relay_task.py URL --in value=IN --out out=OUT``);
* ``paho``: paho-mqtt 2 with ``loop_start()``, ``on_message`` -> cbor2 decode, +1, encode ->
  ``publish``, what a Python user writes by hand;
* ``faststream``: FastStream's MQTT broker, ``@subscriber`` + ``@publisher`` on a handler taking
  and returning bytes (cbor2 inside); installed into ``bench/out/faststream-venv`` (a venv that
  sees this interpreter's packages) when missing, skipped with a note if that fails;
* ``node-red``: Node-RED ``mqtt in`` -> ``function`` -> ``mqtt out``, the function decoding and
  encoding CBOR with the ``cbor-x`` npm package (through ``functionGlobalContext``); Node-RED
  and cbor-x are installed with npm into ``bench/out/node-red`` when missing, skipped with a
  note where there is no npm or the install fails; it runs headless on 127.0.0.1 with its own
  userDir in a temporary directory, a generated flows file, diagnostics and telemetry off;
* ``floor``: no relay, the load generator subscribes to the topic it publishes on: what the
  broker and the load generator cost, the floor under every relay.

The load generator (``bench/loadgen.py``, its own process, ``edge.bus`` with MQTT 5) publishes
frames as edge tasks publish them (``edge.frames.encode_frame``): ``{"ts", "seq", "value": {"n":
int, "pad": bytes}}``, 64 B or 1 KiB in all, the padding making the size. Every relay decodes the
whole frame, adds 1 to ``value.n``, encodes a new frame (its own ``seq``, the input's ``ts``) and
publishes it, QoS 0; the load generator checks the +1 on every reply. It measures **throughput**
with a credit window of messages in flight (``--window``, 1000 by default; losses are counted)
and **latency** p50/p99 open loop at a fixed 1000 msgs/s, and samples the relay process meanwhile
(CPU % of one core, RSS peak and median); details in its docstring.

Prints ``# <machine>`` first, then a table, the targets (the fn_task relay on an agent >= 1.3x
Node-RED's msgs/s, p50 <= 0.5 ms at 1k msgs/s, agent RSS <= 60 MB) and, last, ``ratio X``:
agent / node-red msgs/s with 64 B frames (agent / paho when Node-RED is not run, said on the
line before).

    python bench/relay.py [--rounds 3] [--seconds 2] [--window 1000] [--json out.json]
                          [--contenders agent,agent-core,script,paho,faststream,node-red,floor]

``--window 2000`` is the burst test of the reliability issue: a publisher keeping up to 2,000
messages in flight, so MQTT hands a relay bursts of up to 2,000 small frames at once. A relay
whose input queue cannot hold the burst drops frames even though it keeps up on average; the
``lost`` column (and a ``# lost`` line per contender, throughput runs only) shows them.

``--json`` writes (schema shared with ``bench/chain.py``; ``bench/suite.py`` plots from it)::

    {"machine": {"cores": int, "cpu": str, "python": str, "versions": {package: version}},
     "bench": "relay", "seconds": float, "window": int, "rounds_requested": int, "notes": [str],
     "contenders": {key: label},
     "rounds": [{"round": int, "contender": key, "size": "64B" | "1KiB", "bytes": int,
                 "throughput": {"sent", "received", "lost", "bad", "window", "seconds", "msgs_per_s", "stalled",
                                "procs": [{"pid", "cpu_pct", "rss_peak_mb", "rss_median_mb", "samples"}],
                                "broker_cpu_pct", "load_cpu_pct"},
                 "latency": {"sent", "received", "lost", "bad", "p50_ms", "p99_ms", "p999_ms", "max_ms", "procs": [...],
                             "broker_cpu_pct", "load_cpu_pct"}}],
     "summary": {key: {size: {"msgs_per_s", "lost", "p50_ms", "p99_ms", "cpu_pct", "rss_mb",
                              "cpu_us_per_msg", "cpu_pct_1k", "rss_median_mb", "broker_cpu_pct",
                              "load_cpu_pct"}}},
     "targets": {name: {"value": float | None, "target": float, "op": ">=" | "<=", "met": bool | None}}}

Summary figures are medians over rounds, except ``lost`` (summed over all rounds and both runs)
and ``rss_mb`` (the highest RSS seen in any round: the peak). ``cpu_pct`` is during the
throughput run, ``cpu_us_per_msg`` the relay's CPU time per relayed message in it (``cpu_pct``
/ ``msgs_per_s``: what a message costs, whatever else runs on the machine), ``cpu_pct_1k``
during the 1k msgs/s run; with several relay processes (chain)
CPU is their sum and RSS the largest of them. ``broker_cpu_pct`` and ``load_cpu_pct`` are the CPU
of Mosquitto and of the load generator during the throughput run: on a machine with two cores
they tell which process bounds it. Figures are null where nothing was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
HERE = SELF.parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from loadgen import (  # noqa: E402  (bench/ is no package: its modules import each other from here)
    SIZES,
    free_port,
    machine_info,
    machine_line,
    progress,
    run_load,
    summarize,
    table,
)

TASK_FILE = HERE / "relay_task.py"
HANDWRITTEN = HERE / "handwritten.py"
OUT_DIR = HERE / "out"
NODE_RED_DIR = OUT_DIR / "node-red"
FASTSTREAM_VENV = OUT_DIR / "faststream-venv"
NODE_RED_PACKAGES = ("node-red@4.1", "cbor-x@1.6")
FASTSTREAM_REQUIREMENT = "faststream[mqtt]>=0.7,<0.8"

CONTENDERS = {
    "agent": "fn_task on agent",
    "agent-core": "agent, no PyAV",
    "script": "fn_task script",
    "paho": "paho loop_start",
    "faststream": "faststream",
    "node-red": "node-red",
    "floor": "no relay (floor)",
}
TARGET_RATIO = 1.3
TARGET_P50_MS = 0.5
TARGET_RSS_MB = 60.0


# -- Node-RED ------------------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    return host, int(port)


NODE_RED_FUNCTION = """\
const cbor = global.get('cbor');
const frame = cbor.decode(msg.payload);
frame.value.n += 1;
const seq = context.get('seq') || 0;
context.set('seq', seq + 1);
msg.payload = cbor.encode({ts: frame.ts, seq: seq, value: frame.value});
return msg;
"""


def node_red_files(userdir: Path, *, url: str, source: str, target: str, ui_port: int, cbor_module: Path) -> Path:
    """Write a headless Node-RED's settings and flows into ``userdir``; returns the settings file."""
    host, port = _host_port(url)
    flows = [
        {"id": "relaytab", "type": "tab", "label": "relay"},
        {"id": "bench-broker", "type": "mqtt-broker", "name": "bench", "broker": host, "port": str(port),
         "clientid": "", "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": True, "autoUnsubscribe": True},
        {"id": "relay-in", "type": "mqtt in", "z": "relaytab", "name": "in", "topic": source, "qos": "0",
         "datatype": "buffer", "broker": "bench-broker", "nl": False, "rap": True, "rh": 0, "inputs": 0,
         "x": 100, "y": 100, "wires": [["relay-fn"]]},
        {"id": "relay-fn", "type": "function", "z": "relaytab", "name": "add 1", "func": NODE_RED_FUNCTION,
         "outputs": 1, "timeout": 0, "noerr": 0, "initialize": "", "finalize": "", "libs": [],
         "x": 300, "y": 100, "wires": [["relay-out"]]},
        {"id": "relay-out", "type": "mqtt out", "z": "relaytab", "name": "out", "topic": target, "qos": "0",
         "retain": "false", "broker": "bench-broker", "x": 500, "y": 100, "wires": []},
    ]
    (userdir / "flows.json").write_text(json.dumps(flows, indent=1))
    settings = f"""module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {ui_port},
    userDir: {json.dumps(str(userdir))},
    flowFile: "flows.json",
    credentialSecret: false,
    httpNodeRoot: false,
    functionGlobalContext: {{ cbor: require({json.dumps(str(cbor_module))}) }},
    logging: {{ console: {{ level: "warn", metrics: false, audit: false }} }},
    diagnostics: {{ enabled: false, ui: false }},
    runtimeState: {{ enabled: false, ui: false }},
    telemetry: {{ enabled: false, updateNotification: false }},
    externalModules: {{ autoInstall: false, palette: {{ allowInstall: false }}, modules: {{ allowInstall: false }} }},
    editorTheme: {{ projects: {{ enabled: false }}, palette: {{ catalogues: [] }}, tours: false }},
}};
"""
    path = userdir / "settings.js"
    path.write_text(settings)
    return path


# -- installing the outside contenders ----------------------------------------------------------


def ensure_node_red(notes: list[str]) -> tuple[str, Path, Path] | None:
    """``(node, red.js, cbor-x dir)``, installing Node-RED and cbor-x with npm on first use; None to skip."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        notes.append("node-red skipped: no node/npm on this machine")
        return None
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    cbor = NODE_RED_DIR / "node_modules" / "cbor-x"
    if not (red.exists() and cbor.exists()):
        print(f"installing {' '.join(NODE_RED_PACKAGES)} into {NODE_RED_DIR} ...", file=sys.stderr)
        NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
        try:
            out = subprocess.run([npm, "install", "--prefix", str(NODE_RED_DIR), "--no-audit", "--no-fund",
                                  "--omit=dev", "--loglevel=error", *NODE_RED_PACKAGES],
                                 capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            notes.append("node-red skipped: npm install timed out")
            return None
        if out.returncode != 0 or not (red.exists() and cbor.exists()):
            notes.append(f"node-red skipped: npm install failed: {out.stderr.strip()[-300:]}")
            return None
    return node, red, cbor


def ensure_faststream(notes: list[str]) -> str | None:
    """A Python that imports ``faststream.mqtt``: this one, or a venv installed on first use; None to skip."""
    check = "import faststream.mqtt, cbor2"
    if subprocess.run([sys.executable, "-c", check], capture_output=True, check=False).returncode == 0:
        return sys.executable
    python = FASTSTREAM_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", check], capture_output=True,
                                          check=False).returncode == 0:
        return str(python)
    print(f"installing {FASTSTREAM_REQUIREMENT} into {FASTSTREAM_VENV} ...", file=sys.stderr)
    try:
        # --system-site-packages: the venv sees cbor2 and edgetasks; FastStream's own dependencies
        # go into the venv and leave this interpreter's packages as they are
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(FASTSTREAM_VENV)],
                       check=True, capture_output=True, timeout=120)
        out = subprocess.run([str(python), "-m", "pip", "install", "-q", FASTSTREAM_REQUIREMENT],
                             capture_output=True, text=True, timeout=600, check=False)
    except (subprocess.SubprocessError, OSError) as exc:
        notes.append(f"faststream skipped: could not make its venv: {exc}")
        return None
    if out.returncode != 0 or subprocess.run([str(python), "-c", check], capture_output=True,
                                             check=False).returncode != 0:
        notes.append(f"faststream skipped: pip install failed: {out.stderr.strip()[-300:]}")
        return None
    return str(python)


# -- orchestration ---------------------------------------------------------------------------------


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


@contextlib.asynccontextmanager
async def started(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> AsyncIterator[int]:
    """A child process (output to ``log``), terminated and awaited on exit; yields its pid."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=subprocess.STDOUT,
                                                    env={**os.environ, **(env or {})})
    try:
        yield proc.pid
        if proc.returncode is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{_tail(log)}")
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def agent_env(url: str, ns: str, agent_id: str, data_dir: Path) -> dict[str, str]:
    return {"EDGE_BROKER": url, "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": agent_id, "EDGE_DATA_DIR": str(data_dir),
            "EDGE_LOG_LEVEL": "WARNING"}


def agent_argv(*, core: bool = False) -> list[str]:
    """``edge agent`` offering the relay task; ``core``: with PyAV hidden, as the core install runs it."""
    if core:  # the media entry point then fails to load and its types are listed as unavailable
        start = ["-c", "import sys; sys.modules['av'] = None; sys.argv[0] = 'edge'; from edge.cli import main; main()"]
    else:
        start = ["-m", "edge"]
    return [sys.executable, *start, "agent", "--tasks", str(TASK_FILE)]


async def wait_agents(controller: Any, agent_ids: list[str], logs: list[Path], timeout: float = 60) -> None:
    """Until every agent is online and offers ``add1``; a timeout says what the agents logged."""
    try:
        await controller.fleet.wait_for(lambda f: all(a in f.agents and f.agents[a].online
                                                      and f.agents[a].offers("add1") for a in agent_ids), timeout)
    except TimeoutError:
        tails = "\n".join(f"--- {log}:\n{_tail(log)}" for log in logs)
        raise RuntimeError(f"agents {', '.join(agent_ids)} were not online with add1 after {timeout:g} s\n{tails}") \
            from None


async def deploy(controller: Any, spec: dict[str, Any], timeout: float = 30) -> None:
    """Deploy ``spec`` and wait until all its tasks run."""
    from edge.graph import parse_spec

    await controller.deploy(parse_spec(spec))
    await controller.fleet.wait_for(lambda f: sum(s.state == "running" for s in f.tasks_of(spec["id"]))
                                    == len(spec["tasks"]), timeout)


@dataclass
class Relays:
    """What the orchestrator needs to start each contender."""

    url: str
    tmp: Path
    broker_pid: int | None
    ns: str
    controller: Any = None
    node_red: tuple[str, Path, Path] | None = None
    faststream_python: str | None = None

    @contextlib.asynccontextmanager
    async def start(self, name: str, rnd: int) -> AsyncIterator[tuple[list[int], str, str, int]]:
        """Start contender ``name`` for round ``rnd``; yields (relay pids, pub topic, sub topic, hops)."""
        source, target = f"bench/relay/{rnd}/{name}/in", f"bench/relay/{rnd}/{name}/out"
        logs = self.tmp / "logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"{name}-{rnd}.log"
        if name == "floor":
            yield [], source, source, 0
        elif name in ("agent", "agent-core"):
            agent_id, dep = f"{name}-{rnd}", f"relay{rnd}{name.replace('-', '')}"
            async with started(agent_argv(core=name == "agent-core"), log=log,
                               env=agent_env(self.url, self.ns, agent_id, self.tmp / f"agent-{rnd}")) as pid:
                await wait_agents(self.controller, [agent_id], [log])
                await deploy(self.controller, {
                    "id": dep, "tasks": [{"id": "add1", "type": "add1", "agent": agent_id}],
                    "edges": [{"from": f"topic:{source}", "to": "add1.value"}]})
                try:
                    yield [pid], source, self.controller.topics.stream(dep, "add1", "out"), 1
                finally:
                    await self.controller.remove(dep)
        elif name == "script":
            async with started([sys.executable, str(TASK_FILE), self.url, "--in", f"value={source}", "--out",
                                f"out={target}"], log=log, env={"EDGE_LOG_LEVEL": "WARNING"}) as pid:
                yield [pid], source, target, 1
        elif name == "paho":
            async with started([sys.executable, str(HANDWRITTEN), "paho", self.url, source, target], log=log) as pid:
                yield [pid], source, target, 1
        elif name == "faststream":
            assert self.faststream_python is not None
            async with started([self.faststream_python, str(HANDWRITTEN), "faststream", self.url, source, target],
                               log=log) as pid:
                yield [pid], source, target, 1
        elif name == "node-red":
            assert self.node_red is not None
            node, red, cbor = self.node_red
            userdir = self.tmp / f"node-red-{rnd}"
            userdir.mkdir()
            settings = node_red_files(userdir, url=self.url, source=source, target=target, ui_port=free_port(),
                                      cbor_module=cbor)
            async with started([node, str(red), "--settings", str(settings), "--userDir", str(userdir)],
                               log=log) as pid:
                yield [pid], source, target, 1
        else:
            raise ValueError(f"unknown contender {name!r}")


def broker_pid(broker: Any) -> int | None:
    """Mosquitto's pid, to sample its CPU (MosquittoBroker keeps its process private: a bench may look)."""
    proc = getattr(broker, "_proc", None)
    return getattr(proc, "pid", None)


def parse_contenders(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(CONTENDERS)}")
    return names


async def _main(args: argparse.Namespace, names: list[str], notes: list[str]) -> list[dict[str, Any]]:
    from edge.broker import MosquittoBroker
    from edge.controller import Controller
    from edge.settings import load_settings

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        url = f"mqtt://127.0.0.1:{port}"
        ns = f"relay{uuid.uuid4().hex[:6]}"
        async with MosquittoBroker(port=port, data_dir=tmp / "broker", persistence=False) as broker, \
                contextlib.AsyncExitStack() as stack:
            relays = Relays(url=url, tmp=tmp, ns=ns, broker_pid=broker_pid(broker))
            if "agent" in names or "agent-core" in names:
                settings = load_settings(broker=url, namespace=ns, agent_id="bench-ctl", data_dir=tmp / "ctl")
                relays.controller = await stack.enter_async_context(Controller(settings))
            if "node-red" in names:
                relays.node_red = ensure_node_red(notes)
            if "faststream" in names:
                relays.faststream_python = ensure_faststream(notes)
            runnable = [n for n in names if (n != "node-red" or relays.node_red) and
                        (n != "faststream" or relays.faststream_python)]
            for rnd in range(1, args.rounds + 1):
                for name in runnable:
                    async with relays.start(name, rnd) as (pids, pub, sub, hops):
                        for label, size in SIZES.items():
                            r = await run_load(url, pub=pub, sub=sub, size=size, seconds=args.seconds, hops=hops,
                                               pids=pids, broker_pid=relays.broker_pid, window=args.window)
                            rounds.append({"round": rnd, "contender": name, "size": label, "bytes": size, **r})
                            print(progress(rnd, CONTENDERS[name], label, r), file=sys.stderr, flush=True)
    return rounds


# -- summary and output ------------------------------------------------------------------------------


def outside_versions(names: list[str]) -> dict[str, str]:
    """Versions of Node-RED, cbor-x, node and FastStream where they are installed."""
    found: dict[str, str] = {}
    if "node-red" in names and shutil.which("node"):
        for package in ("node-red", "cbor-x"):
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads((NODE_RED_DIR / "node_modules" / package / "package.json").read_text())
                found[package] = meta["version"]
        node = shutil.which("node")
        if node:
            found["node"] = subprocess.run([node, "--version"], capture_output=True, text=True,
                                           check=False).stdout.strip()
    if "faststream" in names:
        for python in (sys.executable, str(FASTSTREAM_VENV / "bin" / "python")):
            with contextlib.suppress(OSError):
                out = subprocess.run([python, "-c", "from importlib.metadata import version as v; "
                                                    "print(v('faststream'), v('zmqtt'))"],
                                     capture_output=True, text=True, check=False)
                if out.returncode == 0:
                    fs, zmqtt = out.stdout.split()
                    found.update({"faststream": fs, "zmqtt": zmqtt})
                    break
    return found


def targets(summary: dict[str, dict[str, dict[str, Any]]], key: str = "agent") -> dict[str, dict[str, Any]]:
    """The targets of the benchmarks issue, against the agent's figures."""
    agent = summary.get(key, {})
    found: dict[str, dict[str, Any]] = {}
    base = summary.get("node-red", {}).get("64B", {}).get("msgs_per_s")
    mine = agent.get("64B", {}).get("msgs_per_s")
    ratio = mine / base if mine and base else None
    found["msgs/s agent / node-red, 64 B"] = {"value": ratio, "target": TARGET_RATIO, "op": ">=",
                                              "met": None if ratio is None else ratio >= TARGET_RATIO}
    for size, row in agent.items():
        p50 = row["p50_ms"]
        found[f"agent p50 at 1k msgs/s, {size} (ms)"] = {"value": p50, "target": TARGET_P50_MS, "op": "<=",
                                                         "met": None if p50 is None else p50 <= TARGET_P50_MS}
    rss = max((row["rss_mb"] for row in agent.values() if row["rss_mb"] is not None), default=None)
    found["agent RSS peak (MB)"] = {"value": rss, "target": TARGET_RSS_MB, "op": "<=",
                                    "met": None if rss is None else rss <= TARGET_RSS_MB}
    if "agent-core" in summary:  # the same without PyAV: what the core install costs
        core = max((row["rss_mb"] for row in summary["agent-core"].values() if row["rss_mb"] is not None),
                   default=None)
        found["agent without PyAV (core install) RSS peak (MB)"] = {
            "value": core, "target": TARGET_RSS_MB, "op": "<=", "met": None if core is None else core <= TARGET_RSS_MB}
    return found


def target_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, t in found.items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"# target {name}: {value} (target {t['op']} {t['target']:g}) {verdict}")
    return lines


def lost_lines(rounds: list[dict[str, Any]], window: int) -> list[str]:
    """Frames lost in the throughput runs (all rounds), per contender and size."""
    totals: dict[tuple[str, str], list[int]] = {}
    for r in rounds:
        t = r["throughput"]
        sent_lost = totals.setdefault((r["contender"], r["size"]), [0, 0])
        sent_lost[0] += t["sent"]
        sent_lost[1] += t["lost"] + t["bad"]
    return [f"# lost with {window} in flight: {CONTENDERS[name]} {size}: {lost} of {sent} "
            f"({100 * lost / sent if sent else 0:.2f}%)" for (name, size), (sent, lost) in totals.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measured run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma-separated, of: "
                                                                          f"{', '.join(CONTENDERS)}")
    parser.add_argument("--window", type=int, default=1000, help="messages in flight in the throughput run "
                                                                 "(2000: the burst test)")
    parser.add_argument("--json", type=Path, help="write the machine, all rounds and the summary here")
    args = parser.parse_args()
    if args.window < 1:
        parser.error("--window must be at least 1")
    names = parse_contenders(args.contenders)
    notes: list[str] = []
    print(machine_line(machine_info(outside_versions(names))), flush=True)
    rounds = asyncio.run(_main(args, names, notes))
    info = machine_info(outside_versions(names))  # again: an install during the run adds versions
    summary = summarize(rounds)
    for note in notes:
        print(f"# {note}")
    print("\n".join(table(summary, CONTENDERS)))
    print("\n".join(lost_lines(rounds, args.window)))
    found = targets(summary) if "agent" in summary else {}
    print("\n".join(target_lines(found)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": info, "bench": "relay", "seconds": args.seconds, "window": args.window,
            "rounds_requested": args.rounds,
            "notes": notes, "contenders": {n: CONTENDERS[n] for n in names}, "rounds": rounds,
            "summary": summary, "targets": found}, indent=1))
    mine = summary.get("agent", {}).get("64B", {}).get("msgs_per_s")
    for base in ("node-red", "paho"):
        theirs = summary.get(base, {}).get("64B", {}).get("msgs_per_s")
        if mine and theirs:
            other = summary[base].get("1KiB", {}).get("msgs_per_s")
            mine_k = summary["agent"].get("1KiB", {}).get("msgs_per_s")
            kib = f"; 1 KiB: {mine_k / other:.2f}" if mine_k and other else ""
            skipped = "" if base == "node-red" else " (Node-RED was not run)"
            print(f"# the ratio is fn_task on agent / {CONTENDERS[base]}, 64 B msgs/s{skipped}{kib}")
            print(f"ratio {mine / theirs:.2f}")
            break
    else:
        print("# no ratio: the agent and neither Node-RED nor paho ran")


if __name__ == "__main__":
    main()
