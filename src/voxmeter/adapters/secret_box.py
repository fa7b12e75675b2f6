"""Secrets that voxmeter must use again later (webhook signing secrets, upstream tokens), sealed
at rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

The deployment key comes from `VOXMETER_SECRET_KEY` (one Fernet key, or several separated by
commas: the first seals, every one opens, so a key can be rotated without a flag day). An
embedded deployment without that variable gets a key file beside its SQLite database, created
once with mode 0600; a scaled-out deployment must set the variable, since its processes may run
on several machines. The key never reaches a log, an error message or the database.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from voxmeter.errors import ConfigError

__all__ = ["KEY_FILE_SUFFIX", "SecretBox", "key_file_for", "open_secret_box"]

KEY_FILE_SUFFIX = ".secret-key"
"""The key file of an embedded deployment: `voxmeter.db` keeps its key in
`voxmeter.db.secret-key`."""


class SecretBox:
    """Seals and opens short secrets; a sealed value is ASCII text, safe to store in any column."""

    __slots__ = ("_fernet",)

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("no secret key given")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                "the secret key is not a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                "a stored secret cannot be opened with this deployment's secret key "
                "(VOXMETER_SECRET_KEY or the key file changed since it was stored)"
            ) from None


def key_file_for(database_url: str) -> Path | None:
    """The key file of an embedded database (`sqlite:///path`), or None for any other URL."""
    if not database_url.startswith("sqlite:///"):
        return None
    return Path(database_url.removeprefix("sqlite:///") + KEY_FILE_SUFFIX)


def open_secret_box(database_url: str, secret_key: str | None) -> SecretBox:
    """The deployment's box: from the given key(s), else from (or into) the embedded key file."""
    if secret_key:
        keys = [part.strip().encode() for part in secret_key.split(",") if part.strip()]
        return SecretBox(keys)
    path = key_file_for(database_url)
    if path is None:
        raise ConfigError(
            "set VOXMETER_SECRET_KEY (a Fernet key) to store secrets: a PostgreSQL deployment "
            "keeps no key file, since its processes may run on several machines"
        )
    return SecretBox([_read_or_create(path)])


def _read_or_create(path: Path) -> bytes:
    """Creates the key file whole or not at all: written under a private name, then linked
    into place, so two processes starting at once agree on one key and never read a half file."""
    if path.exists():
        return _read(path)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(Fernet.generate_key())
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the secret key file {path} can be read by other users "
            f"(mode {stat.S_IMODE(mode):o}): run chmod 600 {path}"
        )
    key = path.read_bytes().strip()
    if not key:
        raise ConfigError(f"the secret key file {path} is empty")
    return key
