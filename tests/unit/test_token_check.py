"""A presented token is checked against its stored hash in constant time
(docs/behaviour.md, Tokens): the comparison goes through `hmac.compare_digest`, and its
answer decides."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from voxmeter.domain.catalog import Catalog
from voxmeter.domain.tenancy import SCOPES, Operation, Token
from voxmeter.service import tenancy
from voxmeter.service.context import Context
from voxmeter.service.tenancy import Authenticator, hash_secret

OPERATION = Operation(id=1, name="acme", server="9901", timezone="UTC", licenses=1, created=0)


@dataclass
class TokenTable:
    """Just enough storage for the Authenticator: tokens by hash, and their operation."""

    rows: dict[str, tuple[Token, str]] = field(default_factory=dict)

    def add(self, secret: str, stored_hash: str | None = None) -> Token:
        token = Token(
            id="tok_" + secrets.token_hex(6),
            operation_id=OPERATION.id,
            description="test",
            scopes=frozenset(SCOPES),
            created=0,
            revoked=None,
            last_used=None,
        )
        self.rows[hash_secret(secret)] = (token, stored_hash or hash_secret(secret))
        return token

    def token_by_hash(self, digest: str) -> tuple[Token, str] | None:
        return self.rows.get(digest)

    def operation(self, operation_id: int) -> Operation | None:
        return OPERATION if operation_id == OPERATION.id else None


Compare = Callable[[object, object], bool]


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    """Every call of the constant-time compare, under each name the verifying code could use."""
    calls: list[tuple[object, object]] = []
    real: Compare = hmac.compare_digest

    def spy(a: object, b: object) -> bool:
        calls.append((a, b))
        return real(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setattr(secrets, "compare_digest", spy)
    monkeypatch.setattr(tenancy, "compare_digest", spy, raising=False)
    return calls


def authenticator(table: TokenTable) -> Authenticator:
    return Authenticator(Context(storage=table, catalog=Catalog.load()), ttl=0.0)  # type: ignore[arg-type]


def test_a_valid_token_is_compared_in_constant_time(compared: list[tuple[object, object]]) -> None:
    table = TokenTable()
    secret = "vxm_" + secrets.token_urlsafe(32)
    token = table.add(secret)
    caller = authenticator(table).resolve(secret)
    assert caller is not None
    assert caller.token == token
    digest = hash_secret(secret)
    assert compared, "the stored hash was not compared with hmac.compare_digest"
    assert all(sorted(map(str, pair)) == [digest, digest] for pair in compared), compared


def test_the_constant_time_answer_decides(
    compared: list[tuple[object, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup hit is not enough: when the compare says no, the token is refused."""
    table = TokenTable()
    secret = "vxm_" + secrets.token_urlsafe(32)
    table.add(secret)

    def refuse(a: object, b: object) -> bool:
        compared.append((a, b))
        return False

    monkeypatch.setattr(hmac, "compare_digest", refuse)
    monkeypatch.setattr(secrets, "compare_digest", refuse)
    monkeypatch.setattr(tenancy, "compare_digest", refuse, raising=False)
    assert authenticator(table).resolve(secret) is None
    assert compared


def test_a_lookup_that_returns_another_hash_is_refused(
    compared: list[tuple[object, object]],
) -> None:
    """Storage that matched loosely (case, collation, a prefix) must not let a token in."""
    table = TokenTable()
    secret = "vxm_" + secrets.token_urlsafe(32)
    table.add(secret, stored_hash=hash_secret(secret).upper())
    assert authenticator(table).resolve(secret) is None
    assert (hash_secret(secret).upper(), hash_secret(secret)) in compared


def test_an_unknown_token_is_refused_without_a_stored_hash(
    compared: list[tuple[object, object]],
) -> None:
    table = TokenTable()
    table.add("vxm_" + secrets.token_urlsafe(32))
    assert authenticator(table).resolve("vxm_" + secrets.token_urlsafe(32)) is None
    assert compared == []
