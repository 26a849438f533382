"""A broker someone else runs (``EDGE_BROKER=mqtt://host:port``): nothing to start, only a reachability check.

Entering :class:`ExternalBroker` polls until ``host:port`` accepts a TCP connection, so an
agent that boots before the broker (or the network) waits for it, up to ``timeout``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from edge.broker.base import check_timeout
from edge.broker.ports import wait_for_port
from edge.errors import BrokerError, ConfigError
from edge.settings import BrokerURL

__all__ = ["ExternalBroker"]


class ExternalBroker:
    """A running broker at ``url``; entering checks it accepts TCP connections within ``timeout`` s."""

    def __init__(self, url: BrokerURL, *, timeout: float = 5.0) -> None:
        if not isinstance(url, BrokerURL):
            raise ConfigError(f"url: expected a BrokerURL (edge.settings.parse_broker_url), got {url!r}",
                              field="url")
        self._url = url
        self.timeout = check_timeout(timeout, "timeout")

    @property
    def name(self) -> str:
        return "external"

    @property
    def url(self) -> BrokerURL:
        return self._url

    @property
    def port(self) -> int:
        return self._url.port

    def __repr__(self) -> str:
        return f"<ExternalBroker {self._url}>"

    async def __aenter__(self) -> Self:
        try:
            await wait_for_port(self._url.host, self._url.port, timeout=self.timeout)
        except TimeoutError:
            # str(url) leaves the credentials out.
            raise BrokerError(
                f"no broker reachable at {self._url}: nothing accepted a TCP connection on "
                f"{self._url.host}:{self._url.port} within {self.timeout:g} s"
            ) from None
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None
