"""The list of built-in task types, the target of the ``builtin`` entry point of ``edgetasks.tasks``.

Importing this module imports every built-in module (``edge`` and the standard library only);
``tasks`` itself stays light.
"""

from __future__ import annotations

from edge.task import Task
from tasks.bridges import MqttIn, MqttOut
from tasks.calculator import Calculator
from tasks.change import Change
from tasks.controls import RadioButtons, Slider, TextInput, Toggle
from tasks.displays import Plot, StatusDisplay, TextDisplay, ValueBar
from tasks.exec import Exec
from tasks.file_read import FileRead
from tasks.files import FileWrite
from tasks.flow import Filter, Throttle, Trigger
from tasks.formats import Format, Parse
from tasks.function import PythonFunction
from tasks.grouping import Batch, Join, Split
from tasks.hardware.one_wire import OneWireTemperature
from tasks.logic import Gate, SrLatch, Switch
from tasks.named import NamedInput, NamedOutput
from tasks.replay import ReplayBuffer
from tasks.text import NumberToText, StringConcatenator, StringMatcher, TextFormatter, TimeToText
from tasks.timestamps import Synchronizer, TimeBuffer, TimestampUpdater
from tasks.timing import MessageDetector, PulseGenerator, Repeater
from tasks.web_viewer import WebViewer

__all__ = ["TYPES"]

TYPES: list[type[Task]] = [
    # logic
    Calculator, Gate, Switch, SrLatch, PythonFunction,
    # timing
    PulseGenerator, Repeater, MessageDetector, Synchronizer, TimeBuffer, TimestampUpdater, ReplayBuffer,
    # flow control
    Filter, Throttle, Trigger,
    # data shaping
    Change, Split, Join, Batch, Parse, Format,
    # text
    NumberToText, TimeToText, TextFormatter, StringMatcher, StringConcatenator,
    # between deployments and to other systems
    NamedInput, NamedOutput, MqttIn, MqttOut,
    # integration: files and commands on the agent (the web types are the web entry point's)
    FileWrite, FileRead, Exec,
    # dashboard
    Slider, Toggle, RadioButtons, TextInput, StatusDisplay, TextDisplay, ValueBar, Plot, WebViewer,
    # hardware (the others, with their libraries, are the gpio, i2c and serial entry points)
    OneWireTemperature,
]  # fmt: skip
