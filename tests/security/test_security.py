"""Security end to end: TLS with a CA made here, passwords, ACLs enforced by Mosquitto, secrets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent import Agent
from edge.acl import AclFiles, generate_acl, write_acl_files
from edge.broker import MosquittoBroker, free_port
from edge.broker.mosquitto import find_mosquitto
from edge.broker.ports import wait_for_port
from edge.bus import Bus, TLSOptions
from edge.controller import Controller
from edge.errors import ConnectError, SpecError
from edge.frames import decode_frame, decode_value, encode_frame, encode_value
from edge.graph import encode_spec, parse_spec
from edge.settings import load_settings
from edge.topics import Topics

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")
TIMEOUT = 10.0


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost, made with openssl."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=edgetasks test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "2", "-extfile", "san.ext")
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


@pytest.mark.parametrize("transport", ["mqtt5", "paho"])
async def test_tls_and_password_end_to_end(tmp_path, transport):
    ca, cert, key = make_ca(tmp_path)
    plain, tls_port = free_port(), free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    async with MosquittoBroker(port=plain, data_dir=tmp_path / "b", users={"pi": "s3cret"}, extra_config=extra):
        url = f"mqtts://pi:s3cret@127.0.0.1:{tls_port}"
        async with Bus(url, tls=TLSOptions(ca=ca), transport=transport) as bus, bus.subscribe("secure/x") as sub:
            await bus.publish("secure/x", b"over TLS", qos=1)
            async with asyncio.timeout(TIMEOUT):
                assert (await sub.get()).payload == b"over TLS"
        with pytest.raises(ConnectError):  # a server our CA did not sign is refused
            async with Bus(url, transport=transport, connect_timeout=3):
                pass
        with pytest.raises(ConnectError):
            async with Bus(f"mqtts://pi:wrong@127.0.0.1:{tls_port}", tls=TLSOptions(ca=ca), transport=transport,
                           connect_timeout=3):
                pass
        settings = load_settings(broker=f"mqtts://127.0.0.1:{tls_port}", username="pi", password="s3cret",
                                 tls_ca=ca, agent_id="tls-agent", data_dir=tmp_path / "a")
        async with Agent(settings) as agent:  # the settings carry TLS and credentials all the way
            await asyncio.wait_for(agent.started.wait(), TIMEOUT)


def test_acl_text_names_exactly_what_each_user_may_do():
    spec = parse_spec({"id": "d", "tasks": [{"id": "c", "type": "counter", "agent": "a1"},
                                            {"id": "s", "type": "scale", "agent": "a2"}],
                       "edges": [{"from": "c.out", "to": "s.in"}, {"from": "topic:sensor/t", "to": "c.in"},
                                 {"from": "s.out", "to": "topic:out/x"}]})
    text = generate_acl(namespace="ns", agents=["a1", "a2"], controllers=["ctl"], specs=[spec])
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n") if b.startswith("user")}
    assert blocks["user ctl"] == ["topic readwrite edge/v1/ns/#"]
    assert blocks["user a2"] == [
        "topic readwrite edge/v1/ns/agents/a2/#", "topic readwrite edge/v1/ns/catalogs/+",
        "topic read edge/v1/ns/deployments/+",
        "topic write edge/v1/ns/replies/+",
        "topic write edge/v1/ns/deployments/d/status/s", "topic write edge/v1/ns/streams/d/s/#",
        "topic write out/x", "topic read edge/v1/ns/streams/d/c/out"]
    assert "topic read sensor/t" in blocks["user a1"]
    # inject topics lie in each agent's subtree (agents/{id}/inject/...): no rule of their own
    assert not any("inject" in rule for block in blocks.values() for rule in block)


@contextlib.asynccontextmanager
async def acl_mosquitto(files: AclFiles, *ports: int) -> AsyncIterator[None]:
    """Mosquitto with the listeners `edge acl` wrote (the setup docs/security.md describes), on ``ports``."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    conf = files.listeners.parent / "mosquitto.conf"
    conf.write_text(f"user {user}\npersistence false\nlog_dest stderr\nconnection_messages true\n"
                    + files.listeners.read_text())
    proc = await asyncio.create_subprocess_exec(find_mosquitto() or "mosquitto", "-c", str(conf),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        for port in ports:
            assert await wait_for_port("127.0.0.1", port, timeout=TIMEOUT, alive=lambda: proc.returncode is None), \
                (await proc.stderr.read()).decode() if proc.stderr else ""
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), TIMEOUT)


def _acl_files(tmp_path: Path, ns: str, specs=()) -> tuple[AclFiles, int, int, dict[str, str]]:
    passwords = {"ctl": "ctl-pass", "a1": "a1-pass", "a2": "a2-pass"}
    agent_port, controller_port = free_port(), free_port()
    files = write_acl_files(tmp_path / "acl", namespace=ns, agents=["a1", "a2"], controllers=["ctl"], specs=specs,
                            passwords=passwords, broker_url=f"mqtt://127.0.0.1:{agent_port}",
                            controller_port=controller_port)
    return files, agent_port, controller_port, passwords


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


