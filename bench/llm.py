"""LLM benchmark: llm_chat through a broker against llama-cpp-python called directly, same model and messages.

The model is a synthetic llama written with the ``gguf`` package (random weights, ``--embd`` wide,
``--layers`` deep: it answers nonsense, at a cost per token set by its size, always ``--tokens``
long, in whole characters), loaded beforehand on both sides. Each of ``--prompts`` messages is
answered on its own (no history: ``keep_history`` false), greedily, ``--tokens`` tokens at most:

* **direct**: ``Llama.create_chat_completion(stream=True)``, every chunk consumed, in a thread as the
  task's worker (with a logits processor that changes nothing: llm_chat has one, and
  llama-cpp-python samples another way with one);
* **task**: the messages published to an ``llm_chat`` instance, the clock stopped when the last
  answer arrived on a subscription (its pieces went out on ``tokens`` as they came).

Prints a table (seconds per side, tokens per second, medians of ``--rounds``) and last
``ratio <x>``: direct s / task s.

    python bench/llm.py [--prompts 8] [--tokens 64] [--embd 512] [--layers 4] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "tasks"))

PROMPTS = ["is the kitchen light on?", "turn off the hall light", "what time is it?", "hello there"]


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} ({i})"}]


def direct(llama: Any, count: int, tokens: int) -> tuple[float, int]:
    """Seconds to answer ``count`` messages, and the pieces streamed."""
    import llama_cpp

    # llm_chat gives a logits processor (it ends answers at max_length and on stop), and llama-cpp-python then
    # samples another way (faster here: 0.6-1.2 CPU-s against 1.0-3.5 for the same 3 answers): the direct side
    # gives one too, that changes nothing, so both sample the same way
    same_path = llama_cpp.LogitsProcessorList([lambda _ids, scores: scores])
    pieces = 0
    start = time.perf_counter()
    for i in range(count):
        for chunk in llama.create_chat_completion(messages=messages(i), max_tokens=tokens, temperature=0, seed=1,
                                                  stream=True, logits_processor=same_path):
            if chunk["choices"][0].get("delta", {}).get("content"):
                pieces += 1
    return time.perf_counter() - start, pieces


async def through_task(url: str, files: Path, count: int, tokens: int) -> tuple[float, int]:
    """Seconds from the first message published to the last answer received, and the pieces received."""
    from edge.bus import Bus
    from edge.frames import decode_frame, encode_frame
    from edge.task import TaskContext
    from tasks.inference.llm import LlmChat

    prefix = f"bench/llm/{uuid.uuid4().hex[:8]}"
    async with Bus(url, client_id=f"bench-llm-{uuid.uuid4().hex[:6]}") as bus:
        answers = await bus.subscribe(f"{prefix}/answer", maxsize=100_000)
        pieces = await bus.subscribe(f"{prefix}/tokens", maxsize=1_000_000)
        ctx = TaskContext(bus=bus, instance_id="bench/llm", sources={"in": f"{prefix}/in"},
                          targets={"answer": [f"{prefix}/answer"], "tokens": [f"{prefix}/tokens"]},
                          queue_size=100_000, max_payload=1024 * 1024, files_dir=files)
        task = LlmChat({"model": "bench.gguf", "keep_history": False, "max_length": tokens, "temperature": 0,
                        "seed": 1, "context_length": 512, "queue": 1000}, context=ctx)
        await task.open_inputs()
        runner = asyncio.ensure_future(task.run())
        try:
            async with asyncio.timeout(120):
                while task.model is None:  # loaded beforehand: taken at once
                    if runner.done():
                        runner.result()
                    await asyncio.sleep(0.005)
            start = time.perf_counter()
            for i in range(count):
                await bus.publish(f"{prefix}/in", encode_frame(messages(i)[0]["content"]))
            async with asyncio.timeout(600):
                for _ in range(count):
                    decode_frame((await answers.get()).payload)
            seconds = time.perf_counter() - start
            return seconds, pieces.queued
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await task.close()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    import llama_cpp
    from tiny_gguf import write_tiny_llama

    from edge.broker import MosquittoBroker, free_port
    from tasks.inference.llama import MODELS

    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        write_tiny_llama(files / "bench.gguf", context_length=512, embd=args.embd, layers=args.layers,
                         steady=True)
        llama = llama_cpp.Llama(model_path=str(files / "bench.gguf"), n_ctx=512, n_batch=512, verbose=False)
        held = MODELS.take(files / "bench.gguf", context_length=512, threads=0)  # the task's, loaded beforehand
        async with MosquittoBroker(port=free_port(), data_dir=Path(tmp), persistence=False) as broker:
            url = broker.url.geturl()
            await asyncio.to_thread(direct, llama, 1, 8)  # warm-up
            await through_task(url, files, 1, 8)
            for _ in range(args.rounds):
                seconds, pieces = await asyncio.to_thread(direct, llama, args.prompts, args.tokens)
                task_seconds, task_pieces = await through_task(url, files, args.prompts, args.tokens)
                rounds.append({"direct": seconds, "task": task_seconds, "ratio": seconds / task_seconds,
                               "pieces": pieces, "task_pieces": task_pieces})
        MODELS.give_back(held)
        llama.close()
    return {"machine": machine(), "prompts": args.prompts, "tokens": args.tokens, "embd": args.embd,
            "layers": args.layers, "rounds": rounds}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def report(data: dict[str, Any]) -> str:
    rounds = data["rounds"]
    direct_s = statistics.median(r["direct"] for r in rounds)
    task_s = statistics.median(r["task"] for r in rounds)
    pieces = statistics.median(r["pieces"] for r in rounds)
    task_pieces = statistics.median(r["task_pieces"] for r in rounds)
    return "\n".join([
        f"# {data['machine']}; {data['prompts']} messages, up to {data['tokens']} tokens each, a llama of "
        f"{data['embd']} x {data['layers']} layers, {len(rounds)} round(s)",
        f"{'side':10}{'seconds':>10}{'pieces':>8}{'pieces/s':>10}",
        f"{'direct':10}{direct_s:10.3f}{pieces:8.0f}{pieces / direct_s:10.1f}",
        f"{'task':10}{task_s:10.3f}{task_pieces:8.0f}{task_pieces / task_s:10.1f}",
        f"ratio {statistics.median(r['ratio'] for r in rounds):.2f}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--embd", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = asyncio.run(_main(args))
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(report(data))


if __name__ == "__main__":
    main()
