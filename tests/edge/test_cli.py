"""The ``edge`` command, run as a user runs it: in its own process, against real brokers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    tail = subprocess.Popen([*EDGE, "tail", topic + "/#", "--count", "5", "--json", "--duration", "20"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stderr is not None
        assert "tailing" in tail.stderr.readline()  # subscribed before we publish
        run(["pub", topic + "/n", "21.5"], env=env)
        run(["pub", topic + "/s", "hello world"], env=env)
        run(["pub", topic + "/l", "[1, 2, 3]", "--retain"], env=env)
        run(["pub", topic + "/raw", "not cbor", "--raw"], env=env)
        run(["pub", topic + "/t", "42", "--text"], env=env)
        stdout, _ = tail.communicate(timeout=20)
    finally:
        tail.kill()
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [(d["topic"].rsplit("/", 1)[1], d["format"], d["value"]) for d in lines] == [
        ("n", "frame", 21.5), ("s", "frame", "hello world"), ("l", "frame", [1, 2, 3]),
        ("raw", "text", "not cbor"), ("t", "frame", "42")]
    frames = [d for d in lines if d["format"] == "frame"]
    assert all(d["seq"] == 0 and d["ts"] > 1.7e12 and d["time"].startswith("20") for d in frames)
    assert lines[3]["ts"] is None and lines[3]["seq"] is None


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
        out = run_into_closed_pipe(["deploy", str(spec), "--dry-run"], env=env)  # `edge deploy … | head -1`
        assert (out.returncode, out.stderr) == (141, "")
        described = run(["describe", "scale"], env=env).stdout.splitlines()
        assert ["factor", "number", ">0", "2.0"] in [line.split() for line in described]
        assert ["worker", "online", "yes"] in [line.split() for line in described]
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
        assert int(tasks[1].split()[5]) > 0  # OUT: the counter's frames so far, from its agent's full metrics batch
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


# -- one line for a user's mistake ---------------------------------------------------------------
def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr, ``edge: ...``, and nothing on stdout."""
    assert out.returncode == 1, out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("edge: "), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    return out.stderr


