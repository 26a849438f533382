"""The MQTT bus every component uses: one connection, reconnecting, with bounded subscriptions.

The transport behind it (MQTT 5 with the ``mqtt5`` codec where the broker speaks it, else
paho-mqtt on the asyncio loop) is an internal detail chosen by the ``transport`` argument;
the API here stays the same whichever it is. :class:`Bus` and :class:`TLSOptions` are imported
on first use: a task module needs :class:`Message` and :class:`Subscription`, not the transports.
"""

from typing import TYPE_CHECKING, Any

from edge.bus._message import BusStats, Message, Overflow, Will
from edge.bus._subscription import Subscription

if TYPE_CHECKING:
    from edge.bus._bus import Bus
    from edge.bus._transport import TLSOptions

__all__ = ["Bus", "BusStats", "Message", "Overflow", "Subscription", "TLSOptions", "Will"]


def __getattr__(name: str) -> Any:
    if name == "Bus":
        from edge.bus._bus import Bus

        return Bus
    if name == "TLSOptions":
        from edge.bus._transport import TLSOptions

        return TLSOptions
    raise AttributeError(f"module 'edge.bus' has no attribute {name!r}")
