"""The controller: a live model of the fleet, placement, and publishing deployment specs.

The CLI (``edge deploy``, ``edge ls``, ``edge rollback``…) and the control panel both use this one
library, and through it only the broker: nothing here reaches into an agent's objects.
"""

from edge.controller.controller import Controller, DeployResult
from edge.controller.fleet import AgentInfo, Fleet, TaskStatus
from edge.controller.history import SpecHistory
from edge.controller.placement import place
from edge.controller.views import DeploymentSummary, TaskView, deployment_views, summarize, task_view

__all__ = ["AgentInfo", "Controller", "DeployResult", "DeploymentSummary", "Fleet", "SpecHistory", "TaskStatus",
           "TaskView", "deployment_views", "place", "summarize", "task_view"]
