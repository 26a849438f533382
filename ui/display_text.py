"""What a dashboard text display shows: the newest text where the eye is, not below the fold.

The ``text_display`` task appends each text to the ones before (``separator`` between them,
the last ``max_length`` characters kept), so the newest text is at the end of its view. In a
box that scrolls, the end was out of sight. When the separator holds a line break (the default)
the texts are shown one per line, **newest on top**; with another separator (``, `` to build a
sentence) the text keeps its order and the box scrolls to its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nicegui import ui

__all__ = ["newest_first", "show_newest"]

DEFAULT_SEPARATOR = "\n"


def newest_first(text: str, config: Mapping[str, Any]) -> tuple[str, bool]:
    """The text to show and whether it is newest-first (else the newest is at its end)."""
    separator = config.get("separator", DEFAULT_SEPARATOR)
    if not isinstance(separator, str):
        separator = DEFAULT_SEPARATOR
    if config.get("append", True) is False or "\n" not in separator:
        return text, False
    return "\n".join(reversed(text.split(separator))), True


def show_newest(box: ui.label, text: str, config: Mapping[str, Any]) -> None:
    shown, reordered = newest_first(text, config)
    if box.text == shown:
        return
    box.text = shown
    if not reordered:  # the newest is at the end: bring it into view
        ui.run_javascript(f"setTimeout(() => {{ const e = getHtmlElement({box.id}); "
                          f"if (e) e.scrollTop = e.scrollHeight; }}, 50);")
