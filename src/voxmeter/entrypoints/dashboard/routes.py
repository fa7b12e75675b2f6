"""The dashboard's routes, mounted by the HTTP app, and its templates (one set per language,
each with its gettext catalog and Babel formats)."""

from __future__ import annotations

from pathlib import Path

import jinja2
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from voxmeter.entrypoints.dashboard.i18n import LANGUAGES, Formats, load_translations
from voxmeter.entrypoints.dashboard.pages import Pages
from voxmeter.entrypoints.http.state import AppState
from voxmeter.service.dashboard import NoNotices
from voxmeter.service.ports import DashboardNotices

HERE = Path(__file__).parent


def templates(tag: str) -> Jinja2Templates:
    """The templates in one language: autoescaped, gettext from its catalog, Babel filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )
    env.install_gettext_translations(load_translations(tag), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(Formats(tag).filters())
    return Jinja2Templates(env=env)


def dashboard_routes(state: AppState, notices: DashboardNotices | None = None) -> list[BaseRoute]:
    """Every /dashboard route; `notices` supplies alerts and mirror syncs (none by default)."""
    pages = Pages(state, notices or NoNotices(), {tag: templates(tag) for tag in LANGUAGES})
    page = pages.page
    return [
        Route("/dashboard", page(pages.home), methods=["GET"]),
        Route("/dashboard/login", page(pages.login), methods=["GET", "POST"]),
        Route("/dashboard/logout", page(pages.logout), methods=["POST"]),
        Route("/dashboard/overview", page(pages.overview), methods=["GET"]),
        Route("/dashboard/operations/{operation_id:int}", page(pages.operation), methods=["GET"]),
        Route(
            "/dashboard/operations/{operation_id:int}/statement",
            page(pages.statement),
            methods=["GET"],
        ),
        Mount("/dashboard/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        Route("/dashboard/{rest:path}", page(pages.not_found)),
    ]
