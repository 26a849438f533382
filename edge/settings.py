"""Settings: one object read from ``EDGE_*`` environment variables and an optional ``.env``.

Everything configurable lives here and is passed down from the entry point; nothing deeper
reads ``os.environ``. ``DATA_DIR`` and ``NODE_NAME`` are honoured as in streamtasks (the
``EDGE_`` names win when both are set). :func:`load_settings` turns pydantic's validation
errors into one :class:`~edge.errors.ConfigError` that names each bad variable.
"""

from __future__ import annotations

import re
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge._inbox import QUEUE_BYTES, QUEUE_FRAMES, WAIT_STALL
from edge.errors import ConfigError, TopicError
from edge.topics import is_valid_id, validate_hass_prefix, validate_id

__all__ = ["BrokerKind", "BrokerURL", "Settings", "load_settings", "parse_broker_url", "sanitize_id"]

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
_SCHEMES = {"mqtt": (1883, False, "tcp"), "mqtts": (8883, True, "tcp"), "ws": (80, False, "websockets"),
            "wss": (443, True, "websockets")}


class BrokerKind(StrEnum):
    AUTO = "auto"
    EMBEDDED = "embedded"
    MOSQUITTO = "mosquitto"
    URL = "url"


class BrokerURL:
    """A parsed broker address: ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://``.

    ``v5_port`` is a hint for brokers that serve MQTT 5 on a port of its own (the embedded
    broker does): the MQTT 5 transport connects there, MQTT 3.1.1 clients to ``port``. It is
    written ``mqtt://host:1883?v5=1884`` (:meth:`geturl`); ``str()`` leaves it out.
    """

    __slots__ = ("host", "password", "path", "port", "scheme", "username", "v5_port")

    def __init__(self, *, scheme: str, host: str, port: int, username: str | None = None,
                 password: str | None = None, path: str = "/mqtt", v5_port: int | None = None) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.path = path
        self.v5_port = v5_port

    @property
    def tls(self) -> bool:
        return _SCHEMES[self.scheme][1]

    @property
    def transport(self) -> Literal["tcp", "websockets"]:
        return "websockets" if _SCHEMES[self.scheme][2] == "websockets" else "tcp"

    def __str__(self) -> str:
        """The URL without credentials (safe to log)."""
        path = self.path if self.transport == "websockets" else ""
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def geturl(self) -> str:
        """The URL as :func:`parse_broker_url` reads it back, MQTT 5 port hint included, credentials not."""
        return f"{self}?v5={self.v5_port}" if self.v5_port is not None else str(self)

    def __repr__(self) -> str:
        return f"BrokerURL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        # the v5 hint is left out: it names another door of the same broker
        return isinstance(other, BrokerURL) and (str(self), self.username) == (str(other), other.username)

    def __hash__(self) -> int:
        return hash(str(self))


def _v5_hint(query: str, url: str, field: str) -> int | None:
    """The port of ``?v5=PORT`` (the broker's MQTT 5 listener), the one query a broker URL may have."""
    if not query:
        return None
    key, _, value = query.partition("=")
    if key != "v5" or not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{field}: {url!r}: the only query a broker URL takes is ?v5=PORT "
                          "(the port of the broker's MQTT 5 listener)", field=field)
    return int(value)


def parse_broker_url(url: str, *, field: str = "EDGE_BROKER") -> BrokerURL:
    """Parse ``mqtt[s]://[user[:password]@]host[:port][?v5=PORT]`` or ``ws[s]://host[:port]/path``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{field}: {url!r} is not a valid URL ({exc})", field=field) from None
    if parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"{field}: unsupported scheme {parts.scheme!r} in {url!r}; use embedded, mosquitto, "
            "or a URL starting with mqtt://, mqtts://, ws:// or wss://",
            field=field,
        )
    if not parts.hostname:
        raise ConfigError(f"{field}: {url!r} has no host name", field=field)
    v5_port = _v5_hint(parts.query, url, field)
    if v5_port is not None and _SCHEMES[parts.scheme][2] != "tcp":
        raise ConfigError(f"{field}: {url!r}: ?v5=PORT applies to mqtt:// and mqtts:// only", field=field)
    return BrokerURL(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or _SCHEMES[parts.scheme][0],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        path=parts.path or "/mqtt",
        v5_port=v5_port,
    )


def sanitize_id(value: str, fallback: str = "agent") -> str:
    """Turn a host name into a valid id: other characters become ``-``, at most 64 long."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", value.split(".", maxsplit=1)[0]).strip("-")[:64]
    return cleaned if is_valid_id(cleaned) else fallback


