"""Tasks read and write files only in the agent's files folder (edge.files): every file task refuses
a path outside it, a '..' that climbs out and a symlink that leads out; a spec cannot make an agent
overwrite its own secrets file."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from agent import Agent
from edge.bus import Bus
from edge.controller import Controller
from edge.errors import ConfigError
from edge.files import check_file_path, files_folder
from edge.graph import encode_spec, parse_spec
from edge.settings import load_settings
from edge.task import Task, TaskContext
from edge.topics import Topics
from tasks.file_read import FileRead
from tasks.files import FileWrite
from tasks.media import InputContainer, OutputContainer
from tasks.replay import ReplayBuffer

TIMEOUT = 15.0

#: every built-in task that reads or writes files, and the config field naming the file
FILE_TASKS: list[tuple[type[Task], str, dict[str, Any]]] = [
    (ReplayBuffer, "file", {}),
    (InputContainer, "url", {}),
    (OutputContainer, "url", {}),
    (FileWrite, "path", {}),
    (FileRead, "path", {}),
]


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """An agent's data dir with its secrets file, and its files folder holding one video and a symlink out."""
    data = tmp_path / "data"
    files = data / "files"
    (files / "clips").mkdir(parents=True)
    (data / "secrets.yaml").write_text("key: value\n")
    (files / "clips" / "in.mkv").write_bytes(b"")
    (files / "escape").symlink_to(data)  # a link inside the folder to the data dir beside it
    (files / "clips" / "inner").symlink_to(files / "clips")  # a link that stays inside
    return data, files


@pytest.mark.parametrize(("task_type", "field", "extra"), FILE_TASKS, ids=[t[0].type_name for t in FILE_TASKS])
def test_every_file_task_refuses_paths_out_of_its_folder(folders, task_type, field, extra):
    data, files = folders
    with files_folder(files):
        def problems(value: str) -> list[str]:
            return task_type.check({**extra, field: value})

        outside = problems(str(data / "secrets.yaml"))
        assert outside == [f"config.{field}: {str(data / 'secrets.yaml')!r} is outside this agent's files folder "
                           f"{files}: use a path inside the agent's files folder (EDGE_FILES_DIR)"]
        assert "outside this agent's files folder" in problems("/etc/passwd")[0]
        climbing = problems("../secrets.yaml")
        assert len(climbing) == 1 and "outside this agent's files folder" in climbing[0]
        assert "outside" in problems("clips/../../secrets.yaml")[0]
        through_link = problems("escape/secrets.yaml")
        assert len(through_link) == 1 and "through a symlink" in through_link[0], through_link
        # inside: relative, absolute inside, a '..' that stays in, a symlink that stays in
        for fine in ("clips/in.mkv", str(files / "clips" / "in.mkv"), "clips/../out.mkv", "clips/inner/x.mkv"):
            assert problems(fine) == [], fine
    # where no folder is known (outside an agent) the rule is lexical: relative, no climbing out
    assert task_type.check({**extra, field: "clips/in.mkv"}) == []
    assert "absolute path" in task_type.check({**extra, field: "/etc/passwd"})[0]
    assert "through '..'" in task_type.check({**extra, field: "../x"})[0]


def test_file_urls_and_file_writing_formats_are_refused():
    assert "unsupported URL scheme 'file'" in InputContainer.check({"url": "file:///etc/passwd"})[0]
    assert "unsupported URL scheme 'file'" in OutputContainer.check({"url": "file:///tmp/x.mkv"})[0]
    assert "not allowed" in OutputContainer.check({"url": "x.mkv", "format": "tee"})[0]
    assert "not allowed" in OutputContainer.check({"url": "live.m3u8"})[0]
    assert "not allowed" in OutputContainer.check({"url": "x.ts", "options": {"hls_segment_filename": "/etc/x"}})[0]
    assert "not allowed" in InputContainer.check({"url": "list.txt", "format": "concat"})[0]
    assert "not allowed" in InputContainer.check({"url": "x.mkv", "options": {"key_file": "../../secrets.yaml"}})[0]
    assert OutputContainer.check({"url": "x.mp4", "options": {"movflags": "+faststart"}}) == []
    assert OutputContainer.check({"url": "rtmp://127.0.0.1/live/key"}) == []  # network URLs are not files


