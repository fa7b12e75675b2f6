"""The `watch` configuration: a TOML file listing the mirrors to keep.

```toml
[[operation]]
name = "acme"                 # the mirror's operation name (required)
server = "9901"               # server code (required)
base_url = "https://..."      # optional; default the hosted https://wv{server}.wolkvox.com
timezone = "America/Bogota"   # optional, default UTC: the upstream operation's timezone
token_env = "ACME_TOKEN"      # the token's environment variable ...
# token = "..."               # ... or the token itself: then the file must be mode 0600
interval_minutes = 5          # optional, default 5; at least 1, and 5 against the hosted URL
budget_percent = 25           # optional, default 25: share of the upstream's daily quota
stale_minutes = 60            # optional, default 60
currency = "USD"              # optional, default USD: the mirror's billing currency
```

Tokens are kept out of every repr and message.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from voxmeter.domain.months import MonthError, zone

DEFAULT_INTERVAL_MINUTES = 5
HOSTED_MIN_INTERVAL_MINUTES = 5
HOSTED_DOMAIN = "wolkvox.com"
_KEYS = {
    "name",
    "server",
    "base_url",
    "timezone",
    "token_env",
    "token",
    "interval_minutes",
    "budget_percent",
    "stale_minutes",
    "currency",
}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is shown to the user (never a token)."""


@dataclass(frozen=True, slots=True)
class OperationConfig:
    name: str
    server: str
    token: str = field(repr=False)
    base_url: str | None = None
    timezone: str = "UTC"
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES
    budget_percent: int = 25
    stale_minutes: int = 60
    currency: str = "USD"

    @property
    def hosted(self) -> bool:
        return is_hosted(self.base_url)


@dataclass(frozen=True, slots=True)
class WatchConfig:
    operations: tuple[OperationConfig, ...]


def is_hosted(base_url: str | None) -> bool:
    """Whether a base URL is the hosted service (the default when none is given)."""
    if base_url is None:
        return True
    host = (urlsplit(base_url).hostname or "").lower()
    return host == HOSTED_DOMAIN or host.endswith("." + HOSTED_DOMAIN)


def _str(entry: Mapping[str, object], key: str, where: str, *, required: bool) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: missing {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{where}: {key!r} must be a string")
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{where}: {key!r} must not be empty")
    return text


def _operation(
    entry: object, index: int, environ: Mapping[str, str], names: set[str]
) -> OperationConfig:
    where = f"operation #{index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = _str(entry, "name", where, required=True)
    assert name is not None
    where = f"operation {name!r}"
    if name in names:
        raise ConfigError(f"{where}: listed twice")
    names.add(name)
    server = _str(entry, "server", where, required=True)
    assert server is not None
    base_url = _str(entry, "base_url", where, required=False)
    if base_url is not None and urlsplit(base_url).scheme not in ("http", "https"):
        raise ConfigError(f"{where}: base_url must start with http:// or https://")
    timezone = _str(entry, "timezone", where, required=False) or "UTC"
    try:
        zone(timezone)
    except MonthError as exc:
        raise ConfigError(f"{where}: {exc}") from exc

    interval = _whole(entry, "interval_minutes", DEFAULT_INTERVAL_MINUTES, where)
    if is_hosted(base_url) and interval < HOSTED_MIN_INTERVAL_MINUTES:
        raise ConfigError(
            f"{where}: interval_minutes must be at least {HOSTED_MIN_INTERVAL_MINUTES} "
            "against the hosted service"
        )
    if interval < 1:
        raise ConfigError(f"{where}: interval_minutes must be at least 1")

    has_token = "token" in entry
    token_env = _str(entry, "token_env", where, required=False)
    if has_token == (token_env is not None):
        raise ConfigError(f"{where}: give exactly one of 'token_env' or 'token'")
    if token_env is not None:
        token = environ.get(token_env, "").strip()
        if not token:
            raise ConfigError(f"{where}: environment variable {token_env} is empty or not set")
    else:
        raw = entry["token"]
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"{where}: 'token' must be a non-empty string")
        token = raw.strip()
    return OperationConfig(
        name=name,
        server=server,
        token=token,
        base_url=base_url,
        timezone=timezone,
        interval_minutes=interval,
        budget_percent=_whole(entry, "budget_percent", 25, where),
        stale_minutes=_whole(entry, "stale_minutes", 60, where),
        currency=_str(entry, "currency", where, required=False) or "USD",
    )


def _whole(entry: Mapping[str, object], key: str, default: int, where: str) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {key} must be a whole number")
    return value


def check_private(path: Path) -> None:
    """Refuse a file holding a token unless only its owner can read it (mode 0600 or 0400)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds a token but its mode is {mode:04o}; "
            f"run `chmod 600 {path}` or use token_env instead"
        )


def load(path: Path, environ: Mapping[str, str] | None = None) -> WatchConfig:
    """Read and validate a config file; ConfigError with a one-line message on any problem."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"operation"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; expected [[operation]]")
    entries = data.get("operation")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[operation]] entries")
    if any(isinstance(e, dict) and "token" in e for e in entries):
        check_private(path)
    names: set[str] = set()
    operations = tuple(_operation(e, i, env, names) for i, e in enumerate(entries))
    return WatchConfig(operations)
