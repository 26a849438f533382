"""What a user installs is what is tested: the built wheel, installed (not editable) in a fresh venv.

The rest of the suite imports the checkout (``pip install -e``), which hides a file the wheel
leaves out; these tests build the wheel from the tracked files alone, install it with the
``all`` extra into a new virtual environment, and run it as the README and the container do:

* ``edge up`` with the embedded defaults on free ports, the panel loaded in Chromium with the
  local agent listed and every static file served;
* the compose site without Docker: the image's environment (``Dockerfile`` ``ENV``) with each
  service's (``compose.yaml``), the image's entrypoint and command, the panel's password from
  the compose secret's file, the health checks Docker would run. Inside a network namespace of
  the test (only its loopback, and ``mosquitto`` resolving to it as in compose's network), so the
  panel binds 0.0.0.0:8080 as in its container; where namespaces cannot be made, on loopback
  with free ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from edge.broker import free_port, wait_for_port

ROOT = Path(__file__).parents[2]
PACKAGES = ("edge", "agent", "ui", "tasks")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
START_TIMEOUT = 60.0  # s for a service of the installed wheel to listen or report healthy

# one worker builds the wheel and the venv (module fixtures) for all of them under xdist's --dist loadgroup
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.xdist_group("wheel")]


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60, check=False)
    if out.returncode != 0:  # not a git checkout (an unpacked source archive): everything but caches
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                if p.is_file() and not {"__pycache__", ".git", "build", ".venv"} & set(p.parts)]
    return [name for name in out.stdout.decode().split("\0") if name]


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: none of this session's EDGE_* settings or PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_") and k not in ("PYTHONPATH",)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built by pip from a copy of the tracked files (no stale build/ of the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                            "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=300,
                           check=False)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr[-3000:]}"
    (path,) = out.glob("edgetasks-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its ``all`` extra: its ``bin`` folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    # --no-compile: no .pyc of every installed dependency up front (most of the install's CPU time); the
    # interpreter compiles what the tests import, as it would from any install
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "--no-compile", f"{wheel}[all]"], capture_output=True, text=True, timeout=480,
                         env=_clean_env(), check=False)
    assert pip.returncode == 0, f"pip install {wheel.name}[all] failed:\n{pip.stderr[-3000:]}"
    return env_dir / "bin"


def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    """Every tracked file under the packages (code, static files, py.typed) is in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = [f for f in _tracked_files() if f.split("/")[0] in PACKAGES]
    assert "ui/static/panel.css" in tracked  # the check below would pass on an empty list
    assert [f for f in tracked if f not in names] == []


