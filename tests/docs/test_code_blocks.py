"""Every Python block in the README and docs/ runs: a block that defines ``main(url)`` is called
against a real broker (async or not), one that defines ``main()`` is called without one, any
other block is executed as it is."""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    found = []
    for path in FILES:
        for i, match in enumerate(BLOCK.finditer(path.read_text())):
            found.append((f"{path.relative_to(ROOT)}#{i + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
async def test_block_runs(where, code, broker):
    namespace: dict[str, object] = {"__name__": "docs_block"}
    exec(compile(code, where, "exec", dont_inherit=True), namespace)
    main = namespace.get("main")
    if callable(main):
        args = (str(broker.url),) if inspect.signature(main).parameters else ()  # main(): no broker needed
        if inspect.iscoroutinefunction(main):
            async with asyncio.timeout(20):
                await main(*args)
        else:
            await asyncio.wait_for(asyncio.to_thread(main, *args), 20)


def test_there_are_blocks_to_run():
    assert len(blocks()) >= 2


YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def spec_blocks() -> list[tuple[str, str]]:
    found = []
    for path in FILES:
        for i, match in enumerate(YAML_BLOCK.finditer(path.read_text())):
            if re.search(r"^tasks:", match.group(1), re.M):
                found.append((f"{path.relative_to(ROOT)}#yaml{i + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "text"), spec_blocks(), ids=[w for w, _ in spec_blocks()])
def test_spec_examples_are_valid_specs(where, text):
    from edge.graph import check_against_catalog, load_spec

    spec = load_spec(text)
    assert spec.tasks and spec.edges
    # and they fit the task types they name: ports that exist, configs the types take; a type
    # the page itself defines (an fn_task written there) is the only one allowed to be unknown
    page = (ROOT / where.split("#")[0]).read_text()
    problems = [p for p in check_against_catalog(spec, full_catalog())
                if not any(f"unknown task type '{name}'" in p and f"def {name}(" in page
                           for name in {t.type for t in spec.tasks})]
    assert problems == [], problems


@functools.cache
def full_catalog() -> dict[str, dict[str, object]]:
    from agent.registry import discover

    return {name: task_type.describe() for name, task_type in discover().types.items()}


def test_task_pages_are_up_to_date():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "task_pages.py"), "--check"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_task_page_examples_fit_the_catalog():
    from edge.graph import check_against_catalog, load_spec
    from tasks.builtin import TYPES
    from tasks.web import TYPES as WEB_TYPES  # the web entry point's pages are there too

    catalog = {t.type_name: t.describe() for t in (*TYPES, *WEB_TYPES)}
    for path in sorted((ROOT / "docs" / "tasks").glob("*.md")):
        for match in YAML_BLOCK.finditer(path.read_text()):
            assert check_against_catalog(load_spec(match.group(1)), catalog) == [], path.name
