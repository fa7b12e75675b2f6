"""The security headers every reply carries, by kind of reply (added at the edge)."""

from __future__ import annotations

Headers = tuple[tuple[bytes, bytes], ...]

#: On every response: no content sniffing, nothing a browser may load, run or frame.
SECURITY_HEADERS: Headers = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
#: On every reply under /api/: billing figures and quota use are not for shared caches.
API_HEADERS: Headers = (*SECURITY_HEADERS, (b"cache-control", b"no-store"))
#: On the dashboard's pages: its own style sheet and nothing else; no script at all.
DASHBOARD_HEADERS: Headers = (
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        b" frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def for_path(path: str) -> Headers:
    """The headers a reply to this path carries."""
    if path.startswith("/api/"):
        return API_HEADERS
    if path.startswith("/dashboard"):
        return DASHBOARD_HEADERS
    return SECURITY_HEADERS
