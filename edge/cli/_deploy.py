"""``edge deploy``, ``rm`` and ``rollback``: deployment specs in and out through the controller."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from edge.cli._output import _table
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.settings import Settings



async def _open_controller(settings: Settings, args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> Any:
    from edge.bus import Bus
    from edge.controller import Controller

    bus = await stack.enter_async_context(Bus.from_settings(settings, connect_timeout=args.timeout))
    return await stack.enter_async_context(Controller(settings, bus=bus, via="cli"))


def _load_spec_file(name: str, *, data: bool = False) -> Any:
    """The spec in a file (``data``: its parsed, unchecked data), or one line saying why it cannot be read."""
    from pathlib import Path

    from edge.graph import load_spec, load_spec_data

    try:
        return load_spec_data(Path(name)) if data else load_spec(Path(name))
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}", field="spec") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name} is not UTF-8 text (byte {exc.start}): a spec is YAML, JSON or CBOR "
                          "(.cbor)", field="spec") from None


def _placement(spec: Any) -> str:
    return _table(("TASK", "TYPE", "AGENT"), [(t.id, t.type, t.agent or "-") for t in spec.tasks])


async def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    data = _load_spec_file(args.spec, data=True)
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        report = await controller.validate(data, timeout=args.check_timeout)
        for line in report.lines():  # every problem at once, one line each (edge.validation)
            print(line, file=sys.stderr)
        if report.checked is None or not report.ok:
            print(f"edge: not deployed: {len(report.errors)} error(s)", file=sys.stderr)
            return 1
        result = await controller.deploy(report.checked, dry_run=args.dry_run, report=report)
    placed = result.spec
    verb = "would deploy" if args.dry_run else "deployed"
    print(f"{verb} {placed.id} version {placed.version}: {len(placed.tasks)} task(s), {len(placed.edges)} edge(s)")
    print(_placement(placed))
    return 0


async def cmd_rm(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        existed = await controller.remove(args.deployment)
    print(f"removed {args.deployment}" if existed else f"{args.deployment} was not deployed (cleared anyway)")
    return 0


async def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        if args.list:
            current = controller.fleet.deployments.get(args.deployment)
            for v in controller.history.versions(args.deployment):
                print(f"v{v}{'  (deployed)' if current is not None and current.version == v else ''}")
            return 0
        result = await controller.rollback(args.deployment, args.version)
    print(f"rolled {args.deployment} back: version {result.spec.version} is the content of an earlier version")
    print(_placement(result.spec))
    return 0
