"""http_request against a local HTTP server, and webhook_in's server, in-process (edge.testing); loopback only."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from edge.errors import ConfigError
from edge.host import Host
from edge.settings import load_settings
from edge.testing import run_task
from tasks import webhook
from tasks.web import HttpRequest, WebhookIn, decode_body

# -- a local server for http_request ----------------------------------------------------------------
RELEASE = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path == "/slow":
            RELEASE.wait(10)
        if path == "/big":
            self._send(200, b"x" * 3_000_000, "application/octet-stream")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            for _ in range(100):
                if RELEASE.wait(0.05):
                    break
                self.wfile.write(b"x")
                self.wfile.flush()
        elif path == "/text":
            self._send(200, "héllo".encode(), "text/plain; charset=utf-8")
        elif path == "/bytes":
            self._send(200, b"\x00\x01", "application/octet-stream")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b'{"error": "nope"}', "application/json")
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            echo = {"method": self.command, "path": self.path, "headers": headers,
                    "body": body.decode("utf-8", "replace")}
            self._send(200, json.dumps(echo).encode(), "application/json")

    def _send(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    RELEASE.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _released() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


async def test_posts_the_value_as_json_and_sends_the_response(server: str) -> None:
    config = {"url": f"{server}/echo", "headers": {"Authorization": "Bearer abc"}, "query": {"q": "1"}}
    async with run_task(HttpRequest, config) as run:
        await run.feed("in", {"temp": 21.5}, ts=1234)
        frame = await run.next("out")
    assert frame.ts == 1234 and frame.value["status"] == 200
    assert frame.value["headers"]["content-type"] == "application/json"
    echo = frame.value["body"]
    assert echo["method"] == "POST" and echo["path"] == "/echo?q=1" and json.loads(echo["body"]) == {"temp": 21.5}
    assert echo["headers"]["authorization"] == "Bearer abc" and echo["headers"]["content-type"] == "application/json"


async def test_text_bytes_and_no_body_for_get(server: str) -> None:
    async with run_task(HttpRequest, {"url": f"{server}/echo", "method": "PUT"}) as run:
        await run.feed("in", "plain")
        echo = (await run.next("out")).value["body"]
        assert echo["body"] == "plain" and echo["headers"]["content-type"] == "text/plain; charset=utf-8"
    async with run_task(HttpRequest, {"url": f"{server}/echo", "method": "GET"}) as run:
        await run.feed("in", {"ignored": True})
        echo = (await run.next("out")).value["body"]
        assert echo["method"] == "GET" and echo["body"] == "" and "content-type" not in echo["headers"]


async def test_the_response_is_decoded_by_its_content_type(server: str) -> None:
    async with run_task(HttpRequest, {"url": f"{server}/text", "method": "GET"}) as run:
        await run.feed("in", None)
        assert (await run.next("out")).value["body"] == "héllo"
    async with run_task(HttpRequest, {"url": f"{server}/bytes", "method": "GET"}) as run:
        await run.feed("in", None)
        assert (await run.next("out")).value["body"] == b"\x00\x01"
    async with run_task(HttpRequest, {"url": f"{server}/status/503", "method": "GET"}) as run:
        await run.feed("in", None)
        assert (await run.next("out")).value["status"] == 503  # an answer, not an error
    assert decode_body(b"{bad", "application/json") == b"{bad"
    assert decode_body(b"\xff", "text/plain") == b"\xff"


async def test_the_frame_may_set_url_method_headers_and_body(server: str) -> None:
    async with run_task(HttpRequest, {"url": f"{server}/default", "from_frame": "request"}) as run:
        await run.feed("in", {"url": f"{server}/other", "method": "DELETE", "headers": {"X-A": "1"},
                              "query": {"k": "v"}})
        echo = (await run.next("out")).value["body"]
        assert (echo["method"], echo["path"], echo["headers"]["x-a"]) == ("DELETE", "/other?k=v", "1")
        for bad in [1, {"url": "file:///etc/passwd"}, {"method": "TRACE"}, {"headers": {"a": 1}}]:
            await run.feed("in", bad)
            assert (await run.next("error")).value["kind"] == "value"
        assert run.task.in_metrics["in"].errors == 4


async def test_timeouts_refusals_and_large_responses_are_error_frames(server: str, free_port: int) -> None:
    async with run_task(HttpRequest, {"url": f"{server}/slow", "timeout_s": 0.3, "max_in_flight": 1}) as run:
        await run.feed("in", 1)
        error = (await run.next("error")).value
        assert error["kind"] == "timeout" and error["error"].startswith(f"POST {server}")
    RELEASE.set()
    RELEASE.clear()
    async with run_task(HttpRequest, {"url": f"{server}/drip", "timeout_s": 0.5, "method": "GET"}) as run:
        started = time.monotonic()
        await run.feed("in", 1)
        assert (await run.next("error")).value["kind"] == "timeout"  # over the whole exchange, not per read
        assert time.monotonic() - started < 3
    async with run_task(HttpRequest, {"url": f"http://127.0.0.1:{free_port}/", "method": "GET"}) as run:
        await run.feed("in", 1)
        assert (await run.next("error")).value["kind"] == "connect"
    async with run_task(HttpRequest, {"url": f"{server}/big", "method": "GET", "max_response_bytes": 1000}) as run:
        await run.feed("in", 1)
        error = (await run.next("error")).value
        assert error["kind"] == "too_large" and "1000" in error["error"]
        assert run.task.in_metrics["in"].errors == 1


async def test_an_error_does_not_repeat_the_url_beyond_its_host(server: str) -> None:
    async with run_task(HttpRequest, {"url": f"{server}/status/200?key=SECRETKEY", "timeout_s": 5,
                                      "max_response_bytes": 1}) as run:
        await run.feed("in", 1)
        error = (await run.next("error")).value
    assert "SECRETKEY" not in error["error"] and server in error["error"]


async def test_at_most_max_in_flight_requests(server: str) -> None:
    async with run_task(HttpRequest, {"url": f"{server}/slow", "max_in_flight": 2, "timeout_s": 10}) as run:
        for _ in range(5):
            await run.feed("in", 1)
        await until_true(lambda: run.task.in_metrics["in"].frames >= 3)
        await asyncio.sleep(0.3)  # time for more to start, if the bound did not hold
        assert run.task.in_metrics["in"].frames == 3  # two under way, the third waits for a slot
        RELEASE.set()
        assert [(await run.next("out")).value["status"] for _ in range(5)] == [200] * 5


def test_a_url_that_is_not_http_is_a_config_error() -> None:
    assert HttpRequest.check({"url": "ftp://x/"}) == [
        "config.url: a URL starts with http:// or https:// and names a host"]
    assert HttpRequest.check({})[0].startswith("config.url:")


# -- webhook_in ----------------------------------------------------------------------------------------
TOKEN = "s3cret-token"


@pytest.fixture
def hook_port(monkeypatch: pytest.MonkeyPatch, free_port: int) -> int:
    monkeypatch.setenv("EDGE_WEBHOOK_PORT", str(free_port))
    monkeypatch.setattr(webhook, "REQUEST_TIMEOUT", 0.5)
    return free_port


async def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, "the webhook server did not start"
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def test_a_request_with_the_token_becomes_a_frame(hook_port: int) -> None:
    async with run_task(WebhookIn, {"path": "/door", "token": TOKEN}) as run, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook_port}", trust_env=False) as client:
        await _wait_listening(hook_port)
        answer = await client.post("/door", json={"open": True}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 202 and answer.content == b""
        assert (await run.next("out")).value == {"open": True}
        await client.post("/door/", content="hi", headers={"X-Webhook-Token": TOKEN, "content-type": "text/plain"})
        assert (await run.next("out")).value == "hi"
        await client.post("/door", data={"a": "1"}, headers={"X-Webhook-Token": TOKEN})
        assert (await run.next("out")).value == {"a": "1"}


async def test_refusals_401_404_405_413_400(hook_port: int) -> None:
    async with run_task(WebhookIn, {"path": "/door", "token": TOKEN, "max_body": 100}) as run, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook_port}", trust_env=False) as client:
        await _wait_listening(hook_port)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.post("/door", json=1)).status_code == 401
        assert (await client.post("/door", json=1, headers={"Authorization": "Bearer s3cret-tokeX"})).status_code == 401
        assert (await client.post("/other", json=1, headers=auth)).status_code == 404
        assert (await client.get("/door", headers=auth)).status_code == 405
        assert (await client.post("/door", content=b"x" * 101, headers=auth)).status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"x" * 50

        assert (await client.post("/door", content=chunks(), headers=auth)).status_code == 413  # no length given
        assert (await client.post("/door", content=b"{no", headers={**auth, "content-type": "application/json"})
                ).status_code == 400
        assert run.frames("out") == [] and run.task.out_metrics["out"].errors == 3  # 2 x 401, 1 x 400


async def test_request_output_leaves_the_token_out(hook_port: int) -> None:
    config = {"path": "/api/v1/x", "token": TOKEN, "output": "request", "methods": ["PUT"], "status": 200}
    async with run_task(WebhookIn, config) as run, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook_port}", trust_env=False) as client:
        await _wait_listening(hook_port)
        answer = await client.put("/api/v1/x?a=1", content=b"\x00", headers={"X-Webhook-Token": TOKEN, "X-Y": "z"})
        assert answer.status_code == 200
        value = (await run.next("out")).value
    assert value["method"] == "PUT" and value["path"] == "/api/v1/x" and value["query"] == {"a": "1"}
    assert value["body"] == b"\x00" and value["headers"]["x-y"] == "z" and "x-webhook-token" not in value["headers"]
    assert TOKEN not in json.dumps(value, default=str)


async def test_tasks_share_one_server_by_path(hook_port: int) -> None:
    async with run_task(WebhookIn, {"path": "/a", "token": "ta"}) as a, \
            run_task(WebhookIn, {"path": "/b", "token": "tb"}) as b, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook_port}", trust_env=False) as client:
        await _wait_listening(hook_port)
        assert (await client.post("/a", json="to a", headers={"X-Webhook-Token": "ta"})).status_code == 202
        assert (await client.post("/b", json="to b", headers={"X-Webhook-Token": "tb"})).status_code == 202
        assert (await client.post("/b", json="x", headers={"X-Webhook-Token": "ta"})).status_code == 401
        assert (await a.next("out")).value == "to a" and (await b.next("out")).value == "to b"
        with pytest.raises(ConfigError, match="webhook path /a is served by task test/task already"):
            async with run_task(WebhookIn, {"path": "/a", "token": "tc"}) as c:
                await asyncio.wait({c.runner})
        assert (await client.post("/a", json="still", headers={"X-Webhook-Token": "ta"})).status_code == 202
        assert (await a.next("out")).value == "still"
    with pytest.raises(OSError):  # the last one gone, the server is closed
        await asyncio.open_connection("127.0.0.1", hook_port)


async def test_a_slow_or_broken_client_is_cut_off(hook_port: int) -> None:
    async with run_task(WebhookIn, {"path": "/door", "token": TOKEN}) as run:
        await _wait_listening(hook_port)
        reader, writer = await asyncio.open_connection("127.0.0.1", hook_port)
        writer.write(b"POST /door HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        started = time.monotonic()
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 3
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", hook_port)
        writer.write(b"\x00\x01garbage\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 400")
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", hook_port)
        writer.write(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n")  # a head beyond MAX_HEAD
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 4")
        writer.close()
        assert run.frames("out") == []


@pytest.mark.parametrize(("limit", "bodies", "refused"), [
    ("QUEUE", ["first", "second"], "third"),  # one request queued at most
    ("QUEUE_BYTES", ["first", "8 bytes!"], "xyz"),  # 10 bytes of bodies queued at most: 8 + 3 is over
])
async def test_a_task_that_falls_behind_answers_503(hook_port: int, monkeypatch: pytest.MonkeyPatch, limit: str,
                                                    bodies: list[str], refused: str) -> None:
    monkeypatch.setattr(webhook, limit, 1 if limit == "QUEUE" else 10)
    release = asyncio.Event()
    taken: list[object] = []
    async with run_task(WebhookIn, {"path": "/door", "token": TOKEN}) as run, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{hook_port}", trust_env=False) as client:
        send = run.task.send

        async def slow_send(*args: Any, **kwargs: Any) -> None:
            taken.append(args)
            await release.wait()
            await send(*args, **kwargs)

        run.task.send = slow_send  # the task hangs on to the first request's frame
        await _wait_listening(hook_port)
        auth = {"X-Webhook-Token": TOKEN, "content-type": "text/plain"}
        assert (await client.post("/door", content=bodies[0], headers=auth)).status_code == 202
        await until_true(lambda: len(taken) == 1)  # taken by the task, which waits
        assert (await client.post("/door", content=bodies[1], headers=auth)).status_code == 202  # queued
        assert (await client.post("/door", content=refused, headers=auth)).status_code == 503
        assert run.task.out_metrics["out"].errors == 1
        release.set()
        assert [(await run.next("out")).value for _ in range(2)] == bodies
        assert (await client.post("/door", content=refused, headers=auth)).status_code == 202  # caught up
        assert (await run.next("out")).value == refused


async def until_true(predicate: Any) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, "the condition did not happen within 5 s"
        await asyncio.sleep(0.005)


async def test_off_unless_the_agent_has_a_webhook_port(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("EDGE_WEBHOOK_PORT", raising=False)
    reason = WebhookIn.unavailable_reason()
    assert reason is not None and "EDGE_WEBHOOK_PORT" in reason
    host = Host(load_settings(broker="mqtt://127.0.0.1:1", data_dir=tmp_path), types=[WebhookIn], persist=False)
    entry = next(e for e in host.catalog() if e["name"] == "webhook_in")
    assert entry["available"] is False and entry["reason"] == reason
    with pytest.raises(ConfigError, match="webhook_in is off"):
        async with run_task(WebhookIn, {"token": "t"}) as run:
            await asyncio.wait({run.runner})


async def test_a_port_in_use_is_the_tasks_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("EDGE_WEBHOOK_PORT", str(taken.getsockname()[1]))
        with pytest.raises(OSError, match=r"the webhook server cannot listen on 127\.0\.0\.1"):
            async with run_task(WebhookIn, {"token": "t"}) as run:
                await asyncio.wait({run.runner})
    assert webhook._SERVERS == {}


def test_the_token_is_required_and_the_path_checked() -> None:
    assert WebhookIn.check({"path": "/x"})[0].startswith("config.token:")
    assert WebhookIn.check({"path": "x y", "token": "t"}) == [
        "config.path: 'x y' is no URL path: /name/... with letters, digits, . _ ~ -"]


_heads = st.sampled_from([b"POST /door HTTP/1.1\r\nHost: x\r\n", b"POST /door HTTP/1.0\r\n", b"GET / HTTP/1.1\r\n",
                          b"POST /door?" + b"a=1&" * 50 + b" HTTP/1.1\r\nHost: x\r\n", b""])
_lines = st.one_of(st.binary(max_size=80), st.sampled_from([
    b"Content-Length: -1\r\n", b"Content-Length: 99999999999999999999\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 3\r\nContent-Length: 4\r\n", b"X-Webhook-Token: " + TOKEN.encode() + b"\r\n",
    b"Authorization: Bearer \xff\xfe\r\n", b"Content-Type: application/json\r\n", b"Content-Type: text/plain\r\n",
    b"Content-Type: application/x-www-form-urlencoded\r\n", b"Expect: 100-continue\r\n", b"\r\n", b"\r\n\r\n",
    b"zz\r\n{\"a\": [\r\n0\r\n\r\n", b"[" * 5000, b"\xff\xfe\xfd", b"\x00" * 64]))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          phases=[Phase.explicit, Phase.generate])
@given(st.lists(st.tuples(_heads, st.lists(_lines, max_size=6)), min_size=1, max_size=3))
def test_no_request_bytes_crash_the_webhook_server(monkeypatch_module: None, hostile: list) -> None:
    async def main() -> None:
        async with run_task(WebhookIn, {"path": "/door", "token": TOKEN, "max_body": 1000}) as run:
            await _wait_listening(HOSTILE_PORT)
            for head, lines in hostile:
                reader, writer = await asyncio.open_connection("127.0.0.1", HOSTILE_PORT)
                writer.write(head + b"".join(lines))
                if writer.can_write_eof():
                    writer.write_eof()
                answer = await asyncio.wait_for(reader.read(), 5)
                assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer[:60]
                writer.close()
            async with httpx.AsyncClient(trust_env=False) as client:  # still serving, and well
                good = await client.post(f"http://127.0.0.1:{HOSTILE_PORT}/door", json={"ok": 1},
                                         headers={"X-Webhook-Token": TOKEN})
            assert good.status_code == 202
            frames = [await run.next("out")]
            frames += run.frames("out")
            assert frames[-1].value == {"ok": 1}

    asyncio.run(main())


HOSTILE_PORT = 0


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[None]:
    """The webhook server's port for the property test (hypothesis runs it many times on one fixture)."""
    global HOSTILE_PORT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        HOSTILE_PORT = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_WEBHOOK_PORT", str(HOSTILE_PORT))
        patch.setattr(webhook, "REQUEST_TIMEOUT", 0.3)
        patch.setattr(webhook, "LINGER_TIMEOUT", 0.1)
        yield


