"""A signed-in (or not) visitor of the dashboard: its own cookie jar over a served app, the
form fields it posts, and the figures read back out of a page's `<data value>` elements."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx

from tests.e2e.harness import ServerApi
from tests.e2e.inprocess import BASE, AppServer

FORM = {"content-type": "application/x-www-form-urlencoded"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ROW = re.compile(r'<tr id="product-([a-z0-9_]+)"[^>]*>(.*?)</tr>', re.S)
_DATA = re.compile(r'<data value="([^"]*)">([^<]*)</data>')


class Visitor:
    """One browser's view of an in-process app: its own cookies, no redirects followed."""

    def __init__(self, srv: AppServer, headers: dict[str, str] | None = None) -> None:
        self.srv = srv
        self.client: httpx.AsyncClient = srv.portal.call(_make, srv, headers or {})

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.srv.portal.call(partial(self.client.get, path, **kw))

    def post(self, path: str, fields: dict[str, str], **kw: Any) -> httpx.Response:
        headers = {**FORM, **kw.pop("headers", {})}
        body = str(httpx.QueryParams(fields))
        return self.srv.portal.call(
            partial(self.client.post, path, content=body, headers=headers, **kw)
        )

    def csrf(self, path: str = "/dashboard") -> str:
        page = self.get(path)
        found = _CSRF.search(page.text)
        assert found, page.text
        return found[1]

    def sign_in(self, token: str) -> httpx.Response:
        return self.post("/dashboard/login", {"token": token, "csrf": self.csrf()})

    def session_cookie(self) -> str | None:
        return self.client.cookies.get("vxm_session", path="/dashboard")

    def close(self) -> None:
        self.srv.portal.call(self.client.aclose)


async def _make(srv: AppServer, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=srv.app), base_url=BASE, headers=headers
    )


def product_rows(html: str) -> dict[str, list[str]]:
    """Each product row's `<data value>`s in order: figure, forecast, amount."""
    return {api: [v for v, _ in _DATA.findall(row)] for api, row in _ROW.findall(html)}


def data_by_id(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"><data value="([^"]*)"', html)
    assert found, element_id
    return found[1]


def now_event(event_id: str, product: str, quantity: str) -> dict[str, str]:
    return {
        "id": event_id,
        "product": product,
        "time": datetime.now(UTC).isoformat(),
        "quantity": quantity,
    }


def api_data(srv: ServerApi, token: str, path: str, **params: str) -> Any:
    reply = srv.get(path, token, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]
