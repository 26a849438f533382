"""face_detection and screen_capture deployed by spec to a real agent process, read by a plain paho client: the
faces of a photo an image_renderer shows come out as boxes, and the colour of an Xvfb screen as frames."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from _agent_process import agent_process
from test_integration_deployed import Client, _statuses
from xvfb_display import needs_xvfb, paint, xvfb

from edge.bus import Bus
from edge.graph import encode_spec, parse_spec
from edge.topics import Topics

PHOTO = Path(__file__).parent / "data" / "astronaut.jpg"
FACE = (109, 40, 63, 63)  # where OpenCV finds the photo's face at the default settings


def _spec(ns: str, display: str) -> dict[str, Any]:
    def t(task_id: str, type_: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"id": task_id, "type": type_, "agent": "io", "config": config}

    return {"id": "io", "tasks": [
        t("photo", "image_renderer", {"path": "astronaut.jpg", "rate": 5}),
        t("faces", "face_detection", {}),
        t("screen", "screen_capture", {"display": display, "width": 32, "height": 32, "rate": 5,
                                       "draw_mouse": False}),
    ], "edges": [
        {"from": "photo.out", "to": "faces.in"},
        {"from": "faces.faces", "to": f"topic:e2e/{ns}/faces"},
        {"from": "faces.count", "to": f"topic:e2e/{ns}/count"},
        {"from": "screen.video", "to": f"topic:e2e/{ns}/screen"},
    ]}


@needs_xvfb
async def test_face_detection_and_screen_capture_on_an_agent_process(broker, tmp_path: Path) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(PHOTO, files / "astronaut.jpg")
    env = {**os.environ, "EDGE_BROKER": str(broker.url), "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "io",
           "EDGE_DATA_DIR": str(tmp_path / "data"), "EDGE_FILES_DIR": str(files),
           # face_detection's module, also where the package was installed before it had the entry point
           "EDGE_TASKS": "tasks.inference.vision"}
    client = Client(broker.url)
    try:
        with xvfb(64, 64) as display, agent_process(env, tmp_path / "agent.log"):
            paint(display, "#0000ff")
            for name in ("faces", "count", "screen"):
                client.subscribe(f"e2e/{ns}/{name}")
            async with Bus(str(broker.url)) as bus:
                await bus.publish(topics.deployment("io"), encode_spec(parse_spec(_spec(ns, display))), qos=1,
                                  retain=True)
            statuses = await _statuses(broker.url, topics, ["photo", "faces", "screen"], "running")
            assert all(s["error"] is None for s in statuses.values()), statuses

            (box,) = await client.next(f"e2e/{ns}/faces", timeout=30)  # the first one loads the cascade
            assert all(abs(a - b) <= 3 for a, b in zip(box.values(), FACE, strict=True)), box
            assert await client.next(f"e2e/{ns}/count") == 1
            screen = await client.next(f"e2e/{ns}/screen")
            assert screen.shape == (32, 32, 3) and np.all(screen == [0, 0, 255])
    finally:
        client.close()
