"""The dashboard over the app `voxmeter serve` runs (in process), on both backends: sign-in,
sessions and CSRF, every figure equal to the API's, languages, the admin overview, and every
kind of bad input answered by a clear page (docs/dashboard.md). The browser tests are in
test_dashboard_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from babel.numbers import format_decimal

from tests.e2e.dashboard_support import (
    Visitor,
    api_data,
    data_by_id,
    now_event,
    product_rows,
)
from tests.e2e.harness import SPEC_CATALOG, Tenant, admin_context, cli
from tests.e2e.inprocess import AppServer
from voxmeter.domain.sessions import MICROS
from voxmeter.service import tenancy
from voxmeter.service.prices import set_price

EVENTS = [
    ("ivr_minutes", "1234.5"),
    ("ivr_minutes", "17"),
    ("tts_chars", "777.125"),
    ("pbx_licenses", "61"),
    ("interactions", "3"),
]


@dataclass
class World:
    srv: AppServer
    a: Tenant
    b: Tenant
    admin_token: str
    a_id: int
    b_id: int


@pytest.fixture(scope="module")
def world(app_server: AppServer) -> World:
    """Operations A (usage, prices in USD) and B (other usage), and an admin token made with the
    CLI as a user makes it."""
    srv = app_server
    a, b = srv.tenant(), srv.tenant()
    events = [now_event(f"a-{i}", p, q) for i, (p, q) in enumerate(EVENTS)]
    assert srv.post_events(a.token, events).status_code == 200
    assert srv.post_events(b.token, [now_event("b-1", "ivr_minutes", "99")]).status_code == 200
    with admin_context(srv.db) as ctx:
        op_a = tenancy.find_operation(ctx, a.name, a.server)
        op_b = tenancy.find_operation(ctx, b.name, b.server)
        set_price(ctx, op_a, "ivr_minutes", "USD", unit_price="0.0123")
        set_price(ctx, op_a, "pbx_licenses", "USD", tiers=["10:5", "inf:3.5"])
    made = cli(srv.db, "token", "create", "--admin", "--description", "finance team")
    assert made.stdout.splitlines()[0].startswith("admin token adm_"), made.stdout
    return World(srv, a, b, made.stdout.splitlines()[-1], op_a.id, op_b.id)


@pytest.fixture
def visitor(world: World) -> Iterator[Visitor]:
    v = Visitor(world.srv)
    yield v
    v.close()


def signed_in(world: World, token: str, **headers: str) -> Visitor:
    v = Visitor(world.srv, headers)
    reply = v.sign_in(token)
    assert reply.status_code == 303, reply.text
    return v


# -- signing in -----------------------------------------------------------------------------


def test_sign_in_page_then_a_session_cookie_that_holds_no_token(
    world: World, visitor: Visitor
) -> None:
    page = visitor.get("/dashboard")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert 'name="token"' in page.text
    assert 'type="password"' in page.text
    reply = visitor.sign_in(world.a.token)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/dashboard"
    cookie = next(c for c in reply.headers.get_list("set-cookie") if c.startswith("vxm_session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/dashboard" in flags
    assert any(f.startswith("max-age=") for f in flags)
    secret = visitor.session_cookie()
    assert secret
    assert world.a.token not in cookie
    assert world.a.token[4:] not in secret
    view = visitor.get("/dashboard")
    assert view.status_code == 200, view.text
    assert world.a.name in view.text
    assert world.a.token not in view.text
    assert world.a.token not in str(view.url)
    # every page of the live session starts the cookie's life again, with the same secret
    again = next(c for c in view.headers.get_list("set-cookie") if c.startswith("vxm_session="))
    assert again.split(";")[0] == f"vxm_session={secret}"
    assert cookie.split(";")[1:] == again.split(";")[1:]


def test_a_wrong_token_is_a_clear_message_and_a_403(world: World, visitor: Visitor) -> None:
    for wrong in ("vxm_not-a-token", world.a.token + "x", "", "' OR 1=1 --"):
        reply = visitor.sign_in(wrong)
        assert reply.status_code == 403, reply.text
        assert "That token cannot open the dashboard" in reply.text
        assert visitor.session_cookie() is None
        assert "Traceback" not in reply.text


def test_a_failed_sign_in_is_counted_like_any_failed_authentication(
    world: World, visitor: Visitor
) -> None:
    def refused() -> float:
        text = world.srv.request("GET", "/metrics").text
        found = re.search(
            r'voxmeter_requests_total\{route="dashboard_login",status="403"\} ([0-9.e+]+)', text
        )
        return float(found[1]) if found else 0.0

    before = refused()
    assert visitor.sign_in("vxm_wrong").status_code == 403
    assert refused() == before + 1


def test_a_write_only_token_cannot_sign_in(world: World, visitor: Visitor) -> None:
    writer = world.srv.token_for(world.a.name, scopes=["usage:write"])
    assert visitor.sign_in(writer.token).status_code == 403


def test_sign_in_without_the_forms_csrf_token_is_refused(world: World, visitor: Visitor) -> None:
    visitor.get("/dashboard")
    reply = visitor.post("/dashboard/login", {"token": world.a.token})
    assert reply.status_code == 403
    assert "This form has expired" in reply.text
    reply = visitor.post("/dashboard/login", {"token": world.a.token, "csrf": "0" * 64})
    assert reply.status_code == 403
    assert visitor.session_cookie() is None


def test_a_form_from_another_origin_is_refused(world: World, visitor: Visitor) -> None:
    csrf = visitor.csrf()
    reply = visitor.post(
        "/dashboard/login",
        {"token": world.a.token, "csrf": csrf},
        headers={"origin": "https://evil.example"},
    )
    assert reply.status_code == 403
    assert visitor.session_cookie() is None


# -- sessions end ---------------------------------------------------------------------------


def test_logout_ends_the_session_everywhere_at_once(world: World) -> None:
    v = signed_in(world, world.a.token)
    secret = v.session_cookie()
    assert secret
    other = Visitor(world.srv)  # the same cookie in another browser (or worker, or machine)
    other.client.cookies.set("vxm_session", secret, path="/dashboard")
    assert world.a.name in other.get("/dashboard").text
    csrf = v.csrf()
    # without the CSRF token, or with a wrong one, nothing happens
    assert v.post("/dashboard/logout", {}).status_code == 403
    wrong = csrf[:-1] + ("1" if csrf.endswith("0") else "0")
    assert v.post("/dashboard/logout", {"csrf": wrong}).status_code == 403
    assert world.a.name in v.get("/dashboard").text
    reply = v.post("/dashboard/logout", {"csrf": csrf})
    assert reply.status_code == 303
    page = other.get("/dashboard")
    assert page.status_code == 401
    assert "Your session has ended" in page.text
    assert world.a.name not in page.text
    v.close()
    other.close()


def test_forged_and_expired_cookies_open_nothing(world: World) -> None:
    forged = Visitor(world.srv)
    forged.client.cookies.set("vxm_session", "forged-" + "a" * 40, path="/dashboard")
    for path in ("/dashboard", f"/dashboard/operations/{world.a_id}", "/dashboard/overview"):
        page = forged.get(path)
        assert page.status_code == 401, path
        assert "Your session has ended" in page.text
        assert world.a.name not in page.text
    forged.close()

    v = signed_in(world, world.a.token)
    secret = v.session_cookie()
    assert secret
    idle = world.srv.ctx.storage  # twelve hours and a second without a visit
    old = world.srv.ctx.clock() - (12 * 3600 + 1) * MICROS
    idle.touch_session(tenancy.hash_secret(secret), old)
    page = v.get("/dashboard")
    assert page.status_code == 401
    assert world.a.name not in page.text
    assert idle.session(tenancy.hash_secret(secret)) is None  # ended, not only refused
    v.close()


def test_revoking_the_token_ends_its_sessions(world: World) -> None:
    extra = world.srv.token_for(world.a.name, description="revoked soon")
    v = signed_in(world, extra.token)
    assert v.get("/dashboard").status_code == 200
    with admin_context(world.srv.db) as ctx:
        tenancy.revoke_token(ctx, extra.token_id)
    assert v.get("/dashboard").status_code == 401
    v.close()


# -- what the operation view shows ----------------------------------------------------------


def test_every_figure_equals_the_apis(world: World) -> None:
    """Figures, amounts, totals and quota exactly; the current month's forecasts (which fall
    as the month's time passes at the same figure) between the API's just before and after."""
    srv, a = world.srv, world.a
    v = signed_in(world, a.token)
    billing = {
        r["description"]: r["items"]
        for r in api_data(srv, a.token, "/api/v2/billing.php", api="all")
    }
    before = {r["api"]: r for r in api_data(srv, a.token, "/api/v2/forecast")}
    statement = api_data(srv, a.token, "/api/v2/statement")
    info = api_data(srv, a.token, "/api/v2/information.php", api="token_info")[0]
    page = v.get("/dashboard")
    after = {r["api"]: r for r in api_data(srv, a.token, "/api/v2/forecast")}
    later = api_data(srv, a.token, "/api/v2/statement")
    assert page.status_code == 200
    rows = product_rows(page.text)
    assert list(rows) == [api for api, _, _ in SPEC_CATALOG]
    amounts = {line["api"]: line["amount"] for line in statement["lines"]}
    for api, (figure, predicted, amount) in rows.items():
        assert figure == before[api]["items"] == billing[before[api]["description"]], api
        assert Decimal(after[api]["forecast"]) <= Decimal(predicted), api
        assert Decimal(predicted) <= Decimal(before[api]["forecast"]), api
        assert amount == amounts[api], api
        assert f'id="title-{api}">{before[api]["description"]}</th>' in page.text
    assert Decimal(rows["ivr_minutes"][2]) > 0
    assert Decimal(rows["pbx_licenses"][2]) > 0
    assert data_by_id(page.text, "statement-total") == statement["total"] == later["total"]
    shown = Decimal(data_by_id(page.text, "forecast-total"))
    assert Decimal(later["forecast_total"]) <= shown <= Decimal(statement["forecast_total"])
    assert statement["status"] == "draft"
    assert "status-draft" in page.text
    assert data_by_id(page.text, "quota-limit") == info["token_limit"]
    assert data_by_id(page.text, "quota-all") == info["all_token_today"]
    assert data_by_id(page.text, "quota-mine") == info["token_use_today"]
    assert data_by_id(page.text, "quota-available") == info["available_consumption_options"]
    # the page costs no quota: the next token_info counts the two API reads since, and itself
    again = api_data(srv, a.token, "/api/v2/information.php", api="token_info")[0]
    assert int(again["all_token_today"]) == int(info["all_token_today"]) + 3
    v.close()


def test_a_daily_chart_per_product_with_one_bar_per_day(world: World) -> None:
    v = signed_in(world, world.a.token)
    page = v.get("/dashboard").text
    days = api_data(world.srv, world.a.token, "/api/v2/daily", api="ivr_minutes")
    row = re.search(r'<tr id="product-ivr_minutes".*?</tr>', page, re.S)
    assert row
    assert '<svg class="chart"' in row[0]
    bars = re.findall(r"<rect [^>]*><title>([^<]*)</title>", row[0])
    assert len(bars) == len(days)
    today = days[-1]
    assert bars[-1].endswith(": " + format_decimal(Decimal(today["items"]), locale="en"))
    heights = [float(h) for h in re.findall(r'height="([0-9.]+)"><title>', row[0])]
    assert max(heights) == 48.0  # the month's largest day fills the chart
    v.close()


def test_the_printable_statement_lists_every_line(world: World) -> None:
    v = signed_in(world, world.a.token)
    statement = api_data(world.srv, world.a.token, "/api/v2/statement")
    page = v.get(f"/dashboard/operations/{world.a_id}/statement")
    assert page.status_code == 200
    assert page.text.count("<tr data-api=") == len(statement["lines"]) == len(SPEC_CATALOG)
    assert data_by_id(page.text, "statement-total") == statement["total"]
    v.close()


def test_pages_carry_the_security_headers_and_no_script(world: World) -> None:
    v = signed_in(world, world.a.token)
    for path in ("/dashboard", f"/dashboard/operations/{world.a_id}/statement"):
        page = v.get(path)
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "script-src" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text
        assert "style=" not in page.text
    css = v.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200
    assert "@media print" in css.text
    v.close()


# -- languages ------------------------------------------------------------------------------


def test_accept_language_and_the_switch_choose_the_language(world: World) -> None:
    v = signed_in(world, world.a.token, **{"accept-language": "es-CO,es;q=0.9,en;q=0.5"})
    page = v.get("/dashboard")
    assert '<html lang="es">' in page.text
    assert "Estado de cuenta" in page.text
    assert "Productos" in page.text
    figure = product_rows(page.text)["ivr_minutes"][0]
    assert f'<data value="{figure}">{format_decimal(Decimal(figure), locale="es")}</data>' in (
        page.text
    )
    switched = v.get("/dashboard", params={"lang": "pt-BR"})
    assert '<html lang="pt-BR">' in switched.text
    assert "Extrato" in switched.text
    shown = format_decimal(Decimal(figure), locale="pt_BR")
    assert f'<data value="{figure}">{shown}</data>' in switched.text
    assert "," in shown or "." in shown
    # the choice is remembered for the next pages
    assert '<html lang="pt-BR">' in v.get("/dashboard").text
    assert 'hreflang="en"' in switched.text
    assert "lang=en" in switched.text
    v.close()


def test_an_unknown_language_is_a_clear_400_page(world: World, visitor: Visitor) -> None:
    for lang in ("xx", "de", "<script>"):
        page = visitor.get("/dashboard", params={"lang": lang})
        assert page.status_code == 400
        assert "Unknown language" in page.text
        assert "<script>" not in page.text


# -- the admin overview ---------------------------------------------------------------------


def test_the_admin_overview_lists_every_operation_with_its_totals(world: World) -> None:
    v = signed_in(world, world.admin_token)
    page = v.get("/dashboard")
    assert page.status_code == 200
    listed = dict(
        re.findall(r'<tr data-operation="(\d+)">.*?<a href="[^"]*">([^<]*)</a>', page.text, re.S)
    )
    assert listed[str(world.a_id)] == world.a.name
    assert listed[str(world.b_id)] == world.b.name
    statement = api_data(world.srv, world.a.token, "/api/v2/statement")
    row_a = re.search(rf'<tr data-operation="{world.a_id}">.*?</tr>', page.text, re.S)
    assert row_a
    totals = re.findall(r'<data value="([^"]*)"', row_a[0])
    assert [Decimal(t) for t in totals] == [
        Decimal(statement["total"]),
        Decimal(statement["forecast_total"]),
    ]
    by_total = v.get("/dashboard", params={"sort": "total", "dir": "desc"}).text
    order = re.findall(r'<tr data-operation="(\d+)">', by_total)
    assert order.index(str(world.a_id)) < order.index(str(world.b_id))
    assert 'aria-sort="descending"' in by_total
    by_name = v.get("/dashboard", params={"sort": "name", "dir": "asc"}).text
    names = re.findall(r'<tr data-operation="\d+">\s*<th scope="row"><a [^>]*>([^<]*)</a>', by_name)
    assert names == sorted(names)
    v.close()


def test_the_admin_sees_an_operation_as_the_operation_does(world: World) -> None:
    admin = signed_in(world, world.admin_token)
    own = signed_in(world, world.a.token)
    as_admin = admin.get(f"/dashboard/operations/{world.a_id}").text
    as_own = own.get("/dashboard").text

    def products(html: str) -> str:
        """The products table without its forecasts (they move on with the clock)."""
        found = re.search(r'<section aria-labelledby="products">.*?</section>', html, re.S)
        assert found
        return re.sub(r'<td class="num forecast">.*?</td>', "", found[0])

    assert products(as_admin) == products(as_own)
    admin_rows, own_rows = product_rows(as_admin), product_rows(as_own)
    assert admin_rows.keys() == own_rows.keys()
    for api, (figure, predicted, amount) in admin_rows.items():
        assert (figure, amount) == (own_rows[api][0], own_rows[api][2])
        assert Decimal(own_rows[api][1]) <= Decimal(predicted)  # read a moment later
    assert data_by_id(as_admin, "statement-total") == data_by_id(as_own, "statement-total")
    admin.close()
    own.close()


def test_an_admin_token_opens_no_api(world: World) -> None:
    for path, params in (
        ("/api/v2/billing.php", {"api": "all"}),
        ("/api/v2/information.php", {"api": "token_info"}),
        ("/api/v2/statement", {}),
    ):
        reply = world.srv.get(path, world.admin_token, params=params)
        assert reply.status_code == 403
        assert reply.json()["code"] == 403


def test_admin_tokens_are_listed_revoked_and_audited(world: World) -> None:
    made = cli(world.srv.db, "token", "create", "--admin", "--description", "short-lived")
    token_id = made.stdout.split()[2].rstrip(",")
    secret = made.stdout.splitlines()[-1]
    listing = cli(world.srv.db, "token", "list").stdout
    assert token_id in listing
    assert "(admin)" in listing
    assert secret not in listing
    v = signed_in(world, secret)
    assert v.get("/dashboard").status_code == 200
    cli(world.srv.db, "token", "revoke", token_id)
    assert v.get("/dashboard").status_code == 401
    assert Visitor(world.srv).sign_in(secret).status_code == 403
    audit = cli(world.srv.db, "audit", "--format", "json").stdout
    assert audit.count(token_id) == 2
    assert secret not in audit
    refused = cli(
        world.srv.db,
        "token",
        "create",
        "--admin",
        "--operation",
        world.a.name,
        "--description",
        "x",
        check=False,
    )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    v.close()


# -- bad input: a clear page, never another operation's data --------------------------------


def test_an_operation_token_never_reaches_another_operation(world: World) -> None:
    """Every dashboard route, with B's session and A's id: a 404 page with nothing of A's."""
    v = signed_in(world, world.b.token)
    for path in (
        f"/dashboard/operations/{world.a_id}",
        f"/dashboard/operations/{world.a_id}/statement",
        f"/dashboard/operations/{world.a_id}?month=2026-01",
        "/dashboard/operations/99999999",
        "/dashboard/operations/99999999999999999999999",
    ):
        page = v.get(path)
        assert page.status_code == 404, path
        assert "There is no such operation" in page.text
        assert world.a.name not in page.text
    page = v.get("/dashboard/overview")
    assert page.status_code == 403
    assert "needs an admin token" in page.text
    assert world.a.name not in page.text
    own = v.get("/dashboard").text
    assert world.b.name in own
    assert world.a.name not in own
    assert v.get(f"/dashboard/operations/{world.b_id}").status_code == 200
    v.close()


