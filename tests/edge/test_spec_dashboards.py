"""A spec's dashboards: optional, bounded, checked against its tasks, every problem listed at once;
a spec without them reads and encodes as before."""

from __future__ import annotations

import pytest

from edge.errors import SpecError
from edge.graph import decode_spec, encode_spec, load_spec, parse_spec, parse_spec_lenient

TASKS = [{"id": "s", "type": "slider"}, {"id": "p", "type": "plot"}]


def test_dashboards_round_trip_and_are_left_out_when_there_are_none():
    spec = parse_spec({"id": "d", "tasks": TASKS, "dashboards": [
        {"id": "main", "label": "Main", "cards": [{"task": "p", "w": 4, "h": 2}, {"task": "s"}]},
        {"id": "other", "cards": [{"task": "s"}]}]})
    assert [(c.task, c.w, c.h) for c in spec.dashboards[0].cards] == [("p", 4, 2), ("s", 1, 1)]
    assert decode_spec(encode_spec(spec)) == spec
    import yaml

    assert load_spec(yaml.safe_dump(spec.to_dict())) == spec
    assert "dashboards" not in parse_spec({"id": "d", "tasks": TASKS}).to_dict()


@pytest.mark.parametrize(("boards", "problem"), [
    ([{"id": "m", "cards": [{"task": "nope"}]}], "dashboard 'm': no task 'nope' in this deployment"),
    ([{"id": "m", "cards": [{"task": "s"}, {"task": "s", "w": 2}]}], "dashboard 'm': task 's' has two cards"),
    ([{"id": "m"}, {"id": "m"}], "dashboard id 'm' is used twice"),
    ([{"id": "m", "cards": [{"task": "s", "w": 5}]}], "less than or equal to 4"),
    ([{"id": "m", "cards": [{"task": "s", "h": 0}]}], "greater than or equal to 1"),
    ([{"id": "a/b"}], "dashboard id"),
    ([{"id": "m", "cards": [{"task": "s", "x": 1}]}], "Extra inputs are not permitted"),
    ([{"id": f"b{i}"} for i in range(17)], "at most 16"),
    ([{"id": "m", "cards": [{"task": "s"}] * 257}], "at most 256"),
    ("main", "valid list"),
])
def test_bad_dashboards_are_refused_with_every_problem(boards, problem):
    data = {"id": "d", "tasks": TASKS, "dashboards": boards}
    with pytest.raises(SpecError) as raised:
        parse_spec(data)
    assert any(problem in line for line in raised.value.errors), raised.value.errors
    spec, _partial, problems = parse_spec_lenient(data)
    assert spec is None and any(problem in line for line in problems), problems


def test_the_lenient_parse_keeps_the_dashboards_of_a_valid_spec():
    data = {"id": "d", "tasks": TASKS, "dashboards": [{"id": "main", "cards": [{"task": "s", "w": 2}]}]}
    spec, partial, problems = parse_spec_lenient(data)
    assert problems == [] and spec is not None and spec.dashboards[0].cards[0].w == 2
    assert partial.dashboards == spec.dashboards
    # a card of a task the spec does not have is listed with the other problems
    data["tasks"] = [{"id": "p", "type": "plot"}, {"id": "bad id", "type": "x"}]
    _, _, problems = parse_spec_lenient(data)
    assert "dashboard 'main': no task 's' in this deployment" in problems and len(problems) == 2, problems
