"""fn_task: plain functions as task types (the full guide: the "fn_task" section of docs/tasks.md).

Three task types: ``adder`` (the smallest one), ``demo2`` (state and config together, as in the
streamtasks README) and ``red_shifter`` (``Annotated`` IO metadata, a config field mapped onto it,
numpy frames in and out, run in a worker thread).

    # a short self-demo: wires the three to fresh topics on this broker, feeds them, prints, exits
    python examples/fn_task.py mqtt://127.0.0.1:1883

    # the adder wired straight to topics, no controller needed (Ctrl-C stops it)
    python examples/fn_task.py --in a=sensors/a --in b=sensors/b --out out=sensors/sum mqtt://127.0.0.1:1883
    python examples/fn_task.py --in a=sensors/a --in b=sensors/b --out out=sensors/sum --config '{"synchronized": true}'

    # an agent offering 'adder', so a deployment spec can place instances of it here
    python examples/fn_task.py --broker mqtt://127.0.0.1:1883 --id my-adders

``python examples/fn_task.py --help`` lists the options (broker: ``--broker``, else ``EDGE_BROKER``).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt

from edge import FnTask, fn_task
from edge.bus import Bus, Subscription
from edge.frames import decode_frame, encode_frame
from edge.task import TaskContext


@fn_task()
def adder(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@dataclass
class State:
    count: int = 0


@dataclass
class Config:
    step: int = 1


@fn_task()
def demo2(a: int, state: State, config: Config) -> int:
    """Add a running count, which grows by ``step`` on every call."""
    state.count += config.step
    return a + state.count


@dataclass
class ShifterConfig:
    rate: int = 30
    width: int = 64
    height: int = 48
    scale: float = 1.2


VIDEO = {"content": "video", "codec": "raw", "pixel_format": "bgr24"}
FROM_CONFIG = {"rate": "rate", "width": "width", "height": "height"}  # IO metadata key -> config field


@fn_task(thread_safe=True, label="Red shifter")
def red_shifter(image: Annotated[npt.NDArray[np.uint8], VIDEO, FROM_CONFIG],
                config: ShifterConfig) -> Annotated[npt.NDArray[np.uint8], VIDEO, FROM_CONFIG]:
    """Scale the red channel of raw BGR frames (height x width x 3 bytes)."""
    scaled = image.astype(np.float32) * np.array([1, 1, config.scale], dtype=np.float32)
    return np.minimum(scaled, 255).astype(np.uint8)


# -- the self-demo: each function wired to fresh topics through the Task API --------------------


@asynccontextmanager
async def wired(bus: Bus, fn: FnTask[..., Any], config: dict[str, Any] | None = None
                ) -> AsyncIterator[tuple[dict[str, str], Subscription]]:
    """Run one instance of ``fn`` on the bus; yield its input topics and a subscription to ``out``."""
    prefix = f"examples/fn_task/{uuid.uuid4().hex[:8]}/{fn.task_type.type_name}"
    sources = {port: f"{prefix}/in/{port}" for port in fn.task_type.inputs}
    context = TaskContext(bus=bus, instance_id=f"demo-{fn.task_type.type_name}", sources=sources,
                          targets={"out": [f"{prefix}/out"]})
    task = fn.task_type(config, context=context)
    async with bus.subscribe(f"{prefix}/out") as out:
        await task.open_inputs()  # subscribed: what we publish from now on reaches the task
        runner = asyncio.create_task(task.run())
        try:
            yield sources, out
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await task.close()


async def result(out: Subscription) -> Any:
    return decode_frame((await out.get()).payload).value


async def demo(url: str) -> None:
    async with asyncio.timeout(30), Bus(url) as bus:
        async with wired(bus, adder) as (inputs, out):
            for a, b in [(1, 2), (10, 20), (100, 200)]:
                await bus.publish(inputs["a"], encode_frame(a))
                await bus.publish(inputs["b"], encode_frame(b))
                # the first pair fires once (b arrives after a); each later value fires with the other's latest
                sums = [await result(out) for _ in range(1 if a == 1 else 2)]
                print(f"adder: a={a} b={b} -> {sums}")

        async with wired(bus, demo2, {"step": 5}) as (inputs, out):
            for a in (1, 1, 1):
                await bus.publish(inputs["a"], encode_frame(a))
                print(f"demo2: a={a} -> {await result(out)}  (count grows by step=5)")

        shifter = red_shifter.task_type({"rate": 25})
        print(f"red_shifter catalog outputs: {red_shifter.task_type.describe()['outputs']}")
        print(f"red_shifter instance output metadata: {shifter.output_metadata('out')}")
        async with wired(bus, red_shifter, {"rate": 25, "scale": 2.0}) as (inputs, out):
            frame = np.full((48, 64, 3), 100, dtype=np.uint8)
            await bus.publish(inputs["image"], encode_frame(frame))
            shifted = await result(out)
            print(f"red_shifter: pixel {frame[0, 0].tolist()} -> {shifted[0, 0].tolist()}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 1 and not args[0].startswith("-"):
        asyncio.run(demo(args[0]))
    else:
        adder.run_sync()
