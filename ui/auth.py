"""The optional login: one password from the settings (``EDGE_CONTROLLER_PASSWORD``).

When a password is set every page redirects to ``/login`` until the browser session has given
it; the session lives in NiceGUI's signed user storage. :func:`check_exposure` refuses a panel
that would listen beyond loopback without a password, before anything starts.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from edge.broker.ports import is_loopback
from edge.errors import ConfigError
from edge.settings import Settings

if TYPE_CHECKING:
    from ui.app import Panel

__all__ = ["check_exposure", "install", "is_loopback", "logged_in", "logout"]

OPEN_PATHS = frozenset({"/login"})


def check_exposure(settings: Settings) -> None:
    """Refuse (:class:`~edge.errors.ConfigError`) to serve beyond loopback without a password."""
    if not is_loopback(settings.controller_host) and settings.controller_password is None:
        raise ConfigError(
            f"the control panel would listen on {settings.controller_host}, beyond this machine, without a "
            "password: set EDGE_CONTROLLER_PASSWORD (or bind EDGE_CONTROLLER_HOST=127.0.0.1)",
            field="EDGE_CONTROLLER_PASSWORD")


def logged_in() -> bool:
    return bool(app.storage.user.get("authenticated", False))


def logout() -> None:
    app.storage.user.clear()
    ui.navigate.to("/login")


class _LoginRequired(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if path not in OPEN_PATHS and not logged_in() and _is_page(path):
            app.storage.user["referrer_path"] = path
            return RedirectResponse("/login")
        return await call_next(request)


def _is_page(path: str) -> bool:
    # NiceGUI's own routes (components, libraries, the websocket) stay open: without a page they show
    # nothing of the fleet, and a page is what the login guards
    return not path.startswith("/_nicegui")


def install(panel: Panel) -> None:
    """Guard every page with the login and register the login page."""
    password = panel.settings.controller_password
    assert password is not None
    app.add_middleware(_LoginRequired)

    @ui.page("/login")
    async def login() -> RedirectResponse | None:
        if logged_in():
            return RedirectResponse("/")
        ui.page_title("Log in · edgetasks")

        async def attempt() -> None:
            if hmac.compare_digest(secret.value.encode(), password.get_secret_value().encode()):
                app.storage.user.update({"authenticated": True})
                ui.navigate.to(app.storage.user.pop("referrer_path", "/"))
            else:
                await asyncio.sleep(1.0)  # slows down guessing
                secret.value = ""
                ui.notify("Wrong password", type="negative")

        with ui.card().classes("absolute-center w-80"):
            ui.label("edgetasks control panel").classes("text-h6")
            secret = ui.input("Password", password=True, password_toggle_button=True).classes("w-full")
            secret.on("keydown.enter", attempt).mark("password")
            ui.button("Log in", on_click=attempt).mark("login")
        return None
