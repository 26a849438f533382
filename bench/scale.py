"""Scale: a fleet of simulated agents against one Mosquitto, the controller and the control panel.

The agents are real: ``edge.host.Host`` objects (the runtime ``edge agent`` is built on: presence,
will, retained birth and catalog, spec reconciling, task instances, statuses), each with its
own MQTT connection, offering (``--catalog full``, the default) every task type ``edge agent``
offers, an ~80 KB catalog, worked out once per process (a real agent works it out on its own
device), or (``--catalog shared``) the same published as a shared catalog (``EDGE_SHARED_CATALOG``:
one retained document for all, each agent's catalog naming its hash), or (``--catalog sample``)
the three small types of ``tests/agent/sample_tasks.py``;
``--procs`` child processes hold ``--agents`` of them between them, on the same cores as the
controller: the benchmark prints the CPU the controller, the simulated agents and Mosquitto
spent while listing, to tell their shares.

``--light N`` adds N **light agents** (``bench/light_agents.py``): each on its own MQTT connection,
publishing what an idle ``edge agent`` publishes (will, retained birth, catalog, heartbeat; the same
subscriptions), thousands to a process (``--light-procs``), born at ``--birth-rate`` per second in
all, so that 10,000 agents fit on this machine beside the controller and the figure is the
controller's latency per agent rather than the simulators' start-up. The real agents carry the
deployment (``--task-agents`` of them); with light agents, go-to-listed is mostly the pacing and
is printed without a target: the per-agent birth-to-listed is the one judged.
Every round uses a fresh namespace on the broker this run starts on a free loopback port:

* **listed**: the children import everything and build their hosts, then all are told to go at
  once; the time from go until a running controller's :class:`~edge.controller.Fleet` lists every
  agent online with its catalog (bounded by ``--wait``), and, per agent, the time from its birth
  (the ``ts`` of the first state the controller got from it) until the controller listed it:
  the issue's "lists all within 5 s of their births", printed as the largest and the median
  (where go-to-listed is the simulated agents' own start-up on shared cores as much as the
  controller's);
* **cold controller**: with the fleet up, a new :class:`~edge.controller.Controller` is entered
  (it connects and waits for :meth:`Fleet.synced`); the time until it lists them all, and how
  many it listed when ``synced()`` returned (all of them, when synced keeps its promise);
* **controller RSS**: this process's resident memory once the fleet is listed;
* **deploy**: a ``--tasks``-task deployment (``counter`` tasks, one frame a second each) pinned
  round-robin to ``--task-agents`` agents; the time from ``Controller.deploy`` until every task's
  status says ``running``;
* **idle traffic**: the control messages (not stream frames) on the namespace during ``--idle`` s
  with the deployment running, per agent per 5 s, by kind (states, metrics, statuses);
* **removal**: the time from ``Controller.remove`` until no status of the deployment is left;
* **page load** (last round, unless ``--no-browser``): ``edge ui`` started against the broker, and
  Debian's Chromium (Playwright, headless, ``--no-sandbox``; never ``playwright install``) loads
  the agents page until its first page of rows (100, ``ui.live_table``) is in the page, and the
  running view of the deployment until its first page of task rows is; ``--page-loads`` times
  each, medians.

Targets (issue 20, for 10,000 agents and a 1,000-task deployment on 100 agents; :data:`TARGETS`),
each printed with its figure: listed within 5 s, by a cold controller within 10 s, controller RSS
≤ 400 MB, deployment running and removed within 15 s each, idle traffic ≤ 1 message per agent per
5 s, the agents page's first rows within 2 s and the running view within 3 s; judged on the first
of ``--brokers`` (Mosquitto); the embedded broker (rumqttd) runs the same rounds, interleaved,
for comparison (the page loads run on the first broker only). A round whose listing does not
complete within 120 s reports how many were listed and stops there.

    python bench/scale.py [--agents 200] [--procs 4] [--tasks 100] [--task-agents 10] [--rounds 3]
                          [--catalog full|shared|sample] [--idle 10] [--no-browser] [--brokers mosquitto,embedded]
                          [--light 0] [--light-procs 2] [--birth-rate 1000] [--document once|each]
                          [--json out.json]

JSON: ``{"args": {...}, "broker": first broker, "rounds": [{"listed_s" (Infinity and "listed" when
never), "birth_lag_max_s", "birth_lag_median_s", "listed_cpu_s", "listed_sims_cpu_s",
"listed_broker_cpu_s" (Mosquitto), "rss_mb", "cold_listed_s" (Infinity when never), "cold_synced_s",
"listed_at_synced", "cold_listed", "deploy_running_s", "idle_msgs_per_agent_5s",
"remove_cleared_s", "light_*" (the light agents' ``Counts``, summed)}, ...],
"pages": {"agents_s": [...], "running_s": [...]},
"summary": {key: median, "agents_page_s", "running_page_s"}, "targets": {...}, "met": {...},
"brokers": {broker: {"rounds": [...], "summary": {...}}}}``; the top-level rounds and summary are
the first broker's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import operator
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from light_agents import fleet_types, light_id
from loadgen import process_cpu

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: issue 20's targets (10,000 agents; 1,000 tasks on 100 agents): every run prints each figure with its target
TARGETS = {"birth_lag_max_s": 5.0, "listed_s": 5.0, "cold_listed_s": 10.0, "ls_agents_s": 10.0, "rss_mb": 400.0,
           "deploy_running_s": 15.0,
           "remove_cleared_s": 15.0, "idle_msgs_per_agent_5s": 1.0}
UNITS = {"rss_mb": "MB", "idle_msgs_per_agent_5s": "msg"}
WAIT = 120.0  # the bound of every wait: a figure over it is a failure, not a figure
PAGE_ROWS = 100  # the live tables show a page of rows (ui.live_table.PAGE_SIZE): its last row is the page drawn
COLD_WAIT = 15.0  # how long a cold controller may take to list the fleet before we count what it has


def agent_id(i: int) -> str:
    return f"sim-{i:03d}"


# -- the simulated agents (a child process) ------------------------------------------------------
async def run_agents(url: str, ns: str, first: int, count: int, data_dir: Path, catalog: str) -> None:
    """Build ``count`` hosts, say ``ready``, enter them all on ``go``, leave them all on ``stop`` (stdin)."""
    from edge.host import Host
    from edge.settings import load_settings

    types, unavailable = fleet_types(catalog)  # full, shared: what `edge agent` offers, and the counter
    hosts = [Host(load_settings(broker=url, namespace=ns, agent_id=agent_id(i), data_dir=data_dir, log_level="WARNING",
                                shared_catalog=catalog == "shared"),
                  types=types, unavailable=unavailable, persist=False) for i in range(first, first + count)]
    # each agent's catalog is the same: worked out once per process, as a real agent does it once on its own device
    entries = hosts[0].catalog()
    for host in hosts:
        host.presence._catalog = lambda: entries
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    if (await stdin.readline()).strip() != b"go":
        return
    stop = asyncio.Event()

    async def serve(host: Host) -> None:
        async with host:
            await stop.wait()

    async with asyncio.TaskGroup() as group:
        for host in hosts:
            group.create_task(serve(host), name=f"serve-{host.agent_id}")
        await stdin.readline()  # "stop", or EOF when the parent went away
        stop.set()


def slices(total: int, procs: int) -> list[tuple[int, int]]:
    per = -(-total // max(procs, 1))
    return [(first, min(per, total - first)) for first in range(0, total, per)] if total else []


class Agents:
    """Child processes holding the simulated agents between them: ``--procs`` of real ``Host``s, ``--light-procs``
    of light agents (``bench/light_agents.py``), whose births each paces at its share of ``--birth-rate``."""

    def __init__(self, url: str, ns: str, args: argparse.Namespace, data_dir: Path) -> None:
        common = ["--url", url, "--ns", ns, "--data-dir", str(data_dir), "--catalog", args.catalog]
        self.commands = [[__file__, "--child", *common, "--first", str(first), "--count", str(count)]
                         for first, count in slices(args.agents, args.procs)]
        light = slices(args.light, args.light_procs)
        self.commands += [[str(HERE / "light_agents.py"), *common, "--first", str(first), "--count", str(count),
                           "--rate", str(args.birth_rate / len(light)), "--document", args.document]
                          for first, count in light]
        self.light = len(light)  # the last ones: they print their counts when they stop
        self.procs: list[asyncio.subprocess.Process] = []
        #: the light agents' counts (bench/light_agents.py's Counts), summed over their processes
        self.counts: dict[str, float] = {}

    async def start(self) -> None:
        """Start the children and wait (bounded) until each has built its agents."""
        for command in self.commands:
            self.procs.append(await asyncio.create_subprocess_exec(
                sys.executable, *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
        for proc in self.procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            if line.strip() != b"ready":
                raise RuntimeError(f"an agents process did not start (exit {proc.returncode})")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")

    def cpu_s(self, *, light: bool | None = None) -> float:
        """The CPU the children (only those of light agents, or of real ones) have spent so far, s."""
        first_light = len(self.procs) - self.light
        return sum(process_cpu(proc.pid) for i, proc in enumerate(self.procs)
                   if proc.returncode is None and light in (None, i >= first_light))

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.write(b"stop\n")
                    proc.stdin.close()
        for i, proc in enumerate(self.procs):
            try:
                if i >= len(self.procs) - self.light and proc.stdout is not None:
                    line = await asyncio.wait_for(proc.stdout.readline(), 60)
                    with contextlib.suppress(ValueError):
                        for key, value in json.loads(line).items():
                            merge = max if key == "late_max_s" else operator.add
                            self.counts[key] = merge(self.counts.get(key, 0), value)
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# -- measurements (the parent) -------------------------------------------------------------------
def fleet_ids(args: argparse.Namespace) -> list[str]:
    return [agent_id(i) for i in range(args.agents)] + [light_id(i) for i in range(args.light)]


class Listing:
    """Which of the fleet's agents a controller lists (online, with its catalog's types), kept up to date on
    every change the fleet reports, and each agent's time from its birth (the ``ts`` of the first state the
    controller got from it) until it was first listed. Kept per change, so the bench's own cost per message
    stays constant (a predicate over 10,000 agents at every wake-up of ``Fleet.wait_for`` would not)."""

    def __init__(self, fleet: Any, ids: list[str]) -> None:
        self.fleet, self.ids = fleet, set(ids)
        self.listed: set[str] = set()
        self.births: dict[str, int] = {}
        self.lags: list[float] = []  # s from an agent's birth until the controller first listed it
        self.light_lags: list[float] = []  # the same, of the light agents alone
        self.real_lags: list[float] = []  # and of the real ones
        self.done = asyncio.Event()
        for key in list(fleet.agents):  # what it lists already (a cold controller, once synced)
            self.note("agent", key, lag=False)
        fleet.on_change(self.note)

    def note(self, kind: str, key: str, *, lag: bool = True) -> None:
        from edge.frames import now_ms

        if kind != "agent" or key not in self.ids:
            return
        info = self.fleet.agents.get(key)
        if info is None or not info.online:
            self.listed.discard(key)
        else:
            birth = self.births.setdefault(key, info.ts)
            if not info.types:
                self.listed.discard(key)
            elif key not in self.listed:
                self.listed.add(key)
                if lag and birth != -1:
                    self.lags.append((now_ms() - birth) / 1000)
                    (self.light_lags if key.startswith("light-") else self.real_lags).append(self.lags[-1])
                self.births[key] = -1  # listed: its lag counted once
        if len(self.listed) == len(self.ids):
            self.done.set()
        else:
            self.done.clear()

    async def wait(self, timeout: float) -> None:
        """Until every agent is listed (:class:`TimeoutError` after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            await self.done.wait()


async def one_round(url: str, args: argparse.Namespace, tmp: Path, *, browser: bool,
                    broker_pid: int | None) -> dict[str, Any]:
    from edge.controller import Controller
    from edge.graph import parse_spec
    from edge.settings import load_settings

    ns = f"scale{uuid.uuid4().hex[:6]}"
    settings = load_settings(broker=url, namespace=ns, agent_id="bench", data_dir=tmp / "ctl")
    fleet = Agents(url, ns, args, tmp / "agents")
    ids = fleet_ids(args)
    result: dict[str, Any] = {}
    async with Controller(settings, client_id=f"bench-{ns}") as controller:
        try:
            listing = Listing(controller.fleet, ids)
            await fleet.start()
            started, cpu = time.perf_counter(), time.process_time()
            sims, broker = fleet.cpu_s(), process_cpu(broker_pid)
            fleet.go()
            try:
                await listing.wait(args.wait)
            except TimeoutError:  # a figure over the bound is a failure: say how far it got, skip the rest
                result.update(listed_s=float("inf"), listed=len(listing.listed),
                              listed_cpu_s=time.process_time() - cpu)
                if listing.lags:
                    result.update(birth_lag_max_s=max(listing.lags),
                                  birth_lag_median_s=statistics.median(listing.lags))
                return result
            lags = listing.lags
            result.update(birth_lag_max_s=max(lags), birth_lag_median_s=statistics.median(lags))
            real = listing.real_lags
            if listing.light_lags:  # the light agents' lag is the controller's; a real one's includes its own start
                result.update(birth_lag_light_max_s=max(listing.light_lags),
                              birth_lag_light_median_s=statistics.median(listing.light_lags))
            if real and listing.light_lags:
                result.update(birth_lag_real_max_s=max(real), birth_lag_real_median_s=statistics.median(real))
            result["listed_s"] = time.perf_counter() - started
            result["listed_cpu_s"] = time.process_time() - cpu  # the controller's own share of that time
            # the simulated agents' and the broker's, on the same cores meanwhile
            result["listed_sims_cpu_s"] = fleet.cpu_s() - sims
            if broker_pid is not None:
                result["listed_broker_cpu_s"] = process_cpu(broker_pid) - broker
            result["rss_mb"] = rss_mb()

            started = time.perf_counter()
            async with Controller(settings, client_id=f"cold-{ns}") as cold:
                result["cold_synced_s"] = time.perf_counter() - started
                cold_listing = Listing(cold.fleet, ids)
                result["listed_at_synced"] = len(cold_listing.listed)
                try:  # a broker that drops retained messages never completes the list: count what came
                    await cold_listing.wait(COLD_WAIT)
                    result["cold_listed_s"] = time.perf_counter() - started
                except TimeoutError:
                    result["cold_listed_s"] = float("inf")
                result["cold_listed"] = len(cold_listing.listed)
            ls_s, result["ls_listed"] = await ls_agents(settings, set(ids), tmp)
            result["ls_agents_s"] = ls_s if result["ls_listed"] == len(ids) else float("inf")  # all, or a failure

            n_agents = min(args.task_agents, args.agents)
            spec = parse_spec({"id": "scale", "tasks": [
                {"id": f"t{i:03d}", "type": "counter", "agent": agent_id(i % n_agents), "config": {"interval_ms": 1000}}
                for i in range(args.tasks)]})
            print(f"  listed: {result}", file=sys.stderr, flush=True)  # what a later step cut short leaves
            started, cpu, broker = time.perf_counter(), time.process_time(), process_cpu(broker_pid)
            real, light = fleet.cpu_s(light=False), fleet.cpu_s(light=True)
            profile = cProfile.Profile() if args.profile_deploy else None
            if profile is not None:
                profile.enable()
            await controller.deploy(spec)
            try:
                await controller.fleet.wait_for(
                    lambda f: sum(s.state == "running" for s in f.tasks_of("scale")) == args.tasks, WAIT)
                result["deploy_running_s"] = time.perf_counter() - started
            except TimeoutError:
                result["deploy_running_s"] = float("inf")
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile_deploy)
            # who was busy meanwhile: the controller, the real agents (they start the tasks), the light ones
            # (every agent receives the spec) and Mosquitto
            result["deploy_cpu_s"] = time.process_time() - cpu
            result["deploy_real_cpu_s"] = fleet.cpu_s(light=False) - real
            if args.light:
                result["deploy_light_cpu_s"] = fleet.cpu_s(light=True) - light
            if broker_pid is not None:
                result["deploy_broker_cpu_s"] = process_cpu(broker_pid) - broker
            result["idle_msgs_per_agent_5s"] = await idle_traffic(url, controller.topics.root, args)

            if browser:
                result["pages"] = await page_loads(settings, args, tmp)
            started = time.perf_counter()
            await controller.remove("scale")
            try:
                await controller.fleet.wait_for(lambda f: not f.tasks_of("scale"), WAIT)
                result["remove_cleared_s"] = time.perf_counter() - started
            except TimeoutError:  # a figure over the bound: a failure, reported as such
                result["remove_cleared_s"] = float("inf")
        finally:
            await fleet.stop()
            result.update({f"light_{key}": value for key, value in fleet.counts.items()})
    return result


