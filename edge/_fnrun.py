"""An ``@fn_task`` script's command line and run: parse ``--in``/``--out``/``--config``/``--id``, load the
settings, and run the type wired to topics (``run_wired``) or as an agent offering it (``run_agent``).

Kept apart from the decorator (``edge.fntask``) so that ``from edge import fn_task`` loads neither
argparse nor the settings nor the runtime: only a script that runs needs them.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge._fncall import FnTaskBase
from edge.errors import EdgeError
from edge.settings import Settings, load_settings, sanitize_id
from edge.topics import validate_filter, validate_id, validate_topic

__all__ = ["run_script"]


async def run_script(task_type: type[FnTaskBase], url: str | None, argv: Sequence[str]) -> None:
    """Run ``task_type`` as the script's command line ``argv`` asks (see :meth:`edge.fntask.FnTask.run`)."""
    invocation = _parse_invocation(task_type, argv)
    broker = invocation.url or url
    settings = load_settings(broker=broker) if broker else load_settings()
    if not logging.getLogger().handlers:  # a script nobody configured logging for
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Imported here: only a script that runs needs the runtime.
    from edge.host import run_agent, run_wired

    type_name = task_type.type_name
    if invocation.wired:
        await run_wired(settings, task_type, config=invocation.config, sources=invocation.sources,
                        targets=invocation.targets, instance_id=invocation.id or type_name)
    else:
        await run_agent(settings, types=[task_type], agent_id=invocation.id or _default_agent_id(settings, type_name))



@dataclass
class _Invocation:
    """What a script's command line asks for."""

    url: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    targets: dict[str, list[str]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def wired(self) -> bool:
        return bool(self.sources or self.targets)


def _pair(text: str) -> tuple[str, str]:
    port, sep, topic = text.partition("=")
    if not sep or not port or not topic:
        raise argparse.ArgumentTypeError(f"{text!r} is not PORT=TOPIC")
    return port, topic


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the config must be a JSON object")
    return value


def _parser(task_type: type[FnTaskBase]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"Run the fn_task {task_type.type_name!r}. With --in/--out: one instance wired to those "
                    "topics, no controller needed. Without: an agent offering this task type, so a controller "
                    "can deploy instances of it here.")
    parser.add_argument("url", nargs="?", help="broker URL (default: EDGE_BROKER)")
    parser.add_argument("--broker", metavar="URL", help="broker URL, same as the positional argument")
    parser.add_argument("--in", dest="inputs", action="append", default=[], type=_pair, metavar="PORT=TOPIC",
                        help=f"feed input PORT from TOPIC (a filter is allowed); inputs: "
                             f"{', '.join(task_type.inputs) or 'none'}")
    parser.add_argument("--out", dest="outputs", action="append", default=[], type=_pair, metavar="PORT=TOPIC",
                        help=f"publish output PORT on TOPIC (repeat for several topics); outputs: "
                             f"{', '.join(task_type.outputs) or 'none'}")
    parser.add_argument("--config", type=_json_object, metavar="JSON", help="the instance config (with --in/--out)")
    parser.add_argument("--id", metavar="ID", help="instance id when wired (default: the type name), else agent id")
    return parser


def _parse_invocation(task_type: type[FnTaskBase], argv: Sequence[str]) -> _Invocation:
    """Parse a script's arguments; a usage error exits with status 2, as argparse does."""
    parser = _parser(task_type)
    args = parser.parse_args(list(argv))
    if args.url and args.broker and args.url != args.broker:
        parser.error(f"two broker URLs: {args.url} and --broker {args.broker}")
    invocation = _Invocation(url=args.url or args.broker, config=args.config or {}, id=args.id)
    try:
        for port, topic in args.inputs:
            if port not in task_type.inputs:
                parser.error(f"--in {port}: no input {port!r} (inputs: {', '.join(task_type.inputs) or 'none'})")
            if port in invocation.sources:
                parser.error(f"--in {port} is given twice: an input has one source")
            invocation.sources[port] = validate_filter(topic)
        for port, topic in args.outputs:
            if port not in task_type.outputs:
                parser.error(f"--out {port}: no output {port!r} (outputs: {', '.join(task_type.outputs) or 'none'})")
            invocation.targets.setdefault(port, []).append(validate_topic(topic))
        if args.id is not None:
            validate_id(args.id, "instance id" if invocation.wired else "agent id")
        if args.config is not None and not invocation.wired:
            parser.error("--config needs --in/--out: an agent gets its configs from deployments")
        task_type.validate_config(invocation.config)
    except EdgeError as exc:
        parser.error(str(exc))
    return invocation


def _default_agent_id(settings: Settings, type_name: str) -> str:
    """EDGE_AGENT_ID / NODE_NAME if set, else ``{host}-{type_name}`` (at most 64 characters)."""
    if "agent_id" in settings.model_fields_set:
        return settings.agent_id
    return f"{sanitize_id(socket.gethostname())}-{type_name}"[:64]
