"""The dashboard's pages. Each reads what it shows in one worker thread (session, figures,
statement, quota) through the same service functions as the API, then renders a template in
the request's language. Every refusal is a page of its own, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from voxmeter.domain.months import Month, MonthError, calendar, from_micros
from voxmeter.domain.sessions import Session
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.dashboard import guard
from voxmeter.entrypoints.dashboard.charts import ChartWriter
from voxmeter.entrypoints.dashboard.i18n import DEFAULT, LANGUAGES, Formats, accepted
from voxmeter.entrypoints.http.guard import off_loop
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire.errors import message, row_of
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.errors import BadParameters, VoxmeterError
from voxmeter.service import dashboard, dashboard_sessions
from voxmeter.service.figures import past_month
from voxmeter.service.ports import AlertSummary, DashboardNotices

log = logging.getLogger("voxmeter.dashboard")


class PageRefused(Exception):
    """A request the dashboard answers with an explanation page: `status`, and the message's
    key in the catalog (`what`)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(what)
        self.status = status
        self.what = what


class UnknownLanguage(PageRefused):
    def __init__(self) -> None:
        super().__init__(400, "language")


@dataclass(frozen=True, slots=True)
class Quota:
    """Today's quota use, as `token_info` reports it (`mine` only for the operation's own
    token)."""

    limit: int
    everyone: int
    mine: int | None

    @property
    def available(self) -> int:
        return max(0, self.limit - self.everyone)


@dataclass(frozen=True, slots=True)
class OperationPage:
    view: dashboard.OperationView
    alerts: list[AlertSummary]
    last_synced: datetime | None
    stale: bool
    """A mirror whose last successful sweep is older than its staleness limit."""
    today: str


MAX_ID = 2**63 - 1
"""No operation id is larger (a larger one in a URL is simply not found)."""

Handler = Callable[[Request], Awaitable[Response]]


