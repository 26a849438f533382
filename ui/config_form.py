"""Config forms generated from a task type's JSON Schema (as pydantic writes it), with validation.

:func:`schema_fields` reads the schema into :class:`FieldSpec` s (``$ref`` to ``$defs``, optional
fields written as ``anyOf [..., null]``, enums and literals, arrays and maps edited as JSON);
:func:`check_value` checks one value against its field the way pydantic would refuse it
(type, required, enum, minimum/maximum and their exclusive forms, string and array lengths,
pattern), so the form shows a message beside the field before anything is deployed. The agent
validates the config again with the real model; what it says shows up in the task's status.
:class:`ConfigForm` is the NiceGUI form for one task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

__all__ = ["ConfigForm", "FieldSpec", "check_config", "check_value", "help_text", "schema_fields"]

Kind = Literal["integer", "number", "boolean", "string", "enum", "json"]
_MISSING: Any = object()


#: text fields edited as code: the schema's ``format`` and the editor's language
CODE_FORMATS: dict[str, Any] = {"python": "Python"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    title: str
    kind: Kind
    required: bool = False
    nullable: bool = False
    default: Any = _MISSING
    description: str = ""
    constraints: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[Any, ...] = ()
    #: the schema's ``format`` of a text field: ``python`` gets a code editor
    format: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def summary(self) -> str:
        """``number, > 0, default 2.0``: for the catalog page."""
        words = {"exclusiveMinimum": ">", "minimum": "≥", "exclusiveMaximum": "<", "maximum": "≤",
                 "minLength": "min length", "maxLength": "max length", "minItems": "min items",
                 "maxItems": "max items", "pattern": "pattern"}
        parts = [self.kind if self.kind != "enum" else "one of " + ", ".join(map(str, self.options))]
        parts += [f"{words[k]} {v}" for k, v in self.constraints.items() if k in words]
        if self.nullable:
            parts.append("optional")
        if self.required:
            parts.append("required")
        elif self.has_default:
            parts.append(f"default {json.dumps(self.default)}")
        return ", ".join(parts)


def _resolve(node: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(node, Mapping) and "$ref" in node and seen < 20:
        ref = str(node["$ref"])
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return dict(node) if isinstance(node, Mapping) else {}


def _field(name: str, prop: Mapping[str, Any], root: Mapping[str, Any], required: bool) -> FieldSpec:
    node = _resolve(prop, root)
    nullable = False
    for combo in ("anyOf", "oneOf"):
        if combo in node and isinstance(node[combo], list):
            members = [_resolve(m, root) for m in node[combo]]
            nullable = any(m.get("type") == "null" for m in members)
            rest = [m for m in members if m.get("type") != "null"]
            base = rest[0] if len(rest) == 1 else {}
            node = {**base, **{k: v for k, v in node.items() if k != combo}}
    kind: Kind
    options: tuple[Any, ...] = ()
    if "enum" in node:
        kind, options = "enum", tuple(node["enum"])
    elif "const" in node:
        kind, options = "enum", (node["const"],)
    else:
        kind = {"integer": "integer", "number": "number", "boolean": "boolean",
                "string": "string"}.get(str(node.get("type")), "json")  # type: ignore[assignment]
    keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
            "minItems", "maxItems")
    return FieldSpec(name=name, title=str(node.get("title") or prop.get("title") or name), kind=kind,
                     required=required, nullable=nullable,
                     default=prop["default"] if "default" in prop else node.get("default", _MISSING),
                     description=str(node.get("description") or prop.get("description") or ""),
                     constraints={k: node[k] for k in keys if k in node}, options=options,
                     format=str(node.get("format") or prop.get("format") or ""))


def schema_fields(schema: Mapping[str, Any] | None) -> list[FieldSpec]:
    """The fields of a config JSON Schema, in the schema's order."""
    if not isinstance(schema, Mapping):
        return []
    root = _resolve(schema, schema)
    props = root.get("properties", {})
    required = set(root.get("required", []) or [])
    if not isinstance(props, Mapping):
        return []
    return [_field(str(name), prop, schema, str(name) in required) for name, prop in props.items()
            if isinstance(prop, Mapping)]


