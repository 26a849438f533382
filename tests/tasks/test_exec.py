"""exec in-process (edge.testing): arguments without a shell, stdin, timeouts, bounded output, the setting."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.host import Host
from edge.settings import load_settings
from edge.testing import run_task
from tasks.exec import Exec

PY = sys.executable


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_ALLOW_EXEC", "1")


async def test_the_value_is_one_argument_never_a_shell(allowed: None, tmp_path: Path) -> None:
    async with run_task(Exec, {"command": ["echo", "got:{value}"]}, files_dir=tmp_path) as run:
        await run.feed("in", "a; touch pwned $(id) `id` | cat")
        result = (await run.next("out")).value
        await run.feed("in", {"n": 1.5})
        assert (await run.next("out")).value["stdout"] == 'got:{"n": 1.5}\n'
    assert result == {"exit_code": 0, "stdout": "got:a; touch pwned $(id) `id` | cat\n", "stderr": "",
                      "timed_out": False, "truncated": False}
    assert not (tmp_path / "pwned").exists()


async def test_stdin_exit_code_stderr_and_the_files_folder_as_working_directory(allowed: None, tmp_path: Path) -> None:
    script = "import os, sys; d = sys.stdin.buffer.read(); print(len(d), os.getcwd()); " \
             "sys.stderr.write(d.decode()); sys.exit(3)"
    async with run_task(Exec, {"command": [PY, "-c", script], "stdin": True}, files_dir=tmp_path) as run:
        await run.feed("in", b"\x00abc")
        result = (await run.next("out")).value
    assert result["exit_code"] == 3 and result["stdout"] == f"4 {tmp_path}\n" and result["stderr"] == "\x00abc"


async def test_the_environment_is_small_and_takes_the_configs(allowed: None, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("EDGE_PASSWORD", "hunter2")
    script = "import os, json; print(json.dumps(sorted(os.environ)))"
    async with run_task(Exec, {"command": [PY, "-c", script], "env": {"API_URL": "x"}}, files_dir=tmp_path) as run:
        await run.feed("in", 1)
        names = (await run.next("out")).value["stdout"]
    assert "EDGE_PASSWORD" not in names and "API_URL" in names and "PATH" in names


async def test_a_timeout_kills_the_whole_process_group(allowed: None, tmp_path: Path) -> None:
    # the command starts a grandchild that would outlive it: both must go
    script = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
              "time.sleep(60)']); print(p.pid, flush=True); time.sleep(60)")
    pidfile = tmp_path / "pid"
    wrapper = f"import subprocess, sys; out = open({str(pidfile)!r}, 'w'); " \
              f"subprocess.run([sys.executable, '-c', {script!r}], stdout=out)"
    started = time.monotonic()
    async with run_task(Exec, {"command": [PY, "-c", wrapper], "timeout_s": 1}, files_dir=tmp_path) as run:
        await run.feed("in", 1)
        result = (await run.next("out", timeout=10)).value
    assert result["timed_out"] and result["exit_code"] < 0 and time.monotonic() - started < 8
    grandchild = int(pidfile.read_text().split()[0])
    deadline = time.monotonic() + 5
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived the timeout"
        await asyncio.sleep(0.02)


async def test_stopping_the_task_kills_a_running_command(allowed: None, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    async with run_task(Exec, {"command": [PY, "-c", script], "timeout_s": 120}, files_dir=tmp_path) as run:
        await run.feed("in", 1)
        deadline = time.monotonic() + 5
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the command did not start"
            await asyncio.sleep(0.01)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline, "the command outlived its task"
        await asyncio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (reaped later by init) is dead
        return f.read().split()[2] != "Z"


async def test_output_is_cut_at_max_output(allowed: None, tmp_path: Path) -> None:
    script = "import sys; sys.stdout.write('x' * 1_000_000); sys.stderr.write('e' * 10)"
    async with run_task(Exec, {"command": [PY, "-c", script], "max_output": 100, "output": "bytes"},
                        files_dir=tmp_path) as run:
        await run.feed("in", 1)
        result = (await run.next("out")).value
    assert result["stdout"] == b"x" * 100 and result["stderr"] == b"e" * 10 and result["truncated"]
    assert result["exit_code"] == 0


async def test_a_command_that_cannot_start_is_an_error_frame(allowed: None, tmp_path: Path) -> None:
    async with run_task(Exec, {"command": ["/nonexistent/program", "{value}"]}, files_dir=tmp_path) as run:
        await run.feed("in", 1)
        error = (await run.next("error")).value
        assert error == {"error": "cannot run '/nonexistent/program': No such file or directory"}
        assert run.task.in_metrics["in"].errors == 1
    async with run_task(Exec, {"command": ["echo", "{value}"]}, files_dir=tmp_path) as run:
        for bad in ["nul\x00inside", float("nan"), b"bytes"]:
            await run.feed("in", bad)
        await run.feed("in", "fine")
        assert (await run.next("out")).value["stdout"] == "fine\n"
        assert run.task.in_metrics["in"].errors == 3


async def test_at_most_max_in_flight_run_at_once(allowed: None, tmp_path: Path) -> None:
    # each run holds a lock file while it sleeps: two at once must never be seen with max_in_flight 2 of 3
    script = ("import os, sys, time; d = sys.argv[1]; n = len(os.listdir(d)); p = os.path.join(d, sys.argv[2]); "
              "open(p, 'w').close(); time.sleep(0.3); print(n); os.remove(p)")
    (tmp_path / "running").mkdir()
    async with run_task(Exec, {"command": [PY, "-c", script, str(tmp_path / "running"), "{value}"],
                               "max_in_flight": 2}, files_dir=tmp_path) as run:
        started = time.monotonic()
        for k in range(4):
            await run.feed("in", f"job{k}")
        seen = [int((await run.next("out")).value["stdout"]) for _ in range(4)]
        elapsed = time.monotonic() - started
    assert max(seen) <= 1 and elapsed >= 0.6  # never more than one other running; two rounds of two


async def test_off_unless_the_agent_allows_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGE_ALLOW_EXEC", raising=False)
    reason = Exec.unavailable_reason()
    assert reason is not None and "EDGE_ALLOW_EXEC=1" in reason and "\n" not in reason
    with pytest.raises(ConfigError, match="exec is off on this agent"):
        async with run_task(Exec, {"command": ["true"]}, files_dir=tmp_path) as run:
            await asyncio.wait({run.runner})
    host = Host(load_settings(broker="mqtt://127.0.0.1:1", data_dir=tmp_path), types=[Exec], persist=False)
    entry = next(e for e in host.catalog() if e["name"] == "exec")
    assert entry["available"] is False and entry["reason"] == reason
    monkeypatch.setenv("EDGE_ALLOW_EXEC", "true")
    assert Exec.unavailable_reason() is None


def test_a_shell_string_or_an_empty_program_is_refused() -> None:
    assert Exec.check({"command": []})[0].startswith("config.command:")
    assert Exec.check({"command": [" "]}) == ["config.command: the program (the first item) is empty"]
    assert Exec.check({"command": "rm -rf /"})[0].startswith("config.command:")