async def test_acl_is_enforced_by_mosquitto(tmp_path):
    ns = f"acl{uuid.uuid4().hex[:6]}"
    topics = Topics(ns)
    spec = parse_spec({"id": "d", "tasks": [{"id": "c", "type": "counter", "agent": "a1",
                                             "config": {"interval_ms": 20}}]})
    files, port, controller_port, passwords = _acl_files(tmp_path, ns, specs=[spec])
    assert files.passwords.stat().st_mode & 0o077 == 0
    assert files.controller_passwords.stat().st_mode & 0o077 == 0
    async with acl_mosquitto(files, port, controller_port):
        def url(user: str) -> str:  # as each user's credentials file says
            return _env_file(files.credentials[user])["EDGE_BROKER"].replace(
                "://", f"://{user}:{passwords[user]}@", 1)

        assert url("a1").endswith(f":{port}") and url("ctl").endswith(f":{controller_port}")
        async with Bus(url("ctl")) as ctl, ctl.subscribe(f"{topics.root}/#") as everything, \
                Bus(url("a1"), transport="paho") as a1:
            # a1 may announce itself, but not speak for a2 nor publish a deployment spec
            await a1.publish(topics.agent_state("a2"), encode_value({"online": True, "epoch": 99}), qos=1)
            await a1.publish(topics.deployment("evil"), encode_spec(spec), qos=1)
            # nor inject into a2's tasks (only controllers, and a2 itself)
            await a1.publish(topics.inject("a2", "d", "s", "in"), encode_frame(1), qos=1)
            await a1.publish(topics.agent_state("a1"), encode_value({"online": True, "epoch": 1}), qos=1)
            async with asyncio.timeout(TIMEOUT):
                first = await everything.get()
            assert first.topic == topics.agent_state("a1")
            await asyncio.sleep(0.3)
            assert [m.topic for m in _drain(everything)] == []
            await ctl.publish(topics.agent_state("a1"), b"", qos=1, retain=True)
        # with the ACL, a real agent still runs what is placed on it, and its frames get out
        settings = load_settings(broker=url("a1"), namespace=ns, agent_id="a1", data_dir=tmp_path / "a1")
        async with Agent(settings, task_sources=[SAMPLES]), Bus(url("ctl")) as ctl, \
                ctl.subscribe(topics.stream("d", "c", "out")) as frames:
            await ctl.publish(topics.deployment("d"), encode_spec(spec), qos=1, retain=True)
            async with asyncio.timeout(TIMEOUT):
                assert isinstance(decode_frame((await frames.get()).payload).value, int)
            await ctl.publish(topics.deployment("d"), b"", qos=1, retain=True)
            # and it may answer a controller's validation request (edge.validation) on a replies topic
            async with Controller(load_settings(broker=url("ctl"), namespace=ns, data_dir=tmp_path / "c")) as c:
                await c.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].offers("scale"), TIMEOUT)
                report = await c.validate({"id": "v", "tasks": [{"id": "s", "type": "scale", "agent": "a1",
                                                                 "config": {"factor": -1}}]})
                assert report.unchecked == ()  # the agent answered (else: "did not answer within 3 s")
                assert report.errors == ("task 's': config.factor: -1 is less than or equal to the minimum of 0",)


def _paho_connect(port: int, user: str, password: str, client_id: str) -> tuple[mqtt.Client, str]:
    """A plain paho client, as an attacker would use; the CONNACK's reason."""
    done = threading.Event()
    result: list[str] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(user, password)
    client.reconnect_delay_set(min_delay=60, max_delay=60)  # one connection, no takeover war

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object = None) -> None:
        result.append(str(reason))
        done.set()

    def on_disconnect(_c: object, _u: object, _f: object, reason: object, _p: object = None) -> None:
        result.append(f"disconnected: {reason}")
        done.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert done.wait(TIMEOUT), "no CONNACK"
    return client, result[0]


async def test_an_agent_cannot_take_over_another_agents_connection(tmp_path):
    """a1's credentials with a2's client id neither kick a2 nor publish its will, on either listener."""
    ns = f"cid{uuid.uuid4().hex[:6]}"
    topics = Topics(ns)
    files, port, controller_port, passwords = _acl_files(tmp_path, ns)
    async with acl_mosquitto(files, port, controller_port):
        env = _env_file(files.credentials["a2"])
        settings = load_settings(broker=env["EDGE_BROKER"], username="a2", password=passwords["a2"], namespace=ns,
                                 agent_id="a2", data_dir=tmp_path / "a2")
        ctl_url = f"mqtt://ctl:{passwords['ctl']}@127.0.0.1:{controller_port}"
        async with Agent(settings) as a2, Bus(ctl_url) as ctl, ctl.subscribe(topics.agent_state("a2")) as states:
            async with asyncio.timeout(TIMEOUT):
                while not decode_value((await states.get()).payload).get("online"):
                    pass
            reasons = []
            for target, client_id in ((port, topics.client_id("agent", "a2")), (port, "a2"),
                                      (controller_port, topics.client_id("agent", "a2"))):
                client, reason = await asyncio.to_thread(_paho_connect, target, "a1", passwords["a1"], client_id)
                reasons.append(reason)
                try:
                    with pytest.raises(TimeoutError):  # a2's will ("offline") is never published
                        async with asyncio.timeout(1.0):
                            while decode_value((await states.get()).payload).get("online"):
                                pass
                    assert a2.bus.is_connected
                finally:
                    client.loop_stop()
                    client.disconnect()
            # on the agents' listener a1 is let in, as itself (its client id is its user name);
            # on the controllers' listener agents are not let in at all
            assert reasons[:2] == ["Success", "Success"] and reasons[2] != "Success", reasons


