"""How the CLI prints: one-line texts with control characters escaped, and tables."""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass



_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """``text`` with control characters escaped: what agents and devices publish must not drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _one_line(text: str) -> str:
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], *, wrap_last: bool = False) -> str:
    """Columns padded to their widest cell. ``wrap_last``: on a terminal, the last column (an error, a
    description) wraps within the terminal's width under itself; in a pipe it stays whole on its row."""
    cells = [[str(c) for c in header], *[[_printable(_one_line(str(c))) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    room = 0
    if wrap_last and sys.stdout.isatty():
        room = shutil.get_terminal_size().columns - sum(w + 2 for w in widths[:-1])
    for row in cells:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False))
        last = row[-1]
        if room >= 20 and len(last) > room:
            wrapped = textwrap.wrap(last, room, break_long_words=True, break_on_hyphens=False) or [""]
            indent = " " * (len(head) + 2 if head else 0)
            lines.append(f"{head}  {wrapped[0]}" if head else wrapped[0])
            lines += [indent + part for part in wrapped[1:]]
        else:
            lines.append(f"{head}  {last}".rstrip() if head else last)
    return "\n".join(lines)


def _number(value: object) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
