"""Catalogs many agents send byte for byte the same are decoded and validated once (edge.controller.fleet).

A real agent's catalog is ~80 KB (70-odd task types): decoding and validating it took tens of ms
a catalog, so 1,000 agents on one controller took minutes to list. Agents of one software version
differ only in their id, epoch and boot: the fleet keys the entries it made by the bytes of
``types`` and every agent sending them shares one list.
"""

from __future__ import annotations

import uuid

import pytest
from _retained import publish_retained

from edge.bus import Bus
from edge.controller import Controller
from edge.controller.fleet import CATALOG_CACHE_MIN
from edge.errors import FrameError
from edge.frames import decode_value, encode_value, split_map_tail
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 10.0
#: enough entries for the payload to pass CATALOG_CACHE_MIN, one of them invalid
TYPES = [{"name": f"type{i:02d}", "description": "x" * 200, "available": True} for i in range(40)]
TYPES.append({"name": "not an id!"})


def state() -> bytes:
    return encode_value({"online": True, "epoch": 1, "ts": 1, "version": "0.1.0", "host": {}})


def catalog(agent: str, types: list[dict[str, object]], **head: object) -> bytes:
    return encode_value({"v": 1, "agent": agent, "epoch": 1, "boot": "b" + agent, **head, "types": types})


async def test_agents_with_the_same_catalog_share_one_list_and_each_is_checked(broker, tmp_path):
    ns = f"c{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    other = [*TYPES[:-1], {"name": "extra", "available": False, "reason": "no camera"}]
    messages = [(topics.agent_state(a), state()) for a in ("a1", "a2", "a3", "bad")]
    messages += [(topics.agent_catalog("a1"), catalog("a1", TYPES)), (topics.agent_catalog("a2"), catalog("a2", TYPES)),
                 (topics.agent_catalog("a3"), catalog("a3", other)),
                 # the same types bytes behind a head that breaks the protocol: refused, cache or not
                 (topics.agent_catalog("bad"), catalog("bad", TYPES, epoch="one"))]
    assert all(len(payload) >= CATALOG_CACHE_MIN for _, payload in messages[4:])
    async with Bus(broker.url.geturl()) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            settings = load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "ctl")
            async with Controller(settings) as controller:
                fleet = controller.fleet
                await fleet.wait_for(lambda f: all(f.agents.get(a) and f.agents[a].types for a in ("a1", "a2", "a3")),
                                     TIMEOUT)
                a1, a2, a3 = (fleet.agents[a] for a in ("a1", "a2", "a3"))
                assert a1.types is a2.types  # made once, shared
                assert [t["name"] for t in a1.types] == [t["name"] for t in TYPES[:-1]]  # the invalid one left out
                assert a3.types is not a1.types and a3.types[-1] == {"name": "extra", "available": False,
                                                                     "reason": "no camera"}
                assert not fleet.agents["bad"].types and fleet.errors >= 3  # a1's, a2's invalid entry; bad's head
                assert fleet.types()["type00"]["agents"] == ["a1", "a2", "a3"]
                # live, another agent with the same catalog: the cached entries, its invalid entry still counted
                errors = fleet.errors
                await bus.publish(topics.agent_catalog("a4"), catalog("a4", TYPES), qos=1)
                await fleet.wait_for(lambda f: "a4" in f.agents and f.agents["a4"].types, TIMEOUT)
                assert fleet.agents["a4"].types is a1.types
                assert fleet.errors == errors + 1
                # the merged catalog is made again when an agent comes, goes offline or changes its catalog
                assert fleet.types(online_only=False)["type00"]["agents"] == ["a1", "a2", "a3", "a4"]
                fleet.types()["type00"]["agents"].append("mine")  # the caller's copy
                assert fleet.types()["type00"]["agents"] == ["a1", "a2", "a3"]  # a4 has no state: not online
                offline = encode_value({"online": False, "epoch": 1, "ts": 2, "version": "0.1.0", "host": {}})
                await bus.publish(topics.agent_state("a1"), offline, qos=1)
                await fleet.wait_for(lambda f: not f.agents["a1"].online, TIMEOUT)
                assert fleet.types()["type00"]["agents"] == ["a2", "a3"]
                await bus.publish(topics.agent_catalog("a2"), catalog("a2", [*TYPES[:-1], {"name": "only2"}]), qos=1)
                await fleet.wait_for(lambda f: f.agents["a2"].types[-1]["name"] == "only2", TIMEOUT)
                assert fleet.types()["only2"]["agents"] == ["a2"]
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)


def test_split_map_tail_gives_the_head_decoded_and_the_last_value_raw():
    payload = encode_value({"v": 1, "agent": "a", "types": [{"name": "x"}]})
    head, tail = split_map_tail(payload, "types") or ({}, b"")
    assert head == {"v": 1, "agent": "a"}
    assert decode_value(tail) == [{"name": "x"}]
    assert split_map_tail(encode_value({"types": [], "v": 1}), "types") is None  # not last: decode it whole
    assert split_map_tail(encode_value([1, 2]), "types") is None
    assert split_map_tail(b"", "types") is None
    assert split_map_tail(encode_value({"v": "x" * 5000, "types": []}), "types") is None  # a head over max_head


@pytest.mark.parametrize("payload", [b"\xa2\xff", b"\xa2\x61v\xd8\x20\x61x\x65types\x80", b"\xa2\x61v"])
def test_split_map_tail_refuses_a_malformed_head(payload):
    # a break code, a refused tag (32, a URI) in the head, a head cut short
    with pytest.raises(FrameError):
        split_map_tail(payload, "types")