def test_a_token_or_key_in_clear_is_refused_in_a_spec() -> None:
    from edge.errors import SpecError
    from edge.graph import parse_spec

    def spec(task_type: str, config: dict) -> dict:
        return {"id": "d", "tasks": [{"id": "t", "type": task_type, "config": config}], "edges": []}

    with pytest.raises(SpecError, match=r"config.token holds a secret in clear"):
        parse_spec(spec("webhook_in", {"token": "hunter2"}))
    with pytest.raises(SpecError, match=r"config.headers.X-Api-Key holds a secret in clear"):
        parse_spec(spec("http_request", {"url": "http://127.0.0.1/", "headers": {"X-Api-Key": "k"}}))
    with pytest.raises(SpecError, match=r"config.headers.Authorization holds a secret in clear"):
        parse_spec(spec("http_request", {"url": "http://127.0.0.1/", "headers": {"Authorization": "Bearer k"}}))
    parse_spec(spec("webhook_in", {"token": {"$secret": "hook"}}))  # a reference is fine


def test_without_httpx_the_web_entry_point_fails_with_the_install_hint() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['httpx'] = None\n"
            "try:\n    import tasks.web\nexcept ModuleNotFoundError as exc:\n    print(exc.name, '|', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == ("httpx | No module named 'httpx': the web task types need httpx: pip install "
                           "'edgetasks[web]' (or: pip install httpx)")
