"""The secret box on a real file system: the embedded key file, the deployment key, rotation."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from voxmeter.adapters.secret_box import key_file_for, open_secret_box
from voxmeter.errors import ConfigError


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'voxmeter.db'}"


def test_an_embedded_deployment_gets_a_private_key_file_once(tmp_path: Path) -> None:
    box = open_secret_box(_url(tmp_path), None)
    sealed = box.seal("whsec_plain-secret")
    key_file = key_file_for(_url(tmp_path))
    assert key_file is not None
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "plain-secret" not in sealed
    key = key_file.read_bytes()
    # Opening again reads the same key: what was sealed opens, and the file is unchanged.
    assert open_secret_box(_url(tmp_path), None).open(sealed) == "whsec_plain-secret"
    assert key_file.read_bytes() == key
    assert list(tmp_path.iterdir()) == [key_file]  # no temporary file left behind


def _seal_in_child(url: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(open_secret_box(url, None).seal("shared"))


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    url = _url(tmp_path)
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = context.Queue()
    children = [context.Process(target=_seal_in_child, args=(url, queue)) for _ in range(4)]
    for child in children:
        child.start()
    sealed = [queue.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=30)
    box = open_secret_box(url, None)
    assert [box.open(value) for value in sealed] == ["shared"] * 4


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    open_secret_box(_url(tmp_path), None)
    key_file = key_file_for(_url(tmp_path))
    assert key_file is not None
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        open_secret_box(_url(tmp_path), None)


def test_the_deployment_key_wins_and_rotates(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = open_secret_box(_url(tmp_path), old).seal("upstream-token")
    rotated = open_secret_box(_url(tmp_path), f"{new},{old}")
    assert rotated.open(sealed_with_old) == "upstream-token"
    assert open_secret_box(_url(tmp_path), new).open(rotated.seal("x")) == "x"
    assert key_file_for(_url(tmp_path)) is not None
    assert not list(tmp_path.iterdir())  # a given key writes no key file


def test_a_wrong_key_is_a_clear_error_that_shows_neither_key_nor_secret(tmp_path: Path) -> None:
    one, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = open_secret_box(_url(tmp_path), one).seal("the-secret")
    with pytest.raises(ConfigError) as caught:
        open_secret_box(_url(tmp_path), other).open(sealed)
    message = str(caught.value)
    assert "VOXMETER_SECRET_KEY" in message
    assert one not in message
    assert other not in message
    assert "the-secret" not in message


def test_a_malformed_key_and_a_keyless_postgres_deployment_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Fernet key"):
        open_secret_box(_url(tmp_path), "not-a-key")
    with pytest.raises(ConfigError, match="VOXMETER_SECRET_KEY"):
        open_secret_box("postgresql://127.0.0.1/voxmeter", None)


def test_the_box_and_the_settings_never_show_the_key(tmp_path: Path) -> None:
    from voxmeter.config import Settings

    key = Fernet.generate_key().decode()
    settings = Settings.from_env({"VOXMETER_SECRET_KEY": key})
    assert settings.secret_key == key
    assert key not in repr(settings)
    assert key not in repr(open_secret_box(_url(tmp_path), key))
