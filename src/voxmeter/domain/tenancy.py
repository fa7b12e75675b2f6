"""Operations (tenants) and their tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

READ = "billing:read"
WRITE = "usage:write"
SCOPES = (READ, WRITE)
ADMIN = "admin"
"""The one scope of an admin token: the dashboard's overview of every operation, no API."""
SERVER_RE = re.compile(r"\d{4}")
MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class Operation:
    id: int
    name: str
    server: str
    timezone: str
    licenses: int
    created: int
    currency: str = "USD"
    """The ISO 4217 code its statements are priced and rounded in."""
    mirror: bool = False
    """Its figures come from sweeping an upstream server, not from events."""

    @property
    def daily_quota(self) -> int:
        """All of an operation's tokens share `licenses x 1000` requests a day."""
        return self.licenses * 1000


@dataclass(frozen=True, slots=True)
class Token:
    """A token as stored: never the secret, only its hash elsewhere."""

    id: str
    operation_id: int
    description: str
    scopes: frozenset[str]
    created: int
    revoked: int | None
    last_used: int | None


@dataclass(frozen=True, slots=True)
class AdminToken:
    """A deployment's admin token as stored (the secret only as a hash, elsewhere). It belongs
    to no operation and opens the dashboard only."""

    id: str
    description: str
    created: int
    revoked: int | None
    last_used: int | None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset((ADMIN,))


def check_server(server: str) -> str:
    if not SERVER_RE.fullmatch(server):
        raise ValueError("server must be 4 digits, such as 9901 or 0042")
    return server


def check_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable() or name != name.strip():
        raise ValueError(f"operation name must be 1-{MAX_NAME} printable characters")
    return name


def check_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}")
    return frozenset(scopes or SCOPES)
