"""Ports that follow the config: rules a task type declares, evaluated alike by agents and the controller.

A task type's ports may depend on its config: a calculator has one input per variable of its
formula, a switch as many input pairs as its config's ``inputs`` says. The type declares how, as
:class:`PortRule` values in ``Task.ports_from``; its catalog entry carries them (``ports_from``), so
the controller, ``edge deploy`` and the panel's editor compute an instance's ports from its config
without running the type's code, and the editor redraws them as the user types. The kinds:

``count``
    the field holds a number *n* (or a list: *n* is its length): ports ``name.format(k)`` for
    *k* = 0 … *n*-1 (``in0``, ``in1``, …);
``names``
    the field holds a list of names (or a map: its keys): a port each;
``variables``
    the field holds an expression: a port for each name in it that is not called as a function
    (``sin(``), not part of a number (``1e5``) and not in ``exclude`` (constants);
``fields``
    the field holds a ``str.format`` template: a port for each ``{name}`` field.

A side (inputs or outputs) with rules has the type's declared ports that its rules do not make
from the fields' defaults (fixed ports, like radio buttons' ``index``), then the rules' ports in
order. The declared ports are the ports of the default config: a type's catalog entry lists them
as its ``inputs`` and ``outputs``. A name that is not a valid port id is no port (the config's own
checks report it); each side has at most :data:`MAX_PORTS` ports from rules.

What rules cannot express (a type that overrides ``Task.ports``, output metadata that depends on
the config, like a video encoder's codec) an agent computes with the type's code when it answers
a validation request (:mod:`edge.validation`): the answer carries each task's ports.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Final, TypeVar

from edge.errors import ConfigError
from edge.topics import is_valid_id

__all__ = ["KINDS", "MAX_PORTS", "SIDES", "PortRule", "catalog_ports", "expand", "rules_of"]

KINDS: Final = ("count", "names", "variables", "fields")
SIDES: Final = ("inputs", "outputs")
#: most ports the rules of one side make (a count of a million stays 64 ports)
MAX_PORTS: Final = 64
#: most rules of one type, most names it excludes, longest text a rule reads (hostile catalogs stay bounded)
MAX_RULES: Final = 16
MAX_EXCLUDE: Final = 256
MAX_SOURCE: Final = 100_000

# the calculator's tokens (tasks/formula.py): a number first, so the exponent of 1e5 is no name
_TOKEN: Final = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|([A-Za-z_][A-Za-z0-9_]*)(\s*\()?")

T = TypeVar("T")


@dataclass(frozen=True)
class PortRule:
    """Ports of ``side`` made from config field ``field`` by ``kind`` (see the module's docstring).

    ``name`` is the port name template of ``count`` (``"in{}"``), ``label`` a label template for the
    ports (``"input {}"``), ``metadata`` their IO metadata. ``default`` is the field's default value
    (``Task`` fills it in from the config model).
    """

    side: str
    field: str
    kind: str
    name: str = "{}"
    label: str = "{}"
    metadata: Mapping[str, Any] = _field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    default: Any = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ConfigError(f"a port rule's side is one of {', '.join(SIDES)}, not {self.side!r}", field="side")
        if self.kind not in KINDS:
            raise ConfigError(f"a port rule's kind is one of {', '.join(KINDS)}, not {self.kind!r}", field="kind")
        if not is_valid_id(self.field):
            raise ConfigError(f"a port rule's field must be a config field name, not {self.field!r}", field="field")
        for what, template in (("name", self.name), ("label", self.label)):
            if not isinstance(template, str) or template.count("{}") != 1 or len(template) > 200 \
                    or "{" in template.replace("{}", "") or "}" in template.replace("{}", ""):
                raise ConfigError(f"a port rule's {what} holds '{{}}' once, not {template!r}", field=what)
        if len(self.exclude) > MAX_EXCLUDE or not all(isinstance(x, str) for x in self.exclude):
            raise ConfigError(f"a port rule's exclude is a list of at most {MAX_EXCLUDE} names", field="exclude")

    def names(self, config: Mapping[str, Any]) -> list[str]:
        """The port names this rule makes from ``config`` (its field's default where it is absent)."""
        value = config.get(self.field, self.default) if isinstance(config, Mapping) else self.default
        if self.kind == "count":
            count = len(value) if isinstance(value, list | tuple) else value
            if not isinstance(count, int) or isinstance(count, bool):
                return []
            found: Iterable[str] = (self.name.format(k) for k in range(max(0, min(count, MAX_PORTS))))
        elif self.kind == "names":
            found = [n for n in value if isinstance(n, str)] if isinstance(value, list | tuple | Mapping) else []
        elif self.kind == "variables":
            found = _variables(value) if isinstance(value, str) and len(value) <= MAX_SOURCE else []
        else:
            found = _fields(value) if isinstance(value, str) and len(value) <= MAX_SOURCE else []
        excluded = set(self.exclude)
        names: list[str] = []
        for name in found:
            if is_valid_id(name) and name not in excluded and name not in names:
                names.append(name)
                if len(names) == MAX_PORTS:
                    break
        return names

    def describe(self) -> str:
        """One line for docs and the panel: ``inputs in<k>, k from 0 below config.inputs``."""
        kind = self.side[:-1]
        if self.kind == "count":
            if isinstance(self.default, list | tuple):
                return f"an {kind} `{self.name.format('<k>')}` for each item of `{self.field}` (k from 0)"
            return f"{self.side} `{self.name.format('<k>')}`, k from 0 below `{self.field}`"
        if self.kind == "names":
            return f"an {kind} for each name in `{self.field}`"
        if self.kind == "variables":
            return f"an {kind} for each variable of `{self.field}`"
        return f"an {kind} for each `{{field}}` of `{self.field}`"

    def to_dict(self) -> dict[str, Any]:
        """The rule as the catalog publishes it."""
        return {"side": self.side, "field": self.field, "kind": self.kind, "name": self.name, "label": self.label,
                "metadata": dict(self.metadata), "exclude": list(self.exclude), "default": self.default}

    @classmethod
    def from_dict(cls, data: Any) -> PortRule:
        """A rule from a catalog entry; :class:`ConfigError` if it is malformed."""
        if not isinstance(data, Mapping):
            raise ConfigError("a port rule is a map", field="ports_from")
        metadata, exclude = data.get("metadata", {}), data.get("exclude", [])
        if not isinstance(metadata, Mapping) or not isinstance(exclude, list):
            raise ConfigError("a port rule's metadata is a map and its exclude a list", field="ports_from")
        return cls(side=data.get("side"), field=data.get("field"), kind=data.get("kind"),  # type: ignore[arg-type]
                   name=data.get("name", "{}"), label=data.get("label", "{}"), metadata=dict(metadata),
                   exclude=tuple(exclude), default=data.get("default"))


def _variables(text: str) -> list[str]:
    return [m.group(1) for m in _TOKEN.finditer(text) if m.group(1) and not m.group(2)]


def _fields(text: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name]
    except ValueError:
        return []


def expand(declared: Mapping[str, T], rules: Iterable[PortRule], config: Mapping[str, Any],
           make: Callable[[PortRule, str], T]) -> dict[str, T]:
    """One side's ports: ``declared`` (the ports of the default config) if ``rules`` is empty, else
    the declared ports the rules do not make from their defaults, then the rules' ports for ``config``."""
    rules = list(rules)
    if not rules:
        return dict(declared)
    defaults = {name for rule in rules for name in rule.names({})}
    ports = {name: port for name, port in declared.items() if name not in defaults}
    for rule in rules:
        for name in rule.names(config):
            ports.setdefault(name, make(rule, name))
    return ports


def rules_of(entry: Mapping[str, Any]) -> tuple[list[PortRule], list[str]]:
    """The port rules of a catalog entry, and a line for each malformed one (which is left out)."""
    raw = entry.get("ports_from")
    if raw is None:
        return [], []
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        return [], [f"type {entry.get('name', '?')!r}: ports_from is not a list of at most {MAX_RULES} rules"]
    rules: list[PortRule] = []
    problems: list[str] = []
    for item in raw:
        try:
            rules.append(PortRule.from_dict(item))
        except ConfigError as exc:
            problems.append(f"type {entry.get('name', '?')!r}: a port rule is left out: {exc}")
    return rules, problems


def catalog_ports(entry: Mapping[str, Any], config: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(inputs, outputs)`` with their IO metadata of an instance of the type of catalog ``entry``
    configured with ``config``, by the entry's rules (the declared ports where it has none)."""
    rules, _ = rules_of(entry)
    config = config if isinstance(config, Mapping) else {}
    sides = []
    for side in SIDES:
        declared = entry.get(side)
        declared = {k: dict(v) if isinstance(v, Mapping) else {} for k, v in declared.items()} \
            if isinstance(declared, Mapping) else {}
        sides.append(expand(declared, (r for r in rules if r.side == side), config,
                            lambda rule, _name: dict(rule.metadata)))
    return sides[0], sides[1]
