"""Mermaid diagrams in the docs (```mermaid blocks, drawn by GitHub) are checked for the mistakes
that make a page show an error box or a wrong picture: an unknown diagram type, unbalanced
quotes or brackets, a statement we do not recognise, and an edge or message naming a node or
participant that is never declared with its label (a typo would silently draw a stray box)."""

from __future__ import annotations

import re

import pytest
from _docblocks import PAGES, ROOT, blocks

FLOW_HEAD = re.compile(r"(flowchart|graph) (TB|TD|BT|RL|LR)")
QUOTED = re.compile(r'"[^"\n]*"')
SHAPE = re.compile(r"^(\w+)\s*(\[\(|\(\[|\(\(|\[\[|\{\{|\[|\(|\{)")
ARROW = re.compile(r"\s*(?:<-->|<==>|-->|---|==>|===|-\.->|-\.-|--[ox])\s*(?:\|[^|]*\|)?\s*")
FLOW_SKIP = re.compile(r"^(end|direction \w+|classDef .*|class .*|style .*|linkStyle .*|%%.*)$")
PARTICIPANT = re.compile(r"^(participant|actor) (\w+)( as .+)?$")
MESSAGE = re.compile(r"^(\w+)\s*(?:-->>|->>|-->|->|--x|-x|--\)|-\))\s*(\w+)\s*:.+$")
NOTE = re.compile(r"^Note (?:over|left of|right of) (\w+)(?:\s*,\s*(\w+))?\s*:.+$")
SEQ_SKIP = re.compile(r"^(autonumber|end|(loop|alt|else|opt|par|and|rect|critical|break)( .*)?|"
                      r"(activate|deactivate) \w+|%%.*)$")


def diagrams() -> list[tuple[str, str]]:
    return [(b.where, b.body) for page in PAGES for b in blocks(page) if b.lang == "mermaid"]


def check_flowchart(lines: list[str]) -> list[str]:
    problems, declared, used = [], set(), set()
    for line in lines:
        bare = QUOTED.sub('""', line)
        if bare.count('"') % 2:
            problems.append(f"unbalanced quote: {line}")
            continue
        for opening, closing in ("[]", "()", "{}"):
            if bare.count(opening) != bare.count(closing):
                problems.append(f"unbalanced {opening}{closing}: {line}")
        if FLOW_SKIP.match(bare):
            continue
        if match := re.match(r"^subgraph (\w+)", bare):
            declared.add(match[1])
            continue
        for part in ARROW.split(bare):
            node = re.match(r"^\w+", part)
            if node is None:
                problems.append(f"not a node: {part!r} in {line}")
                continue
            used.add(node[0])
            if SHAPE.match(part):
                declared.add(node[0])
    problems += [f"node {n!r} is used but never declared with a label" for n in sorted(used - declared)]
    problems += [f"{n!r} is a reserved word" for n in sorted(declared & {"end", "graph", "subgraph"})]
    return problems


def check_sequence(lines: list[str]) -> list[str]:
    problems, declared = [], set()
    for line in lines:
        if ";" in line:
            problems.append(f"';' ends a statement in a sequence diagram: {line}")
        if match := PARTICIPANT.match(line):
            declared.add(match[2])
        elif match := MESSAGE.match(line) or NOTE.match(line):
            problems += [f"{name!r} is not a declared participant: {line}"
                         for name in match.groups() if name is not None and name not in declared]
        elif not SEQ_SKIP.match(line):
            problems.append(f"not a statement we know: {line}")
    return problems


@pytest.mark.parametrize(("where", "body"), diagrams(), ids=[w for w, _ in diagrams()])
def test_mermaid_diagram_is_sound(where, body):
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    head, rest = lines[0], lines[1:]
    if FLOW_HEAD.fullmatch(head):
        problems = check_flowchart(rest)
    elif head == "sequenceDiagram":
        problems = check_sequence(rest)
    else:
        problems = [f"unknown or unchecked diagram type {head!r}"]
    assert problems == [], where


def test_architecture_page_has_its_diagrams():
    assert len([w for w, _ in diagrams() if w.startswith("docs/architecture.md")]) >= 3


def test_checks_catch_typos():
    assert check_flowchart(['a["A"] --> b["B"]', "a --> c"]) == [
        "node 'c' is used but never declared with a label"]
    assert check_flowchart(['a["A" --> b']) != []
    assert check_sequence(["participant A as agent", "A->>B: hello"]) == [
        "'B' is not a declared participant: A->>B: hello"]
    assert ROOT.is_dir()
