"""One validation (``edge.validation``): every problem at once, config schemas, the types' own checks
asked of a real agent over a real broker, the timeout when none answers, pins to unknown agents."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import Agent
from edge.controller import Controller
from edge.errors import ConfigError, SpecError
from edge.frames import encode_value
from edge.graph import parse_spec
from edge.settings import load_settings
from edge.validation import (
    CheckRequest,
    answer_request,
    check_offline,
    decode_reply,
    decode_request,
    encode_request,
)
from tasks.calculator import Calculator
from tasks.replay import ReplayBuffer

TIMEOUT = 10.0
TYPES = {"calculator": Calculator.describe(), "replay_buffer": ReplayBuffer.describe()}
BAD_FORMULA = "config.formula: expected a number, a name or '(', found the end of the formula (at position 11)"


def test_schema_errors_unknown_key_and_wrong_type():
    found = check_offline({"id": "d", "tasks": [
        {"id": "calc", "type": "calculator", "config": {"formula": "a", "colour": "red", "synchronized": "maybe",
                                                       "defaults": {"a": "x"}}},
        {"id": "rec", "type": "replay_buffer", "config": {"max_frames": 0}}]}, types=TYPES, agents=[])
    assert found.spec is not None  # structurally fine: the spec is there, with config errors
    assert found.errors == [
        "task 'calc': config.colour: unknown field (known: defaults, formula, sync_timeout_ms, synchronized)",
        "task 'calc': config.defaults.a: 'x' is not of type 'number'",
        "task 'calc': config.synchronized: 'maybe' is not of type 'boolean'",
        "task 'rec': config.max_frames: 0 is less than the minimum of 1",
    ]
    assert found.schema_fields["calc"] == {"config.colour", "config.defaults.a", "config.synchronized"}


def test_structure_types_ports_and_configs_all_in_one_result():
    found = check_offline({"id": "d", "tasks": [
        {"id": "calc", "type": "calculator", "config": {"formula": 3}},
        {"id": "sum", "type": "calculator"},
        {"id": "x", "type": "no_such_type"},
        {"id": "bad id", "type": "calculator"}],
        "edges": [{"from": "calc.out", "to": "sum.a"}, {"from": "topic:in/a", "to": "sum.a"},
                  {"from": "calc.nope", "to": "sum.b"}]}, types=TYPES, agents=[])
    assert found.spec is None
    assert found.errors == [
        "tasks.3.id: invalid task id 'bad id': use 1 to 64 of the characters A-Z a-z 0-9 _ - "
        "(no spaces, '/', '+', '#' or non-ASCII)",
        "input sum.a is fed twice: by calc.out and by topic:in/a",
        "task 'x': unknown task type 'no_such_type'",
        "calc.nope: task type 'calculator' has no output 'nope' (it has: out)",
        "sum.b: task type 'calculator' has no input 'b' with this config (it has: a)",  # formula "a": input a only
        "task 'calc': config.formula: 3 is not of type 'string'",
    ]


def test_a_secret_reference_is_left_to_the_agent():
    config = {"formula": "$secret:f", "sync_timeout_ms": {"$secret": "t"}}
    found = check_offline({"id": "d", "tasks": [{"id": "c", "type": "calculator", "config": config}]},
                          types=TYPES, agents=[])
    assert found.errors == []


def test_a_broken_schema_in_the_catalog_is_not_checked_and_says_so():
    found = check_offline({"id": "d", "tasks": [{"id": "c", "type": "calculator", "config": {"formula": "a"}}]},
                          types={"calculator": {**TYPES["calculator"], "config_schema": {"type": 12}}}, agents=[])
    assert found.errors == []
    assert found.unchecked == ["task 'c': the catalog's config schema of type 'calculator' is broken: "
                               "12 is not valid under any of the given schemas"]


def test_pins_to_unknown_agents_are_warnings():
    found = check_offline({"id": "d", "tasks": [{"id": "a", "type": "calculator", "agent": "pi-1"},
                                               {"id": "b", "type": "calculator", "agent": "ghost"}]},
                          types=TYPES, agents=["pi-1"])
    assert found.errors == []
    assert found.warnings == ["task 'b': agent 'ghost' is not known to this broker: the task stays pending until "
                              "an agent with that id connects"]


def test_the_types_own_checks():
    assert Calculator.check({"formula": "a * (1.8 +"}) == [BAD_FORMULA]
    assert Calculator.check({"formula": "a * (1.8 + b)"}) == []
    assert ReplayBuffer.check({"file": "../../etc/passwd"}) == [
        "config.file: '../../etc/passwd' leads out of the agent's files folder through '..': use a path inside the "
        "agent's files folder (EDGE_FILES_DIR)"]
    assert Calculator.check({"formula": "a", "x": 1}) == ["config.x: Extra inputs are not permitted"]


def test_request_and_answer_round_trip():
    request = CheckRequest(id="r1", reply_to="edge/v1/default/replies/r1",
                           tasks=[("calc", "calculator", {"formula": "a * (1.8 +"}), ("ok", "calculator", {}),
                                  ("alien", "nope", {}), ("s", "calculator", {"formula": "$secret:f"})])
    decoded = decode_request(encode_request(request))
    assert decoded == request

    def resolve(config):
        if config.get("formula") == "$secret:f":
            raise ConfigError("unknown secret 'f' on agent a1", field="config")
        return config

    reply = decode_reply(answer_request(decoded, agent_id="a1", types={"calculator": Calculator}, resolve=resolve),
                         "r1")
    assert reply == ("a1", {
        "calc": ([BAD_FORMULA], []),
        "ok": ([], []),
        "alien": ([], ["agent a1 does not offer type 'nope': its checks were not run"]),
        "s": ([], ["unknown secret 'f' on agent a1: the type's checks were not run"]),
    })
    assert decode_reply(answer_request(decoded, agent_id="a1", types={}, resolve=resolve), "other") is None


@pytest.mark.parametrize("payload", [b"", b"\xff", encode_value([1]), encode_value({"id": "a/b", "reply_to": "t",
                                                                                    "tasks": []}),
                                     encode_value({"id": "r", "reply_to": "t", "tasks": [{"task": "x"}]})])
def test_malformed_requests_are_config_errors(payload):
    with pytest.raises(ConfigError):
        decode_request(payload)


@given(st.binary(max_size=200))
def test_garbage_replies_are_ignored(data):
    assert decode_reply(data, "r") is None or isinstance(decode_reply(data, "r"), tuple)


# -- against a real broker and a real agent ---------------------------------------------------------
@pytest.fixture
def ns():
    return f"v{uuid.uuid4().hex[:10]}"


def settings(broker, tmp_path, ns, name):
    return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id=name, data_dir=tmp_path / name)


BAD_SPEC = {"id": "calc", "tasks": [
    {"id": "f", "type": "calculator", "config": {"formula": "a * (1.8 +"}},
    {"id": "g", "type": "calculator", "config": {"formula": "(b", "colour": 1}},
    {"id": "p", "type": "calculator", "agent": "ghost"}]}


async def test_an_agent_runs_the_types_checks_and_everything_is_listed_at_once(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), persist=False), \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("calculator"), TIMEOUT)
        report = await controller.validate(BAD_SPEC)
        assert report.errors == (
            "task 'g': config.colour: unknown field (known: defaults, formula, sync_timeout_ms, synchronized)",
            f"task 'f': {BAD_FORMULA}",
            "task 'g': config.formula: expected ')' to close '(', found the end of the formula (at position 3)",
        )
        assert report.warnings == ("task 'p': agent 'ghost' is not known to this broker: the task stays pending "
                                   "until an agent with that id connects",)
        assert report.unchecked == ()  # the agent answered for all three
        with pytest.raises(SpecError) as info:
            await controller.deploy(parse_spec(BAD_SPEC))
        assert info.value.errors == list(report.errors)
        assert "calc" not in controller.fleet.deployments

        # a valid spec deploys, with the pin warning, and the agent agrees with the check
        good = {"id": "calc", "tasks": [{"id": "f", "type": "calculator", "config": {"formula": "a * 1.8 + 32"}},
                                        {"id": "p", "type": "calculator", "agent": "ghost"}]}
        result = await controller.deploy(parse_spec(good))
        assert result.published and result.warnings == report.warnings
        assert result.unchecked == ()  # a1 offers the type: it checked 'p' too
        await controller.remove("calc")


async def test_the_agent_marks_the_task_invalid_with_the_same_line(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), persist=False), \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("calculator"), TIMEOUT)
        # published behind the controller's back (as an old controller would), so the agent must catch it
        spec = {"id": "raw", "version": 1, "tasks": [{"id": "f", "type": "calculator", "agent": "a1",
                                                      "config": {"formula": "a * (1.8 +"}}], "edges": []}
        await controller.bus.publish(controller.topics.deployment("raw"), encode_value(spec), qos=1, retain=True)
        await controller.fleet.wait_for(lambda f: ("raw", "f") in f.statuses
                                        and f.statuses[("raw", "f")].state == "invalid", TIMEOUT)
        report = await controller.validate(spec)
        assert report.errors == (f"task 'f': {controller.fleet.statuses[('raw', 'f')].error}",)
        await controller.remove("raw")


async def test_no_agent_to_answer_says_which_checks_did_not_run(broker, tmp_path, ns):
    spec = {"id": "t", "tasks": [{"id": "f", "type": "calculator", "agent": "mute",
                                  "config": {"formula": "a * (1.8 +"}}]}
    async with Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        topics = controller.topics
        async with Agent(settings(broker, tmp_path, ns, "a1"), persist=False):
            await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("calculator"),
                                            TIMEOUT)
            # an agent that is online and offers the type but does not answer: a copy of a1's retained birth
            async with controller.bus.subscribe(topics.agent_state("a1")) as state, \
                    controller.bus.subscribe(topics.agent_catalog("a1")) as catalog:
                async with asyncio.timeout(TIMEOUT):
                    state_payload, catalog_payload = (await state.get()).payload, (await catalog.get()).payload
            await controller.bus.publish(topics.agent_catalog("mute"), catalog_payload, qos=1, retain=True)
            await controller.bus.publish(topics.agent_state("mute"), state_payload, qos=1, retain=True)
            await controller.fleet.wait_for(lambda f: "mute" in f.agents and f.agents["mute"].online
                                            and f.agents["mute"].offers("calculator"), TIMEOUT)
            report = await controller.validate(spec, timeout=0.5)
            assert report.errors == ()
            assert report.unchecked == ("task 'f': the checks of type 'calculator' that need its code: agent "
                                        "'mute' did not answer within 0.5 s",)
            assert "not checked: task 'f'" in report.lines()[0]
        # with no online agent offering the type at all, it says so without waiting
        await controller.bus.publish(topics.agent_state("mute"), b"", qos=1, retain=True)
        await controller.bus.publish(topics.agent_catalog("mute"), b"", qos=1, retain=True)
        await controller.fleet.wait_for(lambda f: not f.online, TIMEOUT)
        report = await controller.validate(spec, timeout=5)
        assert report.unchecked == ("task 'f': the checks of type 'calculator' that need its code: no online agent "
                                    "offers the type",)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                       lambda children: st.lists(children, max_size=4)
                       | st.dictionaries(st.sampled_from(["id", "type", "agent", "config", "from", "to", "formula",
                                                          "tasks", "edges", "version", "x"]), children, max_size=5),
                       max_leaves=30)


@given(st.dictionaries(st.sampled_from(["id", "tasks", "edges", "version", "label", "x"]), JSONISH, max_size=5))
def test_hostile_specs_only_ever_give_problems(data):
    found = check_offline(data, types=TYPES, agents=[])
    assert all(isinstance(line, str) and "\n" not in line for line in found.errors)
    assert found.spec is not None or found.errors  # refused only with a reason


async def test_the_agent_answers_only_on_a_replies_topic(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), persist=False) as agent, \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await controller.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].online, TIMEOUT)
        topics, bus = controller.topics, controller.bus
        tasks = [("calc", "calculator", {"formula": "a * (1.8 +"})]
        async with bus.subscribe(f"{ns}/#") as elsewhere, bus.subscribe(topics.deployment("d")) as spec_topic, \
                bus.subscribe(topics.reply("good")) as good:
            for request in (CheckRequest(id="evil", reply_to=f"{ns}/stolen", tasks=tasks),
                            CheckRequest(id="evil2", reply_to=topics.deployment("d"), tasks=tasks)):
                await bus.publish(topics.agent_validate("a1"), encode_request(request), qos=1)
            await bus.publish(topics.agent_validate("a1"), b"\xff not cbor", qos=1)
            await bus.publish(topics.agent_validate("a1"),
                              encode_request(CheckRequest(id="good", reply_to=topics.reply("good"), tasks=tasks)),
                              qos=1)
            async with asyncio.timeout(TIMEOUT):
                reply = decode_reply((await good.get()).payload, "good")
            assert reply == ("a1", {"calc": ([BAD_FORMULA], [])})
            # the requests before it were refused, not answered elsewhere
            assert elsewhere.queued == 0 and spec_topic.queued == 0
        assert agent.errors == 3
