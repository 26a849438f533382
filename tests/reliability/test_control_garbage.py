"""Control-plane garbage never reaches a traceback.

Retained states, catalogs, specs and statuses that a broken or hostile publisher left on the
broker (a 2**8000 epoch, ``inputs: "abc"``, ``metrics: {"inputs": [1]}``, megabyte texts, ...)
made ``edge ls`` and ``edge deploy --dry-run`` exit with a Python traceback. Each is now
validated on the way into the fleet (``edge.protocol``), ignored, counted and logged once; the
commands, run as a user runs them, answer. A property test feeds random control messages to a
fleet: it never raises, and what it keeps has the documented shapes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from _retained import publish_retained
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.bus import Bus, Message
from edge.controller.fleet import Fleet
from edge.controller.views import deployment_views, summarize
from edge.errors import FrameError
from edge.frames import encode_value
from edge.graph import check_against_catalog, encode_spec, parse_spec
from edge.topics import Topics

TIMEOUT = 20.0
BIG = 2**8000  # the biggest kind of integer CBOR still carries here (bignums are capped at 1 KiB)
HUGE_TEXT = "x" * 300_000
DEEP: Any = 1
for _ in range(20):
    DEEP = [DEEP]  # deeper than protocol.MAX_JSON_DEPTH, well within what CBOR decoding allows


def good_state(**extra: Any) -> bytes:
    return encode_value({"online": True, "epoch": 1, "boot": "b1", "ts": 1, "version": "0.1.0",
                         "host": {"name": "h"}, "metrics": {"cpu_percent": 1.0, "rss_mb": 20.0}, **extra})


GOOD_CATALOG = encode_value({"agent": "good", "epoch": 1, "types": [
    {"name": "relay", "inputs": {"in": {}}, "outputs": {"out": {}}, "available": True}]})


def garbage(topics: Topics) -> list[tuple[str, bytes]]:
    """One retained message per way of being wrong, each on its own topic, plus a sane agent and deployment."""
    spec = encode_spec(parse_spec({"id": "sane", "tasks": [{"id": "t1", "type": "relay", "agent": "good"},
                                                           {"id": "t2", "type": "relay", "agent": "good"},
                                                           {"id": "t3", "type": "relay", "agent": "good"}]}))
    bad_states = {
        "epoch-big": {"online": True, "epoch": BIG},
        "epoch-negative": {"online": True, "epoch": -1},
        "epoch-float": {"online": True, "epoch": 1.5},
        "epoch-bool": {"online": True, "epoch": True},
        "epoch-text": {"online": True, "epoch": HUGE_TEXT},
        "version-huge": {"online": True, "epoch": 1, "version": HUGE_TEXT},
        "host-text": {"online": True, "epoch": 1, "host": "abc"},
        "metrics-list": {"online": True, "epoch": 1, "metrics": [1]},
        "ts-big": {"online": True, "epoch": 1, "ts": BIG},
        "not-a-map": [1, 2, 3],
    }
    messages = [(topics.agent_state("good"), good_state()), (topics.agent_catalog("good"), GOOD_CATALOG),
                (topics.deployment("sane"), spec)]
    for name, state in bad_states.items():
        messages.append((topics.agent_state(f"g-{name}"), encode_value(state)))
    # agents whose state is fine and whose catalog is not
    bad_catalogs = {
        "inputs-text": {"types": [{"name": "garbage_t", "inputs": "abc", "outputs": "xyz"}]},
        "inputs-number": {"types": [{"name": "garbage_t", "inputs": 5}]},
        "port-meta-list": {"types": [{"name": "garbage_t", "inputs": {"in": [1]}}]},
        "types-text": {"types": "abc"},
        "entry-text": {"types": ["abc", 5, None]},
        "name-big": {"types": [{"name": BIG}]},
        "zz-description-huge": {"types": [{"name": "garbage_t", "description": HUGE_TEXT, "inputs": {"in": {}},
                                        "outputs": {"out": {}}, "config_schema": {"x": DEEP}}]},
    }
    for name, catalog in bad_catalogs.items():
        messages.append((topics.agent_state(f"c-{name}"), good_state()))
        messages.append((topics.agent_catalog(f"c-{name}"), encode_value(catalog)))
    bad_specs = {
        "version-big": {"id": "version-big", "version": BIG, "tasks": []},
        "version-negative": {"id": "version-negative", "version": -5, "tasks": []},
        "label-huge": {"id": "label-huge", "label": HUGE_TEXT, "tasks": []},
        "tasks-text": {"id": "tasks-text", "tasks": "abc"},
    }
    for name, spec_data in bad_specs.items():
        messages.append((topics.deployment(name), encode_value(spec_data)))
    bad_statuses = {
        "t1": {"state": "running", "agent": "good", "metrics": {"inputs": [1]}},
        "t2": {"state": "running", "agent": "good", "restarts": BIG, "error": HUGE_TEXT},
        "t3": {"state": 5, "metrics": {"inputs": {"in": {"frames": "many"}}, "outputs": {"out": []}}},
    }
    for task, status in bad_statuses.items():
        messages.append((topics.task_status("sane", task), encode_value(status)))
    return messages


def edge(*argv: str, url: str, ns: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["EDGE_DATA_DIR"] = str(tmp / "cli")
    return subprocess.run([sys.executable, "-m", "edge", "--broker", url, "--namespace", ns, *argv], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(180)
async def test_no_command_shows_a_traceback_on_retained_garbage(broker, tmp_path: Path) -> None:
    ns = f"g{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = broker.url.geturl()
    messages = garbage(topics)
    spec_file = tmp_path / "uses-garbage.yaml"
    spec_file.write_text("id: probe\ntasks:\n  - {id: a, type: garbage_t}\n  - {id: b, type: relay}\n"
                         "edges:\n  - {from: a.out, to: b.in}\n")
    async with Bus(broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            runs = {" ".join(argv): await asyncio.to_thread(edge, *argv, url=url, ns=ns, tmp=tmp_path)
                    for argv in (("ls", "agents"), ("ls", "types"), ("ls", "tasks"), ("ls", "deployments"),
                                 ("deploy", str(spec_file), "--dry-run"))}
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)
    shown = {command: out.stdout + out.stderr for command, out in runs.items()}
    crashed = {c: text[text.index("Traceback"):][-600:] for c, text in shown.items() if "Traceback" in text}
    assert not crashed, "\n".join(f"edge {c}: {text}" for c, text in crashed.items())
    assert not [c for c, text in shown.items() if HUGE_TEXT[:5000] in text], "printed a huge text"
    for command in ("ls agents", "ls types", "ls tasks", "ls deployments"):
        assert runs[command].returncode == 0, runs[command].stderr
    agents = runs["ls agents"].stdout
    assert "good" in agents and "c-inputs-text" in agents  # the sane agents are there
    for name in ("epoch-big", "epoch-negative", "epoch-float", "epoch-bool", "version-huge", "not-a-map"):
        assert f"g-{name}" not in agents  # an agent known only by garbage is not shown
    assert "relay" in runs["ls types"].stdout and "garbage_t" not in runs["ls types"].stdout
    deployments = runs["ls deployments"].stdout
    assert "sane" in deployments
    # a refused spec is never listed as a deployment with a version: absent, or said to be refused
    assert all("refused" in line for line in deployments.splitlines() if "version-big" in line), deployments
    assert "sane/t1" in runs["ls tasks"].stdout
    dry = runs[f"deploy {spec_file} --dry-run"]
    assert dry.returncode == 1 and "garbage_t" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


async def test_the_fleet_ignores_counts_and_logs_each_garbage_message_once(broker, tmp_path: Path, caplog) -> None:
    ns = f"g{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    messages = garbage(topics)
    async with Bus(broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            with caplog.at_level(logging.WARNING, logger="edge.controller"):
                async with Fleet(bus, topics) as fleet:
                    await fleet.synced(TIMEOUT)
                    await fleet.wait_for(lambda f: "good" in f.agents and "sane" in f.deployments, TIMEOUT)
                    # the sane ones stand; the garbage changed nothing
                    assert fleet.agents["good"].online and fleet.agents["good"].boot == "b1"
                    assert {a for a in fleet.agents if a.startswith("g-")} == set()
                    for name in ("inputs-text", "inputs-number", "port-meta-list", "name-big", "entry-text"):
                        assert fleet.agents[f"c-{name}"].types == []
                    assert fleet.agents["c-types-text"].types == []  # the whole catalog refused
                    assert set(fleet.deployments) == {"sane"}
                    assert set(fleet.rejected) == {"version-big", "version-negative", "label-huge", "tasks-text"}
                    assert "version" in fleet.rejected["version-big"] and len(fleet.rejected["label-huge"]) < 400
                    assert ("sane", "t1") not in fleet.statuses and ("sane", "t3") not in fleet.statuses
                    assert ("sane", "t2") not in fleet.statuses  # restarts out of range
                    for view in deployment_views(fleet, "sane"):  # what `edge ls tasks` and the panel read
                        assert isinstance(view.metrics, dict)
                    types = fleet.types(online_only=False)
                    assert set(types) == {"relay"}
                    probe = parse_spec({"id": "p", "tasks": [{"id": "a", "type": "garbage_t"}]})
                    assert check_against_catalog(probe, types) == ["task 'a': unknown task type 'garbage_t'"]
                    errors = fleet.errors
                    assert errors >= 24, errors
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)
    # logged once per topic: no line holds a huge text, no topic twice
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.controller" and "ignored" in r.getMessage()]
    assert lines and all(len(line) < 2000 for line in lines), max(lines, key=len)[:300]
    assert len(lines) == len(set(lines)), lines  # a topic fetched again (synced) counts again, logs no more
    assert len(lines) < errors


async def test_an_invalid_spec_is_a_deployment_status_the_summary_shows(broker, tmp_path: Path) -> None:
    """The retained spec is refused by agents and fleet alike; the previous version stands and says so."""
    ns = f"g{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    valid = parse_spec({"id": "d", "version": 3, "tasks": [{"id": "t", "type": "relay", "agent": "good"}]})
    async with Bus(broker.url) as bus, Fleet(bus, topics) as fleet:
        await fleet.synced(TIMEOUT)
        try:
            await bus.publish(topics.deployment("d"), encode_spec(valid), qos=1, retain=True)
            await fleet.wait_for(lambda f: "d" in f.deployments, TIMEOUT)
            assert summarize(fleet, "d").rejected is None
            await bus.publish(topics.deployment("d"), encode_value({"id": "d", "version": BIG, "tasks": []}), qos=1,
                              retain=True)
            await fleet.wait_for(lambda f: "d" in f.rejected, TIMEOUT)
            assert fleet.deployments["d"].version == 3  # what the agents keep running
            shown = summarize(fleet, "d")
            assert shown.rejected is not None and "version" in shown.rejected
            assert any(note.startswith("new spec refused: ") for note in shown.notes), shown.notes
            await bus.publish(topics.deployment("d"), encode_spec(valid.model_copy(update={"version": 4})), qos=1,
                              retain=True)
            await fleet.wait_for(lambda f: "d" not in f.rejected, TIMEOUT)
            assert fleet.deployments["d"].version == 4 and summarize(fleet, "d").rejected is None
        finally:
            await bus.publish(topics.deployment("d"), b"", qos=1, retain=True)


# -- property: random control messages into a fleet -----------------------------------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4)),
    max_leaves=20)
_keys = st.sampled_from(["online", "epoch", "boot", "ts", "version", "host", "metrics", "errors", "types", "name",
                         "inputs", "outputs", "available", "reason", "state", "agent", "type", "restarts", "error",
                         "last_error", "crashed_at", "frames", "rate", "dropped", "id", "tasks", "edges", "label"])
_messages = st.one_of(_values, st.dictionaries(_keys, _values, max_size=8),
                      st.fixed_dictionaries({"online": st.booleans(), "epoch": st.integers(-2, 2**64)},
                                            optional={"boot": st.text(max_size=4), "metrics": _values,
                                                      "host": _values}),
                      st.fixed_dictionaries({"types": st.lists(st.dictionaries(_keys, _values, max_size=6),
                                                               max_size=3)}),
                      st.fixed_dictionaries({"state": _values, "metrics": st.dictionaries(_keys, _values, max_size=4)}),
                      st.fixed_dictionaries({"tasks": st.lists(st.fixed_dictionaries(
                          {"deployment": st.sampled_from(["d1", 1, "a/b"]), "task": st.sampled_from(["t1", None]),
                           "metrics": st.dictionaries(_keys, _values, max_size=4)}), max_size=3)},
                          optional={"boot": _values, "epoch": _values, "full": _values, "part": _values,
                                    "parts": _values, "ts": _values}))
_kinds = st.sampled_from(["state", "catalog", "spec", "status", "metrics"])


def _topic(topics: Topics, kind: str) -> str:
    return {"state": topics.agent_state("a1"), "catalog": topics.agent_catalog("a1"),
            "spec": topics.deployment("d1"), "status": topics.task_status("d1", "t1"),
            "metrics": topics.agent_metrics("a1")}[kind]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(_kinds, _messages), min_size=1, max_size=6))
def test_random_control_messages_never_raise_and_keep_the_shapes(batch: list[tuple[str, Any]]) -> None:
    topics = Topics("fuzz")
    fleet = Fleet(_NoBus(), topics)  # type: ignore[arg-type]
    for kind, value in batch:
        try:
            payload = encode_value(value)
        except (FrameError, ValueError, TypeError):  # a value CBOR cannot carry is no message at all
            continue
        fleet._on_message(Message(topic=_topic(topics, kind), payload=payload))
    for agent in fleet.agents.values():
        assert isinstance(agent.online, bool) and 0 <= agent.epoch < 2**63 and isinstance(agent.version, str)
        assert isinstance(agent.host, dict) and isinstance(agent.metrics, dict)
        for entry in agent.types:
            assert isinstance(entry["name"], str)
            assert isinstance(entry.get("inputs", {}), dict) and isinstance(entry.get("outputs", {}), dict)
            assert all(isinstance(meta, dict) for meta in entry.get("inputs", {}).values())
    for status in fleet.statuses.values():
        assert isinstance(status.state, str) and 0 <= status.restarts < 2**63
        for side in ("inputs", "outputs"):
            ports = status.metrics.get(side, {})
            assert isinstance(ports, dict) and all(isinstance(p.get("frames", 0), int) for p in ports.values())
    # and what the readers do with them does not raise either
    fleet.types(online_only=False)
    fleet.load()
    for dep in fleet.deployments:
        summarize(fleet, dep)


class _NoBus:
    """The property test drives ``Fleet._on_message`` directly: nothing is sent."""

    is_connected = False
