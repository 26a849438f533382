"""Every file in examples/ runs as a user runs it, against a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from _http import wait_http

from edge.broker import free_port

EXAMPLES = Path(__file__).parents[2] / "examples"
TESTED = {"pubsub.py", "fn_task.py", "peer.py", "server.py"}


def python(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_") and k not in ("DATA_DIR", "NODE_NAME")}
    return {**env, **extra}


def test_every_example_is_tested_here():
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


def test_pubsub_prints_what_it_published(broker):
    out = python(str(EXAMPLES / "pubsub.py"), str(broker.url))
    assert out.returncode == 0, out.stderr[-3000:]
    values = [line.rsplit("value=", 1)[1] for line in out.stdout.splitlines()]
    assert values == ["20.0", "20.1", "20.2", "20.3", "20.4"]


def test_fn_task_example_runs(broker):
    out = python(str(EXAMPLES / "fn_task.py"), str(broker.url))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr


def test_peer_joins_and_leaves_cleanly(broker, tmp_path):
    agent_id = f"peer-{uuid.uuid4().hex[:6]}"
    out = python(str(EXAMPLES / "peer.py"), str(broker.url), "--id", agent_id, "--seconds", "1",
                 env=clean_env(DATA_DIR=str(tmp_path)))
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"agent {agent_id} online at {broker.url}" in out.stdout


def test_server_with_a_peer(tmp_path):
    assert "DATA_DIR" in python(str(EXAMPLES / "server.py"), "--help").stdout
    port, http_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, str(EXAMPLES / "server.py"), "--port", str(port), "--http-port",
                               str(http_port)], env=clean_env(DATA_DIR=str(tmp_path / "server"), NODE_NAME="srv"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "edgetasks" in wait_http(f"http://127.0.0.1:{http_port}/", timeout=30)
        assert (tmp_path / "server" / "agents" / "srv" / "epoch").exists()  # DATA_DIR honoured
        peer = python(str(EXAMPLES / "peer.py"), f"mqtt://127.0.0.1:{port}", "--id", "pi-2", "--seconds", "1",
                      env=clean_env(DATA_DIR=str(tmp_path / "peer")))
        assert peer.returncode == 0, peer.stderr[-3000:]
        ls = subprocess.run([sys.executable, "-m", "edge", "ls", "agents"], capture_output=True, text=True,
                            timeout=30, check=True, env=clean_env(EDGE_BROKER=f"mqtt://127.0.0.1:{port}"))
        rows = {line.split()[0]: line.split()[1] for line in ls.stdout.splitlines()[1:]}
        assert rows == {"srv": "online", "pi-2": "offline"}
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
    finally:
        server.kill()
        _, stderr = server.communicate(timeout=10)
    assert "Traceback" not in stderr
