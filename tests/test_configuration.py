from __future__ import annotations

import pytest

from strom.configuration import (
    OPTIONS,
    StromConfig,
    load_configuration,
    parse_duration_ms,
    parse_dynamic_properties,
)
from strom.errors import ConfigurationError


def test_defaults_cover_every_key():
    config = StromConfig()
    assert config["jobmanager.rpc.port"] == 6123
    assert config["rest.port"] == 8081
    assert config["taskmanager.numberOfTaskSlots"] == 1
    assert config["pipeline.max-parallelism"] == 128
    assert set(config) == set(OPTIONS)
    for option in OPTIONS.values():
        assert option.description and option.allowed


def test_flat_and_nested_keys(tmp_path):
    (tmp_path / "strom-conf.yaml").write_text(
        "jobmanager:\n  rpc:\n    address: host1\n    port: 7000\n"
        "taskmanager.numberOfTaskSlots: 4\n"
        "heartbeat:\n  timeout: 3 s\n"
    )
    config = load_configuration(tmp_path)
    assert config["jobmanager.rpc.address"] == "host1"
    assert config["jobmanager.rpc.port"] == 7000
    assert config["taskmanager.numberOfTaskSlots"] == 4
    assert config["heartbeat.timeout"] == 3000
    assert config.jobmanager_address == "host1:7000"


def test_missing_file_gives_defaults(tmp_path):
    assert load_configuration(tmp_path)["rest.port"] == 8081


def test_unknown_key_names_key_and_suggests(tmp_path):
    (tmp_path / "strom-conf.yaml").write_text("taskmanager.numberOfTaskSlot: 2\n")
    with pytest.raises(ConfigurationError) as error:
        load_configuration(tmp_path)
    message = str(error.value)
    assert "taskmanager.numberOfTaskSlot'" in message
    assert "Did you mean 'taskmanager.numberOfTaskSlots'" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("jobmanager.rpc.port", "not-a-port", "a port number"),
        ("jobmanager.rpc.port", 70000, "a port number"),
        ("taskmanager.numberOfTaskSlots", 0, "an integer from 1"),
        ("heartbeat.timeout", "soon", "a duration"),
        ("restart-strategy.type", "sometimes", "fixed-delay"),
        ("web.submit.enable", "perhaps", "true or false"),
    ],
)
def test_bad_values_name_key_value_and_rule(tmp_path, key, value, expected):
    (tmp_path / "strom-conf.yaml").write_text(f"{key}: {value}\n")
    with pytest.raises(ConfigurationError) as error:
        load_configuration(tmp_path)
    message = str(error.value)
    assert key in message and str(value) in message and expected in message


def test_not_a_map_and_bad_yaml(tmp_path):
    (tmp_path / "strom-conf.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigurationError, match="map"):
        load_configuration(tmp_path)
    (tmp_path / "strom-conf.yaml").write_text("a: [\n")
    with pytest.raises(ConfigurationError, match="YAML"):
        load_configuration(tmp_path)


def test_overrides_and_env_conf_dir(tmp_path, monkeypatch):
    (tmp_path / "strom-conf.yaml").write_text("rest.port: 9000\n")
    monkeypatch.setenv("STROM_CONF_DIR", str(tmp_path))
    config = load_configuration(overrides={"rest.port": "9100"})
    assert config["rest.port"] == 9100
    with pytest.raises(ConfigurationError, match="command line"):
        load_configuration(overrides={"rest.port": "x"})


def test_durations_and_dynamic_properties():
    assert parse_duration_ms("100 ms") == 100
    assert parse_duration_ms("10s") == 10_000
    assert parse_duration_ms("1 min") == 60_000
    assert parse_duration_ms(250) == 250
    with pytest.raises(ValueError):
        parse_duration_ms("-5")
    assert parse_dynamic_properties(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigurationError):
        parse_dynamic_properties(["novalue"])
