"""Configuration as small value objects, passed in; nothing global."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voxmeter.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./voxmeter.db"


@dataclass(frozen=True, slots=True)
class Settings:
    """How one voxmeter server runs. Flags override the environment, which overrides these."""

    database_url: str = DEFAULT_DATABASE_URL
    """`sqlite:///path` (embedded) or `postgresql://...` (scaled out)."""
    redis_url: str | None = None
    """`redis://...`: limits shared by every process through Redis. Without it, limits live in
    the one server process (embedded mode)."""
    redis_prefix: str = "voxmeter"
    """Prefix of every Redis key, so several deployments can share one Redis."""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    grace_days: int = 3
    """Days after a month ends (operation timezone) before it closes by itself."""
    max_in_flight: int = 2
    """Requests one token may have in flight; the next is refused at once."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body accepted (a full 10,000-event batch is a few MiB)."""
    request_timeout: float = 60.0
    """Seconds before a request is answered with an error instead of left hanging."""
    catalog_path: Path | None = None
    """A deployment's own product catalog file; the packaged one by default."""
    sqlite_cache_mib: int = 16
    """SQLite page cache of the writer connection. The operating system caches the file too,
    so a larger cache buys little and costs resident memory."""
    switch_interval: float = 0.0002
    """Seconds between GIL hand-offs (sys.setswitchinterval). Shorter than Python's 5 ms
    default so an ingest thread that finishes its SQLite work gets the interpreter back quickly;
    measured at about +30 % ingest throughput on 2 cores."""
    currency: str = "USD"
    """The billing currency of operations created without `--currency` (ISO 4217)."""
    auto_close_interval: float = 60.0
    """Seconds between checks for months whose grace period has ended."""
    secret_key: str | None = field(default=None, repr=False)
    """Fernet key(s) that seal stored secrets (`VOXMETER_SECRET_KEY`, comma-separated to rotate:
    the first seals, all open). Embedded deployments without it use a key file beside the
    database (adapters/secret_box.py). Read from the environment only, never from a flag."""
    delivery_base_delay: float = 10.0
    """Seconds of the first retry's backoff ceiling for a failed webhook delivery
    (`VOXMETER_DELIVERY_BASE_DELAY`); each later retry doubles it (to at most an hour), with
    full jitter."""
    delivery_retry_for: float = 86_400.0
    """Seconds after its first attempt that a delivery is retried before it is marked failed
    (`VOXMETER_DELIVERY_RETRY_FOR`, default 24 hours)."""
    delivery_poll: float = 0.2
    """Seconds between looks for due deliveries (`VOXMETER_DELIVERY_POLL`): what a firing in
    any process waits at most before its POST is sent."""
    dashboard_idle_seconds: int = 12 * 3600
    """Seconds a dashboard session may stay unused before it ends (sign in again)."""
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_env(self) -> dict[str, str]:
        """The environment that `from_env` reads back into these settings (worker processes
        are configured this way)."""
        env = {
            "VOXMETER_DATABASE_URL": self.database_url,
            "VOXMETER_REDIS_PREFIX": self.redis_prefix,
            "VOXMETER_WORKERS": str(self.workers),
            "VOXMETER_GRACE_DAYS": str(self.grace_days),
            "VOXMETER_MAX_BODY_BYTES": str(self.max_body_bytes),
            "VOXMETER_SQLITE_CACHE_MIB": str(self.sqlite_cache_mib),
            "VOXMETER_REQUEST_TIMEOUT": repr(self.request_timeout),
            "VOXMETER_MAX_IN_FLIGHT": str(self.max_in_flight),
            "VOXMETER_DELIVERY_BASE_DELAY": repr(self.delivery_base_delay),
            "VOXMETER_DELIVERY_RETRY_FOR": repr(self.delivery_retry_for),
            "VOXMETER_DELIVERY_POLL": repr(self.delivery_poll),
            "VOXMETER_DASHBOARD_IDLE_SECONDS": str(self.dashboard_idle_seconds),
        }
        if self.redis_url:
            env["VOXMETER_REDIS_URL"] = self.redis_url
        if self.catalog_path is not None:
            env["VOXMETER_CATALOG"] = str(self.catalog_path)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment names (an empty variable counts as unset); a value
        that cannot be used is refused with a message naming the variable."""
        env = os.environ if env is None else env
        given: dict[str, Any] = {}
        for name, (attribute, parse) in ENVIRONMENT.items():
            text = env.get(name)
            if text:
                given[attribute] = parse(name, text)
        return replace(cls(), **given)


def _text(name: str, text: str) -> str:
    return text


def _path(name: str, text: str) -> Path:
    return Path(text)


def _whole(least: int) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise ConfigError(f"{name} must be a whole number of at least {least}, not {text!r}")
        return value

    return parse


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number of seconds above 0, not {text!r}")
    return value


ENVIRONMENT: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "VOXMETER_DATABASE_URL": ("database_url", _text),
    "VOXMETER_REDIS_URL": ("redis_url", _text),
    "VOXMETER_REDIS_PREFIX": ("redis_prefix", _text),
    "VOXMETER_WORKERS": ("workers", _whole(1)),
    "VOXMETER_GRACE_DAYS": ("grace_days", _whole(0)),
    "VOXMETER_CATALOG": ("catalog_path", _path),
    "VOXMETER_MAX_BODY_BYTES": ("max_body_bytes", _whole(1)),
    "VOXMETER_SQLITE_CACHE_MIB": ("sqlite_cache_mib", _whole(1)),
    "VOXMETER_REQUEST_TIMEOUT": ("request_timeout", _seconds),
    "VOXMETER_CURRENCY": ("currency", _text),
    "VOXMETER_MAX_IN_FLIGHT": ("max_in_flight", _whole(1)),
    "VOXMETER_DELIVERY_BASE_DELAY": ("delivery_base_delay", _seconds),
    "VOXMETER_DELIVERY_RETRY_FOR": ("delivery_retry_for", _seconds),
    "VOXMETER_DELIVERY_POLL": ("delivery_poll", _seconds),
    "VOXMETER_SECRET_KEY": ("secret_key", _text),
    "VOXMETER_DASHBOARD_IDLE_SECONDS": ("dashboard_idle_seconds", _whole(1)),
}
"""Every variable `Settings.from_env` reads: the setting it gives and how its text is read."""