def _type_ok(spec: FieldSpec, value: Any) -> str | None:
    if spec.kind == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return "must be a whole number"
    elif spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
    elif spec.kind == "boolean":
        if not isinstance(value, bool):
            return "must be true or false"
    elif spec.kind == "string":
        if not isinstance(value, str):
            return "must be text"
    elif spec.kind == "enum" and value not in spec.options:
        return "must be one of " + ", ".join(json.dumps(o) for o in spec.options)
    return None


def check_value(spec: FieldSpec, value: Any) -> str | None:
    """Why ``value`` is not valid for this field, or None."""
    if value is None:
        if spec.nullable:
            return None
        return "required" if spec.required or not spec.has_default else "may not be empty"
    problem = _type_ok(spec, value)
    if problem:
        return problem
    c = spec.constraints
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in c and value < c["minimum"]:
            return f"must be ≥ {c['minimum']}"
        if "exclusiveMinimum" in c and value <= c["exclusiveMinimum"]:
            return f"must be > {c['exclusiveMinimum']}"
        if "maximum" in c and value > c["maximum"]:
            return f"must be ≤ {c['maximum']}"
        if "exclusiveMaximum" in c and value >= c["exclusiveMaximum"]:
            return f"must be < {c['exclusiveMaximum']}"
    if isinstance(value, str):
        if "minLength" in c and len(value) < c["minLength"]:
            return f"must be at least {c['minLength']} characters"
        if "maxLength" in c and len(value) > c["maxLength"]:
            return f"must be at most {c['maxLength']} characters"
        if "pattern" in c and not re.search(str(c["pattern"]), value):
            return f"must match {c['pattern']}"
    if isinstance(value, list):
        if "minItems" in c and len(value) < c["minItems"]:
            return f"needs at least {c['minItems']} items"
        if "maxItems" in c and len(value) > c["maxItems"]:
            return f"takes at most {c['maxItems']} items"
    return None


def check_config(schema: Mapping[str, Any] | None, config: Mapping[str, Any]) -> dict[str, str]:
    """Field name -> problem, for a whole config (missing required fields, unknown fields included)."""
    fields = {f.name: f for f in schema_fields(schema)}
    problems: dict[str, str] = {}
    for name, spec in fields.items():
        if name in config:
            problem = check_value(spec, config[name])
            if problem:
                problems[name] = problem
        elif spec.required:
            problems[name] = "required"
    if isinstance(schema, Mapping) and schema.get("additionalProperties") is False:
        for name in config:
            if name not in fields:
                problems[name] = "is not a field of this config"
    return problems


def help_text(spec: FieldSpec) -> str:
    """``interval_ms · time between two numbers``: the name a spec uses, then the schema's description."""
    return " · ".join(filter(None, [spec.name, spec.description]))


