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

import asyncio
import functools
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from edge._fncall import FnTaskBase
from edge._fnsig import analyse
from edge.errors import ConfigError
from edge.topics import validate_id

__all__ = ["FnTask", "fn_task"]

P = ParamSpec("P")
R = TypeVar("R")


class FnTask(Generic[P, R]):
    """A function made a task type. Call it as the function; ``task_type`` is the generated Task class."""

    task_type: type[FnTaskBase]

    def __init__(self, fn: Callable[P, R], *, label: str | None = None, thread_safe: bool = False,
                 name: str | None = None, category: str | None = None, stateless: bool = False) -> None:
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
        if stateless:
            namespace["stateless"] = True
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
        from edge._fnrun import run_script  # argparse, the settings and the runtime: only a script needs them

        await run_script(self.task_type, url, sys.argv[1:] if argv is None else argv)

    def run_sync(self, url: str | None = None, *, argv: Sequence[str] | None = None) -> None:
        """:meth:`run` in a new event loop; Ctrl-C and SIGTERM stop it quietly and cleanly (the agent says it
        goes offline), a config error exits with its message."""
        from edge._signals import run_until_signal

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
            name: str | None = None, category: str | None = None,
            stateless: bool = False) -> Callable[[Callable[P, R]], FnTask[P, R]]: ...


def fn_task(fn: Callable[P, R] | None = None, /, *, label: str | None = None, thread_safe: bool = False,
            name: str | None = None, category: str | None = None, stateless: bool = False,
            ) -> FnTask[P, R] | Callable[[Callable[P, R]], FnTask[P, R]]:
    """Make ``fn`` a task type: ``@fn_task()``, ``@fn_task``, or ``@fn_task(label=..., thread_safe=True)``.

    ``name`` is the type name in catalogs and specs (default: the function's name), ``label`` its
    display name, ``category`` the group the panel lists it under, ``thread_safe`` runs a synchronous
    function in a worker thread (calls are still one at a time), ``stateless`` says each result
    depends on its call's arguments alone, so a spec may give the task replicas. Mistakes in the signature are a
    :class:`TypeError` here, at decoration.
    """
    def decorate(function: Callable[P, R]) -> FnTask[P, R]:
        return FnTask(function, label=label, thread_safe=thread_safe, name=name, category=category,
                      stateless=stateless)

    return decorate if fn is None else decorate(fn)
