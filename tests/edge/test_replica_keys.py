"""Replica keys (``worker.1``) in topics and the protocol, and the placement of replicas, without a broker."""

from __future__ import annotations

import pytest

from edge.bus import Bus
from edge.controller.fleet import AgentInfo, Fleet, TaskStatus
from edge.controller.placement import place
from edge.errors import IdError, SpecError, TopicError
from edge.graph import parse_spec
from edge.protocol import DismissRequest, TaskMetricsEntry
from edge.topics import TopicKind, Topics, replica_key, split_task_key

TOPICS = Topics("ns")


def test_a_replica_key_builds_and_parses_back():
    assert replica_key("worker", 0) == "worker.0" and replica_key("w", 63) == "w.63"
    assert split_task_key("worker.12") == ("worker", 12) and split_task_key("worker") == ("worker", None)
    topic = TOPICS.task_status("dep", "worker.3")
    assert topic == "edge/v1/ns/deployments/dep/status/worker.3"
    parsed = TOPICS.parse(topic)
    assert (parsed.kind, parsed.deployment_id, parsed.task_id) == (TopicKind.TASK_STATUS, "dep", "worker.3")
    assert TOPICS.shared("dep", "worker", "a/+/b") == "$share/edge.ns.dep.worker/a/+/b"
    assert TOPICS.replica_client_id("pi-1", "dep", "worker.1") == "replica-pi-1.dep.worker.1.ns"


@pytest.mark.parametrize("key", ["w.64", "w.01", "w.", ".1", "w.1.2", "w.-1", "w/1", "w.1 ", "", "w.a"])
def test_what_is_no_replica_key_is_refused(key):
    with pytest.raises(IdError):
        split_task_key(key)
    with pytest.raises((IdError, TopicError)):
        TOPICS.task_status("dep", key)
    with pytest.raises(TopicError):
        TOPICS.parse(f"edge/v1/ns/deployments/dep/status/{key}")
    with pytest.raises(IdError):
        replica_key("w", 64)


def test_the_protocol_takes_replica_keys_where_it_names_an_instance():
    assert DismissRequest.model_validate({"v": 1, "deployment": "d", "task": "w.2", "before": 5}).task == "w.2"
    entry = TaskMetricsEntry.model_validate({"deployment": "d", "task": "w.2", "metrics": {}})
    assert entry.task == "w.2"
    with pytest.raises(ValueError, match="task"):
        TaskMetricsEntry.model_validate({"deployment": "d", "task": "w/2", "metrics": {}})


def fleet(*agents: str, offline: tuple[str, ...] = ()) -> Fleet:
    found = Fleet(Bus("mqtt://127.0.0.1:1"), TOPICS)
    for agent_id in (*agents, *offline):
        found.agents[agent_id] = AgentInfo(id=agent_id, online=agent_id not in offline,
                                           types=[{"name": "stamp", "stateless": True}, {"name": "other"}])
    return found


def spec(replicas: int, **extra) -> dict:
    return {"id": "d", "tasks": [{"id": "w", "type": "stamp", "replicas": replicas, **extra}]}


def test_replicas_spread_over_agents_then_double_up_and_stay_where_they_ran():
    f = fleet("a1", "a2", "a3", offline=("a0",))
    placed, problems = place(parse_spec(spec(2)), f)
    assert problems == [] and placed.task("w").agents == ("a1", "a2")
    placed, _ = place(parse_spec(spec(5)), f)
    assert placed.task("w").agents == ("a1", "a2", "a3", "a1", "a2")
    # deployed on a2 and a3 before: each replica stays, the new one goes to the agent without one
    f.deployments["d"] = parse_spec(spec(2, agents=["a3", "a2"]))
    placed, _ = place(parse_spec(spec(3)), f)
    assert placed.task("w").agents == ("a3", "a2", "a1")
    # a status tells where a replica ran when the spec did not pin it
    f.deployments.clear()
    f.statuses[("d", "w.0")] = TaskStatus(deployment="d", task="w.0", state="running", agent="a3")
    placed, _ = place(parse_spec(spec(2)), f)
    assert placed.task("w").agents == ("a3", "a1")


def test_pinned_replicas_are_kept_and_checked():
    f = fleet("a1", "a2")
    placed, problems = place(parse_spec(spec(2, agent="a2")), f)
    assert problems == [] and placed.task("w").agents is None
    assert placed.task("w").instances() == [("w.0", "a2"), ("w.1", "a2")]
    f.agents["a2"].types = [{"name": "other"}]
    _, problems = place(parse_spec(spec(2, agents=["a1", "a2"])), f)
    assert problems == ["task 'w': agent 'a2' does not offer type 'stamp'"]
    _, problems = place(parse_spec(spec(2)), fleet(offline=("a1",)))
    assert problems == ["task 'w': no online agent offers type 'stamp'"]
    assert fleet("a1").load() == {"a1": 0}
    loaded = fleet("a1", "a2")
    loaded.deployments["d"] = parse_spec(spec(3, agents=["a1", "a2", "a1"]))
    assert loaded.load() == {"a1": 2, "a2": 1}


def test_the_acl_lets_each_agent_write_the_status_of_its_replicas():
    from edge.acl import generate_acl

    deployed = parse_spec({"id": "d", "tasks": [{"id": "w", "type": "stamp", "replicas": 3,
                                                  "agents": ["a1", "a2", "a1"]}],
                           "edges": [{"from": "topic:jobs", "to": "w.in"}]})
    text = generate_acl(namespace="ns", agents=["a1", "a2"], controllers=[], specs=[deployed])
    a1, a2 = text.split("user a1\n")[1].split("user a2\n")
    status = "topic write edge/v1/ns/deployments/d/status/"
    assert [line for line in a1.splitlines() if line.startswith(status)] == [f"{status}w.0", f"{status}w.2"]
    assert [line for line in a2.splitlines() if line.startswith(status)] == [f"{status}w.1"]
    assert "topic read jobs" in a1 and "topic read jobs" in a2
    assert "topic write edge/v1/ns/streams/d/w/#" in a2


def test_agent_and_agents_are_not_both_given_and_one_pinned_replica_stays_pinned():
    with pytest.raises(SpecError, match="not both"):
        parse_spec(spec(2, agent="a1", agents=["a1", "a2"]))
    placed, problems = place(parse_spec(spec(1, agents=["a2"])), fleet("a1", "a2"))
    assert problems == [] and placed.task("w").instances() == [("w", "a2")]