def test_bad_months_sorts_and_paths_are_clear_pages(world: World) -> None:
    v = signed_in(world, world.a.token)
    for month in ("2026-13", "26-01", "next", "9999-01"):
        page = v.get("/dashboard", params={"month": month})
        assert page.status_code == 400, month
        assert "month" in page.text
        assert "Traceback" not in page.text
    assert v.get("/dashboard/nowhere").status_code == 404
    admin = signed_in(world, world.admin_token)
    assert admin.get("/dashboard", params={"sort": "secret"}).status_code == 400
    assert admin.get("/dashboard", params={"month": "2026-99"}).status_code == 400
    v.close()
    admin.close()


def test_the_view_lists_the_alerts_with_their_last_delivery(world: World) -> None:
    from tests.fakes import FakeSecretBox
    from voxmeter.service.alerts import create_alert

    srv = world.srv
    c = srv.tenant()
    with admin_context(srv.db) as ctx:
        op = tenancy.find_operation(ctx, c.name, c.server)
        create_alert(
            ctx,
            FakeSecretBox(),
            op,
            product="ivr_minutes",
            threshold="5",
            on="figure",
            url="http://127.0.0.1:9/hook",
        )
    v = signed_in(world, c.token)
    alerts = v.get("/dashboard").text.split('id="alerts"')[1]
    assert "No alerts." not in alerts
    assert "ivr_minutes" in alerts
    assert "none yet" in alerts  # not fired: nothing delivered
    assert srv.post_events(c.token, [now_event("c-1", "ivr_minutes", "7")]).status_code == 200
    fired = v.get("/dashboard").text.split('id="alerts"')[1]
    assert "ivr_minutes" in fired
    assert "none yet" not in fired  # its delivery is listed: queued, or its first attempt
    v.close()


