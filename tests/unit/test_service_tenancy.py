"""Operations and tokens on the in-memory storage."""

from __future__ import annotations

import time

import pytest

from tests.fakes import MemoryDatabase
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.tenancy import (
    Authenticator,
    create_operation,
    create_token,
    find_operation,
    hash_secret,
    revoke_token,
)

Ctx = Context[MemoryDatabase]


def test_a_name_is_unique_per_server_and_found_with_the_server(ctx: Ctx, op: Operation) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        create_operation(ctx, "acme", "9901")
    other = create_operation(ctx, "acme", "9902")
    with pytest.raises(ConfigError, match="pass --server"):
        find_operation(ctx, "acme")
    assert find_operation(ctx, "acme", "9902") == other
    with pytest.raises(ConfigError, match="no operation named"):
        find_operation(ctx, "globex")
    assert [(o.server, o.name) for o in ctx.storage.operations()] == [
        ("9901", "acme"),
        ("9902", "acme"),
    ]


def test_tokens_keep_only_the_hash_and_resolve_until_revoked(
    ctx: Ctx, op: Operation, memory: MemoryDatabase
) -> None:
    token, secret = create_token(ctx, op, "billing", ["billing:read"])
    stored = memory.token_by_hash(hash_secret(secret))
    assert stored is not None
    assert stored[0].id == token.id
    assert secret not in stored[1]
    auth = Authenticator(ctx, ttl=0.01)
    caller = auth.resolve(secret)
    assert caller is not None
    assert caller.operation == op
    assert caller.token.id == token.id
    assert auth.resolve(secret + "x") is None
    revoke_token(ctx, token.id)
    with pytest.raises(ConfigError):
        revoke_token(ctx, token.id)  # no longer active
    time.sleep(0.02)
    assert auth.resolve(secret) is None


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_token_past_half_its_life_is_renewed_without_ever_outliving_it(
    ctx: Ctx, op: Operation
) -> None:
    token, secret = create_token(ctx, op, "billing", ["billing:read"])
    clock = Ticks()
    auth = Authenticator(ctx, ttl=1.0, clock=clock)
    renewed: list[str] = []
    assert auth.cached(secret, renewed.append) is None  # never resolved: the caller must look up
    assert auth.resolve(secret) is not None
    clock.now += 0.4
    assert auth.cached(secret, renewed.append) is not None
    assert renewed == []  # young: nothing to renew
    clock.now += 0.2
    found = auth.cached(secret, renewed.append)
    assert found is not None
    assert found.token.id == token.id
    assert renewed == [secret]  # past half its life: answered, and handed over for a re-read
    auth.refresh(secret)  # the re-read: a full life again from now
    clock.now += 0.9
    assert auth.cached(secret, renewed.append) is not None
    clock.now += 0.2
    assert auth.cached(secret, renewed.append) is None  # never used past its life
    assert auth.resolve(secret) is not None
    revoke_token(ctx, token.id)
    clock.now += 0.6
    assert auth.cached(secret) is not None  # still within the life it was read with
    auth.refresh(secret)  # the re-read finds it revoked: gone at once
    assert auth.cached(secret) is None
    assert auth.resolve(secret) is None
