"""Finding the shell commands and the files of the README and docs/ pages.

Parsing only: which fenced blocks are commands, how a block splits into commands, which
blocks are files a page's commands use. ``test_shell_blocks.py`` runs what this finds; its
docstring states the rules a page follows.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

COMMAND_FENCES = {"bash", "sh", "shell", "console"}
# a ```text (or bare ```) block whose first word is one of these is commands after all, and runs
PROGRAMS = {"edge", "python", "python3", "pip", "pip3", "bash", "sh", "sudo", "docker", "apt-get", "systemctl",
            "journalctl", "mosquitto", "curl"}

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.S | re.M)
FILE_MARK = re.compile(r"<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->\s*\Z")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    file_name: str | None  # set by a `<!-- file: NAME -->` line right before the fence

    @property
    def where(self) -> str:
        return f"{_name(self.page)}:{self.line}"

    @property
    def is_commands(self) -> bool:
        if self.file_name is not None:
            return False
        if self.lang in COMMAND_FENCES:
            return True
        first = next((line.split()[0] for line in self.body.splitlines() if line.strip()), "")
        return self.lang in ("text", "") and first in PROGRAMS


@dataclass(frozen=True)
class Command:
    where: str  # page:line of the command itself
    text: str  # as written, continuation lines joined, comments kept
    argv: list[str] = field(default_factory=list)  # without the leading VAR=value assignments
    env: dict[str, str] = field(default_factory=dict)  # those assignments

    @property
    def is_assignment(self) -> bool:
        """``S='...'`` alone: a shell variable for the commands after it in the block."""
        return not self.argv and bool(self.env)

    @property
    def program(self) -> tuple[str, ...]:
        """``("edge", "tail")``, ``("python", "adder.py")``: what a later run of the same replaces."""
        argv = self.argv
        if argv[:1] == ["edge"]:
            return ("edge", *[a for a in argv[1:] if not a.startswith("-")][:1])
        return tuple(argv[:2])


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        mark = FILE_MARK.search(text[: match.start()])
        found.append(Block(page=page, line=text.count("\n", 0, match.start()) + 1, lang=match["lang"],
                           body=textwrap.dedent(match["body"]), file_name=mark["name"] if mark else None))
    return found


def commands(block: Block) -> list[Command]:
    """The block's commands in order: `\\` continuations and multi-line quotes joined, `&&` split,
    comments dropped; in a ```console block only the lines after a `$ ` prompt."""
    lines = block.body.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    found: list[Command] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=block.line + 1):
        if not pending:
            start = number
        pending.append(line)
        text = "\n".join(pending)
        if text.endswith("\\"):
            continue
        text = text.replace("\\\n", " ")
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        pending = []
        if not tokens:
            continue
        where = f"{_name(block.page)}:{start}"
        for part, part_tokens in _split_and(text, tokens):
            env = {}
            while part_tokens and ASSIGNMENT.match(part_tokens[0]):
                name, _, value = part_tokens.pop(0).partition("=")
                env[name] = value
            found.append(Command(where=where, text=part, argv=part_tokens, env=env))
    assert not pending, f"{block.where}: unterminated command {pending!r}"
    return found


def _split_and(text: str, tokens: list[str]) -> list[tuple[str, list[str]]]:
    if "&&" not in tokens:
        return [(text, tokens)]
    parts, current = [], []
    for token in tokens:
        if token == "&&":
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    return [(shlex.join(p), p) for p in parts]


def page_commands(page: Path) -> list[Command]:
    return [c for b in blocks(page) if b.is_commands for c in commands(b)]


def page_files(page: Path) -> dict[str, str]:
    return {b.file_name: b.body for b in blocks(page) if b.file_name is not None}
