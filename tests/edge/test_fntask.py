"""@fn_task: ports, special parameters, configs, conversions and when the function runs, on real brokers.

No ``from __future__ import annotations`` here: the functions under test are defined inside the
tests with local types, and fn_task reads their annotations as objects.
"""

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel, Field

import edge
import edge.host
from edge import FnTask, fn_task
from edge.bus import Bus, Subscription
from edge.errors import ConfigError, IdError
from edge.frames import Frame, decode_frame, encode_frame
from edge.task import Task, TaskContext

TIMEOUT = 5.0
EXAMPLE = Path(__file__).parents[2] / "examples" / "fn_task.py"


def unique() -> str:
    return f"test/fntask/{uuid.uuid4().hex[:10]}"


@dataclass
class Harness:
    """One running instance: its task, where its inputs come from, and subscriptions to its outputs."""

    bus: Bus
    task: Any
    sources: dict[str, str]
    outputs: dict[str, Subscription]
    runner: "asyncio.Task[None]"

    async def send(self, port: str, value: Any, ts: int | None = None) -> None:
        await self.bus.publish(self.sources[port], encode_frame(value, ts=ts))

    async def next(self, port: str = "out", timeout: float = TIMEOUT) -> Frame:
        async with asyncio.timeout(timeout):
            return decode_frame((await self.outputs[port].get()).payload)

    async def values(self, count: int, port: str = "out") -> list[Any]:
        return [(await self.next(port)).value for _ in range(count)]


@contextlib.asynccontextmanager
async def running(fnt: FnTask[..., Any], broker: Any, config: dict[str, Any] | None = None, *,
                  wired: list[str] | None = None) -> AsyncIterator[Harness]:
    """Run an instance of ``fnt`` on fresh topics; inputs are subscribed before the body runs."""
    task_type = fnt.task_type
    prefix = unique()
    sources = {port: f"{prefix}/in/{port}" for port in (task_type.inputs if wired is None else wired)}
    targets = {port: [f"{prefix}/out/{port}"] for port in task_type.outputs}
    async with Bus(broker.url) as bus:
        context = TaskContext(bus=bus, instance_id=f"test-{uuid.uuid4().hex[:6]}", sources=sources, targets=targets)
        task = task_type(config, context=context)
        outputs = {port: await bus.subscribe(topics[0]) for port, topics in targets.items()}
        await task.open_inputs()
        runner = asyncio.create_task(task.run())
        try:
            yield Harness(bus, task, sources, outputs, runner)
        finally:
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            await task.close()
            for sub in outputs.values():
                await sub.aclose()


# -- what the decorator derives -------------------------------------------------------------------


