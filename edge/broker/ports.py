"""TCP port checks shared by every broker: is something listening, wait until it is, find a free port.

Readiness of a broker is "its port accepts a TCP connection"; these helpers poll for that
with a bounded deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
from collections.abc import Callable
from pathlib import Path

__all__ = ["connect_host", "free_port", "is_loopback", "port_accepts", "wait_for_port"]

_POLL_INTERVAL = 0.05
_ATTEMPT_TIMEOUT = 0.5


def connect_host(host: str) -> str:
    """The address a client uses to reach a listener bound to ``host`` (wildcards mean loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def is_loopback(host: str) -> bool:
    """Whether a listener bound to ``host`` is reachable from this machine only (names resolved: localhost)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now, outside the kernel's ephemeral range.

    The kernel's pick for port 0 comes from the range it also gives the source ports of
    outgoing connections, so a port found that way can be taken by any client connecting
    anywhere before the caller binds it (a test suite with many brokers and clients hit
    that). A random port below (or above) that range can only be taken by another listener.
    Another process may still take it before the caller binds it; good enough for tests and
    for a second listener started a moment later.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low, high = _listener_range()
    for _ in range(_PICK_ATTEMPTS):
        port = _random.randint(low, high)
        if _binds(family, host, port):
            return port
    with socket.socket(family, socket.SOCK_STREAM) as sock:  # a crowded range: the kernel's pick
        sock.bind((host, 0))
        picked: int = sock.getsockname()[1]
        return picked


_PICK_ATTEMPTS = 64
_random = random.SystemRandom()  # not the global generator: tests seed that one, and workers would collide
_LISTENER_LOW = 20000  # above the ports of well-known services (1883, 8080, 8883, ...)
_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _listener_range() -> tuple[int, int]:
    """The larger of the spans below and above the ephemeral range that are ours to pick from."""
    try:
        first, last = (int(part) for part in _EPHEMERAL_FILE.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        first, last = 32768, 60999  # Linux's default; other systems use 49152-65535, also outside
    below = (_LISTENER_LOW, first - 1)
    above = (last + 1, 65535)
    span = max(below, above, key=lambda pair: pair[1] - pair[0])
    if span[1] - span[0] < 1000:  # an ephemeral range that takes nearly everything: share it
        return 1024, 65535
    return span


def _binds(family: socket.AddressFamily, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


async def port_accepts(host: str, port: int, *, connect_timeout: float = _ATTEMPT_TIMEOUT) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``connect_timeout`` seconds (one attempt)."""
    try:
        async with asyncio.timeout(connect_timeout):
            _reader, writer = await asyncio.open_connection(connect_host(host), port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(connect_timeout):
            await writer.wait_closed()
    return True


# `timeout` rather than the caller's asyncio.timeout(): the deadline is what the function is about,
# it bounds each connection attempt too, and it lets callers tell "never came up" (TimeoutError)
# from their own cancellation.
async def wait_for_port(
    host: str, port: int, *, timeout: float, alive: Callable[[], bool] | None = None
) -> bool:
    """Poll until ``host:port`` accepts a TCP connection.

    Returns True once it does, False as soon as ``alive()`` says the server we wait for has
    gone (a child process that exited), and raises :class:`TimeoutError` after ``timeout``
    seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if alive is not None and not alive():
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout:g} s")
        if await port_accepts(host, port, connect_timeout=min(_ATTEMPT_TIMEOUT, remaining)):
            # The listener may belong to a child that is exiting; report what we saw last.
            return alive is None or alive()
        await asyncio.sleep(min(_POLL_INTERVAL, max(0.0, deadline - loop.time())))
