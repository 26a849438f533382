"""The one folder where tasks may read and write files: the agent's files folder.

A spec comes from the broker, so a file path in a task's config is untrusted input: a spec must
not make an agent overwrite its own ``secrets.yaml`` or read ``/etc/shadow``. Every task that
reads or writes files (``input_container``, ``output_container``, ``replay_buffer``, and third-party
types that do the same) takes its paths through this module:

* in its ``Config``, a field validator calls :func:`check_file_path`, so the agent's
  :meth:`edge.task.Task.check` (run before an instance starts and to answer the controller's
  validation requests) refuses a path outside the folder and the task is ``invalid``;
* at run time it opens :meth:`edge.task.Task.file_path`, which checks again (a symlink may have
  been made since) and returns the resolved path.

The rule: relative paths are relative to the folder (``EDGE_FILES_DIR``, default
``{data_dir}/files``); absolute ones must lie inside it; a path is resolved (``..`` and symlinks
followed) before it is checked, so neither can lead out. Where no folder is known (a task
validated outside an agent), the rule is lexical: a relative path that does not climb out with
``..``. The folder in force is a context variable that the agent sets around validation
(:func:`files_folder`); the task's runtime passes it in :attr:`edge.task.TaskContext.files_dir`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from edge.errors import ConfigError

__all__ = ["check_file_path", "current_files_folder", "files_folder", "resolve_file"]

_FOLDER: ContextVar[Path | None] = ContextVar("edge_files_folder", default=None)
_HINT = "use a path inside the agent's files folder (EDGE_FILES_DIR)"


@contextmanager
def files_folder(folder: Path | None) -> Iterator[None]:
    """Validate file paths against ``folder`` inside the block (None: the lexical rule only)."""
    token = _FOLDER.set(folder)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def current_files_folder() -> Path | None:
    """The folder set by :func:`files_folder` around this validation, or None."""
    return _FOLDER.get()


def _inside(path: str, root: str) -> bool:
    return path.startswith(root.rstrip(os.sep) + os.sep)


def check_file_path(value: str, *, folder: Path | None = None) -> str:
    """``value`` if it names a file inside the files folder; ValueError (a config error) saying why not.

    ``folder`` defaults to the one set by :func:`files_folder`; without one the rule is lexical.
    """
    if "\0" in value:
        raise ValueError("a path cannot contain NUL")
    if not value.strip():
        raise ValueError("an empty path names no file")
    folder = folder if folder is not None else _FOLDER.get()
    if folder is None:
        if os.path.isabs(value):
            raise ValueError(f"{value!r} is an absolute path: write it relative to the agent's files folder "
                             "(EDGE_FILES_DIR)")
        normal = os.path.normpath(value)
        if normal == os.pardir or normal.startswith(os.pardir + os.sep):
            raise ValueError(f"{value!r} leads out of the agent's files folder through '..': {_HINT}")
        return value
    root = os.path.realpath(folder)
    resolved = os.path.realpath(os.path.join(root, value))
    if not _inside(resolved, root):
        how = "through a symlink" if _inside(os.path.normpath(os.path.join(root, value)), root) else ""
        raise ValueError(f"{value!r} is outside this agent's files folder {folder}{' ' + how if how else ''}: "
                         f"{_HINT}")
    return value


def resolve_file(value: str, *, folder: Path) -> Path:
    """The resolved path of ``value`` inside ``folder``, checked now; :class:`ConfigError` if it is outside."""
    try:
        check_file_path(value, folder=folder)
    except ValueError as exc:
        raise ConfigError(str(exc), field="config") from None
    return Path(os.path.realpath(os.path.join(os.path.realpath(folder), value)))
