"""The `watch` config file: validation, token handling, the hosted polling floor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voxmeter.watch.config import ConfigError, is_hosted, load

SECRET = "vxm_" + "s" * 43


def _write(tmp_path: Path, body: str, mode: int = 0o600) -> Path:
    path = tmp_path / "operations.toml"
    path.write_text(body, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_token_env_and_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[operation]]\nname = "acme"\nserver = 9901\ntoken_env = "ACME_TOKEN"\n',
        0o644,
    )
    cfg = load(path, {"ACME_TOKEN": SECRET})
    (op,) = cfg.operations
    assert (op.name, op.server, op.base_url, op.timezone, op.interval_minutes) == (
        "acme",
        "9901",
        None,
        "UTC",
        5,
    )
    assert op.token == SECRET
    assert op.hosted
    assert SECRET not in repr(cfg)


def test_token_in_file_needs_mode_0600(tmp_path: Path) -> None:
    body = f'[[operation]]\nname = "acme"\nserver = "9901"\ntoken = "{SECRET}"\n'
    for mode in (0o644, 0o640, 0o604):
        path = _write(tmp_path, body, mode)
        with pytest.raises(ConfigError, match="chmod 600") as info:
            load(path, {})
        assert SECRET not in str(info.value)
    assert load(_write(tmp_path, body, 0o600), {}).operations[0].token == SECRET
    assert load(_write(tmp_path, body, 0o400), {}).operations[0].token == SECRET


def test_missing_or_empty_token_env(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[operation]]\nname = "a"\nserver = "9901"\ntoken_env = "NOPE"\n')
    for env in ({}, {"NOPE": ""}, {"NOPE": "  "}):
        with pytest.raises(ConfigError, match="environment variable NOPE is empty or not set"):
            load(path, env)


def test_interval_floor_against_the_hosted_url(tmp_path: Path) -> None:
    base = '[[operation]]\nname = "a"\nserver = "9901"\ntoken_env = "T"\n'
    env = {"T": SECRET}
    for extra in (
        "interval_minutes = 4\n",
        'interval_minutes = 1\nbase_url = "https://wv9901.wolkvox.com"\n',
        'interval_minutes = 0\nbase_url = "https://WV9901.Wolkvox.com/"\n',
    ):
        with pytest.raises(ConfigError, match="at least 5 against the hosted service"):
            load(_write(tmp_path, base + extra), env)
    assert load(_write(tmp_path, base + "interval_minutes = 5\n"), env).operations[0].hosted
    local = load(
        _write(tmp_path, base + 'interval_minutes = 1\nbase_url = "http://127.0.0.1:8080"\n'), env
    )
    assert local.operations[0].interval_minutes == 1
    with pytest.raises(ConfigError, match="at least 1"):
        load(_write(tmp_path, base + 'interval_minutes = 0\nbase_url = "http://127.0.0.1"\n'), env)
    assert not local.operations[0].hosted
    assert is_hosted(None)
    assert not is_hosted("https://wolkvox.com.example.org")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no \\[\\[operation\\]\\] entries"),
        ("x = 1\n", "unknown key"),
        ("[[operation]\n", "not valid TOML"),
        ('[[operation]]\nserver = "1"\ntoken_env = "T"\n', "missing 'name'"),
        ('[[operation]]\nname = "a"\ntoken_env = "T"\n', "missing 'server'"),
        ('[[operation]]\nname = "a"\nserver = "1"\n', "exactly one of"),
        (
            '[[operation]]\nname = "a"\nserver = "1"\ntoken_env = "T"\ntimezone = "Mars/Base"\n',
            "unknown timezone",
        ),
        ('[[operation]]\nname = "a"\nserver = "1"\ntoken_env = "T"\ncolour = 1\n', "colour"),
        (
            '[[operation]]\nname = "a"\nserver = "1"\ntoken_env = "T"\ninterval_minutes = -1\n',
            "whole number",
        ),
        (
            '[[operation]]\nname = "a"\nserver = "1"\ntoken_env = "T"\n'
            '[[operation]]\nname = "a"\nserver = "2"\ntoken_env = "T"\n',
            "listed twice",
        ),
    ],
)
def test_invalid_configs(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(_write(tmp_path, body), {"T": SECRET})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml", {})
