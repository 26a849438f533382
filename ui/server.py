"""Serving the panel inside an asyncio program (``edge ui`` and ``edge up``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import uvicorn
from fastapi import FastAPI
from nicegui import ui
from nicegui.storage import Storage

from edge.settings import Settings
from ui.app import setup
from ui.auth import check_exposure

__all__ = ["serve"]

log = logging.getLogger("ui")


async def serve(settings: Settings) -> None:
    """Serve the control panel on the settings' controller host and port until cancelled.

    Raises :class:`~edge.errors.ConfigError` at once when the host is not loopback and no
    password is set.
    """
    check_exposure(settings)
    # the login's sessions live with the rest of our state, not in a .nicegui folder of the working directory
    Storage.path = (settings.data_dir / "panel").resolve()
    setup(settings)
    fastapi_app = FastAPI()
    # sessions (the login) are signed with a key of this process: a restart logs everybody out
    ui.run_with(fastapi_app, title="edgetasks", show_welcome_message=False, favicon="🛰",
                storage_secret=secrets.token_urlsafe(32))
    config = uvicorn.Config(fastapi_app, host=settings.controller_host, port=settings.controller_port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    log.info("control panel on http://%s:%d", settings.controller_host, settings.controller_port)
    running = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        # leave like Ctrl+C would: uvicorn runs the lifespan shutdown, which stops the panel's controller
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running, 10)
        raise
