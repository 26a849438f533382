"""What a resource can leave behind: TCP connections of this process, asyncio tasks, child processes.

The leak tests (tests/edge/test_leaks.py) take a :func:`snapshot` before a context manager fails
to enter and compare it with one taken after: anything new was left behind.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "connections_to", "left_behind", "snapshot"]

_ESTABLISHED = "01"
SETTLE = 3.0  # s a closed socket or a cancelled task may take to be gone


async def left_behind(before: Snapshot, port: int) -> list[str]:
    """What is still there since ``before``, once given up to SETTLE s to go away (nothing when clean)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while (left := snapshot(port).left_since(before)) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return left


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def connections_to(port: int) -> int:
    """Established TCP connections of this process whose remote end is ``port`` (on any address)."""
    ours = _socket_inodes()
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == _ESTABLISHED and inode in ours and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def _children() -> set[int]:
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            pids.update(int(p) for p in Path(f"/proc/self/task/{task}/children").read_text().split())
        except OSError:
            continue
    return pids


@dataclass(frozen=True)
class Snapshot:
    connections: int
    tasks: frozenset[asyncio.Task[object]]
    children: frozenset[int]

    def left_since(self, before: Snapshot) -> list[str]:
        """What this snapshot has that ``before`` had not (empty when nothing leaked)."""
        left = []
        if self.connections > before.connections:
            left.append(f"{self.connections - before.connections} connection(s) to the broker")
        left += [f"task {t.get_name()!r}" for t in self.tasks - before.tasks]
        left += [f"child process {pid}" for pid in sorted(self.children - before.children)]
        return left


def snapshot(port: int) -> Snapshot:
    """This process's connections to ``port``, its unfinished asyncio tasks (but the current one), its children."""
    current = asyncio.current_task()
    tasks = frozenset(t for t in asyncio.all_tasks() if t is not current and not t.done())
    return Snapshot(connections_to(port), tasks, frozenset(_children()))
