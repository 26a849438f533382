"""docs/task-library.md stays true to the code.

Each task's section holds a block generated from its catalog entry (ports with their metadata,
config fields from the JSON Schema) between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; this test fails when a block differs from what the code says now.
Regenerate them with ``python tests/tasks/test_library_doc.py --write``. Every ``yaml`` spec
in the page must also pass the catalog check against the built-in types, with valid configs.

The page is grouped by category: the group table (``<!-- generated: groups -->``) is made from the
types' ``category`` values and :data:`CATEGORIES`, and each type's section must stand under a
heading of its category.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from edge.graph import check_against_catalog, load_spec
from tasks.builtin import TYPES

if __name__ == "__main__":  # run as a script (--write): tests/ is not on the path then
    sys.path.insert(0, str(Path(__file__).parents[1]))
from _types import extra_types

DOC = Path(__file__).parents[2] / "docs" / "task-library.md"
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)
YAML = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
#: the built-ins and the other entry points' types but media's (the tests install their libraries)
BY_NAME = {t.type_name: t for t in (*TYPES, *extra_types())}
#: each category on this page, in order, with the sections (``## `` headings) its types stand under
CATEGORIES: dict[str, list[str]] = {
    "logic": ["Logic"],
    "timing": ["Timing"],
    "flow": ["Flow control"],
    "data": ["Data shaping"],
    "text": ["Text"],
    "connections": ["Named streams", "Bridges to MQTT"],
    "dashboard": ["Dashboard"],
    "integration": ["Integration"],
    "hardware": ["Hardware"],
    "inference": ["Inference"],
}


def _meta(meta: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {json.dumps(v)}" for k, v in meta.items())


def _type(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    if "enum" in spec:
        return " \\| ".join(json.dumps(v) for v in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    if "anyOf" in spec:
        return " or ".join(_type(s, defs) for s in spec["anyOf"])
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        if "properties" not in defs[name]:
            return "any"  # pydantic's JsonValue: any JSON value
        fields = ", ".join(defs[name]["properties"])
        return f"{{{fields}}}"
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}), defs)}"
    if kind == "object":
        values = spec.get("additionalProperties")
        return f"map of {_type(values, defs)}" if isinstance(values, dict) else "map"
    return {"integer": "int", "number": "number", "string": "text", "boolean": "bool", "null": "null"}.get(kind, kind)


_BOUNDS = [("minimum", "≥ {}"), ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"), ("exclusiveMaximum", "< {}"),
           ("minLength", "≥ {} chars"), ("maxLength", "≤ {} chars"), ("minItems", "≥ {} items"),
           ("maxItems", "≤ {} items"), ("pattern", "matches `{}`")]


def _bounds(spec: dict[str, Any]) -> str:
    return ", ".join(fmt.format(spec[key]) for key, fmt in _BOUNDS if key in spec).replace("|", "\\|")


def _port_rows(direction: str, ports: dict[str, Any]) -> list[str]:
    """One row per port; a run of ports alike but for their name (in0 … in3, a … w) shares one row."""
    def key(name: str) -> tuple[str, str, str] | None:
        port = ports[name]
        meta = _meta(port.metadata())
        digits = re.search(r"\d+$", name)
        if digits and port.label.endswith(digits.group()):
            return meta, name[: digits.start()] + "*k*", port.label[: -len(digits.group())] + "*k*"
        if port.label.endswith(f" {name}"):
            return meta, "*name*", port.label[: -len(name)] + "*name*"
        return None

    rows: list[str] = []
    names = list(ports)
    while names:
        group = [names.pop(0)]
        while names and key(group[0]) is not None and key(names[0]) == key(group[0]):
            group.append(names.pop(0))
        port = ports[group[0]]
        label = key(group[0])[2] if len(group) > 1 else port.label  # type: ignore[index]
        rows.append(f"| {', '.join(f'`{n}`' for n in group)} | {direction} | {_meta(port.metadata())} | {label} |")
    return rows


def generated(task_type: Any) -> str:
    entry = task_type.describe()
    lines = ["| port | | IO metadata | |", "|---|---|---|---|"]
    for direction, ports in (("in", task_type.inputs), ("out", task_type.outputs)):
        lines += _port_rows(direction, dict(ports))
    if task_type.ports_from:
        lines += ["", "Ports from the config (the rows above are those of the default config): "
                  + "; ".join(rule.describe() for rule in task_type.ports_from) + "."]
    schema = entry["config_schema"]
    defs = schema.get("$defs", {})
    lines += ["", "| config | type | default | limits | meaning |", "|---|---|---|---|---|"]
    for field, spec in schema.get("properties", {}).items():
        defaults = entry["config_default"] or {}  # None when a field has none (a URL, a token): "required"
        model_field = task_type.Config.model_fields[field]
        default = "required" if field not in defaults and model_field.is_required() else json.dumps(
            defaults[field] if field in defaults else TypeAdapter(Any).dump_python(
                model_field.get_default(call_default_factory=True), mode="json"),
            ensure_ascii=False).replace("|", "\\|")
        description = spec.get("description", "").replace("|", "\\|")
        lines.append(f"| `{field}` | {_type(spec, defs)} | `{default}` | {_bounds(spec)} | {description} |")
    return "\n".join(lines) + "\n"


def _anchor(heading: str) -> str:
    return "#" + re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def groups(text: str) -> str:
    """The group table: a row per category with types, their types in the order of their sections."""
    order = {name: text.find(f"\n### `{name}`") for name in BY_NAME}
    lines = ["| group | category | types |", "|---|---|---|"]
    for category, headings in CATEGORIES.items():
        names = sorted((n for n, t in BY_NAME.items() if t.category == category), key=lambda n: order[n])
        if names:
            titles = [headings[0], *(h[0].lower() + h[1:] for h in headings[1:])]
            group = ", ".join(f"[{title}]({_anchor(h)})" for title, h in zip(titles, headings, strict=True))
            lines.append(f"| {group} | `{category}` | {', '.join(f'[`{n}`](#{n})' for n in names)} |")
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + (groups(text) if m.group(2) == "groups" else generated(BY_NAME[m.group(2)]))
                     + m.group(4), text)


def test_every_type_has_a_section_with_an_up_to_date_block():
    text = DOC.read_text()
    documented = [m.group(2) for m in BLOCK.finditer(text) if m.group(2) != "groups"]
    assert sorted(documented) == sorted(BY_NAME), "one generated block per built-in type"
    for name in BY_NAME:
        assert re.search(rf"^### `{name}`", text, re.M), f"no section for {name}"
    assert render(text) == text, "generated blocks are stale: python tests/tasks/test_library_doc.py --write"


def test_every_type_stands_under_its_category():
    text = DOC.read_text()
    assert {t.category for t in BY_NAME.values()} <= set(CATEGORIES), "a category without a group: add it to CATEGORIES"
    section = ""
    placed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif (m := re.match(r"### `(\w+)`", line)) and m.group(1) in BY_NAME:
            placed[m.group(1)] = section
    assert {name: section for name, section in placed.items() if section not in CATEGORIES[BY_NAME[name].category]} \
        == {}
    table = BLOCK.search(text)
    assert table is not None and table.group(2) == "groups", "the group table comes first"
    for name, task_type in BY_NAME.items():  # and lists each type in its category's row
        row = next(line for line in table.group(3).splitlines() if f"[`{name}`]" in line)
        assert f"| `{task_type.category}` |" in row


def spec_blocks() -> list[str]:
    return [m.group(1) for m in YAML.finditer(DOC.read_text()) if re.search(r"^tasks:", m.group(1), re.M)]


@pytest.mark.parametrize("text", spec_blocks())
def test_spec_examples_check_against_the_catalog(text):
    spec = load_spec(text)
    # as on a Raspberry Pi with its devices: here the device types are unavailable, and would be refused
    catalog = {name: t.describe() | {"available": True} for name, t in BY_NAME.items()}
    assert check_against_catalog(spec, catalog) == []
    for task in spec.tasks:
        BY_NAME[task.type].validate_config(task.config)


def test_every_type_has_an_example():
    used = {task["type"] for text in spec_blocks() for task in yaml.safe_load(text)["tasks"]}
    assert set(BY_NAME) <= used


if __name__ == "__main__" and "--write" in sys.argv:
    DOC.write_text(render(DOC.read_text()))
