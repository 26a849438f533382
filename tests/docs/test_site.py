"""The docs are a small site: the index lists every page, the README leads to getting started,
and every relative link (and its #anchor) points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _docblocks import PAGES, ROOT

LINK = re.compile(r"\]\((?!https?://|mailto:)([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.S | re.M)


def links(page: Path) -> list[str]:
    return LINK.findall(FENCED.sub("", page.read_text()))


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.+)$", FENCED.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_index_lists_every_page():
    index = ROOT / "docs" / "index.md"
    listed = {(index.parent / link.split("#")[0]).resolve() for link in links(index)}
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md")} - {index.resolve()}
    assert sorted(p.name for p in pages - listed) == []


def test_the_readme_leads_to_getting_started():
    assert "docs/getting-started.md" in links(ROOT / "README.md")
    assert links(ROOT / "docs" / "index.md")[0] == "getting-started.md"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    broken = []
    for link in links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        missing_anchor = bool(anchor) and target.suffix == ".md" and target.exists() and anchor not in anchors(target)
        if not target.exists() or missing_anchor:
            broken.append(link)
    assert broken == []
