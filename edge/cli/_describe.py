"""``edge describe TYPE``: a task type from the fleet's catalogs, its ports, config fields and agents."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import TYPE_CHECKING, Any

from edge.cli._deploy import _open_controller
from edge.cli._output import _table
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.controller import Fleet
    from edge.documents import Offer, TypeDescription
    from edge.settings import Settings



_SCHEMA_DEPTH = 4  # nested $ref / anyOf / items levels spelled out; deeper ones are "…"


def _schema_type(schema: object, defs: dict[str, Any], depth: int = 0) -> str:
    """A JSON Schema (as pydantic writes config schemas) in a few words: ``integer 1..60000``, ``one of a|b``."""
    if not isinstance(schema, dict):
        return "any"
    if depth > _SCHEMA_DEPTH:
        return "…"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return _schema_type(target, defs, depth + 1) if isinstance(target, dict) else ref.rsplit("/", 1)[-1]
    if isinstance(schema.get("enum"), list):
        return "one of " + "|".join(json.dumps(v, ensure_ascii=False, default=repr) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False, default=repr)
    for union in ("anyOf", "oneOf"):
        if isinstance(schema.get(union), list):
            return " or ".join(_schema_type(s, defs, depth + 1) for s in schema[union])
    kind = schema.get("type")
    text = "|".join(map(str, kind)) if isinstance(kind, list) else str(kind) if kind else "any"
    if kind == "array":
        text = f"list of {_schema_type(schema.get('items'), defs, depth + 1)}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"map of {_schema_type(schema['additionalProperties'], defs, depth + 1)}"
    return " ".join([text, *_bounds(schema)])


def _bounds(schema: dict[str, Any]) -> list[str]:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        bounds = [f"{low}..{high}"]
    else:
        bounds = [f">{xlow}"] if xlow is not None else [f">={low}"] if low is not None else []
        bounds += [f"<{xhigh}"] if xhigh is not None else [f"<={high}"] if high is not None else []
    for what, key in (("length", "Length"), ("items", "Items")):
        least, most = schema.get(f"min{key}"), schema.get(f"max{key}")
        if least is not None or most is not None:
            bounds.append(f"{what} {least or 0}.." + ("" if most is None else str(most)))
    if isinstance(schema.get("pattern"), str):
        bounds.append(f"matching {schema['pattern']}")
    return bounds


def _config_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    schema = entry.get("config_schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    defs: dict[str, Any] = schema["$defs"] if isinstance(schema.get("$defs"), dict) else {}
    required: list[Any] = schema["required"] if isinstance(schema.get("required"), list) else []
    rows = []
    for name, value in schema["properties"].items():
        prop: dict[str, Any] = value if isinstance(value, dict) else {}
        rows.append({"name": str(name), "type": _schema_type(prop, defs), "required": name in required,
                     "default": prop.get("default"), "has_default": "default" in prop,
                     "description": str(prop.get("description") or "")})
    return rows


def _metadata(meta: object) -> str:
    if not isinstance(meta, dict) or not meta:
        return "-"
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=repr)}" for k, v in meta.items())


def _offers(fleet: Fleet, type_name: str) -> list[Offer]:
    """Every agent whose catalog names the type, online or not, and whether it can run it."""
    from edge.documents import Offer

    offers = []
    for agent in sorted(fleet.agents.values(), key=lambda a: a.id):
        for entry in agent.types:
            if entry.get("name") == type_name:
                available = entry.get("available", True) is not False
                offers.append(Offer(agent=agent.id, online=agent.online, available=available,
                                    reason=None if available else str(entry.get("reason", "?"))))
                break
    return offers


def _unknown_type(name: str, fleet: Fleet, namespace: str) -> str:
    import difflib

    from edge.controller.catalogs import unknown_types_note

    known = fleet.types(online_only=False)
    note = unknown_types_note(fleet)
    if not known:
        if note is not None:
            return f"unknown task type {name!r}: {note}"
        return (f"unknown task type {name!r}: no agent in namespace {namespace!r} has published a catalog "
                "(edge ls agents)")
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if name:
        close += [t for t in sorted(known) if name.lower() in t.lower() and t not in close][: 3 - len(close)]
    hint = f"did you mean {', '.join(close)}?" if close else "edge ls types lists them"
    return f"unknown task type {name!r} ({hint})" + (f"; {note}" if note is not None else "")


def _describe_text(entry: dict[str, Any], config: list[dict[str, Any]], offers: list[Offer]) -> str:
    label = str(entry.get("label") or "")
    lines = [f"{entry['name']}" + (f" ({label})" if label and label != entry["name"] else "")]
    description = str(entry.get("description") or "").strip()
    if description:
        lines.append(description)
    for title, given in (("INPUT", entry.get("inputs")), ("OUTPUT", entry.get("outputs"))):
        ports: dict[str, Any] = given if isinstance(given, dict) else {}
        lines.append("")
        lines.append(_table((title, "METADATA"), [(port, _metadata(meta)) for port, meta in ports.items()],
                            wrap_last=True) if ports else f"{title}: none")
    from edge.ports import rules_of

    rules, _ = rules_of(entry)
    if rules:  # the ports above are the default config's
        lines += ["", "PORTS FROM THE CONFIG (above: those of the default config)",
                  *(f"  {rule.describe()}" for rule in rules)]
    lines.append("")
    if config:
        lines.append(_table(("CONFIG", "TYPE", "DEFAULT", "DESCRIPTION"), [
            (c["name"], c["type"], "(required)" if c["required"] and not c["has_default"]
             else json.dumps(c["default"], ensure_ascii=False, default=repr) if c["has_default"] else "-",
             c["description"]) for c in config], wrap_last=True))
    else:
        lines.append("CONFIG: none")
    lines.append("")
    lines.append(_table(("AGENT", "STATUS", "CAN RUN IT"), [
        (o.agent, "online" if o.online else "offline", "yes" if o.available else f"no: {o.reason}")
        for o in offers], wrap_last=True))
    return "\n".join(lines)


def _description(name: str, entry: dict[str, Any], config: list[dict[str, Any]],
                 offers: list[Offer]) -> TypeDescription:
    """The ``--json`` document (:class:`edge.documents.TypeDescription`): a field's ``default`` only
    where it has one, ``ports_from`` only for a type whose ports follow its config."""
    from edge.documents import ConfigField, TypeDescription

    fields = [ConfigField(name=c["name"], type=c["type"], required=c["required"], description=c["description"],
                          **({"default": c["default"]} if c["has_default"] else {})) for c in config]
    return TypeDescription(name=name, label=entry.get("label"), description=entry.get("description"),
                           inputs=entry.get("inputs") or {}, outputs=entry.get("outputs") or {},
                           **({"ports_from": entry["ports_from"]} if entry.get("ports_from") else {}),
                           config=fields, config_schema=entry.get("config_schema"), agents=offers)


async def cmd_describe(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        fleet = controller.fleet
        entry = fleet.types(online_only=False).get(args.type)
        if entry is None:
            raise ConfigError(_unknown_type(args.type, fleet, settings.namespace), field="type")
        offers = _offers(fleet, args.type)
    config = _config_rows(entry)
    if args.json:
        from edge.documents import to_json

        print(to_json(_description(args.type, entry, config, offers), indent=2, ensure_ascii=False))
    else:
        print(_describe_text(entry, config, offers))
    return 0
