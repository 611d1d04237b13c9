"""Settings, logging and the command line's shape."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from exchange.cli._app import build_parser, main
from exchange.kafka.clients import client_config
from exchange.log import configure_logging, get_logger
from exchange.settings import Settings


def test_secrets_are_masked_in_repr() -> None:
    """A SASL password never appears in the settings' repr or str."""
    settings = Settings(sasl_password=SecretStr("hunter2-secret"), sasl_mechanism="PLAIN")
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """EXCHANGE_* variables configure the process."""
    monkeypatch.setenv("EXCHANGE_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("EXCHANGE_KAFKA_VERSION", "4.2.0")
    settings = Settings()
    assert settings.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.kafka_version == "4.2.0"


def test_client_config_layers_do_not_mutate_the_caller() -> None:
    """Overrides win over defaults and the caller's dict is left as it was."""
    settings = Settings(bootstrap="b:9092", sasl_mechanism="PLAIN", sasl_username="u", sasl_password=SecretStr("p"))
    overrides = {"linger.ms": 50}
    config = client_config(settings, None, {"linger.ms": 5, "acks": "all"}, overrides)
    assert config["linger.ms"] == 50
    assert config["acks"] == "all"
    assert config["bootstrap.servers"] == "b:9092"
    assert config["sasl.password"] == "p"
    assert overrides == {"linger.ms": 50}


def test_every_command_is_registered() -> None:
    """The CLI offers the foundation's commands."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None
    assert {"broker", "topics", "version"} <= set(commands)


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong command prints usage and exits 2, as argparse does."""
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_json_logs_carry_bound_context(capsys: pytest.CaptureFixture[str]) -> None:
    """In JSON mode each line is one object with the bound ce_id."""
    configure_logging(fmt="json", level="INFO")
    get_logger("test", ce_id="0190-abc").info("verified", outcome="ok")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert event["ce_id"] == "0190-abc"
    assert event["event"] == "verified"
    assert event["level"] == "info"
