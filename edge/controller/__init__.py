"""The controller: a live model of the fleet, placement, and publishing deployment specs.

The CLI (``edge deploy``, ``edge ls``, ``edge rollback``…) and the control panel both use this one
library, and through it only the broker: nothing here reaches into an agent's objects.
"""

from edge.controller.controller import Controller, DeployResult
from edge.controller.fleet import AgentInfo, Fleet, TaskStatus
from edge.controller.history import SpecHistory
from edge.controller.placement import place

__all__ = ["AgentInfo", "Controller", "DeployResult", "Fleet", "SpecHistory", "TaskStatus", "place"]
