"""Shared fixtures: real brokers (Mosquitto and the embedded one) on free loopback ports.

The session brokers run in background threads with their own event loops (see ``_loop.py``)
because every test gets a fresh loop. A missing broker fails the tests that need it, with the
command that installs it: it never skips them silently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _brokers import BROKER_KINDS, TRANSPORTS, require_embedded, require_mosquitto
from _loop import BackgroundContext
from hypothesis import HealthCheck, settings

from edge.broker import EmbeddedBroker, MosquittoBroker, RunningBroker
from edge.broker.ports import free_port as _free_port

# Property tests are not timed: Hypothesis's default 200 ms deadline per example (and its too-slow
# health check) failed them on a loaded 2-core CI machine for nothing but the load.
settings.register_profile("edgetasks", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("edgetasks")

__all__ = ["BROKER_KINDS", "TRANSPORTS", "require_embedded", "require_mosquitto"]


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return _free_port("127.0.0.1")


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One Mosquitto for the session, on a free loopback port, persisting into a temporary dir."""
    require_mosquitto()
    data_dir: Path = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    with BackgroundContext(lambda: MosquittoBroker(port=port, data_dir=data_dir),
                           name="mosquitto-broker") as broker:
        yield broker


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker (rumqttd via iotcore) for the session, on free loopback ports."""
    require_embedded()
    data_dir: Path = tmp_path_factory.mktemp("embedded")
    port = _free_port()
    with BackgroundContext(lambda: EmbeddedBroker(port=port, data_dir=data_dir),
                           name="embedded-broker") as broker:
        yield broker


@pytest.fixture(params=BROKER_KINDS, ids=BROKER_KINDS)
def broker(request: pytest.FixtureRequest) -> RunningBroker:
    """Each session broker in turn; tests use unique topics and client ids, since brokers are shared."""
    running: RunningBroker = request.getfixturevalue(f"{request.param}_broker")
    return running




@pytest.fixture(params=TRANSPORTS, ids=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each transport of edge.bus in turn: ``Bus(url, transport=transport)``."""
    name: str = request.param
    return name


# -- unexpected ERROR logs fail the test (as NiceGUI's own testing does) ----------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expect_errors(*patterns): ERROR logs matching one of these regular "
                                       "expressions (searched in the message) are expected; any other fails the test")


class _ErrorLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_EXPECTED = pytest.StashKey[list[str]]()


@pytest.fixture
def expect_errors(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``expect_errors("pattern", ...)`` inside a test: as the ``expect_errors`` marker, from then on."""
    patterns: list[str] = request.node.stash.setdefault(_EXPECTED, [])
    return lambda *more: patterns.extend(more)


@pytest.fixture(autouse=True)
def _fail_on_unexpected_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Any ERROR (or worse) logged during the test or its fixtures fails it, unless declared expected."""
    handler = _ErrorLogs()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    patterns = [p for mark in request.node.iter_markers("expect_errors") for p in mark.args]
    patterns += request.node.stash.get(_EXPECTED, [])
    unexpected = []
    for record in handler.records:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        if not any(re.search(pattern, text) for pattern in patterns):
            unexpected.append(f"{record.name} {record.levelname}: {text}")
    if unexpected:
        pytest.fail("unexpected ERROR logs (declare expected ones with @pytest.mark.expect_errors(pattern)):\n"
                    + "\n".join(unexpected[:20]), pytrace=False)
