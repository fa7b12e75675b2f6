"""Dashboard sign-in: a presented token becomes a server-side session whose random secret the
browser keeps in a cookie. The database keeps only the secret's hash, so the session works in
every worker process and machine sharing it, and signing out anywhere ends it everywhere."""

from __future__ import annotations

import hmac
import secrets
from typing import Protocol

from voxmeter.domain.sessions import Session
from voxmeter.domain.tenancy import READ
from voxmeter.service.context import Context
from voxmeter.service.ports import AdminTokens, DashboardSessions, Tenancy
from voxmeter.service.tenancy import hash_secret


class SessionStore(Tenancy, AdminTokens, DashboardSessions, Protocol):
    """What signing in and out needs."""


def signed_in_as(ctx: Context[SessionStore], secret: str) -> Session | None:
    """The session a token may open, not yet stored: an active `billing:read` token of an
    operation, or an active admin token; None for anything else."""
    digest = hash_secret(secret.strip())
    now = ctx.clock()
    found = ctx.storage.token_by_hash(digest)
    if found is not None:
        token, stored = found
        if hmac.compare_digest(stored, digest) and token.revoked is None and READ in token.scopes:
            return Session(token.id, token.operation_id, now, now)
        return None
    admin = ctx.storage.admin_token_by_hash(digest)
    if admin is not None:
        token_a, stored = admin
        if hmac.compare_digest(stored, digest) and token_a.revoked is None:
            return Session(token_a.id, None, now, now)
    return None


def sign_in(ctx: Context[SessionStore], secret: str) -> tuple[str, Session] | None:
    """Open a session for a token: (the session's secret for the cookie, the session), or
    None when the token may not sign in."""
    session = signed_in_as(ctx, secret)
    if session is None:
        return None
    session_secret = secrets.token_urlsafe(32)
    ctx.storage.create_session(hash_secret(session_secret), session)
    if session.is_admin:
        ctx.storage.admin_token_used(session.token_id, session.created)
    return session_secret, session


def current(
    ctx: Context[DashboardSessions], session_secret: str, idle_seconds: int
) -> Session | None:
    """The live session of a cookie's secret. A session idle too long is ended here; a live
    one's last-seen time is written at most once a minute."""
    digest = hash_secret(session_secret)
    session = ctx.storage.session(digest)
    if session is None:
        return None
    now = ctx.clock()
    if session.expired(now, idle_seconds):
        ctx.storage.end_session(digest)
        return None
    if session.needs_touch(now):
        ctx.storage.touch_session(digest, now)
        if session.is_admin:  # an admin's: its token's last use, once a minute
            ctx.storage.admin_token_used(session.token_id, now)
    return session


def sign_out(ctx: Context[DashboardSessions], session_secret: str) -> None:
    """End the session at once, for every process and machine."""
    ctx.storage.end_session(hash_secret(session_secret))
