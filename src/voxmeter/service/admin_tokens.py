"""Deployment-wide admin tokens: created and revoked like operations' tokens (audit-logged,
shown once, stored hashed), but belonging to no operation and opening the dashboard only."""

from __future__ import annotations

import secrets

from voxmeter.domain import audit
from voxmeter.domain.tenancy import ADMIN, AdminToken
from voxmeter.errors import ConfigError
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.ports import Writer
from voxmeter.service.tenancy import TOKEN_PREFIX, hash_secret


def create_admin_token(ctx: Context[Writer], description: str) -> tuple[AdminToken, str]:
    """An admin token and its secret (returned once; only its hash is stored)."""
    if not description.strip():
        raise ConfigError("a token needs a description")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AdminToken(
        id="adm_" + secrets.token_hex(6),
        description=description,
        created=ctx.clock(),
        revoked=None,
        last_used=None,
    )
    with ctx.storage.write() as tx:
        tx.create_admin_token(token, hash_secret(secret))
        details = {"token": token.id, "description": description, "scopes": [ADMIN]}
        record(tx, ctx, audit.TOKEN_CREATE, None, details)
    return token, secret
