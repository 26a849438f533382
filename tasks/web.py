"""Web task types, the ``web`` entry point: ``http_request`` (httpx) and ``webhook_in`` (h11).

httpx and h11 (which httpx is built on) are checked for without being imported (that waits for the
first request: ~4 MB an agent that sends none does not pay): without them this entry point fails to
load and the agent lists both types as unavailable with the install hint (``pip install 'edgetasks[web]'``).

``http_request`` sends one request per frame. What it guards against: a slow or silent server (a
timeout over the whole exchange, not only per read), a large answer (read as a stream and cut at
``max_response_bytes``), a flood of frames (at most ``max_in_flight`` requests at once; more frames
wait in the input's bounded queue). Every failure is a frame on ``error`` and an error counted on
``in``, never a crash. Secrets (a token in a header, a URL with a key in it) are written as secret
references in the spec (``{"$secret": "name"}``); the agent puts the values in before the task
starts, and no error message or log line repeats the URL beyond its scheme and host.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.errors import FrameError
from edge.frames import Frame
from edge.task import Task
from tasks._lazy import require
from tasks.base import ANY, BuiltinTask, is_pause
from tasks.webhook import WebhookIn

if TYPE_CHECKING:
    import httpx
else:
    from tasks._lazy import lazy

    httpx = lazy("httpx")  # imported by the first request: an agent that sends none saves ~4 MB

# h11 is webhook_in's parser: checked here too, so both types share the hint
require("h11", "httpx", hint="the web task types need httpx: pip install 'edgetasks[web]' (or: pip install httpx)")

__all__ = ["TYPES", "HttpRequest", "WebhookIn", "decode_body"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_NO_BODY = ("GET", "HEAD", "OPTIONS")
_CHUNK = 65_536


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a URL starts with http:// or https:// and names a host")
    return value


def _where(url: str) -> str:
    """The scheme and host of ``url``, the only part of it an error repeats (the rest may hold a secret)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    except ValueError:
        return "the URL"


