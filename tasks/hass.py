"""Dashboard tasks as Home Assistant entities (the ``home_assistant`` option; docs/home-assistant.md).

A dashboard task whose config has ``home_assistant`` set, on an agent with
``EDGE_HASS_DISCOVERY=true``, publishes a discovery config for one entity (``edge.hass`` does the
topics, the device and the availability): controls become entities Home Assistant can set,
displays become sensors. What the entity shows is read from the task's view (the same state the
panel draws), as plain text on the task's Home Assistant state topic. A command from Home
Assistant is parsed here and then taken as a frame on ``set`` would be: the control's own
checks apply (a slider clamps, unknown options are refused and counted as ``set`` errors).

=================  ===================  ==========================================================
kind               component            state / command
=================  ===================  ==========================================================
slider             ``number``           the value, e.g. ``21.5`` / a number
toggle             ``switch``           ``ON`` or ``OFF`` / the same
radio_buttons      ``select``           the chosen option's text / an option's text
text_input         ``text``             the text (at most 255 characters, Home Assistant's limit)
status_display     ``sensor`` (enum)    the level's text
text_display       ``sensor``           the last 255 characters
value_bar          ``sensor``           the value
=================  ===================  ==========================================================

``plot`` has no option: Home Assistant has no entity for a chart (its history graphs draw any
sensor; feed a ``value_bar`` or a sensor for that).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from edge.errors import EdgeError
from edge.protocol import (
    DashboardView,
    RadioButtonsView,
    SliderView,
    StatusDisplayView,
    TextDisplayView,
    TextInputView,
    ToggleView,
    ValueBarView,
)

__all__ = ["COMPONENTS", "Entity", "HomeAssistant", "HomeAssistantSetting", "Rejected", "entity_fields",
           "home_assistant_field", "option_of", "parse_command", "state_text"]

ON: Final = "ON"
OFF: Final = "OFF"
MAX_STATE: Final = 255  # Home Assistant's longest state (and a text entity's longest value)
MIN_STEP: Final = 0.001  # a number entity's smallest step
#: the Home Assistant component of each dashboard kind that has one
COMPONENTS: Final = {"slider": "number", "toggle": "switch", "radio_buttons": "select", "text_input": "text",
                     "status_display": "sensor", "text_display": "sensor", "value_bar": "sensor"}
#: a plain decimal number, with ASCII blanks around it at most: ``\s`` would also let through "0\x1f",
#: which float() refuses
_NUMBER: Final = re.compile(r"\A[ \t\r\n]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\r\n]*\Z")
CONTROLS: Final = frozenset({"slider", "toggle", "radio_buttons", "text_input"})


class HomeAssistant(BaseModel):
    """How the task shows in Home Assistant (docs/home-assistant.md); every field may be left out."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)  # default: the label, else the task's id
    icon: str = Field(default="", pattern=r"^(mdi:[a-z0-9-]{1,80})?$")  # e.g. mdi:thermometer
    device_class: str = Field(default="", pattern=r"^[a-z_]{0,40}$")  # slider, value_bar: e.g. temperature
    unit: str = Field(default="", max_length=40)  # slider, value_bar: the unit of measurement


def _enable(value: Any) -> Any:
    """``true`` is the defaults, ``false`` is off."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


def home_assistant_field() -> Any:
    """The ``home_assistant`` field of a dashboard task's config."""
    return Field(default=None, description="Home Assistant entity: true or {name, icon, device_class, unit}")


#: the type of the ``home_assistant`` field: ``true`` and ``false`` are taken too. Its JSON Schema says
#: only that: the field is in the catalog entry of every dashboard type, and a catalog is one MQTT
#: message (EDGE_MAX_PAYLOAD), so the model's fields are checked by the agent (Task.check), not the schema
HomeAssistantSetting = Annotated[HomeAssistant | None, BeforeValidator(_enable),
                                 WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "boolean"}, {"type": "null"}]})]


class Rejected(EdgeError, ValueError):
    """A command Home Assistant sent that the control cannot take; the message says why."""


def _number(value: float) -> str:
    return repr(float(value))


def state_text(view: DashboardView) -> str | None:
    """What Home Assistant shows for ``view`` (None: nothing yet, e.g. a display before its first value)."""
    match view:
        case SliderView() | ValueBarView():
            return _number(view.value)
        case ToggleView():
            return ON if view.value else OFF
        case RadioButtonsView():
            return view.options[view.selected]
        case TextInputView():
            return view.value[:MAX_STATE]
        case StatusDisplayView():
            return view.text or None if view.value is not None else None
        case TextDisplayView():
            return view.text[-MAX_STATE:] or None
    return None


@dataclass(frozen=True)
class Entity:
    component: str
    fields: dict[str, Any]


def entity_fields(view: DashboardView, option: HomeAssistant, *, levels: list[str] | None = None,
                  max_length: int = MAX_STATE) -> Entity:
    """The component and its own fields of the discovery config for ``view`` (the shared ones are
    :meth:`edge.hass.HassSlot.config`'s). ``levels``: a status display's texts; ``max_length``: a
    text input's."""
    kind = view.kind
    fields: dict[str, Any] = {}
    if option.icon:
        fields["icon"] = option.icon
    measured = {**({"device_class": option.device_class} if option.device_class else {}),
                **({"unit_of_measurement": option.unit} if option.unit else {})}
    match view:
        case SliderView():
            step = view.step if view.step >= MIN_STEP else MIN_STEP
            fields |= {"min": view.min, "max": view.max, "step": step, "mode": "slider", **measured}
        case ToggleView():
            fields |= {"payload_on": ON, "payload_off": OFF, "state_on": ON, "state_off": OFF}
        case RadioButtonsView():
            fields |= {"options": list(view.options)}
        case TextInputView():
            fields |= {"min": 0, "max": min(max_length, MAX_STATE), "mode": "text"}
        case StatusDisplayView():
            texts = [text for text in dict.fromkeys(levels or []) if text]  # a blank text is no state (None)
            if texts:  # an enum sensor's states are its options
                fields |= {"device_class": "enum", "options": texts}
        case ValueBarView():
            fields |= {"state_class": "measurement", **measured}
    return Entity(component=COMPONENTS[kind], fields=fields)


def parse_command(view: DashboardView, payload: bytes) -> Any:
    """The ``set`` value of a command from Home Assistant to a control showing ``view``;
    :class:`Rejected` for one it cannot be (the control then checks the value as any ``set``)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(f"a {len(payload)}-byte command that is not UTF-8 text") from None
    shown = text if len(text) <= 40 else text[:40] + "…"
    match view:
        case SliderView():
            if _NUMBER.match(text) is None:  # float() also takes "nan", "infinity", "1_0" and other scripts' digits
                raise Rejected(f"{shown!r} is not a number")
            number = float(text)
            if not math.isfinite(number):
                raise Rejected(f"{shown!r} is not a finite number")
            return number
        case ToggleView():
            flag = text.strip().upper()
            if flag not in (ON, OFF):
                raise Rejected(f"{shown!r} is neither {ON} nor {OFF}")
            return flag == ON
        case RadioButtonsView():
            if text not in view.options:
                raise Rejected(f"{shown!r} is not one of the options")
            return text
        case TextInputView():
            return text
    raise Rejected(f"a {view.kind} takes no commands")


def option_of(config: Mapping[str, Any] | BaseModel) -> HomeAssistant | None:
    """The ``home_assistant`` option of a task's config (None: off, or a type without it)."""
    option = getattr(config, "home_assistant", None)
    return option if isinstance(option, HomeAssistant) else None
