"""Ports that follow the config (edge.ports): the runtime, the catalog's rules and the agent's answer agree.

An instance's ports come from its config: a calculator's inputs are its formula's variables, a
switch has as many input pairs as its ``inputs`` says, radio buttons an ``opt<k>`` per option. The
agent runs instances with those ports; the controller computes the same ports from the catalog's
``ports_from`` rules without the types' code, and gets them from the agent's validation answer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from edge.bus import Bus
from edge.frames import decode_frame, decode_value, encode_frame
from edge.frames import encode_value as cbor
from edge.graph import check_against_catalog, encode_spec, parse_spec
from edge.host import Host
from edge.ports import MAX_PORTS, PortRule, catalog_ports, rules_of
from edge.settings import load_settings
from edge.task import Port, Task
from edge.topics import Topics
from edge.validation import CheckRequest, answer_request, decode_reply, decode_reply_ports
from tasks.builtin import TYPES
from tasks.calculator import Calculator
from tasks.formula import parse

TIMEOUT = 10.0
BY_NAME = {t.type_name: t for t in TYPES}

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("calculator", {}), ("calculator", {"formula": "p * q"}), ("calculator", {"formula": "sin(x) + 1e5 * pi + e2"}),
    ("calculator", {"formula": "2e3+y_1 ? max(a, b) : temperature"}), ("calculator", {"formula": "pi * e"}),
    ("text_formatter", {}), ("text_formatter", {"template": "{{x}} {t:.1f} °C {a!r} {t}"}),
    ("switch", {}), ("switch", {"inputs": 1}), ("switch", {"inputs": 7}),
    ("synchronizer", {"streams": 2}), ("plot", {"series": ["temp", "hum"]}), ("plot", {}),
    ("radio_buttons", {"options": ["a", "b", "c"]}), ("radio_buttons", {}), ("gate", {}),
]


@pytest.mark.parametrize(("type_name", "config"), CONFIGS)
def test_the_catalog_rules_give_the_ports_the_runtime_uses(type_name, config):
    task_type = BY_NAME[type_name]
    instance = task_type(config)
    ports = task_type.ports(task_type.validate_config(config))
    assert list(instance.inputs) == list(ports.inputs) and list(instance.outputs) == list(ports.outputs)
    inputs, outputs = catalog_ports(task_type.describe(), config)  # the controller: no task code
    assert inputs == {name: port.metadata() for name, port in instance.inputs.items()}
    assert outputs == {name: port.metadata() for name, port in instance.outputs.items()}


@pytest.mark.parametrize(("type_name", "config", "expected"), [
    ("video_mixer", {}, ["in0", "in1", "in2", "in3"]), ("video_mixer", {"inputs": 6, "master": "in5"}, 6),
    ("video_layout", {"inputs": 2}, ["in0", "in1"]), ("audio_mixer", {"inputs": 5, "gains": [1, 1, 1, 1, 0.5]}, 5),
    ("mediaswitch", {"inputs": 2}, ["select", "in0", "in1"]),
    ("mediaswitch", {"inputs": 6, "active": 5}, ["select", *(f"in{k}" for k in range(6))])])
def test_mixers_take_their_count_of_inputs_from_the_config(type_name, config, expected):
    from tasks.media import TYPES as MEDIA

    task_type = next(t for t in MEDIA if t.type_name == type_name)
    names = expected if isinstance(expected, list) else [f"in{k}" for k in range(expected)]
    assert list(task_type(config).inputs) == names
    assert list(catalog_ports(task_type.describe(), config)[0]) == names


def test_mixer_configs_name_existing_inputs():
    from edge.errors import ConfigError
    from tasks.media.mixing import AudioMixer, VideoMixer
    from tasks.media.switch import MediaSwitch

    for task_type, bad, message in [
        (VideoMixer, {"master": "in4"}, "master 'in4' is not an input: there are 4"),
        (VideoMixer, {"inputs": 2, "layers": [{"input": "in2"}]}, r"layers.0.input 'in2' is not an input"),
        (AudioMixer, {"inputs": 2, "gains": [1, 1, 1]}, "3 gains for 2 inputs"),
        (AudioMixer, {"inputs": 17}, "less than or equal to 16"), (VideoMixer, {"master": "in07"}, "pattern"),
        (MediaSwitch, {"inputs": 2, "active": 2}, "active must be an input's number: 0 to 1")]:
        with pytest.raises(ConfigError, match=message):
            task_type.validate_config(bad)


def test_the_ports_of_some_configs():
    def names(type_name: str, config: dict[str, Any]) -> tuple[list[str], list[str]]:
        instance = BY_NAME[type_name](config)
        return list(instance.inputs), list(instance.outputs)

    assert names("calculator", {"formula": "p * q"}) == (["p", "q"], ["out"])
    assert names("calculator", {"formula": "sin(x) + 1e5 * pi + e2"}) == (["x", "e2"], ["out"])
    assert names("text_formatter", {"template": "{{x}} {t:.1f} {a!r} {t}"}) == (["t", "a"], ["out"])
    assert names("switch", {"inputs": 2}) == (["in0", "in1", "control0", "control1"], ["out"])
    assert names("synchronizer", {"streams": 2}) == (["in0", "in1"], ["out0", "out1"])
    assert names("radio_buttons", {"options": ["x", "y", "z"]})[1] == ["index", "label", "view", "opt0", "opt1",
                                                                       "opt2"]
    assert names("plot", {"series": ["temp", "hum"]}) == (["temp", "hum"], ["view"])
    # the defaults are today's fixed names, so existing specs keep their wires
    assert names("switch", {})[0] == [*(f"in{k}" for k in range(4)), *(f"control{k}" for k in range(4))]
    assert names("synchronizer", {}) == ([f"in{k}" for k in range(4)], [f"out{k}" for k in range(4)])
    assert names("plot", {})[0] == ["a", "b", "c", "d"]


@given(st.text(alphabet="abxyz_19e.+-*/()^, pisnqrtmax", max_size=40))
def test_the_variables_rule_agrees_with_the_formula_parser(text):
    try:
        formula = parse(text)
    except Exception:
        return  # an invalid formula is an invalid config: its ports do not matter
    inputs, _ = catalog_ports(Calculator.describe(), {"formula": text})
    assert set(inputs) == formula.variables


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))
def test_hostile_rules_and_configs_never_crash(value):
    entry = {"name": "x", "inputs": {"a": {}}, "ports_from": value}
    rules, _problems = rules_of(entry)
    inputs, _ = catalog_ports(entry, {"formula": value, "inputs": value})
    assert len(inputs) <= 1 + MAX_PORTS * len(rules)
    for rule in [PortRule(side="inputs", field="f", kind=kind) for kind in ("count", "names", "variables", "fields")]:
        assert len(rule.names({"f": value})) <= MAX_PORTS


def test_a_huge_count_is_bounded_and_malformed_rules_are_named():
    entry = BY_NAME["switch"].describe()
    inputs, _ = catalog_ports(entry, {"inputs": 10**9})
    assert len(inputs) == 2 * MAX_PORTS
    rules, problems = rules_of({"name": "t", "ports_from": [{"side": "sideways", "field": "n", "kind": "count"},
                                                            {"side": "inputs", "field": "n", "kind": "count"},
                                                            {"side": "inputs", "field": "n", "kind": "count",
                                                             "name": "in{}{x}"},
                                                            {"side": "inputs", "field": "n", "kind": "names",
                                                             "exclude": [["a"]]}]})
    assert len(rules) == 1 and problems == [
        "type 't': a port rule is left out: a port rule's side is one of inputs, outputs, not 'sideways'",
        "type 't': a port rule is left out: a port rule's name holds '{}' once, not 'in{}{x}'",
        "type 't': a port rule is left out: a port rule's exclude is a list of at most 256 names"]


def test_a_rule_must_fit_the_class():
    class Config(BaseModel):
        n: int = 3

    with pytest.raises(TypeError, match="has no field 'count'"):
        type("Bad", (Task,), {"Config": Config, "ports_from": (PortRule(side="inputs", field="count", kind="count"),)})
    with pytest.raises(TypeError, match=r"makes inputs \['in0', 'in1', 'in2'\] that Bad.inputs does not declare"):
        type("Bad", (Task,), {"Config": Config, "ports_from": (PortRule(side="inputs", field="n", kind="count",
                                                                         name="in{}"),)})


def test_output_metadata_from_the_config_without_an_instance():
    from tasks.timing import PulseGenerator

    config = PulseGenerator.validate_config({"message": "id"})
    assert PulseGenerator.ports(config).outputs["out"].metadata() == {"content": "text"}
    assert PulseGenerator.metadata_for(config, "out", PulseGenerator.outputs["out"]) == {"content": "text"}
    assert PulseGenerator({"message": "count"}).output_metadata("out") == {"content": "number"}


def test_the_validation_answer_carries_the_instances_ports():
    request = CheckRequest(id="r", reply_to="x/replies/r", tasks=[
        ("calc", "calculator", {"formula": "p * q"}), ("bad", "calculator", {"formula": "p *"}),
        ("tick", "pulse_generator", {"message": "id"})])
    payload = answer_request(request, agent_id="a1", types=BY_NAME, resolve=lambda c: c)
    assert decode_reply(payload, "r") is not None
    assert decode_reply_ports(payload, "r") == {
        "calc": {"inputs": {"p": {"content": "number"}, "q": {"content": "number"}},
                 "outputs": {"out": {"content": "number"}}},
        "tick": {"inputs": {}, "outputs": {"out": {"content": "text"}}}}  # "bad" has errors: no ports
    assert decode_reply_ports(payload, "other") == {}
    hostile = cbor({"id": "r", "agent": "a1", "tasks": {
        "a": {"ports": {"inputs": {"bad/port": {}}, "outputs": {}}},
        "b": {"ports": {"inputs": {"p": {"content": [1, 2]}}, "outputs": {}}},
        "c": {"ports": {"inputs": {f"p{k}": {} for k in range(300)}, "outputs": {}}},
        "d": {"ports": "many"}, "e": {"ports": {"inputs": {"p": {"content": "number"}}, "outputs": {}}}}})
    assert decode_reply_ports(hostile, "r") == {"e": {"inputs": {"p": {"content": "number"}}, "outputs": {}}}


def test_catalog_check_with_instance_ports():
    spec = parse_spec({"id": "d", "tasks": [{"id": "c", "type": "calculator", "config": {"formula": "p * q"}},
                                            {"id": "r", "type": "radio_buttons", "config": {"options": ["x", "y"]}},
                                            {"id": "s", "type": "switch", "config": {"inputs": 2}}],
                       "edges": [{"from": "r.opt1", "to": "s.control1"}, {"from": "r.index", "to": "c.p"},
                                 {"from": "r.opt2", "to": "s.control2"}, {"from": "r.label", "to": "c.q"},
                                 {"from": "topic:x", "to": "c.a"}]})
    catalog = {t.type_name: t.describe() for t in TYPES}
    assert check_against_catalog(spec, catalog) == [
        "r.opt2: task type 'radio_buttons' has no output 'opt2' with this config (it has: index, label, view, "
        "opt0, opt1)",
        "s.control2: task type 'switch' has no input 'control2' with this config (it has: in0, in1, control0, "
        "control1)",
        "edge r.label -> c.q: incompatible (content: 'text' != 'number')",
        "c.a: task type 'calculator' has no input 'a' with this config (it has: p, q)"]
    answered = {"c": {"inputs": {"p": {"content": "number"}, "q": {"content": "text"}}, "outputs": {}}}
    assert "edge r.label -> c.q: incompatible (content: 'text' != 'number')" not in check_against_catalog(
        spec, catalog, ports=answered)


async def _frame(sub: Any) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return decode_frame((await sub.get()).payload).value


async def test_an_agent_runs_instances_with_their_own_ports(broker, tmp_path, caplog):
    """A calculator with formula ``p * q`` receives on ``p`` and ``q``; radio buttons with three options
    publish ``opt2`` (an output the type's declared ports do not have). A wire to ``a`` (published
    without the controller's checks) is named in a warning."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    base = f"test/ports/{ns}"
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="pi", data_dir=tmp_path)
    spec = {"id": "ports", "tasks": [
        {"id": "calc", "type": "calculator", "agent": "pi", "config": {"formula": "p * q"}},
        {"id": "mode", "type": "radio_buttons", "agent": "pi",
         "config": {"options": ["off", "auto", "manual"], "default": 2, "repeat_ms": 0}}],
        "edges": [{"from": f"topic:{base}/p", "to": "calc.p"}, {"from": f"topic:{base}/q", "to": "calc.q"},
                  {"from": "calc.out", "to": f"topic:{base}/out"}, {"from": "mode.opt2", "to": f"topic:{base}/opt2"},
                  {"from": f"topic:{base}/a", "to": "calc.a"}]}
    async with Bus(str(broker.url)) as bus, bus.subscribe(f"{base}/out") as out, \
            bus.subscribe(f"{base}/opt2") as opt2, \
            Host(settings, types=TYPES, persist=False, status_interval=0.1) as host:
        await bus.publish(topics.deployment("ports"), encode_spec(parse_spec(spec)), qos=1, retain=True)
        assert await _frame(opt2) == 1  # the chosen option, on an output that only its config gives it
        async with bus.subscribe(topics.task_status("ports", "calc")) as statuses, asyncio.timeout(TIMEOUT):
            while True:
                payload = (await statuses.get()).payload
                if payload and decode_value(payload)["state"] == "running":
                    break
        calc = host.instances[("ports", "calc")].task
        assert calc is not None and list(calc.inputs) == ["p", "q"]
        async with asyncio.timeout(TIMEOUT):  # a frame before the broker has the subscription is lost: repeat
            while True:
                await bus.publish(f"{base}/p", encode_frame(6), qos=1)
                await bus.publish(f"{base}/q", encode_frame(7), qos=1)
                try:
                    async with asyncio.timeout(0.5):
                        if decode_frame((await out.get()).payload).value == 42.0:
                            break
                except TimeoutError:
                    continue
        assert calc.in_metrics["p"].frames >= 1 and calc.in_metrics["q"].frames >= 1
    assert "ports/calc: input(s) a wired in the spec are not ports of this calculator with its config: nothing " \
           "is read from them" in caplog.messages


def test_declared_ports_are_unchanged_for_types_without_rules():
    class Scale(Task):
        inputs = {"in": Port(content="number")}
        outputs = {"out": Port(content="number")}

    assert Scale.ports_from == () and "ports_from" not in Scale.describe()
    assert list(Scale().inputs) == ["in"] and catalog_ports(Scale.describe(), {"x": 1}) == (
        {"in": {"content": "number"}}, {"out": {"content": "number"}})