def _shown(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "json":
        return "" if value is None or value is _MISSING else json.dumps(value)
    return None if value is _MISSING else value


class ConfigForm:
    """The form of one task's config: a field per schema property, each checked as it changes.

    ``on_change(config)`` gets the whole config (the fields that differ from their defaults)
    whenever every field is valid; :attr:`errors` holds the messages of the fields that are not.
    """

    def __init__(self, schema: Mapping[str, Any] | None, config: Mapping[str, Any], *,
                 on_change: Callable[[dict[str, Any]], None]) -> None:
        self.fields = schema_fields(schema)
        self._on_change = on_change
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._widgets: dict[str, ui.element] = {}
        self._problems: dict[str, ui.label] = {}  # the message under a field that shows none itself (code)
        if not self.fields:
            ui.label("This task type has no config.").classes("text-caption")
        for spec in self.fields:
            value = config.get(spec.name, spec.default)
            self.values[spec.name] = None if value is _MISSING else value
            self._widgets[spec.name] = self._widget(spec, value)
        for spec in self.fields:  # show what is wrong with the config as it is
            problem = check_value(spec, self.values[spec.name]) if spec.name in config or spec.required else None
            self._show(spec, problem)

    def _widget(self, spec: FieldSpec, value: Any) -> ui.element:
        label = spec.title + (" *" if spec.required else "")
        # NiceGUI shows the message its validation returns under the field; ours reads what _changed found
        message = partial(self._message, spec)
        widget: ui.element
        if spec.kind in ("integer", "number"):
            widget = ui.number(label, value=_shown(spec, value), step=1 if spec.kind == "integer" else None,
                               validation=message, on_change=lambda e, s=spec: self._changed(s, e.value))
        elif spec.kind == "boolean":
            widget = ui.switch(label, value=bool(_shown(spec, value)),
                               on_change=lambda e, s=spec: self._changed(s, e.value))
        elif spec.kind == "enum":
            options = {json.dumps(o): str(o) for o in spec.options}
            shown = _shown(spec, value)
            widget = ui.select(options, label=label, value=json.dumps(shown) if shown is not None else None,
                               validation=message,
                               on_change=lambda e, s=spec: self._changed(s, json.loads(e.value) if e.value else None))
        elif spec.kind == "string" and spec.format in CODE_FORMATS:
            ui.label(label).classes("text-caption text-grey-8")
            widget = ui.codemirror(_shown(spec, value) or "", language=CODE_FORMATS[spec.format],
                                   on_change=lambda e, s=spec: self._changed(s, e.value)).classes("min-h-[12rem]")
            self._problems[spec.name] = ui.label().classes("text-caption text-negative").mark(
                f"config-problem-{spec.name}")
        elif spec.kind == "string":
            widget = ui.input(label, value=_shown(spec, value) or "", validation=message,
                              on_change=lambda e, s=spec: self._changed(s, e.value if e.value != "" or not s.nullable
                                                                         else None))
        else:
            widget = ui.input(label + " (JSON)", value=_shown(spec, value), validation=message,
                              on_change=lambda e, s=spec: self._changed_json(s, e.value))
        widget.classes("w-full").mark(f"config-{spec.name}")
        # the field's real name (the key in a spec's config) and what the schema says it is for, under it
        # (a message about a wrong value takes its place until the value is right)
        if isinstance(widget, ValidationElement):
            widget.props["hint"] = help_text(spec)
        else:
            ui.label(help_text(spec)).classes("text-caption text-grey-7 -mt-2 mb-1 leading-tight").mark(
                f"config-help-{spec.name}")
        return widget

    def _message(self, spec: FieldSpec, _value: Any = None) -> str | None:
        problem = self.errors.get(spec.name)
        return f"{spec.title} {problem}" if problem else None

    def _changed_json(self, spec: FieldSpec, text: str) -> None:
        if not text.strip():
            self._changed(spec, None)
            return
        try:
            value = json.loads(text)
        except ValueError as exc:
            self._show(spec, f"not valid JSON: {exc.args[0]}")
            return
        self._changed(spec, value)

    def _changed(self, spec: FieldSpec, value: Any) -> None:
        if spec.kind == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        problem = check_value(spec, value)
        self._show(spec, problem)
        if problem is None:
            self.values[spec.name] = value
            if not self.errors:
                self._on_change(self.config())

    def _show(self, spec: FieldSpec, problem: str | None) -> None:
        if problem is None:
            self.errors.pop(spec.name, None)
        else:
            self.errors[spec.name] = problem
        widget = self._widgets.get(spec.name)
        if isinstance(widget, ValidationElement):
            widget.validate(return_result=False)
        elif (label := self._problems.get(spec.name)) is not None:
            label.set_text(self._message(spec) or "")

    def config(self) -> dict[str, Any]:
        """The config to put in the spec: the valid values that differ from the defaults."""
        result = {}
        for spec in self.fields:
            value = self.values.get(spec.name)
            differs = spec.required or not spec.has_default or value != spec.default
            if differs and (value is not None or spec.nullable):
                result[spec.name] = value
        return result
