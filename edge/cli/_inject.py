"""``edge inject DEPLOYMENT/TASK.PORT VALUE``: one frame into an input of a running task (``Controller.inject``)."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import TYPE_CHECKING

from edge.cli._deploy import _open_controller
from edge.cli._pubsub import _parse_value
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.settings import Settings


def _input(reference: str) -> tuple[str, str, str]:
    dep, slash, rest = reference.partition("/")
    task, dot, port = rest.partition(".")
    if not (slash and dot and dep and task and port):
        raise ConfigError(f"{reference!r} is not DEPLOYMENT/TASK.PORT (an input: demo/double.in)", field="input")
    return dep, task, port


async def cmd_inject(args: argparse.Namespace, settings: Settings) -> int:
    dep, task, port = _input(args.input)
    value = args.value if args.text else _parse_value(args.value)
    async with contextlib.AsyncExitStack() as stack:
        controller = await _open_controller(settings, args, stack)
        await controller.inject(dep, task, port, value)
    print(f"injected {json.dumps(value, ensure_ascii=False)[:80]} into {dep}/{task}.{port}")
    return 0
