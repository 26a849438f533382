"""The ``edge`` command. Subcommands import what they need when they run, so ``edge pub``
never loads NiceGUI and an agent on a Pi pays only for the agent.

One module per group of commands: ``_serve`` (up, broker, agent, ui, health, acl), ``_deploy``
(deploy, rm, rollback), ``_ls``, ``_catalogs``, ``_describe``, ``_pubsub`` (pub, tail); ``_output`` prints
tables and one-line texts; ``_main`` parses the command line and turns a user's mistakes into
one line.
"""

from edge.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
