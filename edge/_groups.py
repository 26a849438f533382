"""A task group's one failure reported as itself, not as an ExceptionGroup.

A task that runs its loops in an :class:`asyncio.TaskGroup` fails with an ``ExceptionGroup``
even when a single loop raised; the runtime shows a task's error by its type and message
("DeviceNotFoundError: …"), so that one error is re-raised as it is. Several errors stay a group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["leaves", "one_failure"]


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in ``group`` and its nested groups, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


@contextmanager
def one_failure() -> Iterator[None]:
    """``with one_failure(): async with TaskGroup() ...``: a group holding one ``Exception`` raises that."""
    try:
        yield
    except BaseExceptionGroup as group:
        found = leaves(group)
        if len(found) == 1 and isinstance(found[0], Exception):
            raise found[0] from None
        raise
