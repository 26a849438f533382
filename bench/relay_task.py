"""The relay of ``bench/relay.py`` and ``bench/chain.py`` as an ``@fn_task``, written as a user would.

An agent loads it with ``edge agent --tasks bench/relay_task.py``; run as a script it is the same
task wired straight to topics::

    python bench/relay_task.py mqtt://127.0.0.1:1883 --in value=bench/in --out out=bench/out

The frame's value is ``{"n": int, "pad": bytes}``: the relay adds 1 to ``n`` and passes the
padding on (it makes the 64 B and 1 KiB frames), the same work every contender does.
"""

from __future__ import annotations

from typing import Any

from edge import fn_task


@fn_task
def add1(value: dict[str, Any]) -> dict[str, Any]:
    """Add 1 to the value's counter ``n``; the rest of the value passes through."""
    value["n"] += 1
    return value


if __name__ == "__main__":
    add1.run_sync()
