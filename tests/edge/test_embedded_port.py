"""The embedded broker keeps its MQTT 5 port across restarts on one data dir (the ?v5=PORT hint holds)."""

from __future__ import annotations

import socket

from edge.broker import free_port
from tests.conftest import require_embedded


async def test_the_mqtt5_port_survives_a_restart_unless_taken(tmp_path):
    require_embedded()
    from edge.broker import EmbeddedBroker

    port = free_port()
    async with EmbeddedBroker(port=port, data_dir=tmp_path) as first:
        v5 = first.v5_port
    async with EmbeddedBroker(port=port, data_dir=tmp_path) as second:
        assert second.v5_port == v5
    with socket.socket() as squatter:  # something else took it meanwhile: a new one, saved
        squatter.bind(("127.0.0.1", v5))
        squatter.listen()
        async with EmbeddedBroker(port=port, data_dir=tmp_path) as third:
            assert third.v5_port != v5
            assert (tmp_path / "v5_port").read_text().strip() == str(third.v5_port)
    (tmp_path / "v5_port").write_text("garbage")
    async with EmbeddedBroker(port=port, data_dir=tmp_path) as fourth:
        assert (tmp_path / "v5_port").read_text().strip() == str(fourth.v5_port)