def test_the_installed_panel_comes_from_site_packages(installed: Path) -> None:
    """The venv runs the installed copy, not this checkout (a test of the checkout would hide a gap)."""
    code = "import ui.app, edge; print(ui.app.STATIC); print(edge.__file__)"
    out = subprocess.run([str(installed / "python"), "-c", code], capture_output=True, text=True, timeout=60,
                         env=_clean_env(), cwd=installed, check=True)
    static, edge_file = out.stdout.split()
    assert "site-packages" in static and "site-packages" in edge_file
    assert sorted(p.name for p in Path(static).iterdir()) == sorted(p.name for p in (ROOT / "ui" / "static").iterdir())


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl+C in the README; SIGTERM in a container, same path
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _start(name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> Service:
    log = cwd / f"{name.replace(' ', '-')}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Service(name, proc, log)


async def _listening(service: Service, port: int) -> None:
    try:
        up = await wait_for_port("127.0.0.1", port, timeout=START_TIMEOUT, alive=lambda: service.proc.poll() is None)
    except TimeoutError:
        up = False
    assert up, f"{service.name} did not listen on {port}:\n{service.text()[-3000:]}"


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it: apt-get install -y chromium (never `playwright install`)")
    return CHROMIUM


@pytest.mark.browser
async def test_edge_up_from_the_installed_wheel_serves_the_panel(installed: Path, chromium: str,
                                                                 tmp_path: Path) -> None:
    """The README's first commands, on a machine that has only what ``pip install ".[all]"`` brought."""
    from playwright.async_api import async_playwright

    panel_port, broker_port = free_port(), free_port()
    env = {**_clean_env(), "EDGE_BROKER": "embedded", "EDGE_BROKER_PORT": str(broker_port),
           "EDGE_CONTROLLER_PORT": str(panel_port), "EDGE_AGENT_ID": "wheel-agent",
           "EDGE_DATA_DIR": str(tmp_path / "data")}
    up = _start("edge up", [str(installed / "edge"), "up"], env=env, cwd=tmp_path)
    errors: list[str] = []
    try:
        await _listening(up, panel_port)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
            try:
                page = await browser.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
                page.set_default_timeout(30_000)
                loaded: dict[str, int] = {}  # our component scripts the page fetched -> HTTP status
                statics = {p.name for p in (ROOT / "ui" / "static").glob("*.js")}
                page.on("response", lambda r: loaded.__setitem__(name, r.status) if (
                    name := r.url.rsplit("/", 1)[-1].split("?")[0]) in statics else None)
                await page.goto(f"http://127.0.0.1:{panel_port}/")
                await page.get_by_text("wheel-agent").first.wait_for()
                # the panel's stylesheet (inlined from ui/static/panel.css) reached the page
                assert await page.evaluate("() => [...document.styleSheets].length") > 0
                # the agents page's table component came from the installed ui/static, and so did any other
                assert loaded.get("live_table.js") == 200, loaded
                assert all(status == 200 for status in loaded.values()), loaded
            finally:
                await browser.close()
    finally:
        code = up.stop()
    text = up.text()
    assert errors == [], errors
    assert code == 0 and "Traceback" not in text, text[-3000:]
    assert "broker    embedded" in text, text[-3000:]


async def test_edge_up_with_the_panel_port_busy_says_one_line(installed: Path, tmp_path: Path) -> None:
    """A busy EDGE_CONTROLLER_PORT stops ``edge up`` before it starts anything, in one line."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**_clean_env(), "EDGE_BROKER": "embedded", "EDGE_BROKER_PORT": str(free_port()),
               "EDGE_CONTROLLER_PORT": str(port), "EDGE_DATA_DIR": str(tmp_path / "data")}
        out = await asyncio.to_thread(subprocess.run, [str(installed / "edge"), "up"], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert out.stdout == ""  # nothing started: no "broker ..." line
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "EDGE_CONTROLLER_PORT" in lines[0] and str(port) in lines[0], out.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("health.json"))


# -- the compose site, without Docker ------------------------------------------------------------
def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """The final stage's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


@dataclass(frozen=True)
class Image:
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]
    install: str

    @classmethod
    def read(cls) -> Image:
        env: dict[str, str] = {}
        entrypoint: list[str] = []
        cmd: list[str] = []
        health: list[str] = []
        install = ""
        for word, rest in _instructions((ROOT / "Dockerfile").read_text()):
            if word == "ENV":
                env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[arg-type]
            elif word == "ENTRYPOINT":
                entrypoint = json.loads(rest)
            elif word == "CMD":
                cmd = json.loads(rest)
            elif word == "HEALTHCHECK":
                health = json.loads(rest[rest.index("CMD ") + 4:])
            elif word == "RUN" and "pip install" in rest:
                install = rest
        return cls(env, entrypoint, cmd, health, install)


