"""A managed broker is never open to the network by accident: `edge broker` / `edge up` refuse it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.broker import free_port
from edge.broker.choose import check_broker_exposure
from edge.errors import ConfigError
from edge.settings import load_settings


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_DATA_DIR=str(tmp_path / "data"), EDGE_BROKER_HOST="0.0.0.0", **extra)
    return env


@pytest.mark.parametrize("command", [["broker"], ["up"]])
def test_broker_beyond_loopback_without_credentials_is_refused_in_one_line(tmp_path, command):
    port, panel = free_port(), free_port()
    env = _env(tmp_path, EDGE_BROKER_PORT=str(port), EDGE_CONTROLLER_PORT=str(panel))
    out = subprocess.run([sys.executable, "-m", "edge", *command], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert out.stdout == ""  # nothing started: no "broker ..." line
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "0.0.0.0" in lines[0] and "EDGE_USERNAME" in lines[0] and "EDGE_BROKER_HOST" in lines[0], lines[0]
    assert not (tmp_path / "data" / "broker").exists()  # no broker files written, no broker started


def test_exposure_rule_lets_loopback_credentials_urls_and_the_explicit_override_through(tmp_path):
    def settings(**kw: object):
        return load_settings(data_dir=tmp_path, **kw)

    with pytest.raises(ConfigError, match="EDGE_BROKER_HOST"):
        check_broker_exposure(settings(broker_host="0.0.0.0"))
    with pytest.raises(ConfigError, match="EDGE_BROKER_HOST"):
        check_broker_exposure(settings(broker_host="192.0.2.7", broker="mosquitto"))
    check_broker_exposure(settings(broker_host="127.0.0.1"))
    check_broker_exposure(settings(broker_host="localhost"))
    check_broker_exposure(settings(broker_host="0.0.0.0", username="u", password="p"))
    check_broker_exposure(settings(broker_host="0.0.0.0", broker_anonymous=True))
    check_broker_exposure(settings(broker_host="0.0.0.0", broker="mqtt://elsewhere:1883"))  # not ours
