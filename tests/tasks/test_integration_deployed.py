"""The integration types deployed by spec to a real agent process, fed and read by a plain paho client.

One agent (``python -m edge agent``) with a files folder, ``EDGE_ALLOW_EXEC=1``, a webhook port and a
secrets file runs a spec with every type: ``file_write`` appends what a client publishes, ``file_read``
tails that file, ``exec`` runs a command per frame, ``http_request`` posts to a server on 127.0.0.1,
``webhook_in`` turns a POST into a frame. Another runtime, without those settings, lists ``exec`` and
``webhook_in`` as unavailable and refuses their instances in one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from _agent_process import agent_process
from paho.mqtt.enums import CallbackAPIVersion

from edge.bus import Bus
from edge.frames import decode_frame, decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.builtin import TYPES
from tasks.web import TYPES as WEB_TYPES

TIMEOUT = 20.0
TOKEN = "e2e-hook-token"


class Client:
    """A plain paho client: publishes frames, collects what arrives on its subscriptions."""

    def __init__(self, url: Any) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        self.client.connect(url.host, url.port)
        self.client.loop_start()
        assert connected.wait(10), "paho did not connect"

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10)

    def publish(self, topic: str, value: Any) -> None:
        self.client.publish(topic, encode_frame(value), qos=1).wait_for_publish(10)

    async def next(self, topic: str, timeout: float = TIMEOUT) -> Any:
        """The value of the next frame on ``topic`` (others are put back at the end)."""
        deadline = time.monotonic() + timeout
        others = []
        try:
            while time.monotonic() < deadline:
                try:
                    got, payload = await asyncio.to_thread(self.messages.get, True, 0.2)
                except queue.Empty:
                    continue
                if got == topic:
                    return decode_frame(payload).value
                others.append((got, payload))
            raise AssertionError(f"nothing on {topic} within {timeout} s")
        finally:
            for item in others:
                self.messages.put(item)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        data = json.dumps({"got": json.loads(body), "auth": self.headers.get("authorization")}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _spec(ns: str, server: str) -> dict[str, Any]:
    def t(task_id: str, type_: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"id": task_id, "type": type_, "agent": "io", "config": config}

    probe = "import sys; print(sys.argv[1].upper())"
    return {"id": "io", "tasks": [
        t("log", "file_write", {"path": "logs/values.jsonl", "flush_ms": 10}),
        t("tail", "file_read", {"path": "logs/values.jsonl", "format": "jsonl", "follow": True, "poll_ms": 20}),
        t("run", "exec", {"command": [sys.executable, "-c", probe, "{value}"], "timeout_s": 10}),
        t("post", "http_request", {"url": f"{server}/ingest", "headers": {"Authorization": {"$secret": "api"}}}),
        t("hook", "webhook_in", {"path": "/door", "token": {"$secret": "hook"}}),
    ], "edges": [
        {"from": f"topic:e2e/{ns}/log", "to": "log.in"},
        {"from": "tail.out", "to": f"topic:e2e/{ns}/tail"},
        {"from": f"topic:e2e/{ns}/run", "to": "run.in"},
        {"from": "run.out", "to": f"topic:e2e/{ns}/ran"},
        {"from": f"topic:e2e/{ns}/post", "to": "post.in"},
        {"from": "post.out", "to": f"topic:e2e/{ns}/posted"},
        {"from": "hook.out", "to": f"topic:e2e/{ns}/hooked"},
    ]}


async def _statuses(url: Any, topics: Topics, tasks: list[str], want: str) -> dict[str, dict[str, Any]]:
    """The statuses of ``tasks`` of deployment io once each is in state ``want``."""
    found: dict[str, dict[str, Any]] = {}
    async with Bus(str(url)) as bus, bus.subscribe(f"{topics.deployment('io')}/status/+") as sub:
        try:
            async with asyncio.timeout(TIMEOUT):
                while set(found) != set(tasks) or any(s["state"] != want for s in found.values()):
                    message = await sub.get()
                    if message.payload:
                        found[message.topic.rsplit("/", 1)[1]] = decode_value(message.payload)
        except TimeoutError:
            raise AssertionError(f"not all {want}: {found}") from None
    return found


async def _listening(port: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def test_every_integration_type_deployed_to_an_agent_process(broker, tmp_path: Path, free_port: int,
                                                                   echo_server: str) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    files = tmp_path / "files"
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f"hook: {TOKEN}\napi: Bearer api-key-1\n")
    secrets.chmod(0o600)
    env = {**os.environ, "EDGE_BROKER": str(broker.url), "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "io",
           "EDGE_DATA_DIR": str(tmp_path / "data"), "EDGE_FILES_DIR": str(files), "EDGE_SECRETS_FILE": str(secrets),
           "EDGE_ALLOW_EXEC": "1", "EDGE_WEBHOOK_PORT": str(free_port),
           # the web entry point's types, also where the package was installed before it had one
           "EDGE_TASKS": "tasks.web,tasks.webhook"}
    client = Client(broker.url)
    try:
        with agent_process(env, tmp_path / "agent.log"):
            for name in ("tail", "ran", "posted", "hooked"):
                client.subscribe(f"e2e/{ns}/{name}")
            async with Bus(str(broker.url)) as bus:
                await bus.publish(topics.deployment("io"), encode_spec(parse_spec(_spec(ns, echo_server))), qos=1,
                                  retain=True)
            statuses = await _statuses(broker.url, topics, ["log", "tail", "run", "post", "hook"], "running")
            assert all(s["error"] is None for s in statuses.values()), statuses

            client.publish(f"e2e/{ns}/log", {"t": 21.5})  # file_write appends it; file_read tails it back
            client.publish(f"e2e/{ns}/log", [1, "two"])
            tailed = [await client.next(f"e2e/{ns}/tail"), await client.next(f"e2e/{ns}/tail")]
            assert tailed == [{"t": 21.5}, [1, "two"]]
            assert (files / "logs" / "values.jsonl").read_text() == '{"t":21.5}\n[1,"two"]\n'

            client.publish(f"e2e/{ns}/run", "hello; rm -rf /")
            ran = await client.next(f"e2e/{ns}/ran")
            assert ran["exit_code"] == 0 and ran["stdout"] == "HELLO; RM -RF /\n"

            client.publish(f"e2e/{ns}/post", {"reading": 3})
            posted = await client.next(f"e2e/{ns}/posted")
            assert posted["status"] == 201 and posted["body"] == {"got": {"reading": 3}, "auth": "Bearer api-key-1"}

            await _listening(free_port)  # the task is running; its server listens a moment later
            async with httpx.AsyncClient(trust_env=False) as http:
                url = f"http://127.0.0.1:{free_port}/door"
                assert (await http.post(url, json={"open": 1})).status_code == 401
                assert (await http.post(url, json={"open": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
                        ).status_code == 202
            assert await client.next(f"e2e/{ns}/hooked") == {"open": 1}
    finally:
        client.close()


async def test_without_the_settings_exec_and_webhook_in_are_unavailable_and_refused(
        broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_ALLOW_EXEC", raising=False)
    monkeypatch.delenv("EDGE_WEBHOOK_PORT", raising=False)
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="io", data_dir=tmp_path)
    spec = {"id": "io", "tasks": [
        {"id": "run", "type": "exec", "agent": "io", "config": {"command": ["true"]}},
        {"id": "hook", "type": "webhook_in", "agent": "io", "config": {"token": "$secret:hook"}}], "edges": []}
    async with Bus(str(broker.url)) as bus, \
            Host(settings, types=[*TYPES, *WEB_TYPES], persist=False, status_interval=0.1) as host:
        catalog = {e["name"]: e for e in host.catalog()}
        assert catalog["exec"]["available"] is False and "EDGE_ALLOW_EXEC=1" in catalog["exec"]["reason"]
        assert catalog["webhook_in"]["available"] is False and "EDGE_WEBHOOK_PORT" in catalog["webhook_in"]["reason"]
        await bus.publish(topics.deployment("io"), encode_spec(parse_spec(spec)), qos=1, retain=True)
        statuses = await _statuses(broker.url, topics, ["run", "hook"], "invalid")
    assert statuses["run"]["error"] == ("task type 'exec' is unavailable on agent io: exec is off on this agent: "
                                        "start it with EDGE_ALLOW_EXEC=1 to let specs run commands (docs/security.md)")
    assert "\n" not in statuses["hook"]["error"] and "webhook_in is off" in statuses["hook"]["error"]
