"""The ``edge`` command, run as a user runs it: in its own process, against real brokers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from _http import wait_http

from edge.broker import free_port

EDGE = [sys.executable, "-m", "edge"]


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(extra)
    return env


def run(args, *, env, timeout=30, check=True):
    out = subprocess.run([*EDGE, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"edge {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
    return out


def test_help_lists_every_command():
    out = run(["--help"], env=env_for())
    for command in ("up", "broker", "agent", "ui", "deploy", "ls", "tail", "pub"):
        assert command in out.stdout


def test_invalid_settings_name_the_variable():
    out = run(["ls"], env=env_for(EDGE_BROKER_PORT="many"), check=False)
    assert out.returncode == 2
    assert "EDGE_BROKER_PORT" in out.stderr and "Traceback" not in out.stderr


def test_unavailable_broker_is_a_clear_error():
    port = free_port()
    out = run(["pub", "a/b", "1", "--timeout", "1"], env=env_for(EDGE_BROKER=f"mqtt://127.0.0.1:{port}"),
              check=False)
    assert out.returncode == 1
    assert "could not connect" in out.stderr and "Traceback" not in out.stderr


def test_pub_and_tail(broker):
    topic = f"test/cli/{uuid.uuid4().hex[:8]}"
    env = env_for(EDGE_BROKER=str(broker.url))
    tail = subprocess.Popen([*EDGE, "tail", topic + "/#", "--count", "4", "--json", "--duration", "20"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stderr is not None
        assert "tailing" in tail.stderr.readline()  # subscribed before we publish
        run(["pub", topic + "/n", "21.5"], env=env)
        run(["pub", topic + "/s", "hello world"], env=env)
        run(["pub", topic + "/l", "[1, 2, 3]", "--retain"], env=env)
        run(["pub", topic + "/raw", "not cbor", "--raw"], env=env)
        run(["pub", topic + "/t", "42", "--text"], env=env)
        stdout, stderr = tail.communicate(timeout=20)
    finally:
        tail.kill()
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [(d["topic"].rsplit("/", 1)[1], d["value"]) for d in lines] == [
        ("n", 21.5), ("s", "hello world"), ("l", [1, 2, 3]), ("t", "42")]
    assert all(d["seq"] == 0 and d["ts"] > 1.7e12 for d in lines)
    assert "/raw  <not a frame" in stderr


def test_ls_agents(broker, tmp_path):
    ns = f"ns{uuid.uuid4().hex[:8]}"
    env = env_for(EDGE_BROKER=str(broker.url), EDGE_NAMESPACE=ns, EDGE_AGENT_ID="cli-agent",
                  EDGE_DATA_DIR=str(tmp_path))
    agent = subprocess.Popen([*EDGE, "agent"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = run(["ls", "agents"], env=env)
            if "online" in out.stdout:
                break
        header, row = out.stdout.splitlines()
        assert header.split() == ["AGENT", "STATUS", "EPOCH", "VERSION", "HOST", "TYPES", "TASKS", "CPU%", "RSS_MB"]
        assert row.split()[:3] == ["cli-agent", "online", "1"]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(10)
    out = run(["ls", "agents"], env=env)
    assert out.stdout.splitlines()[1].split()[:2] == ["cli-agent", "offline"]


SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")


def test_deploy_ls_tail_rollback_rm(broker, tmp_path):
    ns = f"ns{uuid.uuid4().hex[:8]}"
    env = env_for(EDGE_BROKER=broker.url.geturl(), EDGE_NAMESPACE=ns, EDGE_DATA_DIR=str(tmp_path / "ctl"))
    agent = subprocess.Popen([*EDGE, "agent", "--tasks", SAMPLES], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             env={**env, "EDGE_AGENT_ID": "worker", "EDGE_DATA_DIR": str(tmp_path / "agent")})
    try:
        spec = tmp_path / "graph.yaml"
        spec.write_text("id: demo\ntasks:\n  - {id: count, type: counter, config: {interval_ms: 20}}\n"
                        "  - {id: double, type: scale}\nedges:\n  - {from: count.out, to: double.in}\n")
        deadline = time.monotonic() + 20
        while not any(line.split()[:1] == ["scale"] and "worker" in line
                      for line in run(["ls", "types"], env=env).stdout.splitlines()):
            assert time.monotonic() < deadline  # the catalog, not only the birth, has arrived
        out = run(["deploy", str(spec), "--dry-run"], env=env)
        assert "would deploy demo version 1" in out.stdout
        assert [line.split() for line in out.stdout.splitlines()[2:]] == [["count", "counter", "worker"],
                                                                          ["double", "scale", "worker"]]
        assert "demo" not in run(["ls", "deployments"], env=env).stdout  # a dry run publishes nothing
        assert "deployed demo version 1" in run(["deploy", str(spec)], env=env).stdout
        tail = run(["tail", "demo/double.out", "--count", "2", "--json", "--duration", "15"], env=env)
        values = [json.loads(line)["value"] for line in tail.stdout.splitlines()]
        assert len(values) == 2 and all(v % 2 == 0 for v in values)
        types = run(["ls", "types"], env=env).stdout
        assert any(line.split()[:4] == ["scale", "in", "out", "worker"] for line in types.splitlines())
        deadline = time.monotonic() + 15
        while "2/2" not in (deps := run(["ls", "deployments"], env=env).stdout):
            assert time.monotonic() < deadline
        assert deps.splitlines()[1].split()[:4] == ["demo", "1", "2", "2/2"]
        tasks = run(["ls", "tasks"], env=env).stdout.splitlines()
        assert tasks[1].split()[:4] == ["demo/count", "counter", "worker", "running"]
        spec.write_text(spec.read_text().replace("type: scale}", "type: scale, config: {factor: 3}}"))
        assert "deployed demo version 2" in run(["deploy", str(spec)], env=env).stdout
        assert run(["rollback", "demo", "--list"], env=env).stdout.split() == ["v1", "v2", "(deployed)"]
        out = run(["rollback", "demo"], env=env)
        assert "version 3 is the content of an earlier version" in out.stdout
        assert "removed demo" in run(["rm", "demo"], env=env).stdout
        bad = tmp_path / "bad.yaml"
        bad.write_text("id: other\ntasks:\n  - {id: x, type: no_such_type}\n  - {id: y, type: scale}\n"
                       "edges:\n  - {from: y.nope, to: x.in}\n")
        out = run(["deploy", str(bad)], env=env, check=False)
        assert out.returncode == 1
        assert "task 'x': unknown task type 'no_such_type'" in out.stderr
        assert "y.nope: task type 'scale' has no output 'nope' (it has: out)" in out.stderr
    finally:
        agent.terminate()
        agent.wait(10)


@pytest.mark.parametrize("kind", ["embedded", "mosquitto"])
def test_broker_command_runs_and_stops(kind, tmp_path):
    port = free_port()
    env = env_for(EDGE_BROKER=kind, EDGE_BROKER_PORT=str(port), EDGE_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen([*EDGE, "broker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening at mqtt://127.0.0.1:{port}" in line
        client_env = env_for(EDGE_BROKER=f"mqtt://127.0.0.1:{port}")
        run(["pub", "x/y", "1"], env=client_env)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.communicate(timeout=5)


def test_up_starts_broker_agent_and_panel(tmp_path):
    mqtt_port, http_port = free_port(), free_port()
    env = env_for(EDGE_BROKER_PORT=str(mqtt_port), EDGE_CONTROLLER_PORT=str(http_port),
                  EDGE_DATA_DIR=str(tmp_path), EDGE_AGENT_ID="up-agent", EDGE_BROKER="embedded")
    proc = subprocess.Popen([*EDGE, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        page = wait_http(f"http://127.0.0.1:{http_port}/", timeout=30)
        assert "edgetasks" in page
        client_env = env_for(EDGE_BROKER=f"mqtt://127.0.0.1:{mqtt_port}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = run(["ls", "agents"], env=client_env)
            if "up-agent" in out.stdout and "online" in out.stdout:
                break
        assert "up-agent" in out.stdout and "online" in out.stdout
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        proc.kill()
        stdout, stderr = proc.communicate(timeout=5)
    assert f"panel     http://127.0.0.1:{http_port}" in stdout
    assert "Traceback" not in stderr
