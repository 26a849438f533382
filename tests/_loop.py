"""Run an async context manager for a whole test session, in a thread with its own event loop.

Tests get a fresh event loop each (``asyncio_default_test_loop_scope = "function"``), so a
session-scoped broker cannot live in theirs. :class:`BackgroundContext` enters the context
manager in a dedicated thread, hands back what ``__aenter__`` returned, and on exit asks the
thread's loop to leave the block, then joins the thread, both with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundContext(Generic[T]):
    """``with BackgroundContext(lambda: Broker(...)) as b:`` runs ``async with Broker(...)`` in a thread."""

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[T]], *, name: str,
                 timeout: float = 30.0) -> None:
        self._factory = factory
        self._timeout = timeout
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> T:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"{self._thread.name}: not started within {self._timeout:g} s")
        if self._error is not None:
            self._thread.join(self._timeout)
            raise self._error
        assert self._value is not None
        return self._value

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self._thread.name}: did not stop within {self._timeout:g} s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the test thread, raised there
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._factory() as value:
            self._value = value
            self._ready.set()
            await self._stop.wait()
