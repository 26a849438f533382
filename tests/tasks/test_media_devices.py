"""Capture devices that are not there: the task says which, in its status, and the agent keeps running."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from edge.bus import Bus
from edge.frames import decode_value
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.media import TYPES
from tasks.media.devices import check_alsa_device, check_v4l2_device
from tasks.media.errors import DeviceNotFoundError

MISSING_CAMERA = "/dev/video-edgetasks-missing"


@pytest.mark.expect_errors(r"\((camera|microphone)\) crashed")
async def test_a_missing_camera_and_microphone_show_in_the_status(mosquitto_broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    settings = load_settings(broker=str(mosquitto_broker.url), namespace=ns, agent_id="cam",
                             data_dir=tmp_path / "cam")
    spec = {"id": "capture", "tasks": [
        {"id": "cam", "type": "camera", "agent": "cam", "config": {"device": MISSING_CAMERA}},
        {"id": "mic", "type": "microphone", "agent": "cam", "config": {"device": "hw:7"}},
        {"id": "pattern", "type": "test_pattern", "agent": "cam", "config": {"width": 32, "height": 24}}]}
    async with Bus(mosquitto_broker.url) as bus, Host(settings, types=TYPES, persist=False) as host:
        errors = {}
        async with bus.subscribe(topics.all_task_statuses("capture")) as statuses, asyncio.timeout(15):
            await bus.publish(topics.deployment("capture"), encode_spec(parse_spec(spec)), qos=1, retain=True)
            while len(errors) < 2:
                message = await statuses.get()
                status = decode_value(message.payload) if message.payload else {}
                if status.get("error"):
                    errors[message.topic.rsplit("/", 1)[1]] = status["error"]
        assert errors["cam"].startswith("DeviceNotFoundError: camera device " + MISSING_CAMERA + " does not exist")
        assert "microphone device 'hw:7' is not available" in errors["mic"]
        assert host.instances[("capture", "pattern")].state == "running"  # the others go on
        await bus.publish(topics.deployment("capture"), b"", qos=1, retain=True)


def test_device_checks_name_what_is_missing(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="does not exist") as info:
        check_v4l2_device(MISSING_CAMERA)
    assert info.value.device == MISSING_CAMERA and isinstance(info.value, FileNotFoundError)
    with pytest.raises(DeviceNotFoundError, match="no ALSA capture device"):
        check_alsa_device("default", sound_dir=tmp_path)
    (tmp_path / "pcmC0D0c").touch()
    check_alsa_device("default", sound_dir=tmp_path)
    check_alsa_device("plughw:0,0", sound_dir=tmp_path)
    with pytest.raises(DeviceNotFoundError, match="card 1"):
        check_alsa_device("hw:1", sound_dir=tmp_path)
