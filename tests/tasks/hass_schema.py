"""Home Assistant's MQTT discovery payloads as JSON Schemas, written from its documentation.

Sources (the "Configuration Variables" of each page, full names; abbreviations are not used):

* discovery topic, ``device``, ``origin``, ``availability``: https://www.home-assistant.io/integrations/mqtt/
  ("Discovery topic", "Discovery payload", "Using availability topics", "Adding information about
  the origin of a discovery message")
* number: https://www.home-assistant.io/integrations/number.mqtt/ (``step``: "Smallest value 0.001")
* switch: https://www.home-assistant.io/integrations/switch.mqtt/
* select: https://www.home-assistant.io/integrations/select.mqtt/ (``options`` required)
* text: https://www.home-assistant.io/integrations/text.mqtt/ (``max``: "maximum is 255")
* sensor: https://www.home-assistant.io/integrations/sensor.mqtt/ (an ``enum`` sensor has ``options``
  and neither a unit nor a state class: https://www.home-assistant.io/integrations/sensor/#device-class)
* binary_sensor: https://www.home-assistant.io/integrations/binary_sensor.mqtt/

Each component's schema lists the documented options only (``additionalProperties: false``), so a
misspelt or invented key fails, as Home Assistant refuses the config.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator

# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids of [a-zA-Z0-9_-]
CONFIG_TOPIC = (r"\A{prefix}/(?P<component>[a-z_]+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
                r"(?P<object_id>[a-zA-Z0-9_-]+)/config\Z")

_STRING = {"type": "string"}
_TOPIC = {"type": "string", "minLength": 1, "pattern": r"^[^+#]*$"}  # publish/subscribe topics: no wildcards
_TEMPLATE = {"type": "string"}

DEVICE = {  # "device" map: at least one of identifiers or connections
    "type": "object",
    "properties": {
        "identifiers": {"anyOf": [_STRING, {"type": "array", "items": _STRING}]},
        "connections": {"type": "array", "items": {"type": "array", "items": _STRING, "minItems": 2, "maxItems": 2}},
        "configuration_url": _STRING, "hw_version": _STRING, "manufacturer": _STRING, "model": _STRING,
        "model_id": _STRING, "name": _STRING, "serial_number": _STRING, "suggested_area": _STRING,
        "sw_version": _STRING, "via_device": _STRING,
    },
    "anyOf": [{"required": ["identifiers"]}, {"required": ["connections"]}],
    "additionalProperties": False,
}
ORIGIN = {  # "origin": name required
    "type": "object",
    "properties": {"name": _STRING, "sw_version": _STRING, "support_url": _STRING},
    "required": ["name"],
    "additionalProperties": False,
}
AVAILABILITY = {  # "availability" list; each item's topic required
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"topic": _TOPIC, "payload_available": _STRING, "payload_not_available": _STRING,
                       "value_template": _TEMPLATE},
        "required": ["topic"],
        "additionalProperties": False,
    },
}
# the options every MQTT entity platform documents
COMMON: dict[str, Any] = {
    "availability": AVAILABILITY,
    "availability_mode": {"enum": ["all", "any", "latest"]},
    "availability_template": _TEMPLATE,
    "availability_topic": _TOPIC,
    "default_entity_id": _STRING,
    "device": DEVICE,
    "enabled_by_default": {"type": "boolean"},
    "encoding": _STRING,
    "entity_category": {"enum": ["config", "diagnostic"]},
    "entity_picture": _STRING,
    "icon": {"type": "string", "pattern": r"^[a-z0-9-]+:[a-z0-9-]+$"},
    "json_attributes_template": _TEMPLATE,
    "json_attributes_topic": _TOPIC,
    "name": {"type": ["string", "null"]},
    "object_id": _STRING,
    "origin": ORIGIN,
    "payload_available": _STRING,
    "payload_not_available": _STRING,
    "platform": _STRING,
    "qos": {"enum": [0, 1, 2]},
    "unique_id": {"type": "string", "minLength": 1},
}


def _component(properties: dict[str, Any], *, required: list[str], **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {**COMMON, **properties}, "required": required,
            "additionalProperties": False, **more}


SCHEMAS: dict[str, dict[str, Any]] = {
    "number": _component({
        "command_template": _TEMPLATE, "command_topic": _TOPIC, "device_class": _STRING,
        "max": {"type": "number"}, "min": {"type": "number"}, "mode": {"enum": ["auto", "box", "slider"]},
        "optimistic": {"type": "boolean"}, "payload_reset": _STRING, "retain": {"type": "boolean"},
        "state_topic": _TOPIC, "step": {"type": "number", "minimum": 0.001}, "unit_of_measurement": _STRING,
        "value_template": _TEMPLATE,
    }, required=["command_topic"]),
    "switch": _component({
        "command_template": _TEMPLATE, "command_topic": _TOPIC, "device_class": {"enum": ["outlet", "switch"]},
        "optimistic": {"type": "boolean"}, "payload_off": _STRING, "payload_on": _STRING,
        "retain": {"type": "boolean"}, "state_off": _STRING, "state_on": _STRING, "state_topic": _TOPIC,
        "value_template": _TEMPLATE,
    }, required=[]),
    "select": _component({
        "command_template": _TEMPLATE, "command_topic": _TOPIC, "optimistic": {"type": "boolean"},
        "options": {"type": "array", "items": _STRING, "minItems": 1}, "retain": {"type": "boolean"},
        "state_topic": _TOPIC, "value_template": _TEMPLATE,
    }, required=["command_topic", "options"]),
    "text": _component({
        "command_template": _TEMPLATE, "command_topic": _TOPIC, "max": {"type": "integer", "maximum": 255},
        "min": {"type": "integer", "minimum": 0}, "mode": {"enum": ["text", "password"]}, "pattern": _STRING,
        "retain": {"type": "boolean"}, "state_topic": _TOPIC, "value_template": _TEMPLATE,
    }, required=["command_topic"]),
    "sensor": _component({
        "device_class": _STRING, "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"}, "last_reset_value_template": _TEMPLATE,
        "options": {"type": "array", "items": _STRING}, "state_class": {
            "enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
        "state_topic": _TOPIC, "suggested_display_precision": {"type": "integer", "minimum": 0},
        "unit_of_measurement": _STRING, "value_template": _TEMPLATE,
    }, required=["state_topic"],
        # an enum sensor: options, and no unit or state class
        allOf=[{"if": {"properties": {"device_class": {"const": "enum"}}, "required": ["device_class"]},
                "then": {"required": ["options"], "not": {"anyOf": [{"required": ["unit_of_measurement"]},
                                                                    {"required": ["state_class"]}]}}}]),
    "binary_sensor": _component({
        "device_class": _STRING, "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"}, "off_delay": {"type": "integer", "minimum": 0},
        "payload_off": _STRING, "payload_on": _STRING, "state_topic": _TOPIC, "value_template": _TEMPLATE,
    }, required=["state_topic"]),
}


def problems(topic: str, payload: dict[str, Any], *, prefix: str = "homeassistant") -> list[str]:
    """Why ``payload`` on ``topic`` is not a discovery config Home Assistant documents (empty: it is)."""
    match = re.match(CONFIG_TOPIC.format(prefix=re.escape(prefix)), topic)
    if match is None:
        return [f"{topic!r} is not a discovery topic {prefix}/<component>/[<node_id>/]<object_id>/config"]
    schema = SCHEMAS.get(match["component"])
    if schema is None:
        return [f"no schema for component {match['component']!r}"]
    validator = Draft202012Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(payload)]