def test_the_image_installs_the_extras_it_builds() -> None:
    """The final stage installs ``edgetasks[EXTRAS]`` from the wheels the build stage made for those extras."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    image = Image.read()
    assert '"edgetasks[${EXTRAS}]"' in image.install, image.install
    defaults = re.findall(r"^ARG EXTRAS=(\S+)$", dockerfile, re.MULTILINE)
    assert len(defaults) == 2 and len(set(defaults)) == 1 and "ui" in defaults[0].split(","), defaults


@dataclass
class Site:
    """Services of compose.yaml run from the installed wheel, in a network namespace when one can be made."""

    bin: Path
    dir: Path
    netns: str | None
    services: list[Service] = field(default_factory=list)

    def argv(self, argv: list[str]) -> list[str]:
        edge = [str(self.bin / argv[0]), *argv[1:]] if argv and argv[0] == "edge" else argv
        return ["ip", "netns", "exec", self.netns, *edge] if self.netns else edge

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Service:
        service = _start(name, self.argv(argv), env=env, cwd=self.dir)
        self.services.append(service)
        return service

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv), cwd=self.dir, env=env, capture_output=True, text=True, timeout=60,
                              check=False)


@pytest.fixture
def site(installed: Path, tmp_path: Path) -> Iterator[Site]:
    netns: str | None = f"edgec-{secrets.token_hex(3)}"
    hosts = Path("/etc/netns") / str(netns) / "hosts"
    try:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise PermissionError("network namespaces need root and iproute2")
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True, timeout=20)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=20)
        # `ip netns exec` binds /etc/netns/NAME/hosts over /etc/hosts: compose's service names resolve
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text("127.0.0.1 localhost mosquitto controller agent-1 agent-2\n")
    except (PermissionError, subprocess.CalledProcessError, OSError):
        netns = None
    running = Site(installed, tmp_path, netns)
    try:
        yield running
    finally:
        for service in reversed(running.services):
            service.stop()
        if netns is not None:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=20, check=False)
            shutil.rmtree(hosts.parent, ignore_errors=True)


def _service_env(image: Image, service: dict[str, object], site: Site, name: str) -> dict[str, str]:
    """The container's environment: the image's ENV, then the service's; volumes and secrets mapped to files
    of the test, and (without a namespace) the addresses and ports mapped to free loopback ones."""
    env = {**_clean_env(), **image.env, **{k: str(v) for k, v in dict(service.get("environment") or {}).items()}}
    env["EDGE_DATA_DIR"] = str(site.dir / f"{name}-data")  # the named volume on /data
    for key, value in list(env.items()):
        if key.endswith("_FILE") and value.startswith("/run/secrets/"):
            env[key] = str(site.dir / "secrets" / value.removeprefix("/run/secrets/"))
    return env


async def test_the_compose_site_starts_from_the_installed_wheel(site: Site, tmp_path: Path) -> None:
    """compose.yaml's controller and an agent start with their container's command and environment,
    the panel asks for the password the docs tell users to put in the compose secret's file, and
    the health checks Docker would run pass."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    image = Image.read()
    services = compose["services"]
    controller, agent = services["controller"], services["agent-1"]

    # the secret file as docs/getting-started.md has users write it, mounted where compose mounts secrets
    (secret_name,) = controller["secrets"]
    secret_file = compose["secrets"][secret_name]["file"]
    assert secret_file.removeprefix("./") in (ROOT / "docs" / "getting-started.md").read_text()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / secret_name).write_text("correct horse battery staple\n")

    broker_port, panel_port = 1883, 8080
    controller_env = _service_env(image, controller, site, "controller")
    agent_env = _service_env(image, agent, site, "agent-1")
    if site.netns is None:  # no namespace: the same services on free loopback ports
        broker_port, panel_port = free_port(), free_port()
        for env in (controller_env, agent_env):
            env["EDGE_BROKER"] = env["EDGE_BROKER"].replace("mosquitto:1883", f"127.0.0.1:{broker_port}")
        controller_env.update(EDGE_CONTROLLER_HOST="127.0.0.1", EDGE_CONTROLLER_PORT=str(panel_port))
    assert controller_env["EDGE_CONTROLLER_HOST"] == ("0.0.0.0" if site.netns else "127.0.0.1")

    # the mosquitto service: eclipse-mosquitto's no-auth configuration (a listener on 1883 for anyone)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {broker_port}\nallow_anonymous true\npersistence false\n")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    site.start("mosquitto", [mosquitto, "-c", str(conf)], _clean_env())

    panel = site.start("controller", [*image.entrypoint, *controller["command"]], controller_env)
    agent_service = site.start("agent-1", [*image.entrypoint, *image.cmd], agent_env)

    # Docker's view: each service's health check, retried as Docker would, bounded
    checks = [(panel, controller["healthcheck"]["test"][1:], controller_env),
              (agent_service, image.healthcheck, agent_env)]
    for service, check, env in checks:
        deadline = time.monotonic() + START_TIMEOUT
        result = site.run(check, env)
        while result.returncode != 0 and time.monotonic() < deadline and service.proc.poll() is None:
            await asyncio.sleep(0.5)
            result = site.run(check, env)
        assert result.returncode == 0, (f"{service.name}: {shlex.join(check)}: {result.stdout}{result.stderr}\n"
                                        f"{service.text()[-3000:]}")

    # the panel asks for the password (it listens beyond loopback), and lists the agent once logged in
    fetch = ("import sys, urllib.request; r = urllib.request.urlopen(sys.argv[1], timeout=10); "
             "print(r.url, r.status)")
    page = site.run([str(site.bin / "python"), "-c", fetch, f"http://127.0.0.1:{panel_port}/"], _clean_env())
    assert page.returncode == 0 and page.stdout.split()[0].endswith("/login"), page.stdout + page.stderr
    listed = site.run(["edge", "ls", "agents"], agent_env)
    assert listed.returncode == 0 and re.search(r"^agent-1\s+online", listed.stdout, re.MULTILINE), listed.stdout

    # nothing crashed (a `restart: unless-stopped` service that exits is a crash loop)
    for service in site.services:
        assert service.proc.poll() is None, f"{service.name} exited:\n{service.text()[-3000:]}"
    for service in (agent_service, panel):
        assert service.stop() == 0 and "Traceback" not in service.text(), service.text()[-3000:]
