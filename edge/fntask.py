"""``@fn_task``: a plain function becomes a task type, runnable as a script.

::

    from edge import fn_task

    @fn_task()
    def adder(a: int, b: int) -> int:
        return a + b

    if __name__ == "__main__":
        adder.run_sync()

The parameters are the inputs, the return annotation the outputs (``out``, or ``out0``,
``out1``, … for a tuple), and ``timestamp``, ``config`` and ``state`` are special. The
decorator returns an :class:`FnTask`: still callable as the function, with the generated
:class:`~edge.task.Task` subclass in ``.task_type`` and ``run()``/``run_sync()`` for scripts.
How ports, types and configs are derived lives in ``_fnsig``/``_fnconvert``, when the function
runs in ``_fncall``; the full guide is the "fn_task" section of ``docs/tasks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import socket
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from edge._fncall import FnTaskBase
from edge._fnsig import analyse
from edge._signals import run_until_signal
from edge.errors import ConfigError, EdgeError
from edge.settings import Settings, load_settings, sanitize_id
from edge.topics import validate_filter, validate_id, validate_topic

__all__ = ["FnTask", "fn_task"]

P = ParamSpec("P")
R = TypeVar("R")


class FnTask(Generic[P, R]):
    """A function made a task type. Call it as the function; ``task_type`` is the generated Task class."""

    task_type: type[FnTaskBase]

    def __init__(self, fn: Callable[P, R], *, label: str | None = None, thread_safe: bool = False,
                 name: str | None = None, category: str | None = None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        type_name = validate_id(name if name is not None else getattr(fn, "__name__", ""), "task type")
        signature = analyse(fn, name=type_name, thread_safe=thread_safe)
        namespace: dict[str, Any] = {
            "signature": signature,
            "type_name": type_name,
            "inputs": {spec.name: spec.port for spec in signature.inputs},
            "outputs": {spec.name: spec.port for spec in signature.outputs},
            "Config": signature.Config,
            "__doc__": fn.__doc__,
            "__module__": getattr(fn, "__module__", __name__),
        }
        if label:
            namespace["label"] = label
        if category:
            namespace["category"] = category
        class_name = signature.Config.__name__.removesuffix("Config") + "Task"
        self.task_type = types.new_class(class_name, (FnTaskBase,), exec_body=lambda ns: ns.update(namespace))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<FnTask {self.task_type.type_name} inputs={list(self.task_type.inputs)} " \
               f"outputs={list(self.task_type.outputs)}>"

    async def run(self, url: str | None = None, *, argv: Sequence[str] | None = None) -> None:
        """Run as a script: wired directly with ``--in``/``--out``, else as an agent offering this type.

        ``argv`` defaults to ``sys.argv[1:]``; a broker URL on the command line wins over ``url``,
        which wins over the settings (``EDGE_BROKER``). ``python adder.py --help`` lists the options.
        """
        invocation = _parse_invocation(self.task_type, sys.argv[1:] if argv is None else argv)
        broker = invocation.url or url
        settings = load_settings(broker=broker) if broker else load_settings()
        if not logging.getLogger().handlers:  # a script nobody configured logging for
            logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # Imported here: only scripts need the runtime, and it imports `edge` (for __version__) itself.
        from edge.host import run_agent, run_wired

        type_name = self.task_type.type_name
        if invocation.wired:
            await run_wired(settings, self.task_type, config=invocation.config, sources=invocation.sources,
                                 targets=invocation.targets, instance_id=invocation.id or type_name)
        else:
            await run_agent(settings, types=[self.task_type],
                                 agent_id=invocation.id or _default_agent_id(settings, type_name))

    def run_sync(self, url: str | None = None, *, argv: Sequence[str] | None = None) -> None:
        """:meth:`run` in a new event loop; Ctrl-C and SIGTERM stop it quietly and cleanly (the agent says it
        goes offline), a config error exits with its message."""
        try:
            asyncio.run(run_until_signal(self.run(url, argv=argv)))  # SIGTERM stops it as Ctrl-C does
        except KeyboardInterrupt:
            pass
        except ConfigError as exc:
            sys.exit(f"error: {exc}")


@overload
def fn_task(fn: Callable[P, R], /) -> FnTask[P, R]: ...


@overload
def fn_task(*, label: str | None = None, thread_safe: bool = False,
            name: str | None = None, category: str | None = None) -> Callable[[Callable[P, R]], FnTask[P, R]]: ...


def fn_task(fn: Callable[P, R] | None = None, /, *, label: str | None = None, thread_safe: bool = False,
            name: str | None = None, category: str | None = None,
            ) -> FnTask[P, R] | Callable[[Callable[P, R]], FnTask[P, R]]:
    """Make ``fn`` a task type: ``@fn_task()``, ``@fn_task``, or ``@fn_task(label=..., thread_safe=True)``.

    ``name`` is the type name in catalogs and specs (default: the function's name), ``label`` its
    display name, ``category`` the group the panel lists it under, ``thread_safe`` runs a synchronous
    function in a worker thread (calls are still one at a time). Mistakes in the signature are a
    :class:`TypeError` here, at decoration.
    """
    def decorate(function: Callable[P, R]) -> FnTask[P, R]:
        return FnTask(function, label=label, thread_safe=thread_safe, name=name, category=category)

    return decorate if fn is None else decorate(fn)


# -- the command line of an fn_task script ---------------------------------------------------


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
