"""The broker kinds the suite runs against, and the checks that fail (never skip) a test whose
broker is not installed. A module of its own, not ``conftest``: two ``conftest.py`` (tests/ and
tests/ui/) share that module name, so ``from conftest import`` finds whichever pytest loaded
last (tests/ui's when tests/ui is among the arguments)."""

from __future__ import annotations

import pytest

from edge.broker import embedded_available, find_mosquitto

BROKER_KINDS = ("embedded", "mosquitto")
TRANSPORTS = ("mqtt5", "paho")  # the transports of edge.bus


def require_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.fail("Mosquitto is not installed: install it: apt-get install -y mosquitto")


def require_embedded() -> None:
    if not embedded_available():
        pytest.fail("iotcore (the embedded broker) is not installed: pip install 'edgetasks[broker]'")
