"""The audit log's entries: who changed money or access, what, when, for which operation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

SYSTEM = "system"
"""The actor of what the server does by itself (closing months when their grace period ends)."""
CLI_PREFIX = "cli:"
"""An actor `cli:<OS user>`: a change made with the `voxmeter` command."""

OPERATION_CREATE = "operation.create"
OPERATION_UPDATE = "operation.update"
TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
TOKEN_REVOKE = "token.revoke"  # noqa: S105 - an action name, not a secret
MONTH_CLOSE = "month.close"
EVENT_VOID = "event.void"
MAINTENANCE_ON = "maintenance.on"
MAINTENANCE_OFF = "maintenance.off"
PRICE_SET = "price.set"
PRICE_DELETE = "price.delete"
ALERT_CREATE = "alert.create"
ALERT_DELETE = "alert.delete"
MIRROR_CREATE = "mirror.create"
MIRROR_UPDATE = "mirror.update"
ACTIONS = frozenset(
    {
        OPERATION_CREATE,
        OPERATION_UPDATE,
        TOKEN_CREATE,
        TOKEN_REVOKE,
        MONTH_CLOSE,
        EVENT_VOID,
        MAINTENANCE_ON,
        MAINTENANCE_OFF,
        PRICE_SET,
        PRICE_DELETE,
        ALERT_CREATE,
        ALERT_DELETE,
        MIRROR_CREATE,
        MIRROR_UPDATE,
    }
)

SECRET_KEYS = frozenset({"secret", "hash", "token_secret", "secret_hash", "password"})
"""Detail keys refused outright: an entry is read by every holder of a read token of its
operation, so it must never carry a credential, even by mistake."""
MAX_DETAILS = 4096
"""Characters of encoded details at most: an entry says what changed, not the whole state."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change. `seq` orders entries of the same microsecond; `operation_id` is
    None for deployment-wide changes (maintenance); `details` is a JSON object's text."""

    seq: int
    time: int
    actor: str
    action: str
    operation_id: int | None
    details: str


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry about to be appended (the storage gives it its `seq`)."""

    time: int
    actor: str
    action: str
    operation_id: int | None
    details: str


def cli_actor(user: str) -> str:
    return CLI_PREFIX + (user or "unknown")


def encode_details(details: Mapping[str, object]) -> str:
    """Details as stored: compact JSON with sorted keys; refuses credentials and bulk."""
    found = _secret_keys(details)
    if found:
        raise ValueError(f"audit details must not hold {found[0]!r}")
    text = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_DETAILS:
        raise ValueError(f"audit details longer than {MAX_DETAILS} characters")
    return text


def _secret_keys(value: object) -> list[str]:
    if isinstance(value, Mapping):
        own = [str(k) for k in value if str(k).lower() in SECRET_KEYS]
        return own + [k for v in value.values() for k in _secret_keys(v)]
    if isinstance(value, list | tuple):
        return [k for v in value for k in _secret_keys(v)]
    return []


def new_entry(
    time: int, actor: str, action: str, operation_id: int | None, details: Mapping[str, object]
) -> NewEntry:
    """A checked entry: a known action, an actor, details that are a small JSON object."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if not actor:
        raise ValueError("an audit entry needs an actor")
    return NewEntry(time, actor, action, operation_id, encode_details(details))
