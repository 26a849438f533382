"""Which filters a bus subscribes at the broker, so overlapping subscriptions never double messages."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.bus._filters import FilterSet, covers
from edge.topics import matches


@pytest.mark.parametrize(("outer", "inner", "expected"), [
    ("a/#", "a/b", True), ("a/#", "a", True), ("a/#", "a/+/c", True), ("#", "x/#", True),
    ("a/+", "a/b", True), ("a/+", "a/+", True), ("a/+", "a/#", False), ("a/+", "a/b/c", False),
    ("a/b", "a/+", False), ("a/+/c", "a/b/+", False), ("+/b", "a/b", True), ("#", "$SYS/x", False),
    ("a/b", "a/b", True), ("$share/g/a/#", "a/b", False),
])
def test_covers(outer, inner, expected):
    assert covers(outer, inner) is expected


levels = st.sampled_from(["a", "b", "+"])
filters = st.builds(lambda ls, tail: "/".join(ls) + tail, st.lists(levels, min_size=1, max_size=3),
                    st.sampled_from(["", "/#"]))
topics = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=4).map("/".join)


@given(outer=filters, inner=filters, topic=topics)
def test_covers_agrees_with_matching(outer, inner, topic):
    if covers(outer, inner) and matches(inner, topic):
        assert matches(outer, topic)


def test_broker_gets_only_maximal_filters_and_replays_for_covered_ones():
    fs = FilterSet()
    plan = fs.add("a/b", 0)
    assert plan.subscribe == [("a/b", 0)] and plan.unsubscribe == [] and plan.probe is None
    plan = fs.add("a/#", 1)
    assert plan.subscribe == [("a/#", 1)] and plan.unsubscribe == ["a/b"]
    plan = fs.add("a/c", 0)  # covered: only probed for its retained messages
    assert plan.subscribe == [] and plan.unsubscribe == [] and plan.probe == ("a/c", 0)
    assert fs.broker == {"a/#": 1}
    assert fs.remove("a/c").subscribe == []
    plan = fs.remove("a/#")  # the narrower filter is uncovered again
    assert plan.subscribe == [("a/b", 0)] and plan.unsubscribe == ["a/#"]
    assert fs.broker == {"a/b": 0}


def test_same_filter_twice_is_one_broker_subscription_until_both_close():
    fs = FilterSet()
    fs.add("x/+", 0)
    assert fs.add("x/+", 1).subscribe == [("x/+", 1)]  # a second subscription gets retained messages too
    assert fs.broker == {"x/+": 1}
    assert fs.remove("x/+").unsubscribe == []
    assert fs.remove("x/+").unsubscribe == ["x/+"]
    assert fs.broker == {}


@given(st.lists(filters, max_size=8))
def test_every_open_filter_is_covered_by_a_broker_filter(opened):
    fs = FilterSet()
    for f in opened:
        fs.add(f, 0)
    for f in opened:
        assert any(covers(b, f) for b in fs.broker)
    for b in fs.broker:
        assert not any(other != b and covers(other, b) for other in fs.broker)
