"""edge.broker against real brokers: the checks NOTES.md measured, kept as regression tests,
plus the context managers' own behaviour (readiness, ports, supervision, choice, errors).

Message tests use the session brokers (``broker`` fixture, both kinds) with plain paho clients
and a fresh topic prefix each, since the brokers are shared; tests that start, kill or
misconfigure a broker make their own. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from _brokers import BROKER_KINDS, require_embedded, require_mosquitto
from _paho import Probe
from paho.mqtt.enums import CallbackAPIVersion

import edge.broker
from edge.broker import (
    EmbeddedBroker,
    ExternalBroker,
    MosquittoBroker,
    RunningBroker,
    open_broker,
    wait_for_port,
)
from edge.broker import mosquitto as mosquitto_module
from edge.broker.passwd import hash_password
from edge.errors import BrokerError, BrokerUnavailableError, ConfigError
from edge.settings import BrokerURL, Settings, parse_broker_url

TIMEOUT = 5.0
QUIET = 0.3  # how long "nothing else arrives" is watched, after a marker proved delivery works


# -- paho helpers -------------------------------------------------------------------------------
def connack(url: BrokerURL, *, port: int | None = None, username: str | None = None,
            password: str | None = None, v5: bool = False) -> bool:
    """Whether the broker accepts this CONNECT (a manual loop: a refusal costs no reconnect wait)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"auth-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    outcome: list[bool] = []
    # Mosquitto refuses with a CONNACK (not authorized); rumqttd closes the connection.
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(not reason.is_failure)
    client.on_disconnect = lambda *_a: outcome.append(False)
    client.connect(url.host, port or url.port)
    deadline = time.monotonic() + TIMEOUT
    while not outcome and time.monotonic() < deadline:
        client.loop(0.05)
    assert outcome, f"neither CONNACK nor disconnect from {url} within {TIMEOUT} s"
    if outcome[0]:
        client.disconnect()
    while client.socket() is not None and time.monotonic() < deadline:
        client.loop(0.05)
    return outcome[0]


def prefix() -> str:
    return f"test/{uuid.uuid4().hex[:12]}"


def v5_port(broker: RunningBroker) -> int:
    """Where MQTT 5 clients go: the embedded broker's second listener, Mosquitto's only one."""
    return broker.v5_port if isinstance(broker, EmbeddedBroker) else broker.port