class Pages:
    """The handlers, over the app's state, what the dashboard shows beside the figures, and
    one template set per language."""

    def __init__(
        self,
        state: AppState,
        notices: DashboardNotices,
        templates: dict[str, Jinja2Templates],
    ) -> None:
        self.state = state
        self.notices = notices
        self.templates = templates
        self.formats = {tag: Formats(tag) for tag in LANGUAGES}

    # -- the frame every page shares ----------------------------------------------------------

    def language(self, request: Request) -> tuple[str, bool]:
        """The page's language and whether the request chose it (`?lang=`): the choice, then
        the remembered one, then Accept-Language, then English."""
        asked = request.query_params.get("lang")
        if asked is not None:
            if asked not in LANGUAGES:
                raise UnknownLanguage()
            return asked, True
        kept = request.cookies.get(guard.LANG_COOKIE)
        if kept in LANGUAGES:
            return kept, False
        return accepted(request.headers.get("accept-language", "")) or DEFAULT, False

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        status: int = 200,
        lang: str | None = None,
    ) -> Response:
        if lang is None:
            try:
                lang, _ = self.language(request)
            except UnknownLanguage:
                lang = accepted(request.headers.get("accept-language", "")) or DEFAULT
        switch = {tag: _here(request, tag) for tag in LANGUAGES}
        full = {"lang": lang, "languages": LANGUAGES, "switch": switch, **context}
        response = self.templates[lang].TemplateResponse(request, name, full, status_code=status)
        if request.query_params.get("lang") == lang:
            guard.set_language(response, request, lang)
        return response

    def refused(self, request: Request, status: int, what: str, detail: str = "") -> Response:
        if status == 401:
            return self.login_page(request, status, what)
        return self.render(request, "refused.html", {"what": what, "detail": detail}, status)

    def page(self, handler: Handler) -> Handler:
        """A handler whose refusals and errors become pages with the right status."""

        async def run(request: Request) -> Response:
            try:
                self.language(request)
                return await handler(request)
            except PageRefused as exc:
                return self.refused(request, exc.status, exc.what)
            except guard.FormRefused:
                return self.refused(request, 403, "form")
            except VoxmeterError as exc:
                status = row_of(type(exc)).status
                if status >= 500:
                    log.warning("dashboard page %s: %s", request.url.path, message(exc))
                return self.refused(request, status, "error", message(exc))
            except Exception:
                log.exception("unhandled error on dashboard page %s", request.url.path)
                return self.refused(request, 500, "error")

        return run

    # -- signing in and out -------------------------------------------------------------------

    def login_page(self, request: Request, status: int = 200, what: str = "") -> Response:
        secret, new = guard.login_secret(request)
        context = {"csrf": guard.csrf_token(secret), "what": what}
        response = self.render(request, "login.html", context, status)
        if new:
            guard.set_login(response, request, secret)
        if request.cookies.get(guard.SESSION_COOKIE):
            guard.clear_session(response, request)
        return response

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return RedirectResponse("/dashboard", status_code=303)
        guard.check_origin(request)
        form = await guard.read_form(request)
        guard.check_csrf(request.cookies.get(guard.LOGIN_COOKIE), form.get("csrf"))
        token = form.get("token", "")
        opened = None
        if token.strip():
            opened = await off_loop(self.state, dashboard_sessions.sign_in, self.state.ctx, token)
        if opened is None:
            return self.login_page(request, 403, "wrong_token")
        secret, _ = opened
        response = RedirectResponse("/dashboard", status_code=303)
        guard.set_session(response, request, secret, self.state.settings.dashboard_idle_seconds)
        response.delete_cookie(guard.LOGIN_COOKIE, path=guard.COOKIE_PATH)
        return response

    async def logout(self, request: Request) -> Response:
        guard.check_origin(request)
        form = await guard.read_form(request)
        secret = request.cookies.get(guard.SESSION_COOKIE)
        guard.check_csrf(secret, form.get("csrf"))
        assert secret is not None
        await off_loop(self.state, dashboard_sessions.sign_out, self.state.ctx, secret)
        response = RedirectResponse("/dashboard", status_code=303)
        guard.clear_session(response, request)
        return response

    def _session(self, secret: str | None) -> Session:
        """The live session of a cookie (in a worker thread); 401 without one."""
        if not secret:
            raise PageRefused(401, "signed_out")
        found = dashboard_sessions.current(
            self.state.ctx, secret, self.state.settings.dashboard_idle_seconds
        )
        if found is None:
            raise PageRefused(401, "session_ended")
        return found

    # -- the pages ----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """The admin's overview, an operation's own view, or the sign-in page."""
        secret = request.cookies.get(guard.SESSION_COOKIE)
        if not secret:
            return self.login_page(request)
        session = await off_loop(self.state, self._session, secret)
        if session.operation_id is None:
            return await self._overview(request, secret)
        return await self._operation(request, secret, session.operation_id, "operation.html")

    async def overview(self, request: Request) -> Response:
        return await self._overview(request, request.cookies.get(guard.SESSION_COOKIE))

    async def operation(self, request: Request) -> Response:
        secret = request.cookies.get(guard.SESSION_COOKIE)
        wanted = int(request.path_params["operation_id"])
        return await self._operation(request, secret, wanted, "operation.html")

    async def statement(self, request: Request) -> Response:
        secret = request.cookies.get(guard.SESSION_COOKIE)
        wanted = int(request.path_params["operation_id"])
        return await self._operation(request, secret, wanted, "statement.html")

    async def _operation(
        self, request: Request, secret: str | None, wanted: int, template: str
    ) -> Response:
        text = request.query_params.get("month") or None
        session, op, page = await off_loop(self.state, self._read_operation, secret, wanted, text)
        quota = await self._quota(session, op, page.today)
        context = {
            "csrf": guard.csrf_token(secret or ""),
            "signed_in": True,
            "admin": session.is_admin,
            "page": page,
            "view": page.view,
            "quota": quota,
        }
        if template == "operation.html":
            lang, _ = self.language(request)
            writer = ChartWriter(self.formats[lang].day, self.formats[lang].number)
            context["charts"] = {
                line.product.api: writer.svg(
                    page.view.days, line.daily, f"daily-head title-{line.product.api}"
                )
                for line in page.view.lines
            }
        return self._signed_in(request, secret, self.render(request, template, context))

    def _read_operation(
        self, secret: str | None, wanted: int, text: str | None
    ) -> tuple[Session, Operation, OperationPage]:
        session = self._session(secret)
        if wanted > MAX_ID or (not session.is_admin and session.operation_id != wanted):
            raise PageRefused(404, "no_operation")  # never says whether it exists
        ctx = self.state.ctx
        op = ctx.storage.operation(wanted)
        if op is None:
            raise PageRefused(404, "no_operation")
        asked = resolve_month(ctx, op, text)
        cal = calendar(op.timezone)
        now = ctx.clock()
        month = cal.month_of(now) if asked is None else asked
        synced = self.notices.last_synced(op.id)
        page = OperationPage(
            view=dashboard.operation_view(ctx, op, month),
            alerts=self.notices.alert_summaries(op.id),
            last_synced=None if synced is None else from_micros(synced, cal.zone),
            stale=op.mirror and self.notices.is_stale(op.id, now),
            today=cal.today(now).isoformat(),
        )
        return session, op, page

    async def _quota(self, session: Session, op: Operation, day: str) -> Quota:
        """`token_info`'s figures; read from the limiter on the loop when it lives in this
        process, else in a thread."""
        limiter = self.state.limiter
        token = "" if session.is_admin else session.token_id
        if limiter.in_process:
            mine, everyone = limiter.usage(token, op.id, day)
        else:
            mine, everyone = await off_loop(self.state, limiter.usage, token, op.id, day)
        return Quota(op.daily_quota, everyone, None if session.is_admin else mine)

    async def _overview(self, request: Request, secret: str | None) -> Response:
        params = request.query_params
        sort = params.get("sort", "name")
        if sort not in dashboard.SORT_KEYS:
            raise BadParameters(f"sort must be one of {', '.join(dashboard.SORT_KEYS)}")
        direction = params.get("dir", "asc")
        if direction not in ("asc", "desc"):
            raise BadParameters("dir must be asc or desc")
        text = params.get("month") or None
        month, rows = await off_loop(
            self.state, self._read_overview, secret, text, sort, direction == "desc"
        )
        context = {
            "csrf": guard.csrf_token(secret or ""),
            "signed_in": True,
            "admin": True,
            "month": month,
            "rows": rows,
            "sort": sort,
            "dir": direction,
        }
        return self._signed_in(request, secret, self.render(request, "overview.html", context))

    def _signed_in(self, request: Request, secret: str | None, response: Response) -> Response:
        """A page of a live session: its cookie's life starts again (it ends, as the session
        does, after the idle limit without a page, not that long after signing in)."""
        if secret:
            guard.set_session(response, request, secret, self.state.settings.dashboard_idle_seconds)
        return response

    def _read_overview(
        self, secret: str | None, text: str | None, sort: str, descending: bool
    ) -> tuple[Month, list[dashboard.OverviewRow]]:
        session = self._session(secret)
        if not session.is_admin:
            raise PageRefused(403, "admin_only")
        ctx = self.state.ctx
        if text is None:
            month = dashboard.overview_month(ctx)
        else:
            try:
                month = Month.parse(text)
            except MonthError as exc:
                raise BadParameters(str(exc)) from exc
            for op in ctx.storage.operations():
                past_month(ctx, op, month)
        stale = self.notices.stale_mirrors(ctx.clock())
        return month, dashboard.overview(ctx, month, sort, descending, stale)

    async def not_found(self, request: Request) -> Response:
        raise PageRefused(404, "no_page")


def _here(request: Request, tag: str) -> str:
    """This page's path and query in language `tag` (a relative link: no host is repeated)."""
    query = urlencode(
        [*((k, v) for k, v in request.query_params.multi_items() if k != "lang"), ("lang", tag)]
    )
    return f"{request.url.path}?{query}"
