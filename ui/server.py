"""Serving the panel inside an asyncio program (``edge ui`` and ``edge up``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
from fastapi import FastAPI
from nicegui import ui

from edge.settings import Settings
from ui.app import setup

__all__ = ["serve"]

log = logging.getLogger("ui")


async def serve(settings: Settings) -> None:
    """Serve the control panel on the settings' controller host and port until cancelled."""
    setup(settings)
    fastapi_app = FastAPI()
    ui.run_with(fastapi_app, title="edgetasks", show_welcome_message=False, favicon="🛰")
    config = uvicorn.Config(fastapi_app, host=settings.controller_host, port=settings.controller_port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    log.info("control panel on http://%s:%d", settings.controller_host, settings.controller_port)
    running = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        # leave like Ctrl+C would: uvicorn runs the lifespan shutdown, which stops the panel's bus
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running, 10)
        raise
