"""The edge agent: the daemon on each device that announces itself and runs task instances."""

from agent.agent import Agent

__all__ = ["Agent"]
