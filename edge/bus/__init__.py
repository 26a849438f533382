"""The MQTT bus every component uses: one connection, reconnecting, with bounded subscriptions.

The transport behind it (MQTT 5 with the ``mqtt5`` codec where the broker speaks it, else
paho-mqtt on the asyncio loop) is an internal detail chosen by the ``transport`` argument;
the API here stays the same whichever it is.
"""

from edge.bus._bus import Bus
from edge.bus._message import BusStats, Message, Overflow, Will
from edge.bus._subscription import Subscription
from edge.bus._transport import TLSOptions

__all__ = ["Bus", "BusStats", "Message", "Overflow", "Subscription", "TLSOptions", "Will"]
