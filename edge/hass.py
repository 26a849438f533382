"""Home Assistant MQTT discovery: an agent's link to a Home Assistant on the same broker.

Home Assistant finds MQTT entities by their *discovery configs*: a JSON map retained on
``{prefix}/{component}/{node_id}/{object_id}/config`` (``homeassistant`` by default), removed by an
empty retained payload on the same topic. It reads plain text, not CBOR, so what it reads and
sets lives on plain-text topics of our namespace (``edge.topics``): a task's state (retained) and
its command topic, and the agent's availability and health.

Availability. The agent's own last will is CBOR on its state topic, which Home Assistant cannot
read, and an MQTT connection has one will. So a :class:`HassLink` runs on a **second connection**
of the agent (``hass-{id}.{namespace}``) whose will is a retained plain ``offline`` on the agent's
``hass/availability`` topic; on every connect it publishes ``online`` there. When the agent
process dies without a clean exit, the broker sees both connections drop and publishes both
wills: Home Assistant shows the agent's entities unavailable with no controller involved. A
clean stop publishes ``offline`` itself before disconnecting.

What the link publishes again, on every connect (a broker may have lost retained messages) and
on Home Assistant's birth (``online`` on ``{prefix}/status``, which Home Assistant documents for
this): the availability, every config, and every entity's last state.

Each entity of a task gets a :class:`HassSlot` (its topics and ids) through its
:class:`edge.task.TaskContext`; the task decides what the entity is (``tasks.hass``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from edge._version import __version__
from edge.bus import Message, Subscription, Will
from edge.errors import EdgeError
from edge.topics import HASS_PREFIX, Topics, hass_config, hass_status, validate_hass_prefix

__all__ = [
    "AVAILABLE",
    "HASS_PREFIX",
    "NOT_AVAILABLE",
    "ORIGIN",
    "HassLink",
    "HassSlot",
    "availability_will",
    "device_info",
]

if TYPE_CHECKING:
    from edge.bus import Bus  # loaded on first use (edge.bus): a task module needs no transport

log = logging.getLogger("edge.hass")

AVAILABLE: Final = "online"
NOT_AVAILABLE: Final = "offline"
#: who made the discovery configs (Home Assistant logs it with each one)
ORIGIN: Final = {"name": "edgetasks", "sw_version": __version__}
#: the agent's health sensors: key in the health JSON -> (name, more of the sensor's config)
HEALTH_SENSORS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "tasks_running": ("running tasks", {"state_class": "measurement", "icon": "mdi:play-circle-outline"}),
    "tasks_failed": ("failed tasks", {"state_class": "measurement", "icon": "mdi:alert-circle-outline"}),
    "errors": ("errors", {"state_class": "total_increasing", "icon": "mdi:alert-outline"}),
    "cpu_percent": ("CPU", {"state_class": "measurement", "unit_of_measurement": "%", "icon": "mdi:cpu-64-bit"}),
    "rss_mb": ("memory", {"state_class": "measurement", "unit_of_measurement": "MB", "device_class": "data_size",
                          "icon": "mdi:memory"}),
}


def _digest(*ids: str) -> str:
    """8 hex digits that tell apart ids joined with ``-`` (which ids may contain)."""
    return hashlib.blake2s("/".join(ids).encode(), digest_size=4).hexdigest()


def availability_will(topics: Topics, agent_id: str) -> Will:
    """The will of the link's connection: ``offline``, retained, on the agent's availability topic."""
    return Will(topic=topics.hass_availability(agent_id), payload=NOT_AVAILABLE.encode(), qos=1, retain=True)


def device_info(namespace: str, agent_id: str) -> dict[str, Any]:
    """The ``device`` block that groups an agent's entities in Home Assistant (one device per agent)."""
    return {"identifiers": [f"edgetasks/{namespace}/{agent_id}"], "name": agent_id, "manufacturer": "edgetasks",
            "model": "edgetasks agent", "sw_version": __version__}


@dataclass
class _Entity:
    config_topic: str
    config: bytes
    state_topic: str | None = None
    state: bytes | None = None


