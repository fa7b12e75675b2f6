"""The dashboard's cookies and forms: the session cookie (its random secret only, never a
token), CSRF tokens derived from it, the sign-in form's own CSRF cookie, and form bodies read
with a size limit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "vxm_session"
LOGIN_COOKIE = "vxm_login"
LANG_COOKIE = "vxm_lang"
COOKIE_PATH = "/dashboard"
MAX_FORM_BYTES = 4096
"""A sign-in or sign-out form is a token and a CSRF token: anything longer is refused."""
_FORM = b"voxmeter dashboard form"


class FormRefused(Exception):
    """A form that is not ours: no or a wrong CSRF token, another origin, or a bad body."""


def csrf_token(secret: str) -> str:
    """The CSRF token of a session (or of a sign-in form's cookie): derived from its secret,
    so nothing more is stored and only the cookie's holder can know it."""
    return hmac.new(secret.encode(), _FORM, hashlib.sha256).hexdigest()


def check_csrf(secret: str | None, sent: str | None) -> None:
    if not secret or not sent or not hmac.compare_digest(csrf_token(secret), sent):
        raise FormRefused("csrf")


def check_origin(request: Request) -> None:
    """A form posted from another site is refused when the browser names its origin."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    sent = urlsplit(origin)
    if (sent.scheme, sent.netloc) != (request.url.scheme, request.url.netloc):
        raise FormRefused("origin")


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form of at most MAX_FORM_BYTES, each field once."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormRefused("content type")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused("size")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise FormRefused("encoding") from exc
    if any(len(values) != 1 for values in fields.values()):
        raise FormRefused("repeated field")
    return {name: values[0] for name, values in fields.items()}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, secret: str, idle_seconds: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=idle_seconds,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict"
    )


def login_secret(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF cookie secret, and whether it is new (must be set)."""
    found = request.cookies.get(LOGIN_COOKIE)
    if found and len(found) <= 64:
        return found, False
    return secrets.token_urlsafe(32), True


def set_login(response: Response, request: Request, secret: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        secret,
        max_age=3600,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def set_language(response: Response, request: Request, tag: str) -> None:
    response.set_cookie(
        LANG_COOKIE,
        tag,
        max_age=365 * 86400,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
