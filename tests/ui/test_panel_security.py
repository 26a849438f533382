"""The optional login, the refusal to serve beyond loopback without a password, and no markup
from anything the fleet says (labels, configs, errors, frames)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import agents, panel, until
from nicegui import ElementFilter, ui

from edge.errors import ConfigError
from edge.graph import parse_spec
from edge.settings import load_settings
from ui.auth import check_exposure, is_loopback

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

HTML = "<img src=x onerror=alert(1)>"


@pytest.fixture
def with_password(panel_settings, monkeypatch):
    monkeypatch.setenv("EDGE_CONTROLLER_PASSWORD", "s3cret")


async def test_login_guards_every_page(with_password, user):
    await user.open("/deployments")
    await user.should_see("edgetasks control panel")  # the login page, not the deployments
    await user.should_not_see("new deployment")
    user.find(marker="password").type("wrong")
    user.find(marker="login").click()
    await until(lambda: user.notify.contains("Wrong password"), "the refusal")
    user.find(marker="password").type("s3cret")
    user.find(marker="login").click()
    await user.should_see("new deployment", retries=50)  # back where the user wanted to go
    await user.open("/types")
    await user.should_see("Task types")


def test_refuses_to_serve_beyond_loopback_without_a_password(panel_settings):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
    for host in ("0.0.0.0", "192.168.1.10", "::", "panel.example.com"):
        assert not is_loopback(host)
    check_exposure(load_settings(controller_host="127.0.0.1"))
    check_exposure(load_settings(controller_host="0.0.0.0", controller_password="pw"))
    with pytest.raises(ConfigError, match="EDGE_CONTROLLER_PASSWORD") as info:
        check_exposure(load_settings(controller_host="0.0.0.0"))
    assert info.value.field == "EDGE_CONTROLLER_PASSWORD"
    out = subprocess.run([sys.executable, "-m", "edge", "ui"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "EDGE_CONTROLLER_HOST": "0.0.0.0", "EDGE_CONTROLLER_PORT": "1"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "without a password: set EDGE_CONTROLLER_PASSWORD" in out.stderr


async def test_no_markup_from_the_fleet(user, panel_settings, tmp_path):
    async with agents(panel_settings, tmp_path, "a1"):
        await until(lambda: "numbers" in panel().fleet.types(), "types")
        await panel().controller.deploy(parse_spec({"id": "xss", "label": HTML, "tasks": [
            {"id": "n", "type": "numbers", "label": HTML}, {"id": "w", "type": "words", "config": {"word": HTML}}]}))
        for path in ("/", "/types", "/deployments", "/deployments/xss", "/deployments/xss/edit",
                     "/deployments/xss/dashboard", "/deployments/xss/inspect/w/out"):
            await user.open(path)
            if path == "/deployments":
                await user.should_see(HTML, retries=50)
            if path == "/deployments/xss/inspect/w/out":
                await user.should_see(f"last value: {HTML}", retries=100)
            with user:
                assert not list(ElementFilter(kind=ui.html, only_visible=False)), path
                assert not list(ElementFilter(kind=ui.markdown, only_visible=False)), path
        await panel().controller.remove("xss")
