"""``edge catalogs``: the shared catalog documents on the broker, and ``prune`` to clear those no agent names."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from edge.cli._deploy import _open_controller
from edge.cli._output import _table
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.settings import Settings


async def cmd_catalogs(args: argparse.Namespace, settings: Settings) -> int:
    from edge.controller.catalogs import documents, prune
    from edge.documents import CatalogList, CatalogRow, PruneLine, PruneList, to_json

    if args.dry_run and args.action != "prune":
        raise ConfigError("--dry-run goes with prune: edge catalogs prune --dry-run", field="--dry-run")
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        if args.action == "list":
            listed = documents(controller.fleet)
            if args.json:
                print(to_json(CatalogList(namespace=settings.namespace, catalogs=[
                    CatalogRow(hash=d.hash, bytes=d.size, agents=d.agents, online=d.online, state=d.state,
                               problem=d.problem) for d in listed]), indent=2))
                return 0
            if not listed:
                print(f"no shared catalogs in namespace {settings.namespace!r}", file=sys.stderr)
                return 0
            print(_table(("CATALOG", "BYTES", "AGENTS", "ONLINE", "STATE"),
                         [(d.hash, "-" if d.size is None else f"{d.size:,}", d.agents, d.online, d.problem or d.state)
                          for d in listed], wrap_last=True))
            return 0
        report = await prune(controller.fleet, dry_run=args.dry_run, wait=args.timeout)
    if args.json:
        print(to_json(PruneList(namespace=settings.namespace, dry_run=args.dry_run, blocked=report.blocked,
                                catalogs=[PruneLine(hash=d.hash, bytes=d.size, outcome=d.outcome, why=d.why)
                                          for d in report.documents]), indent=2))
        return 1 if report.blocked is not None else 0
    if report.blocked is not None:
        print(f"edge: nothing cleared: {report.blocked}", file=sys.stderr)
        return 1
    for pruned in report.documents:
        print(pruned.line())
    if not report.documents:
        print(f"no shared catalogs in namespace {settings.namespace!r}", file=sys.stderr)
    return 0
