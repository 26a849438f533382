"""Serving the panel inside an asyncio program (``edge ui`` and ``edge up``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import socket

import uvicorn
from fastapi import FastAPI
from nicegui import ui
from nicegui.storage import Storage

from edge.errors import ConfigError
from edge.settings import Settings
from ui.auth import check_exposure
from ui.root import setup

__all__ = ["bind_panel", "serve"]

log = logging.getLogger("ui")


def bind_panel(settings: Settings) -> socket.socket:
    """The panel's listening socket, bound before anything else starts.

    A port in use (or an address this machine does not have) is a user's setting to change:
    :class:`~edge.errors.ConfigError` naming the variable, rather than uvicorn's ``sys.exit``
    from inside a running event loop.
    """
    host, port = settings.controller_host, settings.controller_port
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"the control panel cannot listen on {host!r}: {exc.strerror} (EDGE_CONTROLLER_HOST)",
                          field="EDGE_CONTROLLER_HOST") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"the control panel's port {port} on {host} is in use: stop what listens there or "
                              "choose another port with EDGE_CONTROLLER_PORT", field="EDGE_CONTROLLER_PORT") from None
        raise ConfigError(f"the control panel cannot listen on {host}:{port}: {exc.strerror} "
                          "(EDGE_CONTROLLER_HOST, EDGE_CONTROLLER_PORT)", field="EDGE_CONTROLLER_HOST") from None
    sock.setblocking(False)
    return sock


async def serve(settings: Settings, *, sock: socket.socket | None = None) -> None:
    """Serve the control panel on the settings' controller host and port until cancelled.

    ``sock`` is the socket of :func:`bind_panel` when the caller bound it first (``edge up``
    does, so a busy port stops it before the broker starts); it is closed on return. Raises
    :class:`~edge.errors.ConfigError` at once when the host is not loopback and no password is
    set, or when the port cannot be bound.
    """
    check_exposure(settings)
    if sock is None:
        sock = bind_panel(settings)
    with sock:
        await _serve(settings, sock)


async def _serve(settings: Settings, sock: socket.socket) -> None:
    # the login's sessions live with the rest of our state, not in a .nicegui folder of the working directory
    Storage.path = (settings.data_dir / "panel").resolve()
    Storage.path.mkdir(parents=True, exist_ok=True)  # `edge ui` alone (no agent) on a fresh data dir
    setup(settings)
    fastapi_app = FastAPI()
    # sessions (the login) are signed with a key of this process: a restart logs everybody out
    ui.run_with(fastapi_app, title="edgetasks", show_welcome_message=False, favicon="🛰",
                storage_secret=secrets.token_urlsafe(32))
    config = uvicorn.Config(fastapi_app, host=settings.controller_host, port=settings.controller_port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    log.info("control panel on http://%s:%d", settings.controller_host, settings.controller_port)
    running = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        # leave like Ctrl+C would: uvicorn runs the lifespan shutdown, which stops the panel's controller
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running, 10)
        raise
