import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import IdError, TopicError
from edge.topics import (
    ANY_NAMESPACE_AGENT_STATES,
    ParsedTopic,
    TopicKind,
    Topics,
    matches,
    namespace_of,
    sibling_topic,
    validate_filter,
    validate_id,
    validate_topic,
)

ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")


def test_layout_is_the_documented_one():
    t = Topics("lab")
    assert t.agent_state("pi-1") == "edge/v1/lab/agents/pi-1/state"
    assert t.agent_catalog("pi-1") == "edge/v1/lab/agents/pi-1/catalog"
    assert t.deployment("demo") == "edge/v1/lab/deployments/demo"
    assert t.task_status("demo", "add") == "edge/v1/lab/deployments/demo/status/add"
    assert t.stream("demo", "add", "out") == "edge/v1/lab/streams/demo/add/out"
    assert t.all_agent_states == "edge/v1/lab/agents/+/state"
    assert t.all_deployments == "edge/v1/lab/deployments/+"
    assert t.all_task_statuses("demo") == "edge/v1/lab/deployments/demo/status/+"
    assert t.all_streams() == "edge/v1/lab/streams/#"
    assert t.sync("cli-1") == "edge/v1/lab/controllers/cli-1/sync"
    assert t.agent_metrics("pi-1") == "edge/v1/lab/agents/pi-1/metrics"
    assert t.agent_metrics_request("pi-1") == "edge/v1/lab/agents/pi-1/metrics/request"
    assert t.all_agent_metrics == "edge/v1/lab/agents/+/metrics"


def test_the_agents_of_every_namespace():
    assert matches(ANY_NAMESPACE_AGENT_STATES, Topics("lab").agent_state("pi-1"))
    assert not matches(ANY_NAMESPACE_AGENT_STATES, Topics("lab").agent_catalog("pi-1"))
    assert namespace_of(Topics("lab").agent_state("pi-1")) == "lab"
    assert namespace_of(Topics("lab").stream("d", "t", "p")) == "lab"
    for other in ("edge/v1/lab", "edge/v2/lab/agents/a/state", "mine/v1/lab/x", "edge/v1/a b/agents/x/state", ""):
        assert namespace_of(other) is None


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "#", "a b", "é", "x" * 65, None, 5, "a\x00"])
def test_invalid_ids_are_refused_with_the_kind_named(bad):
    with pytest.raises(IdError, match="task id") as info:
        Topics().stream("demo", bad, "out")
    assert info.value.kind == "task id"
    assert isinstance(info.value, ValueError)


def test_invalid_namespace_is_refused():
    with pytest.raises(IdError, match="namespace"):
        Topics("a/b")


@given(ns=ids, dep=ids, task=ids, port=ids, agent=ids)
def test_every_built_topic_parses_back(ns, dep, task, port, agent):
    t = Topics(ns)
    assert t.parse(t.stream(dep, task, port)) == ParsedTopic(TopicKind.STREAM, ns, deployment_id=dep, task_id=task,
                                                             port=port)
    assert t.parse(t.task_status(dep, task)) == ParsedTopic(TopicKind.TASK_STATUS, ns, deployment_id=dep,
                                                            task_id=task)
    assert t.parse(t.deployment(dep)) == ParsedTopic(TopicKind.DEPLOYMENT, ns, deployment_id=dep)
    assert t.parse(t.agent_state(agent)).agent_id == agent
    assert t.parse(t.agent_catalog(agent)).kind is TopicKind.AGENT_CATALOG
    assert t.parse(t.agent_dismiss(agent)) == ParsedTopic(TopicKind.AGENT_DISMISS, ns, agent_id=agent)
    assert t.parse(t.agent_metrics(agent)) == ParsedTopic(TopicKind.AGENT_METRICS, ns, agent_id=agent)
    assert t.parse(t.agent_metrics_request(agent)) == ParsedTopic(TopicKind.AGENT_METRICS_REQUEST, ns, agent_id=agent)
    assert t.parse(t.agent_catalog_request(agent)) == ParsedTopic(TopicKind.AGENT_CATALOG_REQUEST, ns, agent_id=agent)
    assert not matches(t.all_agent_catalogs, t.agent_catalog_request(agent))  # not read as a catalog
    assert not matches(t.all_agent_states, t.agent_dismiss(agent))
    assert matches(t.all_streams(dep), t.stream(dep, task, port))
    assert matches(t.all_agent_states, t.agent_state(agent))
    assert not matches(t.all_agent_states, t.agent_catalog(agent))


@pytest.mark.parametrize("topic", [
    "edge/v1/other/agents/a/state",          # another namespace
    "edge/v1/default/agents/a",              # too short
    "edge/v1/default/agents/a/state/x",      # too long
    "edge/v1/default/streams/d/t",           # missing port
    "edge/v1/default/streams/d/t/p+",        # invalid id
    "edge/v1/default/unknown/x",
    "sensors/a",
])
def test_foreign_topics_do_not_parse(topic):
    with pytest.raises(TopicError):
        Topics("default").parse(topic)


@pytest.mark.parametrize(("pattern", "topic", "expected"), [
    ("a/b", "a/b", True),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/#", "a", True),
    ("a/#", "a/b/c", True),
    ("#", "a/b", True),
    ("+/+", "a/b", True),
    ("+", "$SYS/x", False),
    ("#", "$SYS/x", False),
    ("$SYS/#", "$SYS/x", True),
    ("a/+/c", "a//c", True),
    ("$share/g/a/+", "a/b", True),
])
def test_wildcard_matching(pattern, topic, expected):
    assert matches(pattern, topic) is expected


@pytest.mark.parametrize("bad", ["a/#/b", "a#", "a/b+", "", "a\x00b", "x" * 70000])
def test_invalid_filters(bad):
    with pytest.raises(TopicError):
        validate_filter(bad)


@pytest.mark.parametrize("bad", ["a/+", "a/#", "", "\udcff"])
def test_invalid_publish_topics(bad):
    with pytest.raises(TopicError):
        validate_topic(bad)


def test_validate_id_returns_the_id():
    assert validate_id("pi-1_A", "agent id") == "pi-1_A"


def test_sync_named_and_port_topics_are_built_here_too():
    t = Topics("lab")
    assert t.agent_sync("pi-1") == "edge/v1/lab/agents/pi-1/sync"
    assert t.named("cam-1") == "edge/v1/lab/named/cam-1"
    assert t.all_streams_of_port("view", "demo") == "edge/v1/lab/streams/demo/+/view"
    assert t.all_streams_of_port("view") == "edge/v1/lab/streams/+/+/view"
    assert matches(t.all_streams_of_port("view", "demo"), t.stream("demo", "slider", "view"))
    assert sibling_topic(t.stream("demo", "slider", "view"), "set") == t.stream("demo", "slider", "set")
    assert sibling_topic("view", "set") is None
    for bad in (lambda: t.named("a/b"), lambda: t.agent_sync("+"), lambda: sibling_topic("a/b", "#")):
        with pytest.raises(IdError):
            bad()
    assert (t.everything, t.agent_subtree("pi-1"), t.all_replies, t.task_streams("demo", "add")) == (
        "edge/v1/lab/#", "edge/v1/lab/agents/pi-1/#", "edge/v1/lab/replies/+", "edge/v1/lab/streams/demo/add/#")