# -- sockets, seen from /proc (no psutil) ---------------------------------------------------------
def _decode_address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listeners(port: int) -> list[tuple[str, int]]:
    """(local address, socket inode) of every TCP socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.append((_decode_address(address), int(fields[9])))
    return found


def listening_pid(port: int) -> int | None:
    """The process that holds the socket listening on ``port``."""
    inodes = {f"socket:[{inode}]" for _addr, inode in listeners(port)}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return int(pid)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def can_bind(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def eventually(condition: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


def make_mosquitto(tmp_path: Path, port: int, **options: Any) -> MosquittoBroker:
    require_mosquitto()
    return MosquittoBroker(port=port, data_dir=tmp_path / "mosquitto", **options)


def make_broker(kind: str, tmp_path: Path, port: int, **options: Any) -> MosquittoBroker | EmbeddedBroker:
    if kind == "mosquitto":
        return make_mosquitto(tmp_path, port, **options)
    require_embedded()
    return EmbeddedBroker(port=port, data_dir=tmp_path / "embedded", **options)


kinds = pytest.mark.parametrize("kind", BROKER_KINDS)


# -- the checks of NOTES.md, against both brokers -----------------------------------------------
def test_retained_on_subscribe_and_empty_payload_clears(broker: RunningBroker) -> None:
    topic = f"{prefix()}/state"
    with Probe(broker.url) as pub:
        pub.publish(topic, b"on", retain=True)
    with Probe(broker.url) as sub:
        sub.subscribe(topic)
        msg = sub.get()
        assert (msg.topic, msg.payload, msg.retain) == (topic, b"on", True)
        sub.publish(topic, b"", retain=True)  # an empty retained payload clears
        cleared = sub.get()
        assert cleared.payload == b""
    with Probe(broker.url) as late:
        late.subscribe(topic, f"{topic}/marker")
        assert late.until_marker(f"{topic}/marker") == []
        assert late.quiet() == []


def test_new_client_gets_no_retained_it_did_not_subscribe_to(broker: RunningBroker) -> None:
    mine, other = prefix(), prefix()
    with Probe(broker.url) as pub:
        pub.publish(f"{other}/x", b"not yours", retain=True)
        pub.publish(f"{mine}/x", b"yours", retain=True)
    with Probe(broker.url) as sub:
        sub.subscribe(f"{mine}/#")
        before = sub.until_marker(f"{mine}/marker")
        assert [(m.topic, m.payload) for m in before] == [(f"{mine}/x", b"yours")]
        assert sub.quiet() == []


def test_last_will_on_abrupt_close_is_retained(broker: RunningBroker) -> None:
    topic = f"{prefix()}/state"
    with Probe(broker.url) as watcher:
        watcher.subscribe(topic)
        dying = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dying-{uuid.uuid4().hex[:8]}")
        dying.will_set(topic, b"offline", qos=1, retain=True)
        connected = threading.Event()
        dying.on_connect = lambda *_a: connected.set()
        dying.connect(broker.url.host, broker.port, keepalive=30)
        deadline = time.monotonic() + TIMEOUT
        while not connected.is_set() and time.monotonic() < deadline:
            dying.loop(0.05)
        assert connected.is_set()
        # Close the TCP connection without DISCONNECT; paho then sees the EOF and drops its socket.
        sock = dying.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        while dying.socket() is not None and time.monotonic() < deadline:
            dying.loop(0.05)
        will = watcher.get()
        assert (will.topic, will.payload) == (topic, b"offline")
    with Probe(broker.url) as late:
        late.subscribe(topic)
        kept = late.get()
        assert (kept.payload, kept.retain) == (b"offline", True)


def test_wildcards(broker: RunningBroker) -> None:
    p = prefix()
    with Probe(broker.url) as sub:
        sub.subscribe(f"{p}/+/temp", f"{p}/a/#", f"{p}/marker")
        with Probe(broker.url) as pub:
            for topic in (f"{p}/x/temp", f"{p}/x/hum", f"{p}/a/b/c", f"{p}/a", f"{p}/x/y/temp"):
                pub.publish(topic, topic.encode())
        got = sorted(m.topic for m in sub.until_marker(f"{p}/marker"))
        # `#` also matches its parent level (`p/a`); `+` is exactly one level.
        assert got == sorted([f"{p}/x/temp", f"{p}/a/b/c", f"{p}/a"])


def test_shared_subscription_splits_messages(broker: RunningBroker) -> None:
    topic = f"{prefix()}/jobs"
    with Probe(broker.url) as one, Probe(broker.url) as two, Probe(broker.url) as pub:
        one.subscribe(f"$share/g/{topic}")
        two.subscribe(f"$share/g/{topic}")
        for i in range(10):
            pub.publish(topic, str(i).encode())
        counts = [0, 0]
        deadline = time.monotonic() + TIMEOUT
        while sum(counts) < 10 and time.monotonic() < deadline:
            for i, member in enumerate((one, two)):
                counts[i] += len(member.quiet(0.02))
        assert sum(counts) == 10, counts
        assert min(counts) >= 1, counts
        assert one.quiet() + two.quiet() == []


def test_persistent_session_queues_qos1_while_offline(broker: RunningBroker) -> None:
    topic = f"{prefix()}/queued"
    client_id = f"persistent-{uuid.uuid4().hex[:8]}"
    with Probe(broker.url, client_id=client_id, clean=False) as sub:
        sub.subscribe(topic, qos=1)
    with Probe(broker.url) as pub:
        for i in range(3):
            pub.publish(topic, f"m{i}".encode(), qos=1)
    with Probe(broker.url, client_id=client_id, clean=False) as back:
        assert back.session_present is True
        assert sorted(back.get().payload for _ in range(3)) == [b"m0", b"m1", b"m2"]
    # Leave no session behind on the shared broker.
    with Probe(broker.url, client_id=client_id, clean=True):
        pass


def test_one_mib_payload(broker: RunningBroker) -> None:
    topic = f"{prefix()}/big"
    payload = os.urandom(1024 * 1024)
    with Probe(broker.url) as sub, Probe(broker.url) as pub:
        sub.subscribe(topic)
        pub.publish(topic, payload, qos=1)
        assert sub.get().payload == payload


def test_mqtt5_connects_and_routes(broker: RunningBroker) -> None:
    topic = f"{prefix()}/v5"
    port = v5_port(broker)
    with Probe(broker.url, port=port, v5=True) as sub, Probe(broker.url, port=port, v5=True) as pub:
        assert sub.connack.value == 0
        sub.subscribe(topic)
        pub.publish(topic, b"five")
        assert sub.get().payload == b"five"


def test_default_bind_is_loopback(broker: RunningBroker) -> None:
    for port in {broker.port, v5_port(broker)}:
        addresses = {address for address, _inode in listeners(port)}
        assert addresses == {"127.0.0.1"}, (port, addresses)
    assert broker.url.host == "127.0.0.1"
    assert str(broker.url) == f"mqtt://127.0.0.1:{broker.port}"


# -- users --------------------------------------------------------------------------------------
@kinds
async def test_users_refuse_wrong_password_accept_right(kind: str, tmp_path: Path, free_port: int) -> None:
    async with make_broker(kind, tmp_path, free_port, users={"alice": "s3cret:!"}) as broker:
        url = broker.url
        assert (url.username, url.password) == ("alice", "s3cret:!")
        for port, v5 in {(broker.port, False), (v5_port(broker), True)}:
            def check(username: str | None, password: str | None, port: int = port, v5: bool = v5) -> bool:
                return connack(url, port=port, v5=v5, username=username, password=password)
            assert await asyncio.to_thread(check, "alice", "s3cret:!")
            assert not await asyncio.to_thread(check, "alice", "wrong")
            assert not await asyncio.to_thread(check, None, None)  # anonymous


async def test_mosquitto_password_file_without_mosquitto_passwd(
    tmp_path: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mosquitto_module, "find_mosquitto_passwd", lambda near=None: None)
    async with make_mosquitto(tmp_path, free_port, users={"bob": "hunter2"}) as broker:
        line = (broker.data_dir / "mosquitto.passwd").read_text()
        assert line.startswith("bob:$7$101$")
        assert (broker.data_dir / "mosquitto.passwd").stat().st_mode & 0o777 == 0o600
        assert await asyncio.to_thread(connack, broker.url, username="bob", password="hunter2")
        assert not await asyncio.to_thread(connack, broker.url, username="bob", password="hunter3")


def test_password_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is missing: install it: apt-get install -y mosquitto")
    path = tmp_path / "passwd"
    subprocess.run([tool, "-b", "-c", str(path), "carol", "pa ss"], check=True, timeout=10)
    _name, stored = path.read_text().strip().split(":", 1)
    salt = base64.b64decode(stored.split("$")[3])
    assert hash_password("pa ss", salt=salt) == stored


# -- the context managers -----------------------------------------------------------------------
@kinds
async def test_enter_returns_when_accepting_and_exit_frees_the_port(
    kind: str, tmp_path: Path, free_port: int
) -> None:
    broker = make_broker(kind, tmp_path, free_port)
    async with broker as running:
        assert running is broker
        # No retry here: entering promised that the port accepts already.
        with socket.create_connection(("127.0.0.1", free_port), timeout=1):
            pass
        assert broker.running
        assert repr(broker).endswith("running>")
    assert not broker.running
    assert listeners(free_port) == []
    assert can_bind(free_port)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", free_port), timeout=1).close()


@kinds
async def test_not_reentrant_but_reusable(kind: str, tmp_path: Path, free_port: int) -> None:
    broker = make_broker(kind, tmp_path, free_port)
    async with broker:
        with pytest.raises(RuntimeError, match="not re-entrant"):
            await broker.__aenter__()
    async with broker:
        assert await asyncio.to_thread(connack, broker.url)


@kinds
async def test_port_in_use_raises_broker_error(kind: str, tmp_path: Path, free_port: int) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", free_port))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(BrokerError, match=rf"127\.0\.0\.1:{free_port}: the port is already in use"):
            async with make_broker(kind, tmp_path, free_port):
                pass
        assert time.monotonic() - started < 2


async def test_mosquitto_startup_failure_carries_its_output(tmp_path: Path, free_port: int) -> None:
    # Bound but not listening: nothing accepts, so only Mosquitto's own bind can tell.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", free_port))
        with pytest.raises(BrokerError, match="exited with code") as caught:
            async with make_mosquitto(tmp_path, free_port):
                pass
    assert "Address already in use" in str(caught.value)
    with pytest.raises(BrokerError, match="no_such_option"):
        async with make_mosquitto(tmp_path, free_port, extra_config="no_such_option 1"):
            pass


@kinds
async def test_killed_broker_is_restarted_on_the_same_port(
    kind: str, tmp_path: Path, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_broker(kind, tmp_path, free_port) as broker:
        first = listening_pid(free_port)
        assert first is not None and first != os.getpid()
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: listening_pid(free_port) not in (None, first), within=10,
                         what=f"{kind} listening again on {free_port}")
        assert broker.restarts == 1
        assert await asyncio.to_thread(connack, broker.url)
    assert "unexpectedly" in caplog.text
    assert listeners(free_port) == []


async def test_mosquitto_persists_retained_messages(tmp_path: Path, free_port: int) -> None:
    topic = f"{prefix()}/kept"
    broker = make_mosquitto(tmp_path, free_port)
    async with broker:
        def publish() -> None:
            with Probe(broker.url) as pub:
                pub.publish(topic, b"across restarts", retain=True)
        await asyncio.to_thread(publish)
    assert (broker.data_dir / "mosquitto.db").is_file()
    async with broker:
        def read() -> bytes:
            with Probe(broker.url) as sub:
                sub.subscribe(topic)
                return bytes(sub.get().payload)
        assert await asyncio.to_thread(read) == b"across restarts"


async def test_embedded_config_and_tls(tmp_path: Path, free_port: int) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
               "-keyout", str(key), "-out", str(cert)]
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, timeout=30)
    broker = make_broker("embedded", tmp_path, free_port, tls_cert=cert, tls_key=key,
                         users={"dave": 'quote" and \\ back'}, max_payload=2 * 1024 * 1024)
    async with broker:
        assert broker.url.scheme == "mqtts" and broker.url.tls
        config = broker.config_path
        assert config is not None and config.stat().st_mode & 0o777 == 0o600
        text = config.read_text()
        assert 'listen = "127.0.0.1:' in text and "0.0.0.0" not in text
        assert f"max_payload_size = {2 * 1024 * 1024 + 128 * 1024}" in text

        def connect_tls() -> bool:
            client = mqtt.Client(CallbackAPIVersion.VERSION2)
            client.tls_set(ca_certs=str(cert))
            client.username_pw_set("dave", 'quote" and \\ back')
            ok: list[bool] = []
            client.on_connect = lambda _c, _u, _f, reason, _p: ok.append(not reason.is_failure)
            client.connect("127.0.0.1", broker.port)
            deadline = time.monotonic() + TIMEOUT
            while not ok and time.monotonic() < deadline:
                client.loop(0.05)
            client.disconnect()
            client.loop(0.05)
            return ok == [True]

        assert await asyncio.to_thread(connect_tls)


# -- constructors validate at once ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "options", "field"),
    [
        ("mosquitto", {"port": 0}, "port"),
        ("mosquitto", {"port": 70000}, "port"),
        ("mosquitto", {"host": "127.0.0.1\nuser root"}, "host"),
        ("mosquitto", {"max_payload": 0}, "max_payload"),
        ("mosquitto", {"users": {"a:b": "x"}}, "users"),
        ("mosquitto", {"users": {"a": ""}}, "users"),
        ("mosquitto", {"executable": "/nonexistent/mosquitto"}, "executable"),
        ("embedded", {"port": True}, "port"),
        ("embedded", {"v5_port": 1883}, "v5_port"),
        ("embedded", {"max_payload": 256 * 1024 * 1024}, "max_payload"),
        ("embedded", {"tls_cert": Path("/nonexistent.pem")}, "tls_key"),
        ("embedded", {"start_timeout": 0}, "start_timeout"),
    ],
)
def test_constructors_validate(cls: str, options: dict[str, Any], field: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        if cls == "mosquitto":
            MosquittoBroker(data_dir=tmp_path, **options)
        else:
            EmbeddedBroker(**options)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


# -- choosing a broker ----------------------------------------------------------------------------
def settings(tmp_path: Path, **options: Any) -> Settings:
    return Settings(data_dir=tmp_path, **options)


@pytest.fixture
def no_mosquitto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto_module, "find_mosquitto", lambda: None)


@pytest.fixture
def no_iotcore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "iotcore", None)  # makes `import iotcore` fail


def test_auto_prefers_mosquitto(tmp_path: Path) -> None:
    require_mosquitto()
    chosen = open_broker(settings(tmp_path, broker_port=1999, max_payload=4096))
    assert isinstance(chosen, MosquittoBroker)
    assert (chosen.port, chosen.host, chosen.max_payload) == (1999, "127.0.0.1", 4096)
    assert chosen.data_dir == tmp_path / "broker"


@pytest.mark.usefixtures("no_mosquitto")
def test_auto_falls_back_to_embedded(tmp_path: Path) -> None:
    require_embedded()
    chosen = open_broker(settings(tmp_path, broker_port=1999))
    assert isinstance(chosen, EmbeddedBroker)
    assert chosen.data_dir == tmp_path / "broker"
    with pytest.raises(BrokerUnavailableError, match=r"apt-get install mosquitto"):
        open_broker(settings(tmp_path, broker="mosquitto"))


@pytest.mark.usefixtures("no_mosquitto", "no_iotcore")
def test_no_broker_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BrokerUnavailableError) as caught:
        open_broker(settings(tmp_path))
    message = str(caught.value)
    assert "apt-get install mosquitto" in message
    assert "pip install 'edgetasks[broker]'" in message
    assert "EDGE_BROKER" in message


@pytest.mark.usefixtures("no_iotcore")
def test_embedded_without_iotcore_says_what_to_install(tmp_path: Path) -> None:
    expected = (
        "the embedded broker needs the 'broker' extra: pip install 'edgetasks[broker]'; where iotcore "
        "has no wheel for your platform (e.g. some ARM boards) install Mosquitto instead: "
        "apt-get install mosquitto, and set EDGE_BROKER=mosquitto"
    )
    with pytest.raises(BrokerUnavailableError) as caught:
        open_broker(settings(tmp_path, broker="embedded"))
    assert str(caught.value) == expected
    with pytest.raises(BrokerUnavailableError):
        EmbeddedBroker()


def test_url_means_external(tmp_path: Path) -> None:
    chosen = open_broker(settings(tmp_path, broker="mqtt://user:pw@10.0.0.5:1884"))
    assert isinstance(chosen, ExternalBroker)
    assert (chosen.url.host, chosen.port, chosen.url.password) == ("10.0.0.5", 1884, "pw")


def test_managed_broker_needs_password_with_username(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EDGE_PASSWORD"):
        open_broker(settings(tmp_path, broker="mosquitto", username="eve"))


@kinds
async def test_open_broker_end_to_end(kind: str, tmp_path: Path, free_port: int) -> None:
    (require_mosquitto if kind == "mosquitto" else require_embedded)()
    chosen = settings(tmp_path, broker=kind, broker_port=free_port, username="fay", password="pw")
    async with open_broker(chosen) as broker:
        assert broker.name == kind
        assert isinstance(broker, RunningBroker)
        assert broker.url == chosen.broker_url
        assert await asyncio.to_thread(connack, broker.url, username="fay", password="pw")
    assert (tmp_path / "broker").is_dir()


# -- an external broker -------------------------------------------------------------------------
async def test_external_broker_on_a_closed_port_fails_fast(free_port: int) -> None:
    url = parse_broker_url(f"mqtt://user:topsecret@127.0.0.1:{free_port}")
    started = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        async with ExternalBroker(url, timeout=0.3):
            pass
    assert time.monotonic() - started < 2
    assert f"mqtt://127.0.0.1:{free_port}" in str(caught.value)
    assert "topsecret" not in str(caught.value)


async def test_external_broker_reaches_a_running_one(mosquitto_broker: MosquittoBroker) -> None:
    async with ExternalBroker(mosquitto_broker.url) as broker:
        assert (broker.name, broker.port) == ("external", mosquitto_broker.port)
        assert await asyncio.to_thread(connack, broker.url)


async def test_wait_for_port(free_port: int) -> None:
    with pytest.raises(TimeoutError):
        await wait_for_port("127.0.0.1", free_port, timeout=0.2)
    assert await wait_for_port("127.0.0.1", free_port, timeout=5, alive=lambda: False) is False


# -- the package ----------------------------------------------------------------------------------
def test_exports() -> None:
    assert edge.broker.__all__ == sorted(edge.broker.__all__)
    for name in edge.broker.__all__:
        assert hasattr(edge.broker, name), name


def test_imports_without_iotcore() -> None:
    code = ("import sys; sys.modules['iotcore'] = None; import edge.broker; "
            "assert not edge.broker.embedded_available(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_the_embedded_broker_bounds_its_message_log():
    """rumqttd keeps every message in memory up to its log size: ours is 2 x 32 MiB, not 10 x 100 MB."""
    import tomllib

    from edge.broker.embedded import render_rumqttd_config

    def router(max_payload: int) -> dict[str, int]:
        text = render_rumqttd_config(host="127.0.0.1", port=1, v5_port=2, max_payload=max_payload, users={})
        return tomllib.loads(text)["router"]

    small = router(256 * 1024)
    assert (small["max_segment_size"], small["max_segment_count"]) == (32 * 1024 * 1024, 2)
    big = router(100 * 1024 * 1024)  # two of the largest packets still fit in a segment
    assert big["max_segment_size"] >= 2 * 100 * 1024 * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_a_managed_mosquitto_does_not_outlive_a_killed_owner(tmp_path: Path, free_port: int) -> None:
    """SIGKILL of the process that runs the broker (OOM killer, kill -9) takes Mosquitto with it."""
    code = ("import asyncio, sys\n"
            "from edge.broker import MosquittoBroker\n"
            "async def main():\n"
            f"    async with MosquittoBroker(port={free_port}, data_dir={str(tmp_path)!r}, persistence=False) as b:\n"
            "        print(b._proc.pid, flush=True)\n"
            "        await asyncio.sleep(60)\n"
            "asyncio.run(main())\n")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        os.kill(pid, 0)  # running
        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("mosquitto outlived its owner")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
        if owner.stdout is not None:
            owner.stdout.close()


def test_free_ports_come_from_outside_the_range_outgoing_connections_take_theirs_from() -> None:
    """A port from the kernel's ephemeral range can become the source port of any client's
    connection before a broker binds it (the suite's brokers failed to start that way)."""
    from edge.broker.ports import _EPHEMERAL_FILE

    first, last = (int(part) for part in _EPHEMERAL_FILE.read_text().split())
    picked = {edge.broker.free_port("127.0.0.1") for _ in range(50)}
    assert all(not first <= port <= last for port in picked), sorted(picked)
    assert len(picked) > 40  # random: two xdist workers asking at once rarely get the same one
    for port in list(picked)[:5]:
        assert can_bind(port)
