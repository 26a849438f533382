"""The panel's start leaves nothing behind when its controller fails to enter (issue 18 section 4)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from _leaks import left_behind, snapshot

from edge.broker import MosquittoBroker
from edge.controller import Controller
from edge.errors import BusError
from edge.settings import load_settings
from ui.app import Panel


async def test_a_panel_whose_controller_fails_to_enter_leaves_nothing(mosquitto_broker: MosquittoBroker,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(self: Controller) -> Controller:
        raise BusError("the broker refused the subscription")

    monkeypatch.setattr(Controller, "__aenter__", failing)
    port = mosquitto_broker.port
    panel = Panel(load_settings(broker=mosquitto_broker.url.geturl(), namespace=f"l{uuid.uuid4().hex[:10]}",
                                agent_id="panel", data_dir=tmp_path))
    before = snapshot(port)
    with pytest.raises(BusError, match="refused"):
        await panel.start()
    assert await left_behind(before, port) == []
