"""The one exception tree of edgetasks.

Every error the library raises on purpose derives from :class:`EdgeError`; where the
meaning matches a stdlib exception, the class subclasses that too, so ``except ValueError``
keeps working for callers that do not know about us::

    EdgeError
    ├── ConfigError (ValueError)          a setting or an argument is invalid
    ├── IdError (ValueError)              an agent/deployment/task/port id is not [A-Za-z0-9_-]{1,64}
    ├── TopicError (ValueError)           a topic or topic filter is not valid MQTT
    ├── FrameError (ValueError)           bytes are not a valid frame (malformed, oversize, wrong shape)
    ├── SpecError (ValueError)            a deployment spec is invalid; ``errors`` lists every problem
    ├── TaskError                         a task instance cannot go on (a limit hit, its worker died): it fails
    ├── BrokerError                       a broker could not be started or reached
    │   └── BrokerUnavailableError        the chosen broker is not installed (says what to install)
    └── BusError                          the MQTT connection failed
        ├── ConnectError (ConnectionError)  the broker refused or the connection could not be made
        └── NotConnectedError (ConnectionError)  an operation needs a live connection
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BrokerUnavailableError",
    "BusError",
    "ConfigError",
    "ConnectError",
    "EdgeError",
    "FrameError",
    "IdError",
    "NotConnectedError",
    "SpecError",
    "TaskError",
    "TopicError",
]


class EdgeError(Exception):
    """Root of every error edgetasks raises on purpose."""


class ConfigError(EdgeError, ValueError):
    """A setting or argument is invalid; ``field`` names it (``EDGE_NAMESPACE``, ``--qos``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IdError(EdgeError, ValueError):
    """An id (agent, deployment, task, port, namespace) is not ``[A-Za-z0-9_-]{1,64}``."""

    def __init__(self, message: str, *, kind: str, value: object) -> None:
        super().__init__(message)
        self.kind = kind
        self.value = value


class TopicError(EdgeError, ValueError):
    """A topic name or filter is not valid MQTT, or not in our namespace."""

    def __init__(self, message: str, *, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


class FrameError(EdgeError, ValueError):
    """Bytes that are not a valid frame: malformed CBOR, oversize, or the wrong shape."""


class SpecError(EdgeError, ValueError):
    """A deployment spec is invalid; ``errors`` holds one precise message per problem."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        self.errors = errors or [message]
        super().__init__(message + ":\n  " + "\n  ".join(errors) if errors else message)


class BrokerError(EdgeError):
    """A broker could not be started, stopped or reached."""


class BrokerUnavailableError(BrokerError):
    """The chosen broker is not installed here; the message says what to install."""


class BusError(EdgeError):
    """The MQTT connection failed."""


class ConnectError(BusError, ConnectionError):
    """The broker refused the connection (``reason`` holds its reason) or it could not be made."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class TaskError(EdgeError):
    """A task instance cannot go on (a limit hit, its worker process died): the instance fails, shows
    this as its error, and restarts with backoff; the agent and its other tasks are not touched."""


class NotConnectedError(BusError, ConnectionError):
    """An operation needs a live connection to the broker and there is none."""