def encode_body(value: Any, headers: dict[str, str]) -> bytes | None:
    """``value`` as a request body, setting its content type unless ``headers`` has one: bytes as they are,
    text as UTF-8, anything else as JSON. ValueError/TypeError when it has no such form (NaN, arrays)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        kind, data = "application/octet-stream", value
    elif isinstance(value, str):
        kind, data = "text/plain; charset=utf-8", value.encode("utf-8")
    else:
        kind, data = "application/json", json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    if not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = kind
    return data


def decode_body(data: bytes, content_type: str, how: str = "auto") -> Any:
    """A body as a value: JSON (its value), text, or bytes; ``auto`` by the content type (JSON that does not
    parse and text that is not UTF-8 stay bytes)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if how == "bytes":
        return data
    if how == "json" or (how == "auto" and (kind == "application/json" or kind.endswith("+json"))):
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            if how == "json":
                raise
            return data
    if how == "text" or kind.startswith("text/") or "charset=" in content_type.lower() or kind in (
            "application/xml", "application/javascript", "application/x-www-form-urlencoded"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            if how == "text":
                raise
    return data


class _Failed(Exception):
    """One request that failed, with the kind of failure and a line for the user."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class HttpRequest(BuiltinTask):
    """Send an HTTP request per frame and the response as a frame: `{"status", "headers", "body"}`.

    With `from_frame: body` (the default) the frame's value is the request body: bytes as they are,
    text as UTF-8, anything else as JSON (GET, HEAD and OPTIONS send none: the frame only triggers).
    With `request`, the value is a map whose `url`, `method`, `headers`, `query` and `body` replace the
    config's; with `nothing`, each frame sends the config's request as it is. URL and header values
    may be secret references (`{"$secret": "name"}`). The response body is decoded as `response`
    says (`auto`: JSON, text or bytes by its content type). A timeout (`timeout_s` over the whole
    exchange), a refused connection, a response larger than `max_response_bytes` or a value that
    cannot be sent is a frame `{"error", "kind"}` on `error` and an error counted on `in`. Responses
    with any status (404, 500) go to `out`. At most `max_in_flight` requests run at once.
    """

    category = "integration"
    label = "HTTP request"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        url: str = Field(description="http:// or https:// URL (may be a secret reference)")
        method: Method = Field(default="POST", description="the request method")
        headers: dict[str, str] = Field(default_factory=dict, description="request headers (values may be secret "
                                        "references)")
        query: dict[str, str] = Field(default_factory=dict, description="query parameters added to the URL")
        body: Any = Field(default=None, description="the body when the frame gives none (JSON value or text)")
        from_frame: Literal["body", "request", "nothing"] = Field(
            default="body", description="what the frame's value is: the body, a map of url/method/headers/query/"
                                        "body over the config's, or nothing (each frame sends the config's request)")
        response: Literal["auto", "json", "text", "bytes"] = Field(
            default="auto", description="how the response body is decoded (auto: by its content type)")
        timeout_s: float = Field(default=10.0, gt=0, le=3600, description="the longest a whole request may take")
        max_response_bytes: int = Field(default=1024 * 1024, ge=0, le=64 * 1024 * 1024,
                                        description="a longer response body is an error (read up to this and cut)")
        max_in_flight: int = Field(default=4, ge=1, le=256, description="requests under way at once")
        follow_redirects: bool = Field(default=False, description="follow 3xx redirects")
        verify_tls: bool = Field(default=True, description="check the server's TLS certificate")

        @field_validator("url")
        @classmethod
        def _url(cls, value: str) -> str:
            return _check_url(value)

    inputs = {"in": ANY("sends a request")}
    outputs = {"out": ANY("response"), "error": ANY("what failed")}

    async def run(self) -> None:
        config: HttpRequest.Config = self.config
        slots = asyncio.Semaphore(config.max_in_flight)
        limits = httpx.Limits(max_connections=config.max_in_flight, max_keepalive_connections=config.max_in_flight)
        async with httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s), limits=limits, trust_env=False,
                                     verify=config.verify_tls, follow_redirects=config.follow_redirects) as client, \
                asyncio.TaskGroup() as group:
            async for frame in self.receive("in"):
                if is_pause(frame):
                    continue
                await slots.acquire()
                group.create_task(self._one(client, frame, slots))

    async def _one(self, client: httpx.AsyncClient, frame: Frame, slots: asyncio.Semaphore) -> None:
        try:
            try:
                result = await self._request(client, frame.value)
            except _Failed as failed:
                self.reject("in", str(failed))
                await self.send("error", {"error": str(failed), "kind": failed.kind}, ts=frame.ts)
                return
            try:
                await self.send("out", result, ts=frame.ts)
            except FrameError as exc:  # a JSON body a frame cannot carry (a number beyond its bounds)
                self.reject("in", f"the response cannot be a frame: {exc}"[:200])
        finally:
            slots.release()

    def _build(self, value: Any) -> tuple[str, str, dict[str, str], dict[str, str], bytes | None]:
        config: HttpRequest.Config = self.config
        method, url = config.method, config.url
        headers, query, body = dict(config.headers), dict(config.query), config.body
        if config.from_frame == "body":
            body = value if value is not None else body
        elif config.from_frame == "request":
            if not isinstance(value, dict):
                raise _Failed("value", f"from_frame is request: expected a map, got {type(value).__name__}")
            if "url" in value:
                if not isinstance(value["url"], str):
                    raise _Failed("value", "the frame's url is not text")
                url = _check_url(value["url"])
            if "method" in value:
                if value["method"] not in get_args(Method):
                    raise _Failed("value", f"the frame's method is none of {', '.join(get_args(Method))}")
                method = value["method"]
            for key, into in (("headers", headers), ("query", query)):
                extra = value.get(key, {})
                if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                          for k, v in extra.items()):
                    raise _Failed("value", f"the frame's {key} is not a map of text to text")
                into.update(extra)
            body = value.get("body", body)
        data = None if method in _NO_BODY else encode_body(body, headers)
        return method, url, headers, query, data

    async def _request(self, client: httpx.AsyncClient, value: Any) -> dict[str, Any]:
        config: HttpRequest.Config = self.config
        try:
            method, url, headers, query, data = self._build(value)
        except (ValueError, TypeError, RecursionError) as exc:
            raise _Failed("value", f"the value cannot be sent: {str(exc)[:100]}") from None
        where = _where(url)
        try:
            async with asyncio.timeout(config.timeout_s):
                async with client.stream(method, url, headers=headers, params=query or None, content=data) as resp:
                    length = resp.headers.get("content-length", "")
                    if length.isdigit() and int(length) > config.max_response_bytes:
                        raise _Failed("too_large", f"{method} {where}: the response of {length} bytes is larger "
                                                   f"than max_response_bytes ({config.max_response_bytes})")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes(_CHUNK):
                        body += chunk
                        if len(body) > config.max_response_bytes:
                            raise _Failed("too_large", f"{method} {where}: the response is larger than "
                                                       f"max_response_bytes ({config.max_response_bytes})")
                    try:
                        decoded = decode_body(bytes(body), resp.headers.get("content-type", ""), config.response)
                    except (ValueError, RecursionError):
                        raise _Failed("decode", f"{method} {where}: the response is not {config.response}") from None
                    return {"status": resp.status_code, "headers": dict(resp.headers.items()), "body": decoded}
        except TimeoutError:
            raise _Failed("timeout", f"{method} {where}: no complete response within {config.timeout_s:g} s") from None
        except httpx.TimeoutException:
            raise _Failed("timeout", f"{method} {where}: timed out") from None
        except httpx.ConnectError as exc:
            raise _Failed("connect", f"{method} {where}: cannot connect: {str(exc)[:100]}") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, TypeError, UnicodeError) as exc:
            raise _Failed("protocol", f"{method} {where}: {type(exc).__name__}: {str(exc)[:100]}") from None


TYPES: list[type[Task]] = [HttpRequest, WebhookIn]
