"""``edge deploy`` and ``--dry-run`` list every problem of a spec at once and exit non-zero on errors
(warnings alone do not block), run as a user runs them, against a real broker and a real agent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

EDGE = [sys.executable, "-m", "edge"]


def env_for(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}, **extra}


def run(args: list[str], *, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*EDGE, *args], env=env, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise AssertionError(f"edge {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
    return out
BAD = """\
id: bad
tasks:
  - {id: calc, type: calculator, config: {formula: "a * (1.8 +"}}
  - {id: more, type: calculator, config: {formula: a + b, colour: red, synchronized: maybe}}
  - {id: x, type: no_such_type}
  - {id: pinned, type: calculator, agent: ghost}
edges:
  - {from: calc.out, to: more.a}
  - {from: "topic:in/a", to: more.a}
  - {from: calc.nope, to: more.b}
"""


@pytest.fixture
def fleet(broker, tmp_path):
    """The environment of a namespace with one real agent (built-in types) online."""
    env = env_for(EDGE_BROKER=broker.url.geturl(), EDGE_NAMESPACE=f"ns{uuid.uuid4().hex[:8]}",
                  EDGE_DATA_DIR=str(tmp_path / "ctl"))
    agent = subprocess.Popen([*EDGE, "agent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**env, "EDGE_AGENT_ID": "worker", "EDGE_DATA_DIR": str(tmp_path / "agent")})
    try:
        deadline = time.monotonic() + 20
        while not any(line.split()[:1] == ["calculator"] and "worker" in line
                      for line in run(["ls", "types"], env=env).stdout.splitlines()):
            assert time.monotonic() < deadline, "the agent's catalog did not arrive"
        yield env
    finally:
        agent.terminate()
        agent.wait(10)


def test_dry_run_lists_every_problem_and_fails(fleet, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD)
    for args in (["deploy", str(spec), "--dry-run"], ["deploy", str(spec)]):
        out = run(args, env=fleet, check=False)
        assert out.returncode == 1, out
        assert "would deploy" not in out.stdout and "deployed" not in out.stdout
        assert out.stderr.splitlines() == [
            "error: input more.a is fed twice: by calc.out and by topic:in/a",
            "error: task 'x': unknown task type 'no_such_type'",
            "error: calc.nope: task type 'calculator' has no output 'nope' (it has: out)",
            "error: task 'more': config.colour: unknown field (known: defaults, formula, sync_timeout_ms, "
            "synchronized)",
            "error: task 'more': config.synchronized: 'maybe' is not of type 'boolean'",
            "error: task 'calc': config.formula: expected a number, a name or '(', found the end of the formula "
            "(at position 11)",
            "warning: task 'pinned': agent 'ghost' is not known to this broker: the task stays pending until an "
            "agent with that id connects",
            "edge: not deployed: 6 error(s)",
        ]
    assert "bad" not in run(["ls", "deployments"], env=fleet).stdout


def test_warnings_alone_do_not_block(fleet, tmp_path):
    spec = tmp_path / "good.yaml"
    spec.write_text("id: good\ntasks:\n  - {id: calc, type: calculator, config: {formula: a * 1.8 + 32}}\n"
                    "  - {id: pinned, type: calculator, agent: ghost}\n")
    out = run(["deploy", str(spec), "--dry-run"], env=fleet)
    assert "would deploy good version 1: 2 task(s), 0 edge(s)" in out.stdout
    assert out.stderr.splitlines() == [
        "warning: task 'pinned': agent 'ghost' is not known to this broker: the task stays pending until an agent "
        "with that id connects"]
    out = run(["deploy", str(spec)], env=fleet)
    assert "deployed good version 1" in out.stdout and "warning: task 'pinned'" in out.stderr
    run(["rm", "good"], env=fleet)


PORTS = """\
id: ports
tasks:
  - {id: tick, type: pulse_generator, config: {message: id}}
  - {id: calc, type: calculator, config: {formula: "p * q"}}
edges:
  - {from: tick.out, to: calc.p}
  - {from: "topic:in/q", to: calc.q}
  - {from: "topic:in/a", to: calc.a}
"""


def test_wires_are_checked_against_the_instances_ports(fleet, tmp_path):
    """The calculator's inputs are its formula's variables (the catalog's rule: a wire to the default
    formula's ``a`` is refused), and the pulse generator's output is text with ``message: id``, which
    only its code knows: the agent's validation answer carries it, so the text-to-number wire is refused."""
    spec = tmp_path / "ports.yaml"
    spec.write_text(PORTS)
    out = run(["deploy", str(spec), "--dry-run"], env=fleet, check=False)
    assert out.returncode == 1, out
    assert out.stderr.splitlines() == [
        "error: calc.a: task type 'calculator' has no input 'a' with this config (it has: p, q)",
        "error: edge tick.out -> calc.p: incompatible (content: 'text' != 'number')",
        "edge: not deployed: 2 error(s)",
    ]
    spec.write_text(PORTS.replace("message: id", "message: count").replace('  - {from: "topic:in/a", to: calc.a}\n',
                                                                             ""))
    out = run(["deploy", str(spec), "--dry-run"], env=fleet)
    assert "would deploy ports version 1: 2 task(s), 2 edge(s)" in out.stdout and out.stderr == ""
    described = run(["describe", "calculator"], env=fleet).stdout.splitlines()
    assert described[described.index("PORTS FROM THE CONFIG (above: those of the default config)") + 1] == \
        "  an input for each variable of `formula`"
