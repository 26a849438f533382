"""Removal records and the rule every holder of desired state applies (edge.desired)."""

from __future__ import annotations

import pytest

from edge.desired import Removal, decode_record, encode_record, supersedes
from edge.errors import SpecError
from edge.frames import encode_value
from edge.graph import encode_spec, parse_spec


def spec(version: int):
    return parse_spec({"id": "d", "version": version, "tasks": [{"id": "t", "type": "scale"}]})


def test_records_round_trip_and_empty_is_nothing():
    assert decode_record("d", b"") is None
    assert decode_record("d", encode_spec(spec(3))) == spec(3)
    assert decode_record("d", encode_record(Removal("d", 3, 1764028790000))) == Removal("d", 3, 1764028790000)


@pytest.mark.parametrize("payload", [
    encode_value({"removed": False, "version": 1}),
    encode_value({"removed": "yes", "version": 1}),
    encode_value({"removed": True}),
    encode_value({"removed": True, "version": -1}),
    encode_value({"removed": True, "version": True}),
    encode_value({"removed": True, "version": 10**400}),
    encode_value({"removed": True, "version": "3"}),
    encode_spec(parse_spec({"id": "other", "tasks": []})),
    b"\xff\x00",
])
def test_anything_else_is_refused_with_one_spec_error(payload):
    with pytest.raises(SpecError):
        decode_record("d", payload)


def test_a_garbage_time_is_read_as_unknown():
    assert decode_record("d", encode_value({"removed": True, "version": 2, "at": 10**400})) == Removal("d", 2, 0)


def test_highest_version_wins_and_a_removal_beats_a_spec_of_the_same_version():
    assert supersedes(spec(1), None) and supersedes(Removal("d", 1), None)
    assert supersedes(spec(3), spec(2)) and not supersedes(spec(2), spec(3))
    assert supersedes(spec(3), Removal("d", 2)) and not supersedes(spec(2), Removal("d", 2))
    assert supersedes(Removal("d", 2), spec(2)) and not supersedes(Removal("d", 2), Removal("d", 2))
    assert not supersedes(spec(2), spec(2).model_copy(update={"label": "another"}))  # unordered: the broker's stays
