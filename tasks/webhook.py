"""``webhook_in``: an HTTP endpoint on the agent that turns each request into a frame.

Off unless the agent is started with ``EDGE_WEBHOOK_PORT`` (and ``EDGE_WEBHOOK_HOST``, default
127.0.0.1, to listen beyond this machine): without it the type is listed as unavailable with the
reason (:meth:`WebhookIn.unavailable_reason`) and its instances are refused. All webhook_in tasks
of an agent share one server, each on its own path; the server starts with the first and stops
with the last.

The HTTP parsing is h11's (a small, pure-Python, sans-I/O HTTP/1.1 parser that httpx is built on,
so it is installed with the ``web`` extra at no further cost), around asyncio streams. Uvicorn and
Starlette (which NiceGUI brings) would do the same with more layers and more memory, and an agent
on a Pi need not install NiceGUI. What the server guards against:

* a slow client (slowloris): the whole request must arrive within :data:`REQUEST_TIMEOUT` s, and
  its head may be at most :data:`MAX_HEAD` bytes;
* a large body: refused with 413 from its ``Content-Length``, or once it grows beyond the task's
  ``max_body``;
* many clients: at most :data:`MAX_CONNECTIONS` at once, one request per connection;
* a guessed token: compared in constant time (``hmac.compare_digest``); 401 without the right one,
  checked before the body is read; the token is never part of a frame;
* a task that cannot keep up: each path queues at most :data:`QUEUE` requests and :data:`QUEUE_BYTES`
  bytes of bodies; beyond, a request is answered 503.

Unknown paths answer 404, wrong methods 405, a JSON body that does not parse 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import ConfigError, FrameError
from tasks.base import ANY, BuiltinTask, agent_settings

if TYPE_CHECKING:
    import h11

    from edge.settings import Settings
else:
    from tasks._lazy import lazy

    h11 = lazy("h11")  # imported by the first request the task serves

__all__ = ["MAX_CONNECTIONS", "MAX_HEAD", "REQUEST_TIMEOUT", "WebhookIn"]

log = logging.getLogger("tasks.webhook")

REQUEST_TIMEOUT = 10.0
MAX_HEAD = 16 * 1024
MAX_CONNECTIONS = 64
QUEUE = 100
QUEUE_BYTES = 16 * 1024 * 1024  # of bodies queued per path (one larger body is queued alone)
LINGER_TIMEOUT = 1.0  # after an answer, s and bytes read of what the client still sends, before closing
LINGER_BYTES = 1024 * 1024
_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+/?$")
_TOKEN_HEADERS = (b"authorization", b"x-webhook-token")
_OFF = ("webhook_in is off on this agent: start it with EDGE_WEBHOOK_PORT (and EDGE_WEBHOOK_HOST to listen "
        "beyond 127.0.0.1) to serve webhooks")
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class _Route:
    task: WebhookIn
    methods: frozenset[str]
    token: bytes
    status: int
    max_body: int
    output: str
    queue: asyncio.Queue[tuple[Any, int]] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    queued_bytes: int = 0


class _Server:
    """One listening socket of an agent, its routes by path."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.routes: dict[str, _Route] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.server: asyncio.Server | None = None
        #: the connections being served, each with its writer (closing the server aborts them)
        self.connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        try:
            self.server = await asyncio.start_server(self._connection, self.host, self.port,
                                                     limit=MAX_HEAD)
        except OSError as exc:
            self.ready.set_exception(OSError(exc.errno, f"the webhook server cannot listen on {self.host}:"
                                                        f"{self.port} (EDGE_WEBHOOK_HOST/EDGE_WEBHOOK_PORT): "
                                                        f"{exc.strerror or exc}"))
            self.ready.exception()  # retrieved: the waiters raise it
            return
        log.info("webhook server listening on %s:%d", self.host, self.port)
        self.ready.set_result(None)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            # aborted, not cancelled: a handler of asyncio's server must not end cancelled (its callback
            # would log the CancelledError); an aborted socket ends its reads at once
            for writer in list(self.connections.values()):
                writer.transport.abort()
            await asyncio.gather(*self.connections, return_exceptions=True)
            await self.server.wait_closed()
            log.info("webhook server on %s:%d stopped", self.host, self.port)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self.connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections[task] = writer
        try:
            await _Exchange(self, reader, writer).serve()
            await _linger(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self.connections.pop(task, None)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _Exchange:
    """One request on one connection, answered and closed."""

    def __init__(self, server: _Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    async def serve(self) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await self._receive()
        except TimeoutError:
            await self._raw(408, "Request Timeout")
        except h11.RemoteProtocolError as exc:
            await self._raw(exc.error_status_hint, "Bad Request")

    async def _next(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(65_536))

    async def _receive(self) -> None:
        event = await self._next()
        if not isinstance(event, h11.Request):
            return  # closed before a request
        target = event.target.decode("ascii", "replace")
        parts = urlsplit(target)
        route = self.server.routes.get(parts.path) or self.server.routes.get(parts.path.rstrip("/") or "/")
        method = event.method.decode("ascii", "replace")
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
        if route is None:
            await self._respond(404, {"error": "no webhook on this path"})
            return
        if method not in route.methods:
            await self._respond(405, {"error": f"use {', '.join(sorted(route.methods))}"},
                                [(b"allow", ", ".join(sorted(route.methods)).encode())])
            return
        if not _authorized(event.headers, route.token):
            route.task.reject_request("a request without the right token (401)")
            await self._respond(401, {"error": "missing or wrong token"}, [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > route.max_body:
            await self._respond(413, {"error": f"the body is larger than {route.max_body} bytes"})
            return
        if self.conn.they_are_waiting_for_100_continue:
            self.writer.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > route.max_body:
                    await self._respond(413, {"error": f"the body is larger than {route.max_body} bytes"})
                    return
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return  # the client closed the connection mid-body
        try:
            value = _value(bytes(body), headers.get("content-type", ""))
        except ValueError as exc:
            route.task.reject_request(f"a request body that does not parse: {exc}")
            await self._respond(400, {"error": str(exc)})
            return
        if route.output == "request":
            value = {"method": method, "path": parts.path, "query": dict(parse_qsl(parts.query)),
                     "headers": {k: v for k, v in headers.items() if k.encode() not in _TOKEN_HEADERS},
                     "body": value}
        try:
            if route.queued_bytes and route.queued_bytes + len(body) > QUEUE_BYTES:
                raise asyncio.QueueFull
            route.queue.put_nowait((value, len(body)))
            route.queued_bytes += len(body)
        except asyncio.QueueFull:
            route.task.reject_request("a request while the task's queue is full (503)")
            await self._respond(503, {"error": "busy"})
            return
        await self._respond(route.status, None)

    async def _respond(self, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        head = [(b"content-length", str(len(data)).encode()), (b"connection", b"close"), *(headers or [])]
        if data:
            head.append((b"content-type", b"application/json"))
        try:
            out = self.conn.send(h11.Response(status_code=status, headers=head))
            out = (out or b"") + (self.conn.send(h11.Data(data=data)) or b"") + (self.conn.send(h11.EndOfMessage())
                                                                                 or b"")
        except h11.LocalProtocolError:
            await self._raw(status, "Error")
            return
        self.writer.write(out)
        await self.writer.drain()

    async def _raw(self, status: int, reason: str) -> None:
        self.writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        with contextlib.suppress(OSError):
            await self.writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read what the client still sends (a body refused before it was read), a little and briefly, before
    closing: a socket closed with unread data is reset, and the client may lose the answer with it."""
    with contextlib.suppress(OSError, TimeoutError):
        if writer.can_write_eof():
            writer.write_eof()
        budget = LINGER_BYTES
        async with asyncio.timeout(LINGER_TIMEOUT):
            while budget > 0 and (chunk := await reader.read(65_536)):
                budget -= len(chunk)


def _authorized(headers: Iterable[tuple[bytes, bytes]], token: bytes) -> bool:
    given = b""
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            given = value[7:].strip()
        elif name == b"x-webhook-token":
            given = value.strip()
    return hmac.compare_digest(given, token)


def _value(body: bytes, content_type: str) -> Any:
    """A request body as a frame's value: JSON's value, a form as a map, text, or bytes (empty: None)."""
    if not body:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"the body is not JSON ({str(exc)[:80]})") from None
    if kind == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000))
        except ValueError as exc:
            raise ValueError(f"the form does not parse ({str(exc)[:80]})") from None
    if kind.startswith("text/"):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the text is not UTF-8") from None
    return body


_SERVERS: dict[tuple[str, int], _Server] = {}


async def _serve(host: str, port: int, path: str, route: _Route) -> _Server:
    """Add ``route`` at ``path`` to the server on ``host:port``, starting it if it is the first."""
    server = _SERVERS.get((host, port))
    if server is None:
        server = _SERVERS[(host, port)] = _Server(host, port)
        starting: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(server.start())
    else:
        starting = None
    if path in server.routes:
        raise ConfigError(f"webhook path {path} is served by task {server.routes[path].task.instance_id} already: "
                          "give each webhook_in a path of its own", field="config.path")
    server.routes[path] = route
    try:
        if starting is not None:
            await starting
        await asyncio.shield(server.ready)
    except BaseException:
        await _leave(server, path)
        raise
    return server


async def _leave(server: _Server, path: str) -> None:
    server.routes.pop(path, None)
    if not server.routes and _SERVERS.get((server.host, server.port)) is server:
        del _SERVERS[(server.host, server.port)]
        await server.close()


class WebhookIn(BuiltinTask):
    """Receive HTTP requests on the agent as frames: `POST /path` with the token sends its body on `out`.

    Needs the agent's webhook server (`EDGE_WEBHOOK_PORT`; bound to `EDGE_WEBHOOK_HOST`, default
    127.0.0.1): without it the type is unavailable. Every webhook_in of an agent shares the server,
    each on its own `path`. A request must carry the `token` (a secret reference) as
    `Authorization: Bearer <token>` or `X-Webhook-Token: <token>`, else it is answered 401. The body
    becomes the frame's value: JSON's value, a form as a map, text, or bytes (with `output: request`,
    a map of `method`, `path`, `query`, `headers` (without the token) and `body`). The answer is
    `status` (default 202) with no body; 404 for other paths, 405 for other methods, 413 for a body
    larger than `max_body`, 400 for JSON that does not parse, 408 when a request takes longer than
    10 s to arrive, 503 while the task is 100 requests (or 16 MiB of bodies) behind. Refused requests are
    counted as errors
    on `out`.
    """

    category = "integration"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(default="/hook", max_length=200, description="the URL path this task answers")
        token: str = Field(min_length=1, description="the token a request must carry (a secret reference: "
                           "{\"$secret\": \"name\"})")
        methods: list[Method] = Field(default_factory=lambda: list[Method](["POST"]), min_length=1,
                                      description="the methods accepted")
        status: int = Field(default=202, ge=200, le=299, description="the status of the answer to a request taken")
        max_body: int = Field(default=1024 * 1024, ge=0, le=16 * 1024 * 1024,
                              description="largest request body in bytes")
        output: Literal["body", "request"] = Field(default="body", description="the frame's value: the body, or a "
                                                   "map of method, path, query, headers and body")

        @field_validator("path")
        @classmethod
        def _path(cls, value: str) -> str:
            if not _PATH.match(value):
                raise ValueError(f"{value!r} is no URL path: /name/... with letters, digits, . _ ~ -")
            return value.rstrip("/")

    outputs = {"out": ANY("request")}

    @classmethod
    def unavailable_reason(cls, settings: Settings | None = None) -> str | None:
        settings = agent_settings(settings)
        return None if settings is not None and settings.webhook_port is not None else _OFF

    def reject_request(self, reason: str) -> None:
        self.reject("out", reason)

    async def run(self) -> None:
        from edge.settings import Settings

        config: WebhookIn.Config = self.config
        settings = Settings()
        if settings.webhook_port is None:
            raise ConfigError(_OFF, field="EDGE_WEBHOOK_PORT")
        route = _Route(task=self, methods=frozenset(config.methods), token=config.token.encode(),
                       status=config.status, max_body=config.max_body, output=config.output)
        server = await _serve(settings.webhook_host, settings.webhook_port, config.path, route)
        try:
            while True:
                value, size = await route.queue.get()
                route.queued_bytes -= size
                try:
                    await self.send("out", value)
                except FrameError as exc:  # a JSON body beyond a frame's bounds
                    self.reject("out", str(exc)[:200])
        finally:
            await _leave(server, config.path)
