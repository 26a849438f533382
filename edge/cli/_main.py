"""The parser and the entry point: settings, logging, and one-line errors for a user's mistakes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge._signals import run_until_signal
from edge.cli._catalogs import cmd_catalogs
from edge.cli._deploy import cmd_deploy, cmd_rm, cmd_rollback
from edge.cli._describe import cmd_describe
from edge.cli._inject import cmd_inject
from edge.cli._ls import cmd_ls
from edge.cli._pubsub import PAYLOAD_FORMATS, cmd_pub, cmd_tail
from edge.cli._serve import cmd_acl, cmd_agent, cmd_broker, cmd_health, cmd_ui, cmd_up
from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.settings import Settings



_QUIET_COMMANDS = {"acl", "health", "pub", "tail", "ls", "describe", "deploy", "rm", "rollback", "inject", "catalogs"}


_EXIT_BROKEN_PIPE = 128 + 13  # as a Unix tool killed by SIGPIPE: `edge tail X | head -1`


Command = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description="edgetasks: dataflow tasks on edge devices, wired together over MQTT. "
                    "Settings come from EDGE_* environment variables (see docs/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"edgetasks {__version__}")
    parser.add_argument("--broker", help="override EDGE_BROKER (embedded, mosquitto, auto or a URL)")
    parser.add_argument("--namespace", help="override EDGE_NAMESPACE")
    parser.add_argument("--log-level", help="override EDGE_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    tasks_help = "also offer the task types in this module or .py file (repeatable)"
    p = add("up", cmd_up, "start a broker, a local agent and the control panel")
    p.add_argument("--tasks", action="append", default=[], metavar="MODULE_OR_FILE", help=tasks_help)
    add("broker", cmd_broker, "run the broker the settings choose, in the foreground")
    p = add("agent", cmd_agent, "run an agent on this device")
    p.add_argument("--tasks", action="append", default=[], metavar="MODULE_OR_FILE", help=tasks_help)
    add("ui", cmd_ui, "run the control panel")
    p = add("acl", cmd_acl, "write a Mosquitto ACL, password files, listeners and per-user credentials for a fleet")
    p.add_argument("--agents", required=True, help="comma-separated agent ids (each logs in as its id)")
    p.add_argument("--controller", action="append", default=None, help="controller user (repeatable; "
                                                                          "default: controller)")
    p.add_argument("--spec", action="append", default=[], help="deployment spec file whose tasks to allow")
    p.add_argument("--from-broker", action="store_true", help="also allow the tasks of the live deployments")
    p.add_argument("--out", help="directory to write (default: {data_dir}/acl)")
    p.add_argument("--broker-url", help="EDGE_BROKER written into the agents' credential files (its port: the "
                                        "agents' listener)")
    p.add_argument("--controller-port", type=int, default=None,
                   help="port of the controllers' listener (default: the agents' port + 1)")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("health", cmd_health, "exit 0 if this device's agent is connected to its broker (for HEALTHCHECK)")
    p.add_argument("--max-age", type=float, default=30.0, help="seconds after which the agent's report is stale")
    p.add_argument("--panel", action="store_true",
                   help="check the control panel instead: exit 0 if it answers on EDGE_CONTROLLER_PORT")
    p = add("deploy", cmd_deploy, "publish a deployment spec (YAML, JSON or CBOR file); "
                                 "a spec already deployed gets the next version")
    p.add_argument("spec", help="graph.yaml, graph.json or graph.cbor")
    p.add_argument("--dry-run", action="store_true", help="check and place, print the placement, publish nothing")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p.add_argument("--check-timeout", default=3.0, type=_seconds,
                   help="seconds to wait for agents to run their task types' own config checks")
    p = add("rm", cmd_rm, "remove a deployment: its agents stop its tasks")
    p.add_argument("deployment")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("rollback", cmd_rollback, "deploy an earlier version of a deployment again, as its next version")
    p.add_argument("deployment")
    p.add_argument("version", nargs="?", type=int, help="default: the version before the deployed one")
    p.add_argument("--list", action="store_true", help="list the versions kept instead")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("ls", cmd_ls, "tables of the fleet: agents, task types, deployments or task instances")
    p.add_argument("what", choices=["agents", "types", "deployments", "tasks"], nargs="?", default="agents")
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table (docs/cli.md)")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("describe", cmd_describe, "a task type from the fleet's catalogs: ports, config fields, agents")
    p.add_argument("type", help="task type name (edge ls types lists them)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("catalogs", cmd_catalogs, "the shared catalogs on the broker (hash, bytes, agents naming each); "
                                      "prune: clear those no agent names")
    p.add_argument("action", choices=["list", "prune"], nargs="?", default="list")
    p.add_argument("--dry-run", action="store_true", help="prune: say what would be cleared, clear nothing")
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table or lines (docs/cli.md)")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker (and for the "
                                                                  "catalog of an agent that is announcing itself)")
    p = add("tail", cmd_tail, "print the messages published on a topic pattern, live")
    p.add_argument("pattern", help="MQTT topic filter (+ and # allowed), or DEPLOYMENT/TASK.PORT")
    p.add_argument("-n", "--count", type=_count, default=0, help="exit after this many messages")
    p.add_argument("--duration", type=float, default=None, help="exit after this many seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--format", choices=PAYLOAD_FORMATS, default="auto",
                   help="how to read payloads: auto (a frame, else JSON, else text, else hex), cbor (a frame or "
                        "any CBOR value), json, raw (text, else hex); default auto")
    p.add_argument("--utc", action="store_true", help="times in UTC (…Z) rather than local time")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("inject", cmd_inject, "send a value as one frame into an input of a running task")
    p.add_argument("input", help="DEPLOYMENT/TASK.PORT, an input (demo/double.in)")
    p.add_argument("value", help="JSON (42, 1.5, true, [1,2], {\"a\":1}) or else text")
    p.add_argument("--text", action="store_true", help="send VALUE as text even if it parses as JSON")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    p = add("pub", cmd_pub, "publish a value as a frame")
    p.add_argument("topic")
    p.add_argument("value", help="JSON (42, 1.5, true, [1,2], {\"a\":1}) or else text")
    p.add_argument("--text", action="store_true", help="send VALUE as text even if it parses as JSON")
    p.add_argument("--raw", action="store_true", help="send VALUE's bytes as they are, not as a frame")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--retain", action="store_true")
    p.add_argument("--count", type=int, default=1, help="publish this many frames (seq 0, 1, ...)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames with --count")
    p.add_argument("--timeout", default=5.0, type=_seconds, help="seconds to wait for the broker")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from edge.settings import load_settings

    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in {"broker": args.broker, "namespace": args.namespace,
                                    "log_level": args.log_level}.items() if v is not None}
    try:
        settings = load_settings(**overrides)
    except EdgeError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    level = settings.log_level
    if args.command in _QUIET_COMMANDS and "log_level" not in settings.model_fields_set:
        level = "WARNING"  # a one-shot client prints its results, not the bus's comings and goings
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_until_signal(args.func(args, settings))) or 0
    except KeyboardInterrupt:
        return 130
    except EdgeError as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        return 0
    except BrokenPipeError:
        # the reader has gone (`edge tail X | head -1`): stop quietly, as Unix tools do; stdout now
        # points nowhere, so the interpreter's last flush has no pipe left to complain about
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    except OSError as exc:  # a file or directory named by the settings or arguments cannot be used
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"edge: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