@dataclass
class HassSlot:
    """Where one task's entity goes: its topics and ids (:meth:`HassLink.slot`)."""

    link: HassLink
    deployment: str
    task: str
    _entity: _Entity | None = field(default=None, repr=False)

    @property
    def unique_id(self) -> str:
        return f"edgetasks/{self.link.topics.namespace}/{self.link.agent_id}/{self.deployment}/{self.task}"

    @property
    def object_id(self) -> str:
        agent = self.link.agent_id
        return f"{agent}-{self.deployment}-{self.task}-{_digest(agent, self.deployment, self.task)}"

    @property
    def state_topic(self) -> str:
        return self.link.topics.hass_state(self.deployment, self.task)

    @property
    def command_topic(self) -> str:
        return self.link.topics.hass_command(self.deployment, self.task)

    def config_topic(self, component: str) -> str:
        return self.link.config_topic(component, self.object_id)

    def config(self, component: str, *, name: str, command: bool, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The discovery config of this task's entity: ``fields`` (the component's own) and what every
        entity has (ids, device, origin, availability, state and command topics)."""
        config: dict[str, Any] = {"name": name, "unique_id": f"{self.unique_id}/{component}",
                                  "state_topic": self.state_topic, **self.link.common()}
        if command:
            config["command_topic"] = self.command_topic
        return {**config, **fields}

    def publish(self, component: str, config: Mapping[str, Any]) -> None:
        """Publish the config (retained); the link publishes it again after reconnects and Home
        Assistant's births, until :meth:`remove`."""
        old = self._entity
        if old is not None and old.config_topic != self.config_topic(component):
            self.remove()  # another component: that entity goes
        elif old is not None:
            self.link.forget(old)  # the same one, announced again
        self._entity = _Entity(config_topic=self.config_topic(component),
                               config=json.dumps(config, separators=(",", ":")).encode(),
                               state_topic=self.state_topic)
        self.link.add(self._entity)

    def set_state(self, text: str) -> None:
        """The entity's state as Home Assistant reads it (plain text, retained)."""
        if self._entity is not None:
            self.link.set_state(self._entity, text.encode())

    def remove(self) -> None:
        """Remove the entity from Home Assistant: empty retained configs and state (without waiting)."""
        entity, self._entity = self._entity, None
        if entity is not None:
            self.link.discard(entity)

    async def commands(self, callback: Callable[[Message], object]) -> Subscription:
        """Subscribe to Home Assistant's commands to this entity (close the subscription when done)."""
        return await self.link.bus.subscribe(self.command_topic, qos=1, callback=callback)