def _default_agent_id() -> str:
    return sanitize_id(socket.gethostname())


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("edgetasks", appauthor=False))


_SECRET_FILES = ("password", "controller_password")  # fields that may come from a file (``EDGE_X_FILE``)


class Settings(BaseSettings):
    """Every setting of edgetasks; each field is read from ``EDGE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="EDGE_", env_file=".env", extra="ignore", validate_default=True, frozen=True,
        populate_by_name=True,
    )

    broker: str = Field(
        default="auto",
        description="auto (Mosquitto if installed, else embedded), embedded, mosquitto, or a broker URL",
    )
    broker_host: str = Field(default="127.0.0.1", description="address a managed broker binds to")
    broker_port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="port of a managed broker")
    broker_anonymous: bool = Field(
        default=False, description="let a managed broker bound beyond loopback accept clients without credentials "
        "(refused otherwise)",
    )
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(
        default=None, description="a file holding EDGE_PASSWORD (a container secret)",
    )
    tls_ca: Path | None = Field(default=None, description="CA certificate file for mqtts:// and wss://")
    tls_cert: Path | None = Field(default=None, description="client certificate file")
    tls_key: Path | None = Field(default=None, description="client private key file")
    tls_insecure: bool = Field(default=False, description="skip the server host name check")
    namespace: str = Field(default="default", description="topic namespace: edge/v1/{namespace}/...")
    agent_id: str = Field(
        default_factory=_default_agent_id,
        validation_alias=AliasChoices("EDGE_AGENT_ID", "NODE_NAME", "agent_id"),
        description="this agent's id (default: the host name, sanitised)",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        validation_alias=AliasChoices("EDGE_DATA_DIR", "DATA_DIR", "data_dir"),
        description="where specs, versions and broker persistence are kept",
    )
    controller_host: str = Field(default="127.0.0.1", description="address the control panel binds to")
    controller_port: int = Field(default=8080, ge=1, le=65535)
    controller_password: SecretStr | None = Field(
        default=None, description="password of the control panel's login; required when it binds beyond loopback",
    )
    controller_password_file: Path | None = Field(
        default=None, description="a file holding EDGE_CONTROLLER_PASSWORD (a container secret such as "
        "/run/secrets/panel_password)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    transport: Literal["auto", "mqtt5", "paho"] = Field(
        default="auto", description="MQTT client: auto (MQTT 5 where the broker speaks it, else paho), mqtt5, paho",
    )
    mqtt_version: Literal["3.1.1", "5"] | None = Field(
        default=None, description="force an MQTT version (3.1.1 means paho); unset: the transport's own",
    )
    keepalive: int = Field(default=15, ge=2, le=65535, description="MQTT keep-alive in seconds")
    max_payload: int = Field(
        default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024 - 1,
        description="largest frame accepted or sent, in bytes",
    )
    queue_size: int = Field(default=QUEUE_FRAMES, ge=1, description="most messages a subscription queues, and "
                            "most frames a task input queues (a ceiling for the per-message overhead)")
    queue_bytes: int = Field(default=QUEUE_BYTES, ge=1024, description="most bytes of frames a task input queues; "
                             "a burst of small frames fits, a few video frames do")
    queue_age: float | None = Field(default=None, gt=0, description="seconds after which a frame queued on a task "
                                    "input is stale and dropped; unset or 0: never")
    offline_buffer: int = Field(default=1000, ge=1, description="QoS 1 messages kept per topic while the broker "
                                "is unreachable")
    queue_stall: float = Field(default=WAIT_STALL, gt=0, description="seconds a task input that waits (overflow "
                               "\"wait\") may hold messages without its task taking one before it is stuck and "
                               "drops the oldest instead")
    local_streams: bool = Field(default=True, description="hand frames between tasks of this agent over in-process "
                                "(no encoding, no broker) when no other agent reads them, and publish them only "
                                "while someone watches (edge.local); off: every frame through the broker")
    receive_maximum: int = Field(default=64, ge=1, le=65535, description="QoS 1 messages the broker may send "
                                 "before we acknowledge them (MQTT 5 receive maximum): the window held messages "
                                 "of inputs that wait take slots of")
    session_expiry: int = Field(default=86400, ge=0, le=0xFFFFFFFF,
                                description="s the broker keeps an agent's session (its subscriptions and the "
                                "QoS 1 frames they take) while the agent is away; MQTT 5")
    tasks: str = Field(default="", description="comma-separated modules or .py files with more task types")
    secrets_file: Path | None = Field(default=None, description="this agent's secrets (YAML name: value); "
                                      "default {data_dir}/secrets.yaml")
    allow_code: bool = Field(default=False, description="run `python` tasks: code sent in deployment specs, in a "
                             "child process with limits (docs/security.md); off: the type is unavailable")
    files_dir: Path | None = Field(default=None, description="the only folder tasks may read and write files "
                                   "in; default {data_dir}/files")
    w1_root: Path = Field(default=Path("/sys/bus/w1/devices"), description="the Linux 1-Wire devices folder "
                          "one_wire_temperature reads (tests point it at a fake tree)")
    allow_exec: bool = Field(default=False, description="let exec tasks run commands on this agent (off: the "
                             "exec type is listed as unavailable)")
    webhook_port: int | None = Field(default=None, ge=1, le=65535, description="port of the agent's webhook "
                                     "server for webhook_in tasks; unset: webhook_in is unavailable")
    webhook_host: str = Field(default="127.0.0.1", description="address the webhook server binds to")
    hass_discovery: bool = Field(default=False, description="announce this agent (its health) and its dashboard "
                                 "tasks with home_assistant set to Home Assistant by MQTT discovery (a second "
                                 "connection, whose will marks them unavailable)")
    hass_prefix: str = Field(default="homeassistant", description="Home Assistant's MQTT discovery prefix")
    shared_catalog: bool = Field(default=False, description="publish the task types once under "
                                 "{root}/catalogs/{hash}, shared by every agent with the same ones, and only that "
                                 "hash in the agent's catalog (controllers of revision 2 and later read it)")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """``EDGE_X_FILE`` names a file holding ``EDGE_X`` (Docker and Kubernetes secrets); ``EDGE_X`` wins."""
        if not isinstance(data, dict):
            return data
        for name in _SECRET_FILES:
            path = data.get(f"{name}_file")
            if path in (None, "") or data.get(name) not in (None, ""):
                continue
            try:
                secret = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"EDGE_{name.upper()}_FILE: cannot read {path}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
            if not secret:
                raise ValueError(f"EDGE_{name.upper()}_FILE: {path} is empty")
            data = {**data, name: secret}
        return data

    @field_validator("queue_age", mode="before")
    @classmethod
    def _no_age(cls, value: Any) -> Any:
        """Empty or 0: frames never go stale."""
        if value is None or (isinstance(value, str) and value.strip() in ("", "0")):
            return None
        return None if isinstance(value, int | float) and not isinstance(value, bool) and value == 0 else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return validate_id(value, "namespace")

    @field_validator("hass_prefix")
    @classmethod
    def _hass_prefix(cls, value: str) -> str:
        try:
            return validate_hass_prefix(value.strip())
        except TopicError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, value: str) -> str:
        return validate_id(value, "agent id")

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in {k.value for k in BrokerKind if k is not BrokerKind.URL}:
            return value.lower()
        parse_broker_url(value)
        return value

    @property
    def secrets_path(self) -> Path:
        return self.secrets_file or self.data_dir / "secrets.yaml"

    @property
    def files_path(self) -> Path:
        """The folder this agent's tasks may read and write files in (``EDGE_FILES_DIR``)."""
        return (self.files_dir or self.data_dir / "files").absolute()

    @property
    def task_sources(self) -> list[str]:
        """``EDGE_TASKS`` as a list."""
        return [part.strip() for part in self.tasks.split(",") if part.strip()]

    @property
    def broker_kind(self) -> BrokerKind:
        try:
            return BrokerKind(self.broker)
        except ValueError:
            return BrokerKind.URL

    @property
    def broker_url(self) -> BrokerURL:
        """Where clients connect: the URL given, or the managed broker on ``broker_host:broker_port``."""
        if self.broker_kind is BrokerKind.URL:
            url = parse_broker_url(self.broker)
        else:
            host = "127.0.0.1" if self.broker_host in ("0.0.0.0", "", "::") else self.broker_host
            url = BrokerURL(scheme="mqtt", host=host, port=self.broker_port)
        if self.username is not None and url.username is None:
            url.username = self.username
            url.password = self.password.get_secret_value() if self.password else None
        return url


def _variable(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    if name.isupper():
        return name
    return f"EDGE_{name.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; raise one :class:`ConfigError` listing every invalid variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        fields = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a check across fields names its variable in its message
                fields.append(msg.split(":", 1)[0])
                lines.append(msg)
                continue
            var = _variable(err["loc"])
            fields.append(var)
            given = err.get("input")
            shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
            lines.append(f"{var}: {msg}{shown}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines), field=fields[0] if fields else None) from None