def test_ports_from_the_signature():
    @fn_task()
    def adder(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @fn_task
    def split(x: float) -> tuple[int, str, bytes]:
        return int(x), str(x), b""

    @fn_task(name="sink_1", label="A sink")
    def sink(value) -> None:
        pass

    @fn_task
    def maybe(text: str):
        return text

    assert adder(1, 2) == 3 and adder.__name__ == "adder" and adder.__doc__ == "Add two numbers."
    assert issubclass(adder.task_type, Task)
    entry = adder.task_type.describe()
    assert (entry["name"], entry["label"], entry["description"]) == ("adder", "Adder", "Add two numbers.")
    assert entry["inputs"] == {"a": {"content": "number"}, "b": {"content": "number"}}
    assert entry["outputs"] == {"out": {"content": "number"}}
    assert split.task_type.describe()["outputs"] == {
        "out0": {"content": "number"}, "out1": {"content": "text"}, "out2": {"content": "bytes"}}
    assert (sink.task_type.type_name, sink.task_type.label) == ("sink_1", "A sink")
    assert sink.task_type.describe()["inputs"] == {"value": {}} and sink.task_type.outputs == {}
    assert maybe.task_type.outputs == {} and maybe.task_type.describe()["inputs"] == {"text": {"content": "text"}}


def test_special_parameters_are_not_ports():
    @dataclass
    class Cfg:
        k: int = 1

    @fn_task
    def special(x: int, timestamp: int, config: Cfg, state: dict) -> int | None:
        return x

    assert list(special.task_type.inputs) == ["x"] and list(special.task_type.outputs) == ["out"]


def test_config_defaults_options_and_validation():
    @dataclass
    class Cfg:
        step: int = 1
        name: str = "x"
        tags: list[str] = field(default_factory=list)

        def __post_init__(self):
            if self.step > 100:
                raise ValueError("step must be at most 100")

    class Model(BaseModel):
        factor: float = Field(2.0, gt=0)

    @fn_task
    def one(a: int, config: Cfg) -> int:
        return a

    @fn_task
    def two(a: int, b: int, config: Model) -> float:
        return a * b * config.factor

    @fn_task
    def source(config: Cfg) -> int:
        return config.step

    entry = one.task_type.describe()
    assert entry["config_default"] == {"step": 1, "name": "x", "tags": []}
    assert set(entry["config_schema"]["properties"]) == {"step", "name", "tags"}  # one input: no sync options
    assert two.task_type.describe()["config_default"] == {"factor": 2.0, "synchronized": False,
                                                         "sync_timeout_ms": 500}
    assert source.task_type.describe()["config_default"] == {"step": 1, "name": "x", "tags": [],
                                                            "interval_ms": 1000}
    task = one.task_type({"step": 3, "tags": ["a"]})
    assert task.fn_config == Cfg(step=3, tags=["a"])
    assert isinstance(two.task_type({"factor": 3}).fn_config, Model)
    for task_type, bad in [(one.task_type, {"step": "many"}), (one.task_type, {"nope": 1}),
                           (one.task_type, {"step": 101}), (two.task_type, {"factor": 0}),
                           (two.task_type, {"sync_timeout_ms": -1}), (source.task_type, {"interval_ms": 0}),
                           (one.task_type, {"synchronized": True})]:
        with pytest.raises(ConfigError, match=f"invalid config for {task_type.type_name}"):
            task_type.validate_config(bad)


def test_annotated_metadata_and_io_map():
    @dataclass
    class VideoConfig:
        fps: float = 30.0
        width: int = 640

    raw = {"content": "video", "codec": "raw", "pixel_format": "bgr24"}

    @fn_task
    def encode(frame: Annotated[np.ndarray, raw, {"width": "width"}],
               config: VideoConfig) -> tuple[Annotated[bytes, {"content": "video", "codec": "h264"}, {"rate": "fps"}],
                                             int]:
        return b"", 0

    entry = encode.task_type.describe()
    assert entry["inputs"] == {"frame": raw}
    assert entry["outputs"] == {"out0": {"content": "video", "codec": "h264"}, "out1": {"content": "number"}}
    assert entry["io_map"] == {"inputs": {"frame": {"width": "width"}}, "outputs": {"out0": {"rate": "fps"}}}
    task = encode.task_type({"fps": 25, "width": 320})
    assert task.output_metadata("out0") == {"content": "video", "codec": "h264", "rate": 25.0}
    assert task.output_metadata("out1") == {"content": "number"}
    assert task.input_metadata("frame") == {**raw, "width": 320}


def test_mistakes_are_type_errors_at_decoration():
    @dataclass
    class Reserved:
        synchronized: bool = True

    @dataclass
    class NeedsArgs:
        step: int

    class Opaque:
        pass

    def f_reserved(a: int, config: Reserved) -> int: ...
    def f_needs_args(a: int, config: NeedsArgs) -> int: ...
    def f_varargs(*values: int) -> int: ...
    def f_unsupported(a: Opaque) -> int: ...
    def f_io_map_field(a: Annotated[int, {}, {"rate": "fps"}], config: dict) -> int: ...
    def f_io_map_no_config(a: Annotated[int, {}, {"rate": "fps"}]) -> int: ...
    def f_plain_config(a: int, config: dict) -> int: ...
    def f_generator(a: int): yield a
    def f_bare_tuple(a: int) -> tuple: ...
    def f_timestamp(a: int, timestamp: float) -> int: ...

    problems = {
        f_reserved: "'synchronized' of Reserved clash with fn_task options",
        f_needs_args: "must be constructible with no arguments",
        f_varargs: r"\*values",
        f_unsupported: "unsupported type",
        f_io_map_field: "dataclass or a pydantic model",
        f_io_map_no_config: "needs a 'config' parameter",
        f_plain_config: "dataclass or a pydantic model",
        f_generator: "generators are not supported",
        f_bare_tuple: "bare 'tuple'",
        f_timestamp: "'timestamp' is an int",
    }
    for fn, message in problems.items():
        with pytest.raises(TypeError, match=message):
            fn_task(fn)
    with pytest.raises(IdError):
        fn_task(name="no spaces")(lambda a: a)


def test_fn_task_is_exported():
    assert {"FnTask", "fn_task"} <= set(edge.__all__)


# -- when the function runs -----------------------------------------------------------------------


async def test_runs_once_every_input_has_a_value_with_the_latest_of_the_others(broker):
    calls = []

    @fn_task()
    def adder(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    async with running(adder, broker) as h:
        await h.send("a", 1, ts=100)
        await h.send("b", 2, ts=90)
        first = await h.next()
        assert (first.value, first.ts) == (3, 100)  # the newest input's timestamp
        assert calls == [(1, 2)]  # nothing ran while b had no value
        await h.send("a", 10, ts=200)
        assert await h.values(1) == [12]
        await h.send("b", 5, ts=300)
        last = await h.next()
        assert (last.value, last.ts) == (15, 300)
        assert calls == [(1, 2), (10, 2), (10, 5)]
        assert h.task.in_metrics["a"].frames == 2 and h.task.out_metrics["out"].frames == 3


async def test_a_parameter_default_is_the_initial_value_of_an_input(broker):
    @fn_task
    def offset(x: int, delta: int = 100) -> int:
        return x + delta

    async with running(offset, broker, wired=["x"]) as h:
        await h.send("x", 1)
        assert await h.values(1) == [101]


async def test_special_parameters_together_and_alone(broker):
    @dataclass
    class Counter:
        count: int = 0

    @dataclass
    class Step:
        step: int = 1

    @fn_task
    def together(x: int, timestamp: int, state: Counter, config: Step) -> tuple[int, int]:
        state.count += config.step
        return x + state.count, timestamp

    @fn_task
    def stamp(x: int, timestamp: int) -> int:
        return timestamp

    @fn_task
    def configured(x: int, config: Step) -> int:
        return x * config.step

    @fn_task
    def counted(x: Any, state: Counter) -> int:
        state.count += 1
        return state.count

    async with running(together, broker, {"step": 10}) as h:
        for i, ts in enumerate((1000, 2000, 3000)):
            await h.send("x", i, ts=ts)
        assert await h.values(3, "out0") == [10, 21, 32]
        assert await h.values(3, "out1") == [1000, 2000, 3000]
    async with running(stamp, broker) as h:
        await h.send("x", 0, ts=1234)
        assert await h.values(1) == [1234]
    async with running(configured, broker) as h:  # the default config
        await h.send("x", 7)
        assert await h.values(1) == [7]
    async with running(counted, broker) as h:
        for _ in range(3):
            await h.send("x", None)
        assert await h.values(3) == [1, 2, 3]


async def test_state_is_kept_per_instance_and_not_shared(broker):
    @fn_task
    def count(x: int, state: list) -> int:
        state.append(x)
        return len(state)

    async with running(count, broker) as first, running(count, broker) as second:
        for value in (1, 2, 3):
            await first.send("x", value)
        assert await first.values(3) == [1, 2, 3]
        await second.send("x", 9)
        assert await second.values(1) == [1]
        assert first.task.state == [1, 2, 3] and second.task.state == [9]


async def test_thread_safe_functions_run_in_a_worker_thread(broker):
    threads: dict[str, int] = {}

    @fn_task(thread_safe=True)
    def in_thread(x: int) -> int:
        threads["thread_safe"] = threading.get_ident()
        return x

    @fn_task
    def inline(x: int) -> int:
        threads["inline"] = threading.get_ident()
        return x

    for fnt in (in_thread, inline):
        async with running(fnt, broker) as h:
            await h.send("x", 1)
            assert await h.values(1) == [1]
    assert threads["inline"] == threading.get_ident()
    assert threads["thread_safe"] != threading.get_ident()


async def test_async_functions_are_awaited(broker):
    @fn_task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    assert await double(4) == 8
    async with running(double, broker) as h:
        await h.send("x", 21)
        assert await h.values(1) == [42]


async def test_none_emits_nothing(broker):
    @fn_task
    def evens(x: int) -> int | None:
        return x if x % 2 == 0 else None

    @fn_task
    def pair(x: int) -> tuple[int, int]:
        return (None if x == 1 else x, x)  # type: ignore[return-value]

    async with running(evens, broker) as h:
        for x in (1, 2, 3, 4):
            await h.send("x", x)
        assert await h.values(2) == [2, 4]  # order is kept per topic: 1 and 3 sent nothing
    async with running(pair, broker) as h:
        await h.send("x", 1)
        await h.send("x", 2)
        assert await h.values(1, "out0") == [2]
        assert await h.values(2, "out1") == [1, 2]


async def test_a_source_is_called_every_interval(broker):
    @fn_task
    def ticker(timestamp: int, state: dict) -> tuple[int, int]:
        state["n"] = state.get("n", 0) + 1
        return state["n"], timestamp

    async with running(ticker, broker, {"interval_ms": 50}) as h:
        assert await h.values(3, "out0") == [1, 2, 3]
        stamps = await h.values(3, "out1")
    assert stamps[2] - stamps[0] >= 2 * 50 - 15  # the first call is at once, then one per interval


# -- conversions and errors ---------------------------------------------------------------------


async def test_values_convert_to_the_annotation_only_when_lossless(broker, caplog):
    seen: list[Any] = []

    @fn_task
    def as_int(x: int) -> int:
        seen.append(x)
        return x

    @fn_task
    def as_float(x: float) -> float:
        seen.append(x)
        return x

    @fn_task
    def as_any(x) -> Any:
        seen.append(x)
        return x

    caplog.set_level(logging.WARNING, "edge.fntask")
    async with running(as_int, broker) as h:
        for value in (2.0, 2.5, "3", True, None, 7):
            await h.send("x", value)
        assert await h.values(2) == [2, 7]
        assert h.task.in_metrics["x"].errors == 4 and h.task.in_metrics["x"].frames == 6
        warnings = [r.getMessage() for r in caplog.records if r.name == "edge.fntask"]
        assert warnings and h.task.context.instance_id in warnings[0] and "'x'" in warnings[0]
        assert "expected int, got float 2.5" in warnings[0]
    async with running(as_float, broker) as h:
        for value in (3, 2**60 + 1, 0.5):
            await h.send("x", value)
        assert await h.values(2) == [3.0, 0.5]
        assert h.task.in_metrics["x"].errors == 1
    async with running(as_any, broker) as h:
        for value in (3, 3.0, [1, 2], {"k": b"v"}):
            await h.send("x", value)
        got = await h.values(4)
        assert got == [3, 3.0, [1, 2], {"k": b"v"}] and type(got[0]) is int
    assert [type(v) for v in seen] == [int, int, float, float, int, float, list, dict]


async def test_numpy_arrays_in_and_out(broker):
    @fn_task
    def scale(image: npt.NDArray[np.float32], factor: float = 2.0) -> np.ndarray:
        assert image.dtype == np.float32
        return image * factor

    async with running(scale, broker, wired=["image"]) as h:
        await h.send("image", np.arange(6, dtype=np.float32).reshape(2, 3))
        await h.send("image", [1, 2, 3])  # a list of ints becomes float32 exactly
        await h.send("image", np.array([0.1]))  # float64 0.1 is not a float32: refused
        await h.send("image", np.array([1, 2], dtype=np.int16))
        first, second, third = await h.values(3)
        assert first.dtype == np.float32 and first.tolist() == [[0, 2, 4], [6, 8, 10]]
        assert second.tolist() == [2, 4, 6] and third.tolist() == [2, 4]
        assert h.task.in_metrics["image"].errors == 1


async def test_an_unencodable_result_is_counted_not_fatal(broker):
    @fn_task
    def bad(x: int) -> Any:
        return object() if x == 0 else x

    async with running(bad, broker) as h:
        await h.send("x", 0)
        await h.send("x", 5)
        assert await h.values(1) == [5]
        assert h.task.out_metrics["out"].errors == 1 and not h.runner.done()


@pytest.mark.expect_errors("fragile raised")
async def test_an_exception_in_the_function_ends_run_after_being_logged(broker, caplog):
    @fn_task
    def fragile(x: int) -> int:
        if x == 13:
            raise ValueError("unlucky")
        return x

    async with running(fragile, broker) as h:
        await h.send("x", 1)
        assert await h.values(1) == [1]
        await h.send("x", 13)
        with pytest.raises(ValueError, match="unlucky"):
            await asyncio.wait_for(h.runner, TIMEOUT)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "edge.fntask"]
    assert errors and h.task.context.instance_id in errors[0].getMessage() and errors[0].exc_info


# -- synchronized ---------------------------------------------------------------------------------


async def test_synchronized_inputs_are_merged_in_timestamp_order(broker):
    calls = []

    @fn_task
    def merge(a: int, b: int, timestamp: int) -> int:
        calls.append((a, b))
        return timestamp

    async with running(merge, broker, {"synchronized": True, "sync_timeout_ms": 2000}) as h:
        for ts in (30, 10, 50):  # out of order on one input, and all of a before any of b
            await h.send("a", ts, ts=ts)
        for ts in (20, 40, 60):
            await h.send("b", ts, ts=ts)
        assert await h.values(5) == [20, 30, 40, 50, 60]
    assert calls == [(10, 20), (30, 20), (30, 40), (50, 40), (50, 60)]


async def test_a_quiet_input_delays_the_others_at_most_sync_timeout(broker):
    @fn_task
    def pair(a: int, b: int) -> int:
        return a + b

    timeout = 0.3
    loop = asyncio.get_running_loop()
    async with running(pair, broker, {"synchronized": True, "sync_timeout_ms": int(timeout * 1000)}) as h:
        await h.send("a", 1, ts=1)
        await h.send("b", 2, ts=2)
        assert await h.values(1) == [3]  # b's frame went once it had waited the timeout
        for value, ts in ((10, 3), (20, 4)):  # b is quiet from now on
            started = loop.time()
            await h.send("a", value, ts=ts)
            assert await h.values(1) == [value + 2]
            waited = loop.time() - started
            assert timeout - 0.02 <= waited <= timeout + 2.0, waited


async def test_without_synchronized_frames_run_as_they_come(broker):
    @fn_task
    def pair(a: int, b: int, timestamp: int) -> int:
        return timestamp

    async with running(pair, broker) as h:
        await h.send("a", 0, ts=50)
        await h.send("b", 0, ts=10)
        assert await h.values(1) == [50]
        await h.send("b", 0, ts=20)
        assert await h.values(1) == [50]  # newest of the current values, not merged


# -- running as a script ----------------------------------------------------------------------------


async def test_run_wires_an_instance_from_the_command_line(broker):
    @fn_task
    def adder(a: int, b: int) -> int:
        return a + b

    prefix = unique()
    argv = ["--in", f"a={prefix}/a", "--in", f"b={prefix}/b", "--out", f"out={prefix}/sum", "--out",
            f"out={prefix}/copy", "--id", "wired-adder", "--config", '{"synchronized": false}']
    async with Bus(broker.url) as bus, bus.subscribe(f"{prefix}/copy") as out:
        runner = asyncio.create_task(adder.run(str(broker.url), argv=argv))
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:  # nothing says when the script has subscribed: feed it until it answers
                    await bus.publish(f"{prefix}/a", encode_frame(40))
                    await bus.publish(f"{prefix}/b", encode_frame(2))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            assert decode_frame((await out.get()).payload).value == 42
                            break
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def test_run_without_wiring_is_an_agent(monkeypatch):
    @fn_task
    def adder(a: int, b: int) -> int:
        return a + b

    calls = []

    async def fake_run_agent(settings, *, types, agent_id):
        calls.append((str(settings.broker_url), types, agent_id))

    monkeypatch.setattr(edge.host, "run_agent", fake_run_agent)
    for name in ("EDGE_AGENT_ID", "NODE_NAME", "EDGE_BROKER"):
        monkeypatch.delenv(name, raising=False)
    await adder.run("mqtt://127.0.0.1:1884", argv=[])
    await adder.run(argv=["mqtt://127.0.0.1:1885", "--id", "my-agent"])
    monkeypatch.setenv("NODE_NAME", "pi-7")
    await adder.run(argv=["--broker", "mqtt://127.0.0.1:1886"])
    (url1, types, id1), (url2, _, id2), (url3, _, id3) = calls
    assert types == [adder.task_type]
    assert (url1, url2, url3) == ("mqtt://127.0.0.1:1884", "mqtt://127.0.0.1:1885", "mqtt://127.0.0.1:1886")
    assert id1.endswith("-adder") and len(id1) <= 64 and (id2, id3) == ("my-agent", "pi-7")


@pytest.mark.parametrize(("argv", "message"), [
    (["--in", "c=t/c"], "no input 'c'"),
    (["--out", "sum=t/s"], "no output 'sum'"),
    (["--in", "a=t/a", "--in", "a=t/b"], "given twice"),
    (["--in", "a"], "not PORT=TOPIC"),
    (["--out", "out=t/#"], "wildcard"),
    (["--in", "a=t/a", "--config", "[1]"], "JSON object"),
    (["--in", "a=t/a", "--config", '{"synchronized": "maybe"}'], "invalid config"),
    (["--config", "{}"], "--config needs --in/--out"),
    (["mqtt://a:1", "--broker", "mqtt://b:1"], "two broker URLs"),
])
async def test_command_line_mistakes_exit_with_usage_errors(argv, message, capsys):
    @fn_task
    def adder(a: int, b: int) -> int:
        return a + b

    with pytest.raises(SystemExit) as exc:
        await adder.run(argv=argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_the_example_script_runs_wired_and_stops_on_ctrl_c(broker, stop):
    prefix = unique()
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--in", f"a={prefix}/a", "--in", f"b={prefix}/b", "--out",
         f"out={prefix}/sum", str(broker.url)], stderr=subprocess.PIPE, text=True)

    async def feed() -> int:
        async with Bus(broker.url) as bus, bus.subscribe(f"{prefix}/sum") as out, asyncio.timeout(20):
            while True:
                await bus.publish(f"{prefix}/a", encode_frame(1))
                await bus.publish(f"{prefix}/b", encode_frame(2))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        return int(decode_frame((await out.get()).payload).value)

    try:
        assert asyncio.run(feed()) == 3
        # Ctrl+C, or what a container stop or systemd sends: both stop it cleanly with exit code 0
        process.send_signal(getattr(subprocess.signal, stop))
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
