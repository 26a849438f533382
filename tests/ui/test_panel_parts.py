"""The panel's parts that need no page: config schemas and their checks, the editor's draft, the
graph layout, the inspector's previews."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
from pydantic import BaseModel
from ui_tasks import Double, Numbers, Words

from edge.graph import parse_spec
from ui.config_form import check_config, check_value, schema_fields
from ui.draft import Draft
from ui.graph_view import graph_props, layout
from ui.preview import classify, describe, encoded_image_mime, image_data_url, png, png_data_url

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

TYPES = {t.type_name: t.describe() for t in (Numbers, Double, Words)}


def test_schema_fields_read_pydantic_schemas():
    fields = {f.name: f for f in schema_fields(Double.Config.model_json_schema())}
    assert fields["factor"].kind == "number" and fields["factor"].constraints == {"maximum": 1000,
                                                                                   "exclusiveMinimum": 0}
    assert fields["mode"].kind == "enum" and fields["mode"].options == ("multiply", "add")
    assert fields["enabled"].kind == "boolean" and fields["enabled"].default is True
    assert fields["tags"].kind == "json" and fields["tags"].constraints == {"maxItems": 3}
    assert fields["note"].kind == "string" and fields["note"].nullable and fields["note"].default is None

    class Nested(BaseModel):
        inner: Double.Config
        count: int

    nested = {f.name: f for f in schema_fields(Nested.model_json_schema())}
    assert nested["inner"].kind == "json" and nested["inner"].required  # a $ref to a model: edited as JSON
    assert nested["count"].kind == "integer" and nested["count"].required and not nested["count"].has_default
    assert schema_fields(None) == [] and schema_fields({"type": "object"}) == []


def test_checks_say_what_pydantic_would_refuse():
    schema = Double.Config.model_json_schema()
    assert check_config(schema, {"factor": 2, "mode": "add", "tags": ["a"], "note": None}) == {}
    assert check_config(schema, {"factor": 0, "mode": "divide", "enabled": 1, "tags": list("abcd"),
                                 "note": 5}) == {
        "factor": "must be > 0", "mode": 'must be one of "multiply", "add"', "enabled": "must be true or false",
        "tags": "takes at most 3 items", "note": "must be text"}
    fields = {f.name: f for f in schema_fields(Numbers.Config.model_json_schema())}
    assert check_value(fields["interval_ms"], 5) == "must be ≥ 10"
    assert check_value(fields["interval_ms"], 2.5) == "must be a whole number"
    assert check_value(fields["interval_ms"], 20.0) is None
    assert check_value(fields["interval_ms"], True) == "must be a whole number"
    assert check_value(fields["interval_ms"], None) == "may not be empty"
    strict = {"type": "object", "required": ["x"], "additionalProperties": False,
              "properties": {"x": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"}}}
    assert check_config(strict, {"y": 1}) == {"x": "required", "y": "is not a field of this config"}
    assert check_config(strict, {"x": "A1"}) == {"x": "must match ^[a-z]+$"}
    assert check_config(strict, {"x": "a"}) == {"x": "must be at least 2 characters"}


def test_draft_connect_refuses_with_the_reason():
    draft = Draft(id="d")
    for type_name in ("numbers", "double", "words", "double"):
        draft.add_task(type_name)
    assert [t.id for t in draft.tasks] == ["numbers1", "double1", "words1", "double2"]
    assert draft.connect("numbers1.out", "double1.in", TYPES) == []
    assert draft.connect("numbers1.out", "double1.in", TYPES) == [
        "input double1.in is fed by numbers1.out already: delete that wire first"]
    assert draft.connect("words1.out", "double2.in", TYPES) == [
        "edge words1.out -> double2.in: incompatible (content: 'text' != 'number')"]
    assert draft.connect("numbers1.out", "double2.nope", TYPES) == [
        "double2.nope: task type 'double' has no input 'nope' (it has: in)"]
    assert draft.connect("ghost.out", "double2.in", TYPES) == [
        "edge ghost.out -> double2.in: no task 'ghost' in this deployment"]
    assert draft.connect("numbers1.out", "double2.in", TYPES) == []  # one output feeds many inputs
    assert draft.connect("double2.out", "double2.in", TYPES) != []  # fed already
    draft.remove_task("numbers1")
    assert draft.edges == [] and draft.problems(TYPES) == []
    draft.pin("double1", "pi-1")
    draft.set_config("double1", {"factor": 3})
    spec = Draft.from_yaml(draft.to_yaml()).to_spec()
    assert spec.task("double1").agent == "pi-1" and spec.task("double1").config == {"factor": 3}


def test_layout_puts_sources_left_survives_cycles_and_keeps_moved_nodes():
    spec = parse_spec({"id": "g", "tasks": [{"id": i, "type": "double"} for i in ("a", "b", "c", "d")],
                       "edges": [{"from": "a.out", "to": "b.in"}, {"from": "b.out", "to": "c.in"},
                                 {"from": "c.out", "to": "a.in"}, {"from": "topic:x/y", "to": "d.in"}]})
    xy = layout(spec, TYPES)
    assert set(xy) == {"a", "b", "c", "d", "topic:x/y"}  # a topic end is a node of its own
    assert xy["b"][0] > xy["a"][0] or xy["a"][0] > xy["c"][0]  # a cycle is cut somewhere, and it ends
    assert xy["d"][0] > xy["topic:x/y"][0]  # the topic feeds d: left of it
    assert layout(spec, TYPES, {"d": (5, 6)})["d"] == (5, 6)
    nodes, edges = graph_props(spec, TYPES, states={"a": "failed"})
    assert {n["id"]: n["state"] for n in nodes} == {"a": "failed", "b": "none", "c": "none", "d": "none",
                                                    "topic:x/y": "topic"}
    assert len(edges) == len(spec.edges) == 4  # every wire drawn, the topic one too
    assert {"key": "topic:x/y->d.in", "from": "topic:x/y", "to": "d.in"} in edges
    topic = next(n for n in nodes if n["id"] == "topic:x/y")
    assert topic["kind"] == "topic" and [p["name"] for p in topic["outputs"]] == ["out"]


def test_png_of_images():
    rgb = np.zeros((4, 3, 3), dtype=np.uint8)
    rgb[1, 2] = (255, 128, 1)
    data = png(rgb)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, color) == (3, 4, 8, 2)
    length = struct.unpack(">I", data[33:37])[0]
    rows = np.frombuffer(zlib.decompress(data[41:41 + length]), dtype=np.uint8).reshape(4, 1 + 9)
    assert (rows[:, 0] == 0).all() and tuple(rows[1, 7:10]) == (255, 128, 1)
    grey = png(np.full((2000, 10), 7, dtype=np.uint8))  # scaled down by whole steps to at most 640
    assert struct.unpack(">IIBB", grey[16:26]) == (3, 500, 8, 0)
    rgba = png_data_url(np.zeros((2, 2, 4), dtype=np.uint8))
    assert base64.b64decode(rgba.split(",")[1])[25] == 6
    with pytest.raises(ValueError, match="not an image"):
        png(np.zeros((2, 2), dtype=np.float32))


def test_encoded_images_are_shown_as_they_are():
    av = pytest.importorskip("av")
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = 64, 48, "yuvj420p", Fraction(1, 30)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    jpeg = b"".join(bytes(packet) for packet in encoder.encode(frame))
    assert encoded_image_mime(jpeg) == "image/jpeg" and classify(jpeg) == "image"
    assert image_data_url(jpeg) == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    assert encoded_image_mime(png(rgb)) == "image/png"
    assert image_data_url(rgb).startswith("data:image/png;base64,")
    for not_image in (jpeg[:-2], b"\xff\xd8", b"", "text", 1):  # cut short, or not bytes
        assert encoded_image_mime(not_image) is None and classify(not_image) != "image"
        with pytest.raises(ValueError, match="not an image"):
            image_data_url(not_image)


def test_classify_and_describe():
    assert [classify(v) for v in (1, 2.5, True, "x", np.zeros((2, 2, 3), np.uint8), np.zeros(3), b"x", None,
                                  float("nan"))] == ["number", "number", "number", "text", "image", "other",
                                                     "other", "other", "other"]
    assert describe({"a": b"\x00\x01", "b": [1, None]}) == '{"a": "2 bytes 0001", "b": [1, null]}'
    assert describe(np.arange(10, dtype=np.int16)).startswith('"array int16 (10,) [0, 1, 2')
    assert len(describe("x" * 1000)) == 400
    assert json.loads(describe({"n": float("inf")})) == {"n": "inf"}


def test_a_draft_is_stale_when_what_is_deployed_is_not_its_base():
    from edge.graph import Origin

    v1 = parse_spec({"id": "d", "tasks": [{"id": "n", "type": "numbers"}],
                     "deployed": {"via": "panel", "host": "h", "at": 1}})
    draft = Draft.from_spec(v1)
    assert not draft.stale(None) and not draft.stale(v1)
    assert not draft.stale(parse_spec(v1.to_dict()))  # the copy the broker brings back is the same publish
    assert draft.stale(v1.model_copy(update={"version": 2}))
    # the same version number published by another controller (its own history) is another publish
    assert draft.stale(v1.model_copy(update={"deployed": Origin(via="cli", host="other", at=2)}))
    assert Draft(id="d").stale(v1) and not Draft(id="d").stale(None)  # a new draft: anything deployed is news


def test_spec_diff_lines_and_origin_text():
    from ui.versions import MAX_VALUE, diff_specs, origin_text

    old = parse_spec({"id": "d", "label": "A", "tasks": [
        {"id": "n", "type": "numbers", "agent": "a1", "label": "N", "config": {"interval_ms": 100, "x": 1}},
        {"id": "gone", "type": "double"}], "edges": [{"from": "n.out", "to": "gone.in"}]})
    new = parse_spec({"id": "d", "version": 7, "tasks": [
        {"id": "n", "type": "words", "config": {"interval_ms": 100, "word": "°" * 100}}],
        "deployed": {"via": "cli", "host": "lab", "at": 1764892330000, "rollback_of": 2}})
    lines = diff_specs(old, new)
    assert lines[:5] == ['label "A" → ""', "- task gone (double)", "task n: type numbers → words",
                         "task n: runs on a1 → (placement)", 'task n: label "N" → ""']
    assert lines[5].startswith('task n: config + word: "°°') and lines[5].endswith("…")  # cut, as typed
    assert len(lines[5]) == len("task n: config + word: ") + MAX_VALUE
    assert lines[6] == "task n: config - x (was 1)"
    assert lines[7:] == ["- wire n.out → gone.in"]
    assert diff_specs(new, new.model_copy(update={"version": 8, "deployed": None})) == []  # same tasks and wires
    assert diff_specs(None, old) == ["+ task n (numbers)", "+ task gone (double)", "+ wire n.out → gone.in"]
    assert origin_text(new) == "deployed 2025-12-04 23:52:10 UTC from the CLI on lab as a rollback to v2"
    assert origin_text(old) == "deployed (when and from where: not recorded)"
