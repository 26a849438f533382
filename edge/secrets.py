"""Secrets in task configs: held by the agent, referred to by name in specs.

A spec is retained on the broker, readable by every controller and (with the ACLs of
``edge acl``) by the agents that run it: it must not carry passwords or stream keys. So a
config value may be a **secret reference**, ``{"$secret": "rtmp_key"}`` (or the string
``"$secret:rtmp_key"``), and the agent that runs the task replaces it with the value from its own
secrets file (``EDGE_SECRETS_FILE``, default ``{data_dir}/secrets.yaml``: ``name: value`` lines,
readable by the agent's user only). Only the agent's memory and the task ever hold the value;
statuses and logs show the reference.

Specs are checked too: a config field whose name says it holds a secret (password, pwd, secret,
token, api_key, secret_key, aws_secret_access_key, stream_key, authorization, …) with a plain value (text, a
number, a list of them) is refused, and so is a URL with a password in it (``user:pw@host``) in
any field, so a secret cannot be published in clear by mistake.
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from edge.errors import ConfigError

__all__ = ["SECRET_KEY", "Secrets", "cleartext_secrets", "is_reference"]

log = logging.getLogger("edge.secrets")

SECRET_KEY = "$secret"
_PREFIX = "$secret:"
# A field name that ends like a secret's: password, db_pwd, secret_key, aws_secret_access_key, api_tokens,
# an HTTP Authorization header...
_SECRET_NAME = re.compile(r"(?i)(pass(word|wd|phrase)?|pwd|secret|token|credential|authorization|"
                          r"(api|stream|private|secret|access|auth|signing|encryption)[_-]?key)s?$")
# user:password@ in a URL (mqtt://user:hunter2@host, https://u:p@h/...): a secret in clear in any field
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]*:[^/?#@\s]+@")
_ADVICE = f"put it in the agent's secrets file and write {{\"{SECRET_KEY}\": \"NAME\"}} here"


def _reference(value: Any) -> str | None:
    if isinstance(value, Mapping) and set(value) == {SECRET_KEY}:
        name = value[SECRET_KEY]
        return name if isinstance(name, str) else None
    if isinstance(value, str) and value.startswith(_PREFIX):
        return value[len(_PREFIX):]
    return None


def is_reference(value: Any) -> bool:
    return _reference(value) is not None


def _plain(value: Any) -> bool:
    """A value that would be a secret in clear under a secret's name: text, a number, or a list of them."""
    if isinstance(value, bool) or value is None or is_reference(value):
        return False
    if isinstance(value, str):
        return bool(value)
    if isinstance(value, int | float):
        return True
    if isinstance(value, list | tuple):
        return any(_plain(item) for item in value)
    return False


def cleartext_secrets(config: Any, path: str = "config") -> list[str]:
    """Config fields that look like secrets but hold plain text (refused in specs): a field named
    like a secret (``password``, ``pwd``, ``secret_key``, ``aws_secret_access_key``, ``tokens``...)
    holding text, a number or a list of them, and any URL with a password in it (``user:pw@host``)."""
    found: list[str] = []
    if is_reference(config):
        return found
    if isinstance(config, Mapping):
        for key, value in config.items():
            where = f"{path}.{key}"
            if isinstance(key, str) and _SECRET_NAME.search(key) and _plain(value):
                found.append(f"{where} holds a secret in clear: {_ADVICE}")
            else:
                found += cleartext_secrets(value, where)
    elif isinstance(config, list | tuple):
        for i, value in enumerate(config):
            found += cleartext_secrets(value, f"{path}[{i}]")
    elif isinstance(config, str) and _URL_PASSWORD.match(config):
        found.append(f"{path} holds a password in clear inside a URL (user:PASSWORD@host): write the whole URL "
                     f"in the agent's secrets file and {{\"{SECRET_KEY}\": \"NAME\"}} here")
    return found


class Secrets:
    """An agent's secrets, read from its file when needed (so edits apply at the next task start)."""

    def __init__(self, path: Path, *, agent_id: str = "") -> None:
        self.path = path
        self.agent_id = agent_id

    def _load(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s is readable by other users: chmod 600 it", self.path)
        try:
            data = yaml.safe_load(self.path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the secrets file {self.path}: {exc}", field="EDGE_SECRETS_FILE") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the secrets file {self.path} must map names to values", field="EDGE_SECRETS_FILE")
        return {str(k): str(v) for k, v in data.items()}

    def resolve(self, config: Any) -> Any:
        """``config`` with every secret reference replaced by its value; ConfigError for unknown names."""
        if not _contains_reference(config):
            return config
        values = self._load()

        def walk(value: Any) -> Any:
            name = _reference(value)
            if name is not None:
                if name not in values:
                    where = f" on agent {self.agent_id}" if self.agent_id else ""
                    raise ConfigError(f"unknown secret {name!r}{where}: define it in {self.path}", field="config")
                return values[name]
            if isinstance(value, Mapping):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        return walk(config)


def _contains_reference(value: Any) -> bool:
    if is_reference(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_reference(v) for v in value)
    return False