class HassLink:
    """An agent's entities in Home Assistant, over the agent's second connection ``bus``.

    ``async with HassLink(bus=..., topics=..., agent_id=..., prefix=...)`` inside ``async with bus``
    (a bus whose will is :func:`availability_will`). The agent's device always has a connectivity
    binary sensor; ``health_keys`` (of :data:`HEALTH_SENSORS`) become sensors of the map ``health``
    gives, sent by :meth:`publish_health`.
    """

    def __init__(self, *, bus: Bus, topics: Topics, agent_id: str, prefix: str = HASS_PREFIX,
                 health: Callable[[], Mapping[str, Any]] | None = None, health_keys: Iterable[str] = ()) -> None:
        self.bus = bus
        self.topics = topics
        self.agent_id = agent_id
        self.prefix = validate_hass_prefix(prefix)
        self.availability = topics.hass_availability(agent_id)
        self.device = device_info(topics.namespace, agent_id)
        self._health = health
        self._health_keys = [key for key in HEALTH_SENSORS if key in set(health_keys)]
        self._entities: list[_Entity] = []
        self._birth: Subscription | None = None
        #: what the availability says while this link is connected (:meth:`set_available`)
        self.available = True
        #: Home Assistant births seen (each made us publish everything again)
        self.births = 0

    # -- ids and shared config ------------------------------------------------------------------
    @property
    def node_id(self) -> str:
        """The ``node_id`` level of our config topics: one per namespace."""
        return f"edgetasks_{self.topics.namespace}"

    def config_topic(self, component: str, object_id: str) -> str:
        return hass_config(self.prefix, component, self.node_id, object_id)

    def common(self) -> dict[str, Any]:
        """What every config of this agent's entities has: device, origin and availability."""
        return {"device": self.device, "origin": ORIGIN,
                "availability": [{"topic": self.availability, "payload_available": AVAILABLE,
                                  "payload_not_available": NOT_AVAILABLE}]}

    def slot(self, deployment: str, task: str) -> HassSlot:
        return HassSlot(link=self, deployment=deployment, task=task)

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> HassLink:
        self._entities.extend(self._health_entities())
        self.bus.on_connect(self._on_connect)
        self._birth = await self.bus.subscribe(hass_status(self.prefix), qos=1, callback=self._on_status)
        if self.bus.is_connected:
            await self._on_connect(self.bus)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.bus.remove_on_connect(self._on_connect)
        if self._birth is not None:
            await self._birth.aclose()
            self._birth = None
        # a clean stop: the will is not published, so say it ourselves
        with contextlib.suppress(EdgeError):
            self.bus.publish_nowait(self.availability, NOT_AVAILABLE.encode(), qos=1, retain=True)

    async def _on_connect(self, bus: Bus) -> None:
        self.republish()
        log.info("agent %s: %d entities announced to Home Assistant under %s/", self.agent_id,
                 len(self._entities), self.prefix)

    def _on_status(self, message: Message) -> None:
        """Home Assistant's birth: it may have lost what it knew (a restart), so everything again."""
        if message.payload.strip() != AVAILABLE.encode():
            return  # its will ("offline"), or anything else: nothing to do
        self.births += 1
        log.info("agent %s: Home Assistant came online: announcing its entities again", self.agent_id)
        self.republish()

    def set_available(self, available: bool) -> None:
        """Say the agent is available or not (its own connection is up or down), if that changed."""
        if available != self.available:
            self.available = available
            self._send(self.availability, (AVAILABLE if available else NOT_AVAILABLE).encode())

    def republish(self) -> None:
        """Availability, configs, then states: the order Home Assistant needs them in."""
        try:
            self.bus.publish_nowait(self.availability, (AVAILABLE if self.available else NOT_AVAILABLE).encode(),
                                    qos=1, retain=True)
            for entity in list(self._entities):
                self.bus.publish_nowait(entity.config_topic, entity.config, qos=1, retain=True)
            for entity in list(self._entities):
                if entity.state_topic is not None and entity.state is not None:
                    self.bus.publish_nowait(entity.state_topic, entity.state, qos=1, retain=True)
        except EdgeError as exc:
            log.warning("agent %s could not announce its entities to Home Assistant: %s", self.agent_id, exc)
        self.publish_health()

    # -- entities ------------------------------------------------------------------------------
    def add(self, entity: _Entity) -> None:
        self._entities.append(entity)
        self._send(entity.config_topic, entity.config)

    def set_state(self, entity: _Entity, state: bytes) -> None:
        if entity.state == state or entity.state_topic is None:
            return
        entity.state = state
        self._send(entity.state_topic, state)

    def forget(self, entity: _Entity) -> None:
        """Stop publishing ``entity`` again (without removing it from Home Assistant)."""
        if entity in self._entities:
            self._entities.remove(entity)

    def discard(self, entity: _Entity) -> None:
        """Remove ``entity`` from Home Assistant: empty retained config and state."""
        self.forget(entity)
        self._send(entity.config_topic, b"")
        if entity.state_topic is not None:
            self._send(entity.state_topic, b"")

    def _send(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        try:
            self.bus.publish_nowait(topic, payload, qos=1, retain=retain)
        except EdgeError as exc:
            log.warning("agent %s could not publish %s for Home Assistant: %s", self.agent_id, topic, exc)

    # -- the agent's own health ----------------------------------------------------------------
    def _health_entities(self) -> list[_Entity]:
        agent, digest = self.agent_id, _digest(self.agent_id)
        base = f"edgetasks/{self.topics.namespace}/{agent}"
        connectivity = {"name": "connected", "unique_id": f"{base}/connectivity", "state_topic": self.availability,
                        "payload_on": AVAILABLE, "payload_off": NOT_AVAILABLE, "device_class": "connectivity",
                        "entity_category": "diagnostic", "device": self.device, "origin": ORIGIN}
        entities = [_Entity(config_topic=self.config_topic("binary_sensor", f"{agent}-{digest}-connectivity"),
                            config=json.dumps(connectivity, separators=(",", ":")).encode())]
        health_topic = self.topics.hass_health(agent)
        for key in self._health_keys:
            name, extra = HEALTH_SENSORS[key]
            config = {"name": name, "unique_id": f"{base}/{key}", "state_topic": health_topic,
                      "value_template": "{{ value_json." + key + " }}", "entity_category": "diagnostic",
                      **self.common(), **extra}
            entities.append(_Entity(config_topic=self.config_topic("sensor", f"{agent}-{digest}-{key}"),
                                    config=json.dumps(config, separators=(",", ":")).encode()))
        return entities

    def publish_health(self) -> None:
        """Send the agent's health map to its sensors (not retained: it is sent every few seconds and
        after Home Assistant's birth; between, the availability says whether it is current)."""
        if self._health is None or not self.bus.is_connected:
            return
        health = {k: v for k, v in self._health().items() if k in self._health_keys}
        self._send(self.topics.hass_health(self.agent_id), json.dumps(health).encode(), retain=False)
