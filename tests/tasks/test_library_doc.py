"""docs/task-library.md stays true to the code.

Each task's section holds a block generated from its catalog entry (ports with their metadata,
config fields from the JSON Schema) between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; this test fails when a block differs from what the code says now.
Regenerate them with ``python tests/tasks/test_library_doc.py --write``. Every ``yaml`` spec
in the page must also pass the catalog check against the built-in types, with valid configs.
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

try:
    from tasks.web import TYPES as WEB_TYPES
except ModuleNotFoundError:  # no httpx: the web entry point's types are not offered, nor checked here
    WEB_TYPES = []

DOC = Path(__file__).parents[2] / "docs" / "task-library.md"
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)
YAML = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
BY_NAME = {t.type_name: t for t in (*TYPES, *WEB_TYPES)}


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


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + generated(BY_NAME[m.group(2)]) + m.group(4), text)


def test_every_type_has_a_section_with_an_up_to_date_block():
    text = DOC.read_text()
    documented = [m.group(2) for m in BLOCK.finditer(text)]
    assert sorted(documented) == sorted(BY_NAME), "one generated block per built-in type"
    for name in BY_NAME:
        assert re.search(rf"^### `{name}`", text, re.M), f"no section for {name}"
    assert render(text) == text, "generated blocks are stale: python tests/tasks/test_library_doc.py --write"


def spec_blocks() -> list[str]:
    return [m.group(1) for m in YAML.finditer(DOC.read_text()) if re.search(r"^tasks:", m.group(1), re.M)]


@pytest.mark.parametrize("text", spec_blocks())
def test_spec_examples_check_against_the_catalog(text):
    spec = load_spec(text)
    catalog = {t.type_name: t.describe() for t in BY_NAME.values()}
    assert check_against_catalog(spec, catalog) == []
    for task in spec.tasks:
        BY_NAME[task.type].validate_config(task.config)


def test_every_type_has_an_example():
    used = {task["type"] for text in spec_blocks() for task in yaml.safe_load(text)["tasks"]}
    assert set(BY_NAME) <= used


if __name__ == "__main__" and "--write" in sys.argv:
    DOC.write_text(render(DOC.read_text()))