def test_unreadable_specs_are_one_line_errors(mosquitto_broker, tmp_path):
    env = env_for(EDGE_BROKER=str(mosquitto_broker.url), EDGE_DATA_DIR=str(tmp_path))
    (tmp_path / "flow.yaml").write_text("id: [demo\ntasks: []\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00id: demo")
    (tmp_path / "fields.yaml").write_text("tasks: 3\n")
    cases = {
        ("deploy", "nosuch.yaml"): "cannot read nosuch.yaml: No such file or directory",
        ("deploy", str(tmp_path)): f"cannot read {tmp_path}: Is a directory",
        ("deploy", "flow.yaml"): "not valid YAML or JSON: line 2, column 6: expected ',' or ']'",
        ("deploy", "binary.yaml"): "utf-8",  # not UTF-8 text: whichever words say so
        ("deploy", "--dry-run", "nosuch.json"): "cannot read nosuch.json",
        ("acl", "--agents", "a", "--spec", "nosuch.yaml"): "cannot read nosuch.yaml",
        ("tail", "a/#/b"): "'#' must be the whole last level",
        ("tail", "de mo/task.out"): "invalid deployment id 'de mo'",
        ("pub", "a/+", "1"): "must not contain the wildcards",
        ("rm", "a b"): "invalid deployment id 'a b'",
        ("rollback", "nothing-here"): "no earlier version of 'nothing-here'",
    }
    for args, message in cases.items():
        out = subprocess.run([*EDGE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert message.lower() in one_line_error(out).lower(), (args, out.stderr)
    out = run(["deploy", str(tmp_path / "fields.yaml")], env=env, check=False)  # every problem: one per line
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "id: Field required" in out.stderr and "tasks: Input should be a valid list" in out.stderr
    for args in (["ls", "--timeout", "-1"], ["pub", "a/b", "1", "--timeout", "soon"]):
        out = run(args, env=env, check=False)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "--timeout" in out.stderr


def test_an_unusable_data_dir_is_one_line(mosquitto_broker, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    env = env_for(EDGE_BROKER=str(mosquitto_broker.url), EDGE_DATA_DIR=str(tmp_path / "file" / "data"))
    for args in (["agent"], ["up"]):  # before: an agent logged a traceback at each reconnect, forever
        assert "EDGE_DATA_DIR" in one_line_error(run(args, env=env, check=False))
    out = run(["acl", "--agents", "a"], env=env, check=False)
    assert "Not a directory" in one_line_error(out)


def test_unreachable_broker_is_one_line_not_a_retry_log():
    env = env_for(EDGE_BROKER=f"mqtt://127.0.0.1:{free_port()}")
    commands = (["pub", "a/b", "1"], ["ls", "tasks"], ["tail", "a/#"], ["describe", "scale"], ["deploy", "nosuch.yaml"])
    with ThreadPoolExecutor(len(commands)) as pool:  # side by side: each waits out its own 1.5 s
        outs = list(pool.map(lambda args: run([*args, "--timeout", "1.5"], env=env, check=False), commands))
    for args, out in zip(commands, outs, strict=True):  # ~4 attempts in 1.5 s each
        if args[0] == "deploy":
            assert "cannot read" in one_line_error(out)  # the file is read before the broker is asked
        else:
            assert "could not connect" in one_line_error(out) and "retrying" not in out.stderr


def test_an_agent_still_warns_of_each_failed_connect(tmp_path):
    env = env_for(EDGE_BROKER=f"mqtt://127.0.0.1:{free_port()}", EDGE_DATA_DIR=str(tmp_path))
    agent = subprocess.Popen([*EDGE, "agent"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert agent.stderr is not None
        warnings = []
        for line in agent.stderr:  # bounded by the test's timeout; the agent retries forever
            if "WARNING" in line and "retrying" in line:
                warnings.append(line)
                if len(warnings) == 2:
                    break
    finally:
        agent.terminate()
        agent.communicate(timeout=10)
    assert len(warnings) == 2


# -- a closed pipe -------------------------------------------------------------------------------
def run_into_closed_pipe(args: list[str], *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run with a stdout whose reader has already gone, as `edge … | head -1` becomes once head is done."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([*EDGE, *args], env=env, stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=30)
    finally:
        os.close(write)


def test_a_closed_pipe_ends_ls_and_tail_quietly(mosquitto_broker):
    env = env_for(EDGE_BROKER=str(mosquitto_broker.url), EDGE_NAMESPACE=f"ns{uuid.uuid4().hex[:8]}")
    out = run_into_closed_pipe(["ls", "tasks"], env=env)
    assert (out.returncode, out.stderr) == (141, "")
    topic = f"test/cli/{uuid.uuid4().hex[:8]}"
    read, write = os.pipe()
    os.close(read)
    tail = subprocess.Popen([*EDGE, "tail", topic, "--duration", "20"], env=env, stdout=write,
                            stderr=subprocess.PIPE, text=True)
    os.close(write)
    try:
        assert tail.stderr is not None
        assert "tailing" in tail.stderr.readline()
        run(["pub", topic, "1"], env=env)
        assert tail.wait(20) == 141
    finally:
        tail.kill()
        _, stderr = tail.communicate(timeout=10)
    assert stderr == ""


# -- a fleet published by hand: agents, catalogs, a deployment and its statuses ------------------
LONG_ERROR = ("ValueError: the formula 'a * (1.8 +' does not parse: unexpected end of input at column 12; "
              "expected a number, a variable (a, b, c, d, x, y, z, w) or '(' — see docs/tasks.md#calculator "
              "for the grammar, and the last line: END")
GAUGE = {
    "name": "gauge", "label": "Gauge", "description": "Show a number on a dial.",
    "inputs": {"in": {"content": "number"}},
    "outputs": {"view": {"content": "video", "codec": "raw", "width": 320, "height": 240}},
    "config_schema": {
        "properties": {
            "low": {"default": 0.0, "description": "the dial's lowest value", "type": "number"},
            "steps": {"default": 10, "description": "ticks on the dial", "maximum": 100, "minimum": 1,
                      "type": "integer"},
            "unit": {"anyOf": [{"maxLength": 8, "type": "string"}, {"type": "null"}], "default": None,
                     "description": "shown under the value"},
            "style": {"default": "round", "enum": ["round", "bar"], "description": "dial or bar",
                      "type": "string"},
            "label": {"description": "the dial's title", "type": "string"},
        },
        "required": ["label"], "title": "GaugeConfig", "type": "object"},
    "config_default": None, "available": True,
}


def publish_agents(url: str, ns: str, count: int) -> None:
    """The retained births of ``count`` agents lab-1, lab-2 … in namespace ``ns``."""
    from edge.bus import Bus
    from edge.frames import encode_value, now_ms
    from edge.topics import Topics

    async def main() -> None:
        async with Bus(url) as bus:
            for n in range(1, count + 1):
                state = encode_value({"epoch": 1, "online": True, "ts": now_ms()})
                await bus.publish(Topics(ns).agent_state(f"lab-{n}"), state, qos=1, retain=True)

    asyncio.run(main())


def publish_fleet(url: str, ns: str) -> None:
    """Agents lab-1 (online, offers gauge), lab-2 (offline, offers gauge) and lab-3 (gauge unavailable);
    deployment demo with a failed task whose error is long, and a task with no status yet."""
    from edge.bus import Bus
    from edge.frames import encode_value, now_ms
    from edge.graph import encode_spec, parse_spec
    from edge.topics import Topics

    topics = Topics(ns)

    async def main() -> None:
        async with Bus(url) as bus:
            for agent, online in (("lab-1", True), ("lab-2", False), ("lab-3", True)):
                state = {"epoch": 1, "online": online, "ts": now_ms(), "version": "9.9", "host": {"name": agent},
                         "metrics": {"cpu_percent": 1.5, "rss_mb": 60.0}}
                await bus.publish(topics.agent_state(agent), encode_value(state), qos=1, retain=True)
                entry = GAUGE if agent != "lab-3" else {**GAUGE, "available": False, "reason": "no module pygame"}
                await bus.publish(topics.agent_catalog(agent), encode_value({"types": [entry]}), qos=1, retain=True)
            spec = parse_spec({"id": "demo", "tasks": [{"id": "dial", "type": "gauge", "agent": "lab-1",
                                                         "config": {"label": "t"}},
                                                        {"id": "spare", "type": "gauge", "agent": "lab-1",
                                                         "config": {"label": "u"}}]})
            await bus.publish(topics.deployment("demo"), encode_spec(spec), qos=1, retain=True)
            status = {"state": "failed", "agent": "lab-1", "type": "gauge", "version": 1, "ts": now_ms(),
                      "restarts": 3, "error": LONG_ERROR,
                      "metrics": {"inputs": {"in": {"frames": 7}}, "outputs": {"view": {"frames": 5}}, "dropped": 2}}
            await bus.publish(topics.task_status("demo", "dial"), encode_value(status), qos=1, retain=True)

    asyncio.run(main())


@pytest.fixture
def fleet_env(mosquitto_broker, tmp_path) -> dict[str, str]:
    ns = f"ns{uuid.uuid4().hex[:8]}"
    publish_fleet(str(mosquitto_broker.url), ns)
    return env_for(EDGE_BROKER=str(mosquitto_broker.url), EDGE_NAMESPACE=ns, EDGE_DATA_DIR=str(tmp_path))


def test_ls_tasks_shows_the_whole_error(fleet_env):
    out = run(["ls", "tasks"], env=fleet_env).stdout.splitlines()
    assert out[0].split() == ["TASK", "TYPE", "AGENT", "STATE", "IN", "OUT", "DROPPED", "LOST", "ERROR"]
    assert out[1].startswith("demo/dial") and out[1].endswith(LONG_ERROR)  # in a pipe: whole, on its row
    assert out[1].split()[4:7] == ["7", "5", "2"]
    assert out[2].split()[:3] == ["demo/spare", "gauge", "lab-1"]


def test_ls_tasks_wraps_the_error_to_the_terminal(fleet_env):
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([*EDGE, "ls", "tasks"], env={**fleet_env, "COLUMNS": "100", "LINES": "40"},
                                stdout=follower, stderr=subprocess.DEVNULL)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command has exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(30) == 0
    finally:
        os.close(leader)
    lines = b"".join(chunks).decode().splitlines()
    assert all(len(line) <= 100 for line in lines), lines
    column = lines[0].index("ERROR")
    dial = next(i for i, line in enumerate(lines) if line.startswith("demo/dial"))
    wrapped = [lines[dial][column:]] + [line[column:] for line in lines[dial + 1:] if line.startswith(" " * column)]
    assert len(wrapped) > 1 and " ".join(wrapped) == LONG_ERROR


def test_ls_json_for_every_kind(fleet_env):
    from edge.documents import AgentList, DeploymentList, TaskList, TypeList

    models = {"agents": AgentList, "types": TypeList, "deployments": DeploymentList, "tasks": TaskList}

    def ls(what: str) -> list[dict]:
        stdout = run(["ls", what, "--json"], env=fleet_env).stdout
        document = json.loads(stdout)
        assert document["namespace"] == fleet_env["EDGE_NAMESPACE"] and list(document) == ["namespace", what]
        parsed = models[what].model_validate_json(stdout)  # a reader in Python parses it through its model
        assert [row.model_dump() for row in getattr(parsed, what)] == document[what]
        return document[what]

    agents = ls("agents")
    assert [(a["id"], a["online"]) for a in agents] == [("lab-1", True), ("lab-2", False), ("lab-3", True)]
    assert set(agents[0]) == {"id", "online", "epoch", "version", "ts", "host", "types", "catalog_problem", "tasks",
                              "cpu_percent", "rss_mb"}
    assert agents[0]["catalog_problem"] is None
    assert (agents[0]["types"], agents[0]["tasks"], agents[0]["cpu_percent"]) == (["gauge"], 2, 1.5)
    assert agents[2]["types"] == []  # lab-3 cannot run gauge
    [gauge] = ls("types")
    assert set(gauge) == {"name", "label", "description", "inputs", "outputs", "agents", "available", "reason"}
    assert gauge["agents"] == ["lab-1", "lab-2"] and gauge["outputs"]["view"]["width"] == 320
    [demo] = ls("deployments")
    assert demo == {"id": "demo", "version": 1, "label": "", "tasks": 2, "running": 0,
                    "notes": ["1 failing", "1 pending"], "states": {"failed": 1, "pending": 1}}
    dial, spare = ls("tasks")
    assert set(dial) == {"deployment", "task", "type", "agent", "state", "shown", "restarts", "ts", "error",
                         "notice", "frames_in", "frames_out", "dropped", "lost", "duplicates"}
    assert (dial["task"], dial["state"], dial["error"], dial["restarts"], dial["frames_in"]) == (
        "dial", "failed", LONG_ERROR, 3, 7)
    assert (spare["state"], spare["error"], spare["ts"]) == ("pending", None, None)


def test_describe_a_type(fleet_env):
    text = run(["describe", "gauge"], env=fleet_env).stdout
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert text.startswith("gauge (Gauge)\nShow a number on a dial.\n")
    assert rows["in"].split()[1:] == ["content=number"]
    assert rows["view"].split()[1:] == ["content=video", "codec=raw", "width=320", "height=240"]
    assert rows["low"].split() == ["low", "number", "0.0", "the", "dial's", "lowest", "value"]
    assert rows["steps"].split()[1:4] == ["integer", "1..100", "10"]
    assert rows["unit"].split()[1:7] == ["string", "length", "0..8", "or", "null", "null"]
    assert rows["style"].split()[1:5] == ["one", "of", '"round"|"bar"', '"round"']
    assert rows["label"].split()[1:3] == ["string", "(required)"]
    assert rows["lab-1"].split() == ["lab-1", "online", "yes"]
    assert rows["lab-2"].split() == ["lab-2", "offline", "yes"]
    assert rows["lab-3"].split() == ["lab-3", "online", "no:", "no", "module", "pygame"]
    described = run(["describe", "gauge", "--json"], env=fleet_env).stdout
    document = json.loads(described)
    from edge.documents import TypeDescription

    assert TypeDescription.model_validate_json(described).dump() == document  # what it wrote is its model's
    assert document["outputs"] == GAUGE["outputs"]
    assert document["config"][1] == {"name": "steps", "type": "integer 1..100", "required": False, "default": 10,
                                     "description": "ticks on the dial"}
    assert "default" not in document["config"][4]  # label: required, no default
    assert [(a["agent"], a["online"], a["available"]) for a in document["agents"]] == [
        ("lab-1", True, True), ("lab-2", False, True), ("lab-3", True, False)]
    out = run(["describe", "guage"], env=fleet_env, check=False)
    assert "unknown task type 'guage' (did you mean gauge?)" in one_line_error(out)


@pytest.fixture
def own_mosquitto(tmp_path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Mosquitto of this test alone (its URL and process): one it may stop, or whose namespaces it knows."""
    from edge.broker import find_mosquitto
    from edge.broker.ports import wait_for_port

    executable = find_mosquitto()
    assert executable is not None, "install Mosquitto: apt-get install -y mosquitto"
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([executable, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert asyncio.run(wait_for_port("127.0.0.1", port, timeout=10, alive=lambda: proc.poll() is None))
        yield f"mqtt://127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def test_wrong_namespace_names_the_ones_with_agents(own_mosquitto, tmp_path):
    url, _ = own_mosquitto
    for n in range(7):  # namespaces with 7, 6 … 1 agents, more than the hint names
        publish_agents(url, f"lab{n}", 7 - n)
    env = env_for(EDGE_BROKER=url, EDGE_DATA_DIR=str(tmp_path))
    out = run(["--namespace", "nosuch", "ls", "agents"], env=env)
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"no agents found in namespace 'nosuch' on {url}; agents exist in namespace lab0 (7 agents), "
        "lab1 (6 agents), lab2 (5 agents), lab3 (4 agents), lab4 (3 agents) and 2 more: set EDGE_NAMESPACE "
        "(or --namespace) to one of them"]
    out = run(["--namespace", "nosuch", "ls", "agents", "--json"], env=env)
    assert json.loads(out.stdout) == {"namespace": "nosuch", "agents": []}
    assert "no agents found in namespace 'nosuch'" in out.stderr
    out = run(["--namespace", "lab6", "ls", "agents"], env=env)
    assert (len(out.stdout.splitlines()), out.stderr) == (2, "")  # agents found: no hint


# -- tail: what each payload is, when it was made, and a prompt exit -----------------------------
def publish_payloads(url: str, payloads: list[tuple[str, bytes]]) -> None:
    from edge.bus import Bus

    async def main() -> None:
        async with Bus(url) as bus:
            for topic, payload in payloads:
                await bus.publish(topic, payload, qos=1)

    asyncio.run(main())


def tail_of(args: list[str], payloads: list[tuple[str, bytes]], *, env: dict[str, str]) -> tuple[str, str]:
    """Start ``edge tail ARGS``, publish the payloads once it listens, and return its stdout and stderr."""
    tail = subprocess.Popen([*EDGE, "tail", *args, "--duration", "20"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stderr is not None
        assert "tailing" in tail.stderr.readline()
        publish_payloads(env["EDGE_BROKER"], payloads)
        stdout, stderr = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0 and "Traceback" not in stderr, stderr
    return stdout, stderr


TS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def test_tail_tells_text_from_numbers_and_shows_times(mosquitto_broker):
    from edge.frames import encode_frame

    base = f"test/cli/{uuid.uuid4().hex[:8]}"
    env = env_for(EDGE_BROKER=str(mosquitto_broker.url), TZ="Asia/Kolkata")  # UTC+05:30, no summer time
    payloads = [(f"{base}/number", encode_frame(42, ts=TS, seq=7)), (f"{base}/text", encode_frame("42", ts=TS)),
                (f"{base}/list", encode_frame([1, "a"], ts=TS))]
    stdout, _ = tail_of([f"{base}/#", "-n", "3"], payloads, env=env)
    assert stdout.splitlines() == [f"{base}/number  seq=7 2023-11-15T03:43:20.123  42",
                                   f'{base}/text  seq=0 2023-11-15T03:43:20.123  "42"',
                                   f'{base}/list  seq=0 2023-11-15T03:43:20.123  [1, "a"]']
    stdout, _ = tail_of([f"{base}/#", "-n", "1", "--utc"], payloads[:1], env=env)
    assert stdout == f"{base}/number  seq=7 2023-11-14T22:13:20.123Z  42\n"
    stdout, _ = tail_of([f"{base}/#", "-n", "2", "--json"], payloads[:2], env=env)
    number, text = map(json.loads, stdout.splitlines())
    assert (number["value"], number["ts"], number["time"], text["value"]) == (42, TS, "2023-11-15T03:43:20.123", "42")


def test_tail_reads_json_text_and_bytes_of_other_devices(mosquitto_broker):
    from edge.frames import encode_frame, encode_value

    base = f"test/cli/{uuid.uuid4().hex[:8]}"
    env = env_for(EDGE_BROKER=str(mosquitto_broker.url))
    payloads = [(f"{base}/json", b'{"t": 21.5}'), (f"{base}/number", b"42"), (f"{base}/text", b"door open"),
                (f"{base}/bytes", b"\xff\x00\x10"), (f"{base}/frame", encode_frame(1.5, ts=TS))]
    stdout, _ = tail_of([f"{base}/#", "-n", "5"], payloads, env=env)  # --format auto
    lines = stdout.splitlines()
    assert lines[3].startswith(f"{base}/bytes  hex  ff0010  (not a frame: malformed CBOR: ")  # and why
    assert lines[:3] + lines[4:] == [f'{base}/json  json  {{"t": 21.5}}', f"{base}/number  json  42",
                                     f'{base}/text  text  "door open"',
                                     f"{base}/frame  seq=0 {lines[4].split()[2]}  1.5"]
    stdout, stderr = tail_of([f"{base}/#", "-n", "2", "--format", "json"], payloads, env=env)
    assert stdout.splitlines() == [f'{base}/json  json  {{"t": 21.5}}', f"{base}/number  json  42"]
    stdout, stderr = tail_of([f"{base}/#", "-n", "2", "--format", "raw", "--json"],
                             [payloads[2], payloads[4]], env=env)
    text, frame = map(json.loads, stdout.splitlines())
    assert (text["format"], text["value"]) == ("text", "door open")
    assert (frame["format"], frame["value"], frame["note"]) == ("hex", encode_frame(1.5, ts=TS).hex(), None)
    # "door open" is CBOR too (0x64 'd': a text of 4 bytes): that is why auto does not guess plain CBOR
    plain = [(f"{base}/cbor", encode_value({"t": 21.5})), (f"{base}/text", b"door open"),
             (f"{base}/bytes", b"\xff\x00\x10"), (f"{base}/frame", encode_frame(1.5, ts=TS))]
    stdout, stderr = tail_of([f"{base}/#", "-n", "3", "--format", "cbor"], plain, env=env)
    assert stdout.splitlines()[:2] == [f'{base}/cbor  cbor  {{"t": 21.5}}', f'{base}/text  cbor  "oor "']
    assert stdout.splitlines()[2].startswith(f"{base}/frame  seq=0 ")
    assert f"{base}/bytes  <not cbor: " in stderr and "1 message(s) were not cbor" in stderr


def test_tail_survives_hostile_payloads(mosquitto_broker):
    import cbor2

    from edge.frames import encode_frame

    base = f"test/cli/{uuid.uuid4().hex[:8]}"
    env = env_for(EDGE_BROKER=str(mosquitto_broker.url))
    bignum = cbor2.dumps({"ts": TS, "seq": 0, "value": 7 ** 40_000})  # 33 800 digits: more than str() allows
    payloads = [(f"{base}/deep-json", b"[" * 200_000), (f"{base}/deep-cbor", b"\x81" * 200_000 + b"\x00"),
                (f"{base}/bignum", bignum), (f"{base}/esc", encode_frame("\x1b]0;owned\x07\x9b31m\x1b[2J")),
                (f"{base}/ts", cbor2.dumps({"ts": 10 ** 30, "seq": 0, "value": 1})),
                (f"{base}/end", encode_frame("end"))]
    stdout, _ = tail_of([f"{base}/#", "-n", "6"], payloads, env=env)
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines] == [f"{base}/deep-json", f"{base}/deep-cbor", f"{base}/bignum",
                                                   f"{base}/esc", f"{base}/ts", f"{base}/end"]
    assert lines[0].split()[1] == "text" and lines[0].endswith("…")
    assert "\x1b" not in stdout and "\x9b" not in stdout and "\x07" not in stdout  # (Mosquitto refuses them in topics)
    assert lines[3].endswith('"\\u001b]0;owned\\u0007\\x9b31m\\u001b[2J"')
    assert "cannot be shown" in lines[2] or lines[2].split()[1] == "hex"  # (or refused as a frame)
    # a ts beyond 64 bits is not a frame (edge.frames): shown in hex, with why
    assert lines[4].split()[1] == "hex" and "(not a frame: frame 'ts' must be an integer of 64 bits" in lines[4]
    stdout, _ = tail_of([f"{base}/#", "-n", "6", "--json"], payloads, env=env)
    assert [json.loads(line)["topic"] for line in stdout.splitlines()][-1] == f"{base}/end"


def test_tail_exits_at_once_on_sigterm_even_when_the_broker_hangs(own_mosquitto):
    url, broker = own_mosquitto
    env = env_for(EDGE_BROKER=url)
    for hung in (False, True):
        tail = subprocess.Popen([*EDGE, "tail", "a/#"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert tail.stderr is not None
            assert "tailing" in tail.stderr.readline()
            if hung:
                broker.send_signal(signal.SIGSTOP)  # alive but answering nothing, as over a dead link
            start = time.monotonic()
            tail.send_signal(signal.SIGTERM)
            assert tail.wait(15) == 0
            assert time.monotonic() - start < 2.0  # waiting for its UNSUBACK took 10 s
        finally:
            broker.send_signal(signal.SIGCONT)
            tail.kill()
            tail.communicate(timeout=10)