def _drain(sub):
    out = []
    while sub.queued:
        out.append(sub.get_nowait())
    return out


def test_specs_refuse_secrets_in_clear():
    with pytest.raises(SpecError, match=r"config.stream_key holds a secret in clear"):
        parse_spec({"id": "d", "tasks": [{"id": "o", "type": "x", "config": {"url": "rtmp://h", "stream_key": "k"}}]})
    with pytest.raises(SpecError, match=r"config.auth.password holds a secret"):
        parse_spec({"id": "d", "tasks": [{"id": "o", "type": "x", "config": {"auth": {"password": "p"}}}]})
    ok = parse_spec({"id": "d", "tasks": [{"id": "o", "type": "x", "config": {
        "stream_key": {"$secret": "yt"}, "password": "$secret:pw", "token_count": 3}}]})
    assert ok.tasks[0].config["stream_key"] == {"$secret": "yt"}


@pytest.mark.parametrize(("config", "where"), [
    ({"password": 123456}, "config.password holds a secret in clear"),
    ({"secret_key": "k"}, "config.secret_key holds a secret in clear"),
    ({"aws_secret_access_key": "wJalrXUtnFEMI"}, "config.aws_secret_access_key holds a secret in clear"),
    ({"pwd": "hunter2"}, "config.pwd holds a secret in clear"),
    ({"db": {"passwords": ["a", "b"]}}, r"config.db.passwords holds a secret in clear"),
    ({"url": "mqtt://user:hunter2@host"}, r"config.url holds a password in clear inside a URL"),
    ({"targets": ["https://ok.example", "https://u:p@h.example/x"]}, r"config.targets\[1\] holds a password"),
])
def test_secret_check_catches_numbers_lists_names_and_urls(config, where):
    with pytest.raises(SpecError, match=where):
        parse_spec({"id": "d", "tasks": [{"id": "o", "type": "x", "config": config}]})


@pytest.mark.parametrize("config", [
    {"token_count": 3}, {"password": None}, {"use_password": True}, {"url": "mqtt://user@host:1883"},
    {"passwords": [{"$secret": "a"}, "$secret:b"]}, {"url": {"$secret": "full_url"}}, {"keyframe": "k"},
])
def test_secret_check_lets_references_and_harmless_fields_through(config):
    assert parse_spec({"id": "d", "tasks": [{"id": "o", "type": "x", "config": config}]}).tasks[0].config == config


async def test_secrets_stay_on_the_agent(broker, tmp_path):
    ns = f"sec{uuid.uuid4().hex[:6]}"
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text("factor: '7'\n")
    secrets_file.chmod(0o600)
    settings = load_settings(broker=broker.url.geturl(), namespace=ns, agent_id="a1", data_dir=tmp_path / "a1",
                             secrets_file=secrets_file)
    secret_factor = {"factor": {"$secret": "factor"}}
    spec = {"id": "d", "tasks": [{"id": "s", "type": "scale", "agent": "a1", "config": secret_factor},
                                 {"id": "u", "type": "scale", "agent": "a1", "config": {"factor": "$secret:nope"}}],
            "edges": [{"from": "topic:in/sec", "to": "s.in"}, {"from": "s.out", "to": "topic:out/sec"}]}
    topics = Topics(ns)
    async with Agent(settings, task_sources=[SAMPLES]), \
            Controller(load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "c")) as ctl:
        await ctl.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].types, TIMEOUT)
        await ctl.deploy(parse_spec(spec))
        await ctl.fleet.wait_for(lambda f: len([s for s in f.tasks_of("d") if s.state in ("running", "invalid")]) == 2,
                                 TIMEOUT)
        unknown = ctl.fleet.statuses[("d", "u")]
        assert unknown.state == "invalid" and "unknown secret 'nope' on agent a1" in (unknown.error or "")
        async with ctl.bus.subscribe("out/sec") as out, ctl.bus.subscribe(topics.deployment("d")) as retained:
            await ctl.bus.publish("in/sec", encode_frame(2))
            async with asyncio.timeout(TIMEOUT):
                assert decode_frame((await out.get()).payload).value == 14.0
                published = decode_value((await retained.get()).payload)
        assert published["tasks"][0]["config"] == {"factor": {"$secret": "factor"}}  # never the value
        await ctl.remove("d")
