"""Every shell command of the README and docs/ runs, as a reader would run it.

**How a page's blocks are read** (``_docblocks.py``):

* ```bash, ```sh, ```shell and ```console blocks are commands (in ```console, the lines after a
  ``$ `` prompt). ```text and bare ``` blocks are output, config files and formats, and do not
  run, unless their first word is a program (``edge``, ``python``, ``pip``, ``docker``…): a
  command fenced as text runs all the same. So: commands in ```bash, their output in ```text.
* A block right after a ``<!-- file: NAME -->`` line is a file, written into the page's
  directory before its commands run (the ``graph.yaml`` of ``edge deploy graph.yaml``, the
  ``adder.py`` of ``python adder.py``). Its checks are those of its language (test_code_blocks).

**How a page runs**: its commands in order, as one reader on one machine would, in a temporary
directory, with ``edge`` this checkout's command and ``python`` this interpreter, and
EDGE_BROKER = the session's Mosquitto, a namespace of this module, EDGE_DATA_DIR in the
directory. A broker URL in a command (``mqtt://broker.local:1883``) means "your broker" and is
replaced by the current one. Each command is one of:

1. **allow-listed** (``ALLOWED``): installs, system services, containers and the whole-suite
   script cannot run here. Each entry is a pattern with a static check of what the command
   names (the pip extras exist, the unit it enables exists…); every entry must be used.
2. **a benchmark** (``python bench/X.py …``): its ``--help`` lists every option used.
3. **long-running**: ``edge up|agent|ui|broker|tail`` and an fn_task script (``python X.py``,
   X.py a file of the page). Started, its effect checked, left running while the page goes on
   (a reader's other terminal), stopped with Ctrl+C (SIGINT) when the page ends or the same
   program starts again; it must then exit 0 without a traceback. Effects: ``edge up`` starts a
   broker (on a free port; the page's later commands use it), its agent is born there with its
   catalog and the panel answers; ``edge broker``: a client connects; ``edge agent``: born with
   its catalog; ``edge ui``: the panel answers; ``edge tail P``: prints a frame published on a
   topic P matches; ``python X.py --in … --out …``: a frame ``1`` on every input gives a frame
   on every output; ``python X.py``: an agent born with the script's type in its catalog.
4. **one-shot**: anything else, run by bash (after the block's ``NAME=value`` lines) to exit 0
   within 30 s without a traceback; ``python -m timeit`` gets ``-n 1 -r 1`` (the statements
   run, the measuring is not repeated). Effects checked: ``edge pub T V`` (the frame arrives
   on T), ``edge ls agents`` (an agent is online), ``edge deploy F`` (its tasks placed on the
   page's agents reach ``running``), ``edge rm D`` (removed).

A command that cannot run here and is not allow-listed fails: fix the page, or add an entry to
``ALLOWED`` with a static check.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from _docblocks import PAGES, ROOT, Block, Command, blocks, commands, page_commands, page_files

from edge.broker import free_port
from edge.bus import Bus
from edge.frames import decode_frame, decode_value, encode_frame
from edge.topics import Topics

# the pages share one site agent (a module fixture): under xdist's --dist loadgroup one worker runs them all
pytestmark = pytest.mark.xdist_group("docs-site")

NAMESPACE = f"docs-{uuid.uuid4().hex[:8]}"
TOPICS = Topics(NAMESPACE)
WAIT = 20.0  # seconds for any one effect
ONE_SHOT_TIMEOUT = 30.0
URL = re.compile(r"\b(?:mqtts?|wss?)://[^\s'\"]+")
LONG_RUNNING_EDGE = {"up", "agent", "ui", "broker", "tail"}
BROKER_STARTERS = {"up", "broker"}


# -- 1. the allow-list: commands that cannot run here, each checked statically ---------------------
def _pyproject_extras() -> set[str]:
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _unit(name: str = "edge-agent") -> dict[str, str]:
    path = ROOT / "deploy" / f"{name.removesuffix('.service')}.service"
    assert path.is_file(), f"no systemd unit {path.relative_to(ROOT)}"
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def _venv_of_unit() -> str:
    return _unit()["ExecStart"].split()[0].removesuffix("/bin/edge")


def _after(argv: list[str], word: str) -> list[str]:
    """The operands after ``word`` (``install``), options left out."""
    return [a for a in argv[argv.index(word) + 1:] if not a.startswith("-")]


def check_pip(argv: list[str]) -> None:
    pip = argv[argv.index("install") - 1]
    if pip.startswith("/"):
        assert pip == f"{_venv_of_unit()}/bin/pip", f"{pip} is not the pip of the unit's ExecStart"
    targets = _after(argv, "install")
    assert targets, "pip install of nothing"
    for target in targets:
        match = re.fullmatch(r"(?:\.|\./edgetasks|edgetasks)(?:\[([\w,-]+)\])?", target)
        assert match, f"pip install {target!r}: not this project"
        unknown = set((match[1] or "").split(",")) - {""} - _pyproject_extras()
        assert not unknown, f"extras {sorted(unknown)} are not in pyproject.toml"


APT_PACKAGES = {"mosquitto", "mosquitto-clients", "python3-venv"}  # reviewed: Debian/Raspberry Pi OS names


def check_apt(argv: list[str]) -> None:
    packages = _after(argv, "install")
    assert packages and set(packages) <= APT_PACKAGES, f"apt packages {packages} not among {sorted(APT_PACKAGES)}"


def check_test_script(argv: list[str]) -> None:
    script = ROOT / argv[-1]
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert all(step in text for step in ("ruff check", "mypy", "pytest")), "it no longer lints, types and tests"


def check_useradd(argv: list[str]) -> None:
    unit = _unit()
    assert argv[-1] == unit["User"], f"user {argv[-1]!r}, the unit runs as {unit['User']!r}"
    assert argv[argv.index("--home-dir") + 1] == f"/var/lib/{unit['StateDirectory']}"


def check_venv(argv: list[str]) -> None:
    assert argv[-1] == _venv_of_unit(), f"the unit runs {_unit()['ExecStart']!r}"


def check_mkdir(argv: list[str]) -> None:
    assert argv[-1] == str(Path(_unit()["EnvironmentFile"]).parent)


def check_cp(argv: list[str]) -> None:
    source, target = argv[-2:]
    assert (ROOT / source).is_file(), f"{source} does not exist"
    if source.endswith(".service"):
        assert target.rstrip("/") == "/etc/systemd/system"
    else:
        assert target == _unit()["EnvironmentFile"], f"the unit reads {_unit()['EnvironmentFile']}"


def check_edit(argv: list[str]) -> None:
    assert argv[-1] == _unit()["EnvironmentFile"]


def check_systemctl(argv: list[str]) -> None:
    _unit(argv[-1])


def check_journalctl(argv: list[str]) -> None:
    _unit(argv[argv.index("-u") + 1])


def check_docker_run(argv: list[str]) -> None:
    from edge.settings import Settings

    dockerfile = (ROOT / "Dockerfile").read_text()
    settings = {f"EDGE_{name.upper()}" for name in Settings.model_fields}
    for flag, value in itertools.pairwise(argv):
        if flag == "-e":
            assert value.split("=")[0] in settings, f"{value}: not a setting"
        if flag == "-v":
            assert f'VOLUME ["{value.split(":")[1]}"]' in dockerfile, f"{value}: not the image's volume"
    assert argv[-1].split(":")[0] == "edgetasks", "the image is built as edgetasks (docs/raspberry-pi.md)"


def check_docker_build(argv: list[str]) -> None:
    """An image named as ``docker run`` uses it, from this repository's Dockerfile; a buildx build for
    several platforms cannot be ``--load``ed (Docker keeps one platform locally): it must ``--push``."""
    assert argv[-1] == "." and (ROOT / "Dockerfile").is_file(), "not built from this repository"
    assert argv[argv.index("-t") + 1] == "edgetasks", "the image is built as edgetasks (docs/raspberry-pi.md)"
    if "--platform" in argv:
        platforms = argv[argv.index("--platform") + 1].split(",")
        assert "--load" in argv if len(platforms) == 1 else "--push" in argv, f"{platforms}: --load takes one"


def check_docker_load(argv: list[str]) -> None:
    assert argv[:2] == ["docker", "save"] and argv[2] == "edgetasks" and argv[-2:] == ["docker", "load"], argv


def check_docker_compose(argv: list[str]) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert (ROOT / "Dockerfile").is_file() and all(
        s.get("build") == "." for name, s in compose["services"].items() if name != "mosquitto")
    # the panel's password: a secret whose file the page has the reader write first
    for secret in compose.get("secrets", {}).values():
        name = secret["file"].removeprefix("./")
        assert any(name in page.read_text() for page in PAGES), f"no page tells users to write {name}"


@dataclass(frozen=True)
class Allowed:
    pattern: str  # matched against the command as written
    check: Callable[[list[str]], None]
    why: str


ALLOWED = [
    Allowed(r"(sudo )?(/opt/edgetasks/bin/)?pip install ", check_pip, "installs into this environment"),
    Allowed(r"(sudo )?apt-get install ", check_apt, "system packages"),
    Allowed(r"bash scripts/test\.sh$", check_test_script, "the whole suite, which includes this test"),
    Allowed(r"sudo useradd --system ", check_useradd, "creates a system user"),
    Allowed(r"sudo python3 -m venv /opt/", check_venv, "writes to /opt"),
    Allowed(r"sudo mkdir -p /etc/", check_mkdir, "writes to /etc"),
    Allowed(r"sudo cp deploy/", check_cp, "writes to /etc"),
    Allowed(r"sudo nano /etc/", check_edit, "an editor"),
    Allowed(r"sudo systemctl enable --now ", check_systemctl, "a system service"),
    Allowed(r"journalctl -u ", check_journalctl, "a system service's log"),
    Allowed(r"docker build ", check_docker_build, "no container runtime here"),
    Allowed(r"docker buildx build ", check_docker_build, "no container runtime here"),
    Allowed(r"docker save ", check_docker_load, "no container runtime here, nor a Pi"),
    Allowed(r"docker run ", check_docker_run, "no container runtime here"),
    Allowed(r"docker compose up", check_docker_compose, "no container runtime here"),
]


def allowed(command: Command) -> Allowed | None:
    return next((a for a in ALLOWED if re.match(a.pattern, command.text)), None)


# -- 2. benchmarks ---------------------------------------------------------------------------------
def check_bench(command: Command) -> None:
    script = ROOT / command.argv[1]
    assert script.is_file(), f"{command.argv[1]} does not exist"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=30,
                         cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    for flag in (a.split("=")[0] for a in command.argv[2:] if a.startswith("--")):
        assert re.search(rf"{re.escape(flag)}\b", out.stdout), f"{script.name} --help does not list {flag}"


# -- 3 and 4: running -------------------------------------------------------------------------------
class Process:
    """A long-running command: its output collected as it comes, waited on, stopped with Ctrl+C."""

    def __init__(self, command: Command, proc: asyncio.subprocess.Process) -> None:
        self.command = command
        self.proc = proc
        self.out = ""
        self.err = ""
        self._news = asyncio.Event()
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [asyncio.ensure_future(self._pump(proc.stdout, "out")),
                       asyncio.ensure_future(self._pump(proc.stderr, "err"))]

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while chunk := await stream.read(4096):
            setattr(self, name, getattr(self, name) + chunk.decode(errors="replace"))
            self._news.set()
        self._news.set()

    def report(self) -> str:
        return (f"{self.command.where}: {self.command.text}\n--- stdout\n{self.out[-3000:]}\n"
                f"--- stderr\n{self.err[-3000:]}")

    async def wait_output(self, text: str, *, stderr: bool = False) -> None:
        async with asyncio.timeout(WAIT):
            while text not in (self.err if stderr else self.out):
                assert self.proc.returncode is None, f"exited {self.proc.returncode} first\n{self.report()}"
                self._news.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):  # also look at the return code now and then
                        await self._news.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(15):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"Ctrl+C did not stop it within 15 s\n{self.report()}") from None
        finally:
            await asyncio.gather(*self._pumps)
        assert code == 0, f"exited {code} on Ctrl+C\n{self.report()}"
        assert "Traceback" not in self.err, self.report()


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell may have started us with Ctrl+C ignored


@dataclass
class Page:
    """One reader's session through a page: a directory, a current broker, the programs running."""

    dir: Path
    url: str
    stack: contextlib.AsyncExitStack
    running: list[Process] = field(default_factory=list)
    agents: dict[str, set[str]] = field(default_factory=dict)  # broker URL -> ids of agents started for it
    prelude: list[str] = field(default_factory=list)  # the block's NAME=value lines so far
    _buses: dict[str, Bus] = field(default_factory=dict)
    _count: int = 0

    def env(self, command: Command, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        env.update(PATH=f"{self.dir / '.bin'}{os.pathsep}{env['PATH']}",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
                   EDGE_BROKER=self.url, EDGE_NAMESPACE=NAMESPACE, EDGE_DATA_DIR=str(self.dir / ".data"))
        env.update(extra)
        env.update({k: URL.sub(self.url, v) for k, v in command.env.items()})
        return env

    async def bus(self, url: str | None = None) -> Bus:
        url = url or self.url
        if url not in self._buses:
            bus = Bus(url, client_id=f"docs-probe-{uuid.uuid4().hex[:8]}")
            self._buses[url] = await self.stack.enter_async_context(bus)
        return self._buses[url]

    async def run(self, command: Command) -> None:
        print(f"{command.where}: {command.text}")  # shown with a failure: how far the page got
        if command.is_assignment:
            self.prelude.append(command.text)
        elif (entry := allowed(command)) is not None:
            entry.check(command.argv)
        elif command.argv[:1] in (["python"], ["python3"]) and command.argv[1].startswith("bench/"):
            check_bench(command)
        elif command.program[:1] == ("edge",) and command.program[1:] and command.program[1] in LONG_RUNNING_EDGE:
            await self.start_edge(command)
        elif (command.argv[:1] in (["python"], ["python3"]) and (self.dir / command.argv[1]).is_file()
              and not {"-h", "--help"} & set(command.argv)):
            await self.start_script(command)
        else:
            await self.run_once(command)

    # -- long-running --------------------------------------------------------------------------------
    async def start(self, command: Command, argv: list[str], env: dict[str, str]) -> Process:
        for earlier in [p for p in self.running if p.command.program == command.program]:
            self.running.remove(earlier)
            await earlier.stop()
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=_restore_sigint)
        process = Process(command, proc)
        self.running.append(process)
        return process

    def _own(self) -> dict[str, str]:
        """Settings of one long-running program: its own agent id, data dir and ports."""
        self._count += 1
        return {"EDGE_AGENT_ID": f"docs-{self._count}", "EDGE_DATA_DIR": str(self.dir / f".data-{self._count}"),
                "EDGE_CONTROLLER_PORT": str(free_port()), "EDGE_BROKER_PORT": str(free_port())}

    async def start_edge(self, command: Command) -> None:
        argv = [URL.sub(self.url, a) for a in command.argv]
        sub = command.program[1]
        env = self.env(command, **self._own())
        starts_broker = sub in BROKER_STARTERS and not URL.match(command.env.get("EDGE_BROKER", "")) \
            and "--broker" not in argv
        if starts_broker and "EDGE_BROKER" not in command.env:
            del env["EDGE_BROKER"]  # as a reader has it: `auto`, Mosquitto here, else the embedded broker
        url = f"mqtt://127.0.0.1:{env['EDGE_BROKER_PORT']}" if starts_broker else self.url
        process = await self.start(command, argv, env)
        try:
            if sub == "tail":
                await self.check_tail(process, argv[argv.index("tail") + 1])
            elif sub == "broker":
                await process.wait_output("listening at")
                await self.bus(url)
            else:
                if sub in ("up", "ui"):
                    await process.wait_output("panel")
                    await asyncio.to_thread(_http_ok, f"http://127.0.0.1:{env['EDGE_CONTROLLER_PORT']}/")
                if sub in ("up", "agent"):
                    await self.check_agent(url, env["EDGE_AGENT_ID"])
        except BaseException:
            print(process.report())
            raise
        self.url = url

    async def check_tail(self, process: Process, pattern: str) -> None:
        await process.wait_output("tailing", stderr=True)
        if "/" in pattern and "." in pattern.rsplit("/", 1)[-1] and pattern.count("/") == 1:
            dep, task_port = pattern.split("/")
            topic = TOPICS.stream(dep, *task_port.split(".", 1))
        else:
            topic = pattern.replace("+", "docs-probe").replace("#", "docs-probe")
        await (await self.bus()).publish(topic, encode_frame("docs-probe"))
        await process.wait_output(topic)

    async def check_agent(self, url: str, agent_id: str, offers: str | None = None) -> None:
        names = await wait_agent(await self.bus(url), agent_id)
        assert names and (offers is None or offers in names), f"agent {agent_id} offers {names}"
        self.agents.setdefault(url, set()).add(agent_id)

    async def start_script(self, command: Command) -> None:
        argv = [URL.sub(self.url, a) for a in command.argv]
        env = self.env(command, **self._own())
        process = await self.start(command, [sys.executable, *argv[1:]], env)
        pairs = {flag: [a.split("=", 1) for f, a in itertools.pairwise(argv) if f == flag]
                 for flag in ("--in", "--out")}
        try:
            if pairs["--in"] or pairs["--out"]:
                await process.wait_output("running: inputs", stderr=True)
                bus = await self.bus()
                async with contextlib.AsyncExitStack() as stack:
                    outs = [await stack.enter_async_context(bus.subscribe(topic)) for _, topic in pairs["--out"]]
                    for _, topic in pairs["--in"]:
                        await bus.publish(topic.replace("+", "docs-probe").replace("#", "docs-probe"),
                                          encode_frame(1))
                    async with asyncio.timeout(WAIT):
                        for out in outs:
                            decode_frame((await out.get()).payload)
            else:
                type_name = _fn_task_name(self.dir / argv[1])
                await self.check_agent(self.url, env["EDGE_AGENT_ID"], offers=type_name)
        except BaseException:
            print(process.report())
            raise

    # -- one-shot ------------------------------------------------------------------------------------
    async def run_once(self, command: Command) -> None:
        text = URL.sub(self.url, command.text)
        text = re.sub(r"\bpython -m timeit ", "python -m timeit -n 1 -r 1 ", text)
        argv = command.argv
        async with contextlib.AsyncExitStack() as stack:
            expect = None
            if argv[:2] == ["edge", "pub"]:  # subscribed before it publishes
                expect = await stack.enter_async_context((await self.bus()).subscribe(argv[2]))
            proc = await asyncio.create_subprocess_exec(
                "bash", "-c", "\n".join([*self.prelude, text]), cwd=self.dir, env=self.env(command),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                async with asyncio.timeout(ONE_SHOT_TIMEOUT):
                    out_b, err_b = await proc.communicate()
            except TimeoutError:
                proc.kill()
                await proc.communicate()
                raise AssertionError(f"{command.where}: {command.text!r} still running after "
                                     f"{ONE_SHOT_TIMEOUT:g} s") from None
            out, err = out_b.decode(errors="replace"), err_b.decode(errors="replace")
            report = f"{command.where}: {command.text}\n--- stdout\n{out}\n--- stderr\n{err}"
            print(out[-2000:], err[-2000:], sep="")
            assert proc.returncode == 0, f"exited {proc.returncode}\n{report}"
            assert "Traceback" not in err, report
            if expect is not None:
                async with asyncio.timeout(WAIT):
                    frame = decode_frame((await expect.get()).payload)
                assert frame.value == _pub_value(argv), report
        if argv[:3] == ["edge", "ls", "agents"]:
            assert any(row.split()[1:2] == ["online"] for row in out.splitlines()[1:]), report
        elif argv[:2] == ["edge", "deploy"] and "--dry-run" not in argv:
            await self.check_deployed(out, report)
        elif argv[:2] == ["edge", "rm"]:
            assert out.startswith(f"removed {argv[2]}"), report

    async def check_deployed(self, out: str, report: str) -> None:
        deployment = out.split()[1]
        ours = self.agents.get(self.url, set())
        placed = [row.split() for row in out.splitlines()[2:]]
        assert placed, report
        bus = await self.bus()
        for task, _, agent in placed:
            if agent not in ours:
                continue  # an agent of the example (pi-1): desired state, nobody here runs it
            async with bus.subscribe(TOPICS.task_status(deployment, task)) as statuses, asyncio.timeout(WAIT):
                while (status := decode_value((await statuses.get()).payload))["state"] != "running":
                    assert status["state"] not in ("failed", "invalid"), f"{task}: {status}\n{report}"

    async def stop_all(self) -> None:
        errors = []
        for process in reversed(self.running):
            try:
                await process.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        self.running.clear()
        assert not errors, "\n\n".join(errors)


async def wait_agent(bus: Bus, agent_id: str) -> list[str]:
    """Wait until ``agent_id`` is online with its catalog; the names of the types it offers."""
    async with bus.subscribe(TOPICS.agent_state(agent_id)) as states, \
            bus.subscribe(TOPICS.agent_catalog(agent_id)) as catalogs, asyncio.timeout(WAIT):
        while not (state := decode_value((await states.get()).payload)).get("online"):
            pass
        # the catalog of this life (its boot id): an agent of that id earlier, on this page or another
        # of the same namespace, left its own retained
        while (catalog := decode_value((await catalogs.get()).payload)).get("boot") != state.get("boot"):
            pass
    return [t["name"] for t in catalog["types"]]


def _http_ok(url: str) -> None:
    from _http import wait_http

    wait_http(url, WAIT)


def _pub_value(argv: list[str]) -> object:
    value = argv[3]
    if "--text" in argv:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _fn_task_name(script: Path) -> str:
    match = re.search(r"@fn_task\([^)]*\)\s*\n(?:async )?def (\w+)", script.read_text())
    assert match, f"{script.name} has no @fn_task function"
    named = re.search(r"@fn_task\([^)]*name=\"(\w+)\"", script.read_text())
    return named[1] if named else match[1]


def _shims(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for name, target in (("edge", f'"{sys.executable}" -m edge'), ("python", f'"{sys.executable}"'),
                         ("python3", f'"{sys.executable}"')):
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        path.chmod(0o755)


# -- the tests ----------------------------------------------------------------------------------------
PAGES_WITH_COMMANDS = [p for p in PAGES if page_commands(p)]


@pytest.fixture(scope="module")
def site_agent(mosquitto_broker, tmp_path_factory):
    """An agent with the built-in types on the session Mosquitto: a reader's `edge up` elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_BROKER=mosquitto_broker.url.geturl(), EDGE_NAMESPACE=NAMESPACE, EDGE_AGENT_ID="docs-site",
               EDGE_DATA_DIR=str(tmp_path_factory.mktemp("site")), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edge", "agent"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        asyncio.run(_site_ready(env["EDGE_BROKER"]))
        yield "docs-site"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _site_ready(url: str) -> None:
    async with Bus(url, client_id=f"docs-probe-{uuid.uuid4().hex[:8]}") as bus:
        assert "pulse_generator" in await wait_agent(bus, "docs-site")


@pytest.mark.parametrize("page", PAGES_WITH_COMMANDS, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_COMMANDS])
async def test_page_commands_run(page, mosquitto_broker, site_agent, tmp_path):
    _shims(tmp_path / ".bin")
    for name, body in page_files(page).items():
        (tmp_path / name).write_text(body)
    url = mosquitto_broker.url.geturl()
    async with contextlib.AsyncExitStack() as stack:
        session = Page(dir=tmp_path, url=url, stack=stack, agents={url: {site_agent}})
        stack.push_async_callback(session.stop_all)
        for block in _command_blocks(page):
            session.prelude = []
            for command in commands(block):
                await session.run(command)


def _command_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.is_commands]


def test_every_allowed_entry_is_used():
    used = {allowed(c).pattern for p in PAGES for c in page_commands(p) if allowed(c) is not None}
    assert [a.pattern for a in ALLOWED if a.pattern not in used] == []


def test_the_readme_and_getting_started_have_commands():
    assert ROOT / "README.md" in PAGES_WITH_COMMANDS and ROOT / "docs" / "getting-started.md" in PAGES_WITH_COMMANDS


def test_block_parsing(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(textwrap_page())
    found = [(b.lang, [(c.env, c.argv) for c in commands(b)]) for b in blocks(page) if b.is_commands]
    assert found == [
        ("bash", [({}, ["edge", "tail", "a/#"]), ({"EDGE_BROKER": "mosquitto"}, ["edge", "broker"]),
                  ({}, ["docker", "run", "-d", "x"]), ({"S": "a\nb"}, []), ({}, ["mkdir", "d"]),
                  ({}, ["cp", "a", "d"])]),
        ("console", [({}, ["edge", "ls", "agents"])]),
        ("text", [({}, ["python", "bench/bus.py", "--rounds", "1"])]),
    ]
    assert [b.file_name for b in blocks(page)] == [None, None, None, None, "graph.yaml"]


def textwrap_page() -> str:
    return "\n".join([
        "```bash", "edge tail 'a/#'   # a comment", "EDGE_BROKER=mosquitto edge broker", "docker run -d \\", "  x",
        "S='a", "b'", "mkdir d && cp a d", "```",
        "```console", "$ edge ls agents", "AGENT  STATUS", "```",
        "```text", "python bench/bus.py --rounds 1", "```",
        "```text", "frames 10 at 5/s", "```",
        "<!-- file: graph.yaml -->", "```yaml", "id: x", "```", ""])



async def test_the_harness_fails_what_does_not_work(tmp_path):
    def command(text: str) -> Command:
        block = Block(page=tmp_path / "page.md", line=1, lang="bash", body=text + "\n", file_name=None)
        return commands(block)[0]

    _shims(tmp_path / ".bin")
    async with contextlib.AsyncExitStack() as stack:
        page = Page(dir=tmp_path, url="mqtt://127.0.0.1:1", stack=stack)
        await page.run(command("python -c 'print(1)'"))
        for bad in ("false", "no-such-program --flag", "python -c 'raise SystemExit(3)'",
                    "pip install requests", "sudo apt-get install -y nginx",
                    "docker run -e EDGE_NO_SUCH_SETTING=1 edgetasks:latest", "python bench/bus.py --no-such-flag 1"):
            with pytest.raises(AssertionError):
                await page.run(command(bad))
