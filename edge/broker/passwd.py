"""Mosquitto password files: written by ``mosquitto_passwd`` where it is installed, else by us.

Both produce the format Mosquitto 2 reads, one ``user:$7$ITERATIONS$SALT$HASH`` line per
user, where ``$7$`` is PBKDF2-HMAC-SHA512 and salt and hash are standard base64 (checked
against ``mosquitto_passwd`` 2.0.11: 101 iterations, 12-byte salt, 64-byte hash).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from edge.errors import BrokerError

__all__ = ["find_mosquitto_passwd", "hash_password", "write_password_file"]

SEARCH_DIRS: Final = ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin", "/usr/sbin", "/usr/local/sbin",
                      "/opt/homebrew/sbin")
PBKDF2_ITERATIONS: Final = 101  # what mosquitto_passwd 2.0 writes; the file itself is private (0600)
_SALT_BYTES: Final = 12
_TOOL_TIMEOUT: Final = 10.0


def find_mosquitto_passwd(near: str | None = None) -> str | None:
    """``mosquitto_passwd`` next to the ``near`` executable, on PATH, or in the usual directories."""
    if near is not None:
        for sibling in (Path(near).parent, Path(near).parent.parent / "bin"):
            candidate = sibling / "mosquitto_passwd"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    return (shutil.which("mosquitto_passwd")
            or shutil.which("mosquitto_passwd", path=os.pathsep.join(SEARCH_DIRS)))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``$7$`` (PBKDF2-SHA512) hash of ``password`` as Mosquitto 2 stores it."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_password_file(path: Path, users: Mapping[str, str], *, tool: str | None) -> None:
    """(Re)write ``path`` with ``users`` (already validated), readable by its owner only.

    With ``tool`` (the path of ``mosquitto_passwd``) the hashes come from Mosquitto itself, so
    they are whatever the installed version prefers; without it we write the ``$7$`` format.
    """
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    if tool is None:
        lines = [f"{name}:{hash_password(password)}\n" for name, password in users.items()]
        path.write_text("".join(lines), encoding="utf-8")
        return
    for name, password in users.items():
        # -b takes the password on the command line (briefly visible in /proc to local users);
        # the file then holds only hashes.
        try:
            result = subprocess.run([tool, "-b", str(path), name, password], capture_output=True, text=True,
                                    timeout=_TOOL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerError(f"could not run {tool} to write {path}: {exc}") from exc
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise BrokerError(f"{tool} failed with code {result.returncode} writing {path}: {output}")
