"""Settings read from the environment: every variable, and a clear refusal of unusable values."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxmeter.config import ENVIRONMENT, Settings
from voxmeter.errors import ConfigError


def test_every_variable_is_read_and_an_empty_one_is_unset() -> None:
    env = {
        "VOXMETER_DATABASE_URL": "postgresql://db/voxmeter",
        "VOXMETER_REDIS_URL": "redis://cache:6379/0",
        "VOXMETER_REDIS_PREFIX": "blue",
        "VOXMETER_WORKERS": "4",
        "VOXMETER_GRACE_DAYS": "0",
        "VOXMETER_CATALOG": "/etc/voxmeter/catalog.toml",
        "VOXMETER_MAX_BODY_BYTES": "1024",
        "VOXMETER_SQLITE_CACHE_MIB": "8",
        "VOXMETER_REQUEST_TIMEOUT": "2.5",
        "VOXMETER_CURRENCY": "EUR",
        "VOXMETER_MAX_IN_FLIGHT": "3",
        "VOXMETER_DELIVERY_BASE_DELAY": "1",
        "VOXMETER_DELIVERY_RETRY_FOR": "60",
        "VOXMETER_DELIVERY_POLL": "0.05",
        "VOXMETER_SECRET_KEY": "k1,k2",
        "VOXMETER_DASHBOARD_IDLE_SECONDS": "600",
    }
    assert set(env) == set(ENVIRONMENT)
    got = Settings.from_env(env)
    assert (got.database_url, got.redis_url, got.redis_prefix) == (
        "postgresql://db/voxmeter",
        "redis://cache:6379/0",
        "blue",
    )
    assert (got.workers, got.grace_days, got.max_body_bytes, got.sqlite_cache_mib) == (
        4,
        0,
        1024,
        8,
    )
    assert got.catalog_path == Path("/etc/voxmeter/catalog.toml")
    assert (got.request_timeout, got.max_in_flight, got.currency) == (2.5, 3, "EUR")
    assert (got.delivery_base_delay, got.delivery_retry_for, got.delivery_poll) == (1.0, 60.0, 0.05)
    assert (got.secret_key, got.dashboard_idle_seconds) == ("k1,k2", 600)
    assert Settings.from_env({name: "" for name in env}) == Settings()
    back = Settings.from_env(got.to_env())
    assert back.workers == 4
    assert back.delivery_poll == 0.05


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("VOXMETER_WORKERS", "abc"),
        ("VOXMETER_WORKERS", "0"),
        ("VOXMETER_GRACE_DAYS", "-1"),
        ("VOXMETER_MAX_IN_FLIGHT", "1.5"),
        ("VOXMETER_MAX_BODY_BYTES", "0"),
        ("VOXMETER_DELIVERY_POLL", "-1"),
        ("VOXMETER_DELIVERY_POLL", "0"),
        ("VOXMETER_REQUEST_TIMEOUT", "nan"),
        ("VOXMETER_REQUEST_TIMEOUT", "inf"),
        ("VOXMETER_DELIVERY_RETRY_FOR", "soon"),
        ("VOXMETER_DASHBOARD_IDLE_SECONDS", "-5"),
    ],
)
def test_an_unusable_value_is_refused_naming_its_variable(name: str, text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({name: text})
    assert name in str(refused.value)
    assert repr(text) in str(refused.value)
