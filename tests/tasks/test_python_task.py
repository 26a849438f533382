"""The ``python`` task: code from the config, run per frame in a worker process with limits."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import textwrap

import pytest
from task_harness import MEMORY, running

from edge.errors import TaskError
from edge.settings import load_settings
from tasks.function import PythonFunction


def code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


async def test_the_default_code_passes_values_through_with_their_timestamps():
    async with running(PythonFunction, MEMORY) as h:
        await h.feed("in", {"a": [1, 2.5, "x"]}, ts=1234)
        frame = await h.next("out")
        assert frame.value == {"a": [1, 2.5, "x"]} and frame.ts == 1234


async def test_state_lives_across_calls_and_params_reach_the_code():
    counter = code("""
        def process(value, port, state, config):
            state["n"] = state.get("n", 0) + value * config["step"]
            return state["n"]
    """)
    async with running(PythonFunction, MEMORY, {"code": counter, "params": {"step": 10}}) as h:
        for value in (1, 2, 3):
            await h.feed("in", value)
        assert await h.values(3) == [10, 30, 60]


async def test_ports_follow_the_config_and_a_map_routes_results():
    router = code("""
        def process(value, port):
            if port == "reset":
                return {"low": 0, "high": 0}
            return {"high": value} if value > 10 else {"low": value}
    """)
    config = {"code": router, "inputs": ["in", "reset"], "outputs": ["low", "high"]}
    assert set(PythonFunction.ports(PythonFunction.validate_config(config)).inputs) == {"in", "reset"}
    async with running(PythonFunction, MEMORY, config) as h:
        await h.feed("in", 5)
        await h.feed("in", 50)
        await h.feed("reset", True)
        assert await h.values(2, "low") == [5, 0]
        assert await h.values(2, "high") == [50, 0]


async def test_none_sends_nothing_and_a_wrong_map_is_an_input_error():
    picky = code("""
        def process(value):
            if value == "skip":
                return None
            if value == "bad":
                return {"nowhere": 1}
            return {"a": value}
    """)
    async with running(PythonFunction, MEMORY, {"code": picky, "outputs": ["a", "b"]}) as h:
        for value in ("skip", "bad", "ok"):
            await h.feed("in", value)
        assert (await h.next("a")).value == "ok"
        assert h.task.in_metrics["in"].errors == 1 and h.drain("a") == [] and h.drain("b") == []


async def test_an_exception_is_that_frames_error_with_its_line_and_the_task_goes_on(caplog):
    divider = code("""
        def process(value):
            return 100 / value
    """)
    async with running(PythonFunction, MEMORY, {"code": divider}) as h:
        await h.feed("in", 0)
        await h.feed("in", 4)
        assert (await h.next("out")).value == 25
        assert h.task.in_metrics["in"].errors == 1
    assert any("line 2: ZeroDivisionError: division by zero" in r.getMessage() for r in caplog.records)


async def test_print_goes_to_the_log_and_not_into_the_protocol(caplog):
    chatty = code("""
        import sys
        print("loaded")
        def process(value):
            print("got", value)
            sys.stdout.write("more\\n")
            return value
    """)
    with caplog.at_level(logging.INFO, logger="tasks.python"):
        async with running(PythonFunction, MEMORY, {"code": chatty}) as h:
            await h.feed("in", 7)
            assert (await h.next("out")).value == 7
            await h.until(lambda: any("got 7" in r.getMessage() for r in caplog.records), "the printed line")
    assert any(r.getMessage().endswith(": loaded") for r in caplog.records)


@pytest.mark.parametrize(("body", "why"), [
    ("while True:\n        pass", "used more than 0.3 s of CPU"),
    ("try:\n        while True: pass\n    except Exception:\n        return 'caught'", "used more than 0.3 s of CPU"),
    ("import time\n    time.sleep(30)", "took more than 1.3 s running process() and was killed"),
    ("return bytearray(400 * 1024 * 1024)", "ran out of memory"),
    ("import os\n    os._exit(3)", "the worker process died running process() (exit code 3)"),
])
async def test_a_limit_hit_or_a_dead_worker_fails_the_task_not_the_caller(body, why):
    config = {"code": f"def process(value):\n    {body}\n", "timeout": 0.3, "memory_mb": 64}
    with pytest.raises(TaskError, match=re.escape(why)):  # what the agent shows as the instance's error
        async with running(PythonFunction, MEMORY, config) as h:
            await h.feed("in", 1)
            async with asyncio.timeout(10):
                while not h.runner.done():
                    await asyncio.sleep(0.02)


async def test_the_worker_gets_none_of_the_agents_environment(monkeypatch):
    monkeypatch.setenv("EDGE_PASSWORD", "hunter2")
    leak = code("""
        import os
        def process(value):
            return os.environ.get("EDGE_PASSWORD", "absent")
    """)
    async with running(PythonFunction, MEMORY, {"code": leak}) as h:
        await h.feed("in", 1)
        assert (await h.next("out")).value == "absent"


async def test_the_worker_is_gone_when_the_task_stops():
    pid_of = code("""
        import os
        def process(value):
            return os.getpid()
    """)
    async with running(PythonFunction, MEMORY, {"code": pid_of}) as h:
        await h.feed("in", 1)
        pid = (await h.next("out")).value
        assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize(("config", "line"), [
    ({"code": "def process(value):\n  return (\n"}, "config.code: line 2: '(' was never closed"),
    ({"code": "x = 1\n"}, "config.code: the code must define a function process(value, port, state, config)"),
    ({"code": "async def process(value):\n    return value\n"}, "config.code: line 1: process must be a plain"),
    ({"code": "def process(a, b, c, d, e):\n    pass\n"}, "config.code: line 1: process takes at most 4"),
    ({"code": "(" * 300 + ")" * 300 + "\ndef process(v): pass\n"}, "config.code: line 1: too many nested"),
    ({"code": "x" * 70_000}, "config.code: String should have at most 65536 characters"),
    ({"outputs": ["a", "a"]}, "config.outputs: port names must differ"),
    ({"inputs": ["a/b"]}, "config.inputs: 'a/b' is not a port name"),
    ({"timeout": 0}, "config.timeout: Input should be greater than 0"),
])
def test_bad_code_or_config_is_one_line_naming_the_field(config, line):
    problems = PythonFunction.check(config)
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_only_agents_that_allow_code_offer_it(tmp_path):
    assert PythonFunction.unavailable_reason(load_settings(data_dir=tmp_path, allow_code=True)) is None
    reason = PythonFunction.unavailable_reason(load_settings(data_dir=tmp_path))
    assert reason is not None and "EDGE_ALLOW_CODE" in reason


async def test_a_hostile_value_reaches_the_code_as_it_came(caplog):
    echo = code("""
        import math
        def process(value):
            return [type(value).__name__, value != value if isinstance(value, float) else value]
    """)
    async with running(PythonFunction, MEMORY, {"code": echo}) as h:
        for value in (float("nan"), 2**200, b"\x00\xff", None):
            await h.feed("in", value)
        got = await h.values(4)
    assert got == [["float", True], ["int", 2**200], ["bytes", b"\x00\xff"], ["NoneType", None]]