def test_a_stale_mirror_is_marked_on_its_view_and_in_the_overview(world: World) -> None:
    from dataclasses import replace

    from tests.fakes import FakeSecretBox
    from voxmeter.domain.mirrors import MirrorOptions
    from voxmeter.service.alerts import create_alert
    from voxmeter.service.mirrors import create_mirror

    srv = world.srv
    down = MirrorOptions("http://127.0.0.1:9")  # nothing answers: no sweep succeeds
    with admin_context(srv.db) as ctx:
        earlier = replace(ctx, clock=lambda: ctx.clock() - 2 * 3600 * MICROS)
        stale = create_mirror(earlier, FakeSecretBox(), "stale-mirror", "9950", down, "t0ken")
        fresh = create_mirror(ctx, FakeSecretBox(), "fresh-mirror", "9951", down, "t0ken")
        create_alert(ctx, FakeSecretBox(), stale, product=None, threshold=None, on="stale",
                     url="http://127.0.0.1:9/hook")  # fmt: skip
    admin = signed_in(world, world.admin_token)
    overview = admin.get("/dashboard").text

    def row(operation_id: int) -> str:
        found = re.search(rf'<tr data-operation="{operation_id}">.*?</tr>', overview, re.S)
        assert found
        return found[0]

    assert re.search(r"</a>\s*<span class=\"status status-stale\">stale</span>", row(stale.id))
    assert "status-stale" not in row(fresh.id)
    assert "status-stale" not in row(world.a_id)
    view = admin.get(f"/dashboard/operations/{stale.id}").text
    assert '<span class="status status-stale" id="stale-marker">stale</span>' in view
    assert "these figures may be behind" in view
    alerts = view.split('id="alerts"')[1]
    assert re.search(r"<th scope=\"row\">mirror</th><td>stale</td><td class=\"num\"></td>", alerts)
    for quiet in (fresh.id, world.a_id):
        page = admin.get(f"/dashboard/operations/{quiet}").text
        assert "stale-marker" not in page
        assert "may be behind" not in page
    spanish = admin.get(f"/dashboard/operations/{stale.id}", params={"lang": "es"}).text
    assert 'id="stale-marker">desactualizado</span>' in spanish
    assert "pueden estar atrasadas" in spanish
    portuguese = admin.get("/dashboard", params={"lang": "pt-BR"}).text
    assert '<span class="status status-stale">desatualizado</span>' in portuguese
    admin.close()
