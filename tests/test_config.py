"""Config loading, validation errors (exit 2, key named) and documentation of every key."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import Config, ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        ann = field.annotation
        inner = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            inner = [ann]
        if inner:
            sub = f"{prefix}{name}[]." if str(ann).startswith("list[") else f"{prefix}{name}."
            keys += _keys(inner[0], sub)
        else:
            keys.append(prefix + name)
    return keys


ALL_KEYS = _keys(Config)


def test_every_key_found():
    assert "email.host" in ALL_KEYS and "sources[].url" in ALL_KEYS and "bot.database" in ALL_KEYS


@pytest.mark.parametrize("key", ALL_KEYS)
def test_key_documented_in_the_configuration_reference(key):
    assert f"`{key}`" in (ROOT / "docs" / "configuration.md").read_text(), f"{key} missing from docs/configuration.md's table"


@pytest.mark.parametrize("key", ALL_KEYS)
def test_key_documented_in_config_toml(key):
    text = (ROOT / "config.toml").read_text()
    section, _, leaf = key.rpartition(".")
    section = section.removesuffix("[]")
    header = rf"^#?\s*\[\[?{re.escape(section)}\]\]?\s*$"
    assert re.search(header, text, re.M), f"[{section}] missing from config.toml"
    assert re.search(rf"^#?\s*{re.escape(leaf)}\s*=", text, re.M), f"{key} missing from config.toml"


def test_shipped_config_is_valid():
    cfg = load_config(ROOT / "config.toml")
    assert cfg.bot.language == "fr" and cfg.sources


CASES = [
    ({"email": {"sender": "a@b.c", "port": "x"}}, "config.toml: email.port: Input should be a valid integer"),
    ({"bot": {"colour": 1}}, "config.toml: bot.colour: unknown key"),
    ({"email": {"host": "h"}}, "config.toml: email.sender: required value is missing"),
    ({"sources": [{"name": "a"}]}, "config.toml: sources[0].url: required value is missing"),
    ({"bot": {"timezone": "Mars/Olympus"}}, "config.toml: bot.timezone: unknown time zone 'Mars/Olympus'"),
    ({"email": {"sender": "a@b.c", "tls": "maybe"}}, "config.toml: email.tls:"),
    ({"digest": {"schedule": "every day"}}, "config.toml: digest.schedule: not a cron expression"),
    ({"telegram": {"channel": "@x"}}, "config.toml: telegram.token: required value is missing"),
    ({"delivery": {"detail_days": 0}}, "config.toml: delivery.detail_days: Input should be greater than or equal to 1"),
    ({"bot": {"retention_days": 5}, "delivery": {"detail_days": 6}},
     "delivery.detail_days (6) must not exceed bot.retention_days (5)"),
]


def test_default_detail_days_follow_a_short_retention():
    assert parse_config({"bot": {"retention_days": 3}}, Path("."), env={}).delivery.detail_days == 3


@pytest.mark.parametrize("data,message", CASES)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data, Path("."), env={})
    assert message in str(exc.value)


def test_env_secret_overrides_file():
    cfg = parse_config({"telegram": {"token": "file", "channel": "@c"}}, Path("."),
                       env={"FLASHBOT_TELEGRAM_TOKEN": "env"})
    assert cfg.telegram.token == "env"


def test_absent_channels_are_off_and_paths_resolve(tmp_path):
    cfg = parse_config({}, tmp_path, env={})
    assert cfg.channels_off() == ["email", "telegram"]
    assert cfg.database_url == f"sqlite:///{tmp_path / 'subscribers.db'}"


def test_cli_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[email]\nsender = 'a@b.c'\nport = 'twenty-five'\n")
    proc = subprocess.run([sys.executable, "-m", "bot", "--config", str(bad), "sources", "list"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "config.toml: email.port: Input should be a valid integer" in proc.stderr
