"""Deployment specs: the three formats, every validation rule, wiring, and checks against a catalog."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import SpecError
from edge.frames import encode_value
from edge.graph import check_against_catalog, decode_spec, encode_spec, load_spec, parse_spec
from edge.topics import Topics

SPEC = {
    "id": "demo", "label": "Demo graph",
    "tasks": [{"id": "gen", "type": "counter", "agent": "pi-1", "config": {"interval_ms": 100}},
              {"id": "add", "type": "adder"}],
    "edges": [{"from": "gen.out", "to": "add.a"}, {"from": "topic:sensors/+", "to": "add.b"},
              {"from": "add.out", "to": "topic:results/sum"}],
}
CATALOG = {
    "counter": {"name": "counter", "inputs": {}, "outputs": {"out": {"content": "number"}}},
    "adder": {"name": "adder", "inputs": {"a": {"content": "number"}, "b": {"content": "number"}},
              "outputs": {"out": {"content": "number"}}},
    "text": {"name": "text", "inputs": {}, "outputs": {"out": {"content": "text"}}},
    "camera": {"name": "camera", "available": False, "reason": "No module named 'av'"},
}


def test_yaml_json_and_cbor_give_the_same_spec(tmp_path):
    import yaml

    (tmp_path / "g.yaml").write_text(yaml.safe_dump(SPEC))
    (tmp_path / "g.json").write_text(json.dumps(SPEC))
    (tmp_path / "g.cbor").write_bytes(encode_value(SPEC))
    specs = [load_spec(tmp_path / name) for name in ("g.yaml", "g.json", "g.cbor")]
    assert specs[0] == specs[1] == specs[2] == parse_spec(SPEC)
    assert decode_spec(encode_spec(specs[0])) == specs[0]
    assert specs[0].version == 1 and specs[0].task("add").agent is None


def test_wiring():
    spec = parse_spec(SPEC)
    topics = Topics("lab")
    assert spec.sources("add", topics) == {"a": "edge/v1/lab/streams/demo/gen/out", "b": "sensors/+"}
    assert spec.targets("add", ["out"], topics) == {"out": ["edge/v1/lab/streams/demo/add/out", "results/sum"]}
    assert spec.targets("gen", ["out"], topics) == {"out": ["edge/v1/lab/streams/demo/gen/out"]}


def test_cycles_are_allowed():
    spec = parse_spec({"id": "loop", "tasks": [{"id": "a", "type": "adder"}],
                       "edges": [{"from": "a.out", "to": "a.a"}]})
    assert spec.sources("a", Topics()) == {"a": "edge/v1/default/streams/loop/a/out"}


@pytest.mark.parametrize(("change", "message"), [
    ({"id": "a/b"}, "invalid deployment id 'a/b'"),
    ({"tasks": [{"id": "x", "type": "t"}, {"id": "x", "type": "t"}]}, "task id 'x' is used twice"),
    ({"tasks": [{"id": "x+", "type": "t"}]}, "invalid task id 'x+'"),
    ({"tasks": [{"id": "x", "type": "t", "agent": "é"}]}, "invalid agent id"),
    ({"tasks": [{"id": "x", "type": "t", "colour": "red"}]}, "colour"),
    ({"edges": [{"from": "nope.out", "to": "add.a"}]}, "no task 'nope' in this deployment"),
    ({"edges": [{"from": "gen.out", "to": "add.a"}, {"from": "topic:x", "to": "add.a"}]},
     "input add.a is fed twice: by gen.out and by topic:x"),
    ({"edges": [{"from": "topic:a", "to": "topic:b"}]}, "joins two topics"),
    ({"edges": [{"from": "add.out", "to": "topic:x/#"}]}, "must not contain the wildcards"),
    ({"edges": [{"from": "gen", "to": "add.a"}]}, "must be 'task.port' or 'topic:...'"),
    ({"version": 0}, "version"),
])
def test_each_rule_has_a_precise_error(change, message):
    with pytest.raises(SpecError) as info:
        parse_spec({**SPEC, **change})
    assert message in str(info.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(SpecError) as info:
        parse_spec({"id": "x", "tasks": [{"id": "a", "type": "t"}, {"id": "a", "type": "t"}],
                    "edges": [{"from": "b.o", "to": "a.i"}]})
    assert len(info.value.errors) == 2


@pytest.mark.parametrize("text", ["- a list", ": :", "42", ""])
def test_not_a_spec_at_all(text):
    with pytest.raises(SpecError):
        load_spec(text)


@given(st.binary(max_size=200))
def test_garbage_on_the_wire_is_only_ever_a_spec_error(data):
    with contextlib.suppress(SpecError):  # anything else escaping fails the test
        decode_spec(data)


def test_catalog_checks():
    assert check_against_catalog(parse_spec(SPEC), CATALOG) == []
    bad = {**SPEC, "tasks": [*SPEC["tasks"], {"id": "t", "type": "text"}, {"id": "cam", "type": "camera"},
                             {"id": "z", "type": "zzz"}],
           "edges": [{"from": "t.out", "to": "add.a"}, {"from": "gen.nope", "to": "add.b"}]}
    problems = check_against_catalog(parse_spec(bad), CATALOG)
    assert problems == [
        "task 'cam': type 'camera' is unavailable: No module named 'av'",
        "task 'z': unknown task type 'zzz'",
        "edge t.out -> add.a: incompatible (content: 'text' != 'number')",
        "gen.nope: task type 'counter' has no output 'nope' (it has: out)",
    ]


MARKED = {"id": "m", "tasks": [{"id": "a", "type": "t"}, {"id": "b", "type": "t"}],
          "notes": [{"id": "n1", "text": "why a feeds b", "x": -20, "y": 40}],
          "groups": [{"id": "g1", "label": "input", "tasks": ["a", "b"], "color": "#1e88e5"}]}


def test_comments_and_groups_are_kept_through_yaml_json_and_cbor():
    from edge.graph import parse_spec_lenient

    spec = parse_spec(MARKED)
    assert decode_spec(encode_spec(spec)) == spec
    assert load_spec(json.dumps(spec.to_dict())) == spec
    assert parse_spec_lenient(MARKED)[0] == spec
    assert spec.to_dict()["notes"] == MARKED["notes"] and spec.to_dict()["groups"] == MARKED["groups"]
    # a spec without them dumps as before (no empty lists)
    assert "notes" not in parse_spec({"id": "m"}).to_dict() and "groups" not in parse_spec({"id": "m"}).to_dict()


@pytest.mark.parametrize(("change", "message"), [
    ({"notes": [{"id": "n", "text": "x" * 4097}]}, "notes.0.text: String should have at most 4096 characters"),
    ({"notes": [{"id": "n", "x": 10**7}]}, "notes.0.x: Input should be less than or equal to 1000000"),
    ({"notes": [{"id": "n"}, {"id": "n"}]}, "note id 'n' is used twice"),
    ({"notes": [{"id": f"n{i}"} for i in range(257)]}, "notes: List should have at most 256 items"),
    ({"groups": [{"id": "g", "tasks": ["zz"]}]}, "group 'g': no task 'zz' in this deployment"),
    ({"groups": [{"id": "g", "color": "red"}]}, "groups.0.color: String should match pattern"),
    ({"groups": [{"id": "g", "tasks": ["a b"]}]}, "groups.0.tasks"),
    ({"groups": [{"id": "g", "extra": 1}]}, "groups.0.extra: Extra inputs are not permitted"),
    ({"groups": [{"id": f"g{i}"} for i in range(257)]}, "at most 256 groups"),
])
def test_comments_and_groups_are_bounded(change, message):
    from edge.graph import parse_spec_lenient

    with pytest.raises(SpecError) as caught:
        parse_spec({**MARKED, **change})
    assert any(message in line for line in caught.value.errors) or message.startswith("at most")
    _, _, problems = parse_spec_lenient({**MARKED, **change})
    assert any(message in line for line in problems), problems
