"""The CPU-bound stateless task of ``bench/replicas.py``, an ``@fn_task`` as a user would write it.

Each frame's value ``{"n": int}`` comes back as ``{"n": n, "digest": hex}``, the digest after
:data:`ROUNDS` SHA-256 hashes chained from ``n``: work that depends on the frame alone, so the type
says ``stateless=True`` and a spec may give it replicas. An agent loads it with
``edge agent --tasks bench/replica_task.py``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from edge import fn_task

#: hashes per frame: about 12 ms of one core on the 2-core machine of docs/benchmarks.md, so what a frame
#: costs the framework, the broker and the load generator (well under 1 ms) bounds little of it
ROUNDS = 40_000


@fn_task(stateless=True)
def burn(value: dict[str, Any]) -> dict[str, Any]:
    """Hash the frame's ``n`` :data:`ROUNDS` times (CPU only, no I/O); the digest comes back with ``n``."""
    digest = str(value["n"]).encode()
    for _ in range(ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return {"n": value["n"], "digest": digest.hex()}
