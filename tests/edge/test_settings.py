from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.settings import BrokerKind, load_settings, parse_broker_url, sanitize_id


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("EDGE_") or name in ("DATA_DIR", "NODE_NAME"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults():
    s = load_settings()
    assert s.broker_kind is BrokerKind.AUTO
    assert str(s.broker_url) == "mqtt://127.0.0.1:1883"
    assert s.namespace == "default"
    assert s.controller_host == "127.0.0.1" and s.controller_port == 8080
    assert s.agent_id and len(s.agent_id) <= 64
    assert "edgetasks" in str(s.data_dir)


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("EDGE_BROKER", "mqtts://user:p%40ss@broker.example:8884")
    monkeypatch.setenv("EDGE_NAMESPACE", "lab")
    monkeypatch.setenv("EDGE_LOG_LEVEL", "debug")
    monkeypatch.setenv("DATA_DIR", "/tmp/edge-data")
    monkeypatch.setenv("NODE_NAME", "pi-7")
    s = load_settings()
    url = s.broker_url
    assert (url.scheme, url.host, url.port, url.username, url.password) == (
        "mqtts", "broker.example", 8884, "user", "p@ss")
    assert url.tls and str(url) == "mqtts://broker.example:8884"
    assert s.namespace == "lab" and s.log_level == "DEBUG"
    assert s.data_dir == Path("/tmp/edge-data") and s.agent_id == "pi-7"


def test_edge_names_win_over_streamtasks_names(monkeypatch):
    monkeypatch.setenv("DATA_DIR", "/tmp/a")
    monkeypatch.setenv("EDGE_DATA_DIR", "/tmp/b")
    monkeypatch.setenv("NODE_NAME", "x")
    monkeypatch.setenv("EDGE_AGENT_ID", "y")
    s = load_settings()
    assert s.data_dir == Path("/tmp/b") and s.agent_id == "y"


def test_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("EDGE_NAMESPACE=fromfile\nEDGE_BROKER=embedded\n")
    s = load_settings()
    assert s.namespace == "fromfile" and s.broker_kind is BrokerKind.EMBEDDED


def test_credentials_from_settings_join_the_url(monkeypatch):
    monkeypatch.setenv("EDGE_USERNAME", "agent")
    monkeypatch.setenv("EDGE_PASSWORD", "pw-7f3a9c")
    s = load_settings()
    assert s.broker_url.username == "agent" and s.broker_url.password == "pw-7f3a9c"
    assert "pw-7f3a9c" not in repr(s)


def test_passwords_from_files_as_container_secrets(monkeypatch, tmp_path):
    (tmp_path / "panel").write_text("panel-pw-41c2\n")
    (tmp_path / "mqtt").write_text("  mqtt-pw-9d0e  ")
    monkeypatch.setenv("EDGE_CONTROLLER_PASSWORD_FILE", str(tmp_path / "panel"))
    monkeypatch.setenv("EDGE_PASSWORD_FILE", str(tmp_path / "mqtt"))
    monkeypatch.setenv("EDGE_USERNAME", "agent")
    s = load_settings()
    assert s.controller_password is not None and s.controller_password.get_secret_value() == "panel-pw-41c2"
    assert s.broker_url.password == "mqtt-pw-9d0e"
    assert "pw-41c2" not in repr(s)
    monkeypatch.setenv("EDGE_CONTROLLER_PASSWORD", "given-directly")  # the variable itself wins
    assert load_settings().controller_password.get_secret_value() == "given-directly"


@pytest.mark.parametrize(("content", "needle"), [(None, "cannot read"), ("\n", "is empty")])
def test_an_unreadable_or_empty_password_file_is_one_clear_error(monkeypatch, tmp_path, content, needle):
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("EDGE_CONTROLLER_PASSWORD_FILE", str(path))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"EDGE_CONTROLLER_PASSWORD_FILE: {path}" in str(info.value) or (
        "EDGE_CONTROLLER_PASSWORD_FILE: cannot read" in str(info.value))
    assert needle in str(info.value) and info.value.field == "EDGE_CONTROLLER_PASSWORD_FILE"


@pytest.mark.parametrize(("var", "value", "needle"), [
    ("EDGE_BROKER", "http://x", "EDGE_BROKER: unsupported scheme 'http'"),
    ("EDGE_BROKER", "mqtt://", "EDGE_BROKER: 'mqtt://' has no host name"),
    ("EDGE_BROKER_PORT", "abc", "EDGE_BROKER_PORT"),
    ("EDGE_BROKER_PORT", "70000", "EDGE_BROKER_PORT"),
    ("EDGE_NAMESPACE", "a/b", "EDGE_NAMESPACE: invalid namespace 'a/b'"),
    ("NODE_NAME", "bad id", "EDGE_AGENT_ID: invalid agent id 'bad id'"),
    ("EDGE_LOG_LEVEL", "chatty", "EDGE_LOG_LEVEL"),
    ("EDGE_KEEPALIVE", "0", "EDGE_KEEPALIVE"),
])
def test_invalid_values_name_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in str(info.value)
    assert str(info.value).count("\n") == 1  # one line per bad variable after the heading


def test_all_bad_variables_are_reported_at_once(monkeypatch):
    monkeypatch.setenv("EDGE_BROKER_PORT", "x")
    monkeypatch.setenv("EDGE_NAMESPACE", "#")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "EDGE_BROKER_PORT" in str(info.value) and "EDGE_NAMESPACE" in str(info.value)


@pytest.mark.parametrize(("host", "expected"), [
    ("raspberrypi", "raspberrypi"), ("my host.local", "my-host"), ("pi_4.lan", "pi_4"), ("ünïcode", "n-code"),
    ("...", "agent"), ("x" * 100, "x" * 64),
])
def test_host_names_are_sanitised(host, expected):
    assert sanitize_id(host) == expected


def test_websocket_url_keeps_its_path():
    url = parse_broker_url("ws://h:9001/mqtt-ws")
    assert url.transport == "websockets" and url.path == "/mqtt-ws" and url.port == 9001


def test_every_setting_is_documented():
    from edge.settings import Settings

    text = (Path(__file__).parents[2] / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`EDGE_{name.upper()}`" in text, name


def test_input_queues_are_bounded_by_bytes_frames_and_optionally_age(monkeypatch):
    s = load_settings()
    assert (s.queue_bytes, s.queue_size, s.queue_age) == (4 * 1024 * 1024, 10_000, None)
    monkeypatch.setenv("EDGE_QUEUE_BYTES", "65536")
    monkeypatch.setenv("EDGE_QUEUE_SIZE", "200")
    monkeypatch.setenv("EDGE_QUEUE_AGE", "2.5")
    s = load_settings()
    assert (s.queue_bytes, s.queue_size, s.queue_age) == (65536, 200, 2.5)
    for off in ("", "0"):
        monkeypatch.setenv("EDGE_QUEUE_AGE", off)
        assert load_settings().queue_age is None
    for name, bad in [("EDGE_QUEUE_AGE", "-1"), ("EDGE_QUEUE_AGE", "soon"), ("EDGE_QUEUE_BYTES", "100")]:
        monkeypatch.setenv("EDGE_QUEUE_AGE", "")
        monkeypatch.setenv("EDGE_QUEUE_BYTES", "65536")
        monkeypatch.setenv(name, bad)
        with pytest.raises(ConfigError, match=name):
            load_settings()