async def test_a_symlink_made_after_the_check_is_refused_when_the_file_is_opened(broker, folders):
    data, files = folders
    async with Bus(broker.url) as bus:
        context = TaskContext(bus=bus, instance_id="d/rec", sources={}, targets={}, files_dir=files)
        task = OutputContainer({"url": "later.mkv"}, context=context)
        assert task.file_path("later.mkv") == files.resolve() / "later.mkv"
        (files / "later.mkv").symlink_to(data / "secrets.yaml")
        with pytest.raises(ConfigError, match="through a symlink"):
            task.file_path("later.mkv")
        no_folder = OutputContainer({"url": "x.mkv"}, context=TaskContext(bus=bus, instance_id="d/x", sources={},
                                                                          targets={}))
        with pytest.raises(ConfigError, match="no files folder"):
            no_folder.file_path("x.mkv")


def test_the_shared_rule_directly(folders):
    _, files = folders
    assert check_file_path("a/b.mkv", folder=files) == "a/b.mkv"
    with pytest.raises(ValueError, match="NUL"):
        check_file_path("a\0b", folder=files)
    with pytest.raises(ValueError, match="outside"):
        check_file_path(str(files), folder=files)  # the folder itself is no file in it
    with pytest.raises(ValueError, match="outside"):
        check_file_path(str(files) + "-evil/x", folder=files)  # a sibling whose name starts the same


async def test_a_spec_cannot_overwrite_the_agents_secrets(broker, tmp_path):
    """The attack of issue 22: an output_container pointed at the agent's own secrets.yaml (directly, by '..'
    and through a symlink) is invalid on the agent and in the controller's validation; the file is untouched."""
    ns = f"files{uuid.uuid4().hex[:6]}"
    data = tmp_path / "a1"
    secrets = data / "secrets.yaml"
    data.mkdir()
    secrets.write_text("key: value\n")
    secrets.chmod(0o600)
    settings = load_settings(broker=broker.url.geturl(), namespace=ns, agent_id="a1", data_dir=data)
    (data / "files").mkdir()
    (data / "files" / "link").symlink_to(secrets)
    tasks = [{"id": "cam", "type": "test_pattern", "agent": "a1", "config": {"width": 64, "height": 48}}]
    edges = []
    for task_id, url in (("abs", str(secrets)), ("up", "../secrets.yaml"), ("sym", "link")):
        tasks.append({"id": task_id, "type": "output_container", "agent": "a1", "config": {"url": url}})
        edges.append({"from": "cam.video", "to": f"{task_id}.video"})
    spec = {"id": "steal", "tasks": tasks, "edges": edges}
    async with Agent(settings), \
            Controller(load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "c")) as ctl:
        await ctl.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("output_container"), TIMEOUT)
        report = await ctl.validate(spec)  # the controller's validation asks the agent: the same rule
        assert report.unchecked == ()
        assert sorted(e.split(":")[0] for e in report.errors) == ["task 'abs'", "task 'sym'", "task 'up'"], report
        assert all("files folder" in e for e in report.errors), report.errors
        # published anyway, as a client without the controller's checks could
        await ctl.bus.publish(Topics(ns).deployment("steal"), encode_spec(parse_spec(spec)), qos=1, retain=True)
        await ctl.fleet.wait_for(lambda f: len([s for s in f.tasks_of("steal") if s.state == "invalid"]) == 3,
                                 TIMEOUT)
        for task_id in ("abs", "up", "sym"):
            status = ctl.fleet.statuses[("steal", task_id)]
            assert "files folder" in (status.error or ""), status
        await ctl.bus.publish(Topics(ns).deployment("steal"), b"", qos=1, retain=True)
    assert secrets.read_text() == "key: value\n"


@pytest.mark.parametrize("files_dir", ["", "."], ids=["the data dir", "its parent"])
def test_a_files_folder_holding_the_agents_secrets_or_state_is_refused(tmp_path, files_dir):
    data = tmp_path / "data"
    folder = data if files_dir == "" else tmp_path
    settings = load_settings(broker="mqtt://127.0.0.1:1", agent_id="a1", data_dir=data, files_dir=folder)
    with pytest.raises(ConfigError, match=r"EDGE_FILES_DIR .* holds the agent's secrets file"):
        Agent(settings)
    Agent(load_settings(broker="mqtt://127.0.0.1:1", agent_id="a1", data_dir=data))  # the default is fine