def panel_env(settings: Any, tmp: Path, agent_id: str) -> dict[str, str]:
    """The environment of an ``edge`` command against the round's broker and namespace (none of ours: EDGE_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update({"EDGE_BROKER": settings.broker, "EDGE_NAMESPACE": settings.namespace,
                "EDGE_DATA_DIR": str(tmp / agent_id), "EDGE_AGENT_ID": agent_id, "EDGE_LOG_LEVEL": "WARNING"})
    return env


async def ls_agents(settings: Any, ids: set[str], tmp: Path) -> tuple[float, int]:
    """``edge ls agents --json`` against the fleet: its wall time (start-up included) and how many of the fleet's
    agents it listed online with their types."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "edge", "ls", "agents", "--json",
                                                env=panel_env(settings, tmp, "ls"), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return float("inf"), 0
    elapsed = time.perf_counter() - started
    if proc.returncode:
        print(f"  edge ls agents failed ({proc.returncode}): {err.decode()[-500:]}", file=sys.stderr, flush=True)
        return float("inf"), 0
    rows = json.loads(out)["agents"]
    return elapsed, sum(1 for row in rows if row["id"] in ids and row["online"] and row["types"])


def rss_mb() -> float:
    """This process's resident set (the running controller's fleet model is most of it), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def idle_traffic(url: str, root: str, args: argparse.Namespace) -> float:
    """Control messages (not stream frames) the whole namespace carries in ``--idle`` s, per agent per 5 s."""
    from edge.bus import Bus, Message

    kinds: dict[str, int] = {}
    marker = f"{root}/bench/idle"
    echoed = asyncio.Event()

    def seen(message: Message) -> None:
        if message.topic == marker:  # the retained messages the SUBSCRIBE brought came before it: not counted
            kinds.clear()
            echoed.set()
        elif "/streams/" not in message.topic:
            kind = message.topic.rsplit("/", 1)[-1] if "/agents/" in message.topic else message.topic.split("/")[3]
            kinds[kind] = kinds.get(kind, 0) + 1

    async with Bus(url) as bus, bus.subscribe(f"{root}/#", qos=0, callback=seen):
        await bus.publish(marker, b"idle", qos=1)
        await asyncio.wait_for(echoed.wait(), WAIT)
        await asyncio.sleep(args.idle)
    per = float((args.agents + args.light) * args.idle / 5)
    print("  idle traffic per agent per 5 s: " + ", ".join(f"{k} {n / per:.3f}" for k, n in sorted(kinds.items())),
          file=sys.stderr, flush=True)
    return sum(kinds.values()) / per


def start_panel(env: dict[str, str], log_path: Path, profile: Path | None = None) -> subprocess.Popen[bytes]:
    """``edge ui`` (under cProfile, written when it stops, with ``profile``)."""
    python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile is not None else [])]
    with open(log_path, "wb") as log:
        return subprocess.Popen([*python, "-m", "edge", "ui"], env=env, stdout=log, stderr=subprocess.STDOUT)


async def page_loads(settings: Any, args: argparse.Namespace, tmp: Path) -> dict[str, list[float]]:
    """``edge ui`` against the fleet; Chromium loads the agents page and the running view ``--page-loads`` times."""
    from playwright.async_api import async_playwright

    from edge.broker import free_port, wait_for_port

    port = free_port()
    env = panel_env(settings, tmp, "panel") | {"EDGE_CONTROLLER_PORT": str(port)}
    log_path = tmp / "ui.log"
    proc = start_panel(env, log_path, args.profile_panel)
    pages: dict[str, list[float]] = {"agents_s": [], "running_s": []}
    try:
        try:
            listening = await wait_for_port("127.0.0.1", port, timeout=60, alive=lambda: proc.poll() is None)
        except TimeoutError:
            listening = False
        if not listening:
            raise RuntimeError(f"edge ui did not listen:\n{log_path.read_text()[-3000:]}")
        base = f"http://127.0.0.1:{port}"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(WAIT * 1000)
                await page.goto(base + "/")  # warm-up: the panel's first page, its fleet filling
                total = args.agents + args.light
                await page.locator("tr[data-key]").nth(min(total, PAGE_ROWS) - 1).wait_for(state="attached")
                for _ in range(args.page_loads):
                    for key, path, count in (("agents_s", "/", total), ("running_s", "/deployments/scale",
                                                                                args.tasks)):
                        started = time.perf_counter()
                        await page.goto(base + path)
                        await page.locator("tr[data-key]").nth(min(count, PAGE_ROWS) - 1).wait_for(state="attached")
                        pages[key].append(time.perf_counter() - started)
                        print(f"  page {path}: {pages[key][-1]:.2f} s", file=sys.stderr, flush=True)
            finally:
                await browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return pages


async def _main(args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float]]]:
    """Rounds interleaved over the brokers (all running at once); the page loads on the first broker's last round."""
    from edge.broker import EmbeddedBroker, MosquittoBroker, free_port

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.brokers}
    pages: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            urls, pids = {}, {}
            for name in args.brokers:
                data_dir = Path(tmp) / f"broker-{name}"
                broker: Any = (MosquittoBroker(port=free_port(), data_dir=data_dir, persistence=False)
                               if name == "mosquitto" else EmbeddedBroker(port=free_port(), data_dir=data_dir))
                urls[name] = (await stack.enter_async_context(broker)).url.geturl()
                proc = getattr(broker, "_proc", None)  # Mosquitto's process; the embedded broker runs in ours
                pids[name] = proc.pid if proc is not None else None
            for rnd in range(args.rounds):
                for name, url in urls.items():
                    browser = rnd == args.rounds - 1 and name == args.brokers[0] and not args.no_browser
                    result = await one_round(url, args, Path(tmp) / f"r{rnd}-{name}", browser=browser,
                                             broker_pid=pids[name])
                    pages = result.pop("pages", pages)
                    rounds[name].append(result)
                    print(f"round {rnd + 1} {name}: " + ", ".join(
                        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
                        file=sys.stderr, flush=True)
    return rounds, pages


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = dict.fromkeys(key for r in rounds for key in r)  # a round cut short has fewer
    return {key: statistics.median(r[key] for r in rounds if key in r) for key in keys}


def machine(args: argparse.Namespace) -> str:
    from importlib.metadata import version

    from bus import machine as bus_machine

    line = bus_machine()
    if not args.no_browser:
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        line += f"; nicegui {version('nicegui')}; playwright {version('playwright')}; {chromium or 'chromium ?'}"
    return line + f"; brokers {', '.join(args.brokers)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200, help="real agents (edge.host.Host)")
    parser.add_argument("--procs", type=int, default=4, help="child processes holding the real agents")
    parser.add_argument("--light", type=int, default=0, help="light agents besides (bench/light_agents.py)")
    parser.add_argument("--light-procs", type=int, default=2, help="child processes holding the light agents")
    parser.add_argument("--birth-rate", type=float, default=1000.0, help="light agents born per second, in all")
    parser.add_argument("--document", choices=("once", "each"), default="once",
                        help="--catalog shared: the light agents publish the shared catalog's document once per "
                             "process (once) or at every connect, as real agents do (each)")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--task-agents", type=int, default=10, help="agents the deployment's tasks are pinned to")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-loads", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="skip the control panel's page loads")
    parser.add_argument("--brokers", default="mosquitto,embedded",
                        help="comma-separated, of: mosquitto, embedded; the targets are judged on the first")
    parser.add_argument("--catalog", choices=("full", "shared", "sample"), default="full",
                        help="full: every type `edge agent` offers (~80 KB a catalog); shared: the same as a shared "
                             "catalog (EDGE_SHARED_CATALOG); sample: three small types")
    parser.add_argument("--wait", type=float, default=WAIT, help="s the fleet may take to be listed after go")
    parser.add_argument("--idle", type=float, default=10.0, help="s of control traffic counted with the fleet idle")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile-deploy", type=Path, metavar="OUT.prof",
                        help="cProfile the controller's process from deploy until all tasks run (pstats file)")
    parser.add_argument("--profile-panel", type=Path, metavar="OUT.prof",
                        help="run `edge ui` under cProfile for the page loads (pstats file, written when it stops)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ns", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(run_agents(args.url, args.ns, args.first, args.count, args.data_dir, args.catalog))
        return
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if not args.brokers or set(args.brokers) - {"mosquitto", "embedded"}:
        parser.error("--brokers: mosquitto and/or embedded")
    if args.agents < 0 or args.light < 0 or args.agents + args.light == 0:
        parser.error("--agents and --light: at least one agent in all, none negative")
    if args.tasks and not args.agents:
        parser.error("--tasks needs real agents to run them (--agents at least 1, or --tasks 0)")
    if args.procs < 1 or args.light_procs < 1 or args.birth_rate <= 0:
        parser.error("--procs and --light-procs must be at least 1, --birth-rate positive")
    print(machine(args), flush=True)
    by_broker, pages = asyncio.run(_main(args))
    first = args.brokers[0]
    rounds = by_broker[first]
    summary = summarize(rounds)
    for key, values in pages.items():
        summary[key.replace("_s", "_page_s")] = statistics.median(values)
    targets = dict(TARGETS)
    if args.light:  # births paced over light / birth-rate s: go-to-listed is the pacing, judged per agent instead
        del targets["listed_s"]
    met = {key: summary[key] <= target for key, target in targets.items() if key in summary}
    targets = {key: targets[key] for key in met}

    def verdict(key: str) -> str:
        unit = UNITS.get(key, "s")
        return f"(target {targets[key]:g} {unit}: {'met' if met[key] else 'missed'})"

    def line(label: str, key: str) -> None:
        if key not in summary:
            print(f"{label:<44} {'-':>8} {UNITS.get(key, 's'):<3}  (target {TARGETS[key]:g}: not reached)")
        elif key not in TARGETS:
            print(f"{label:<44} {summary[key]:8.2f} s")
        elif key not in targets:
            print(f"{label:<44} {summary[key]:8.2f} s    (births paced at {args.birth_rate:g}/s: not a target)")
        else:
            print(f"{label:<44} {summary[key]:8.2f} {UNITS.get(key, 's'):<3}  {verdict(key)}")

    n_agents = min(args.task_agents, args.agents)
    total = args.agents + args.light
    fleet = (f"{total} agents ({args.agents} real, {args.light} light born at {args.birth_rate:g}/s, document "
             f"{args.document})" if args.light else f"{total} agents")
    print(f"# {first}: {fleet}, {args.catalog} catalog, load average {os.getloadavg()[0]:.1f} "
          f"(machine shared: figures are medians of {args.rounds} rounds)")
    line(f"{total} agents listed after go", "listed_s")
    line("... each within, of its birth (the largest)", "birth_lag_max_s")
    for label, key in (("... (the median)", "birth_lag_median_s"),
                       ("... light agents alone: the largest", "birth_lag_light_max_s"),
                       ("... light agents alone: the median", "birth_lag_light_median_s"),
                       ("... real agents alone: the largest", "birth_lag_real_max_s"),
                       ("... real agents alone: the median", "birth_lag_real_median_s"),
                       ("... CPU the controller spent meanwhile", "listed_cpu_s"),
                       ("... the simulated agents' CPU meanwhile", "listed_sims_cpu_s"),
                       ("... Mosquitto's CPU meanwhile", "listed_broker_cpu_s")):
        if key in summary:
            line(label, key)
    if args.light and "light_connects" in summary:
        print(f"# light agents: {summary['light_connects']:.0f} connects for {args.light}, "
              f"{summary.get('light_losses', 0):.0f} connections lost, "
              f"{summary.get('light_connect_failures', 0):.0f} failed; births at most "
              f"{summary.get('light_late_max_s', 0):.2f} s behind their schedule; "
              f"{summary.get('light_cpu_s', 0):.1f} s of CPU in all")
    line("cold controller lists them all after", "cold_listed_s")
    print(f"{'':<44} {cold_detail(rounds, args)}")
    line("`edge ls agents` lists them all after", "ls_agents_s")
    if "ls_listed" in summary:
        print(f"{'':<44} ({min(r.get('ls_listed', 0) for r in rounds)}/{total} listed online with their types, "
              f"start-up included; fewest of the rounds)")
    line("controller RSS with the fleet listed", "rss_mb")
    line(f"{args.tasks} tasks on {n_agents} agents running after", "deploy_running_s")
    for label, key in (("... CPU the controller spent meanwhile", "deploy_cpu_s"),
                       ("... the real agents' CPU meanwhile", "deploy_real_cpu_s"),
                       ("... the light agents' CPU meanwhile", "deploy_light_cpu_s"),
                       ("... Mosquitto's CPU meanwhile", "deploy_broker_cpu_s")):
        if key in summary:
            line(label, key)
    line("idle control traffic per agent per 5 s", "idle_msgs_per_agent_5s")
    line(f"{args.tasks} statuses cleared after removal", "remove_cleared_s")
    if pages:
        first = f"first {min(total, PAGE_ROWS)} of {total}"
        print(f"{f'agents page ({first} rows) in Chromium':<44} {summary['agents_page_s']:8.2f} s    (target 2 s: "
              f"{'met' if summary['agents_page_s'] <= 2 else 'missed'})")
        first = f"first {min(args.tasks, PAGE_ROWS)} of {args.tasks}"
        print(f"{f'running view ({first} task rows)':<44} {summary['running_page_s']:8.2f} s    (target 3 s: "
              f"{'met' if summary['running_page_s'] <= 3 else 'missed'})")
    else:
        print("# page loads skipped (--no-browser)")
    for name in args.brokers[1:]:
        other = summarize(by_broker[name])
        print(f"# {name}: listed {other['listed_s']:.2f} s, cold listed {other.get('cold_listed_s', math.inf):.2f} s "
              f"{cold_detail(by_broker[name], args)}, {args.tasks} tasks running "
              f"{other.get('deploy_running_s', math.inf):.2f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "args": {k: str(v) if not isinstance(v, int | list) else v for k, v in vars(args).items() if v is not None},
            "broker": first, "rounds": rounds, "pages": pages, "summary": summary, "targets": targets, "met": met,
            "brokers": {name: {"rounds": r, "summary": summarize(r)} for name, r in by_broker.items()}}, indent=2))


def cold_detail(rounds: list[dict[str, Any]], args: argparse.Namespace) -> str:
    complete = [r for r in rounds if "cold_listed" in r]
    if not complete:
        return f"(the running controller never listed them all: {max(r.get('listed', 0) for r in rounds)} at most)"
    fewest = min(r["listed_at_synced"] for r in complete), min(r["cold_listed"] for r in complete)
    return (f"(synced with {fewest[0]}/{args.agents + args.light} listed, {fewest[1]} after {COLD_WAIT:g} s at most; "
            f"fewest of the rounds)")


if __name__ == "__main__":
    main()
