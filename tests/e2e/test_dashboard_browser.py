"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
server process, on both backends: sign-in by typing, figures equal to the API's, charts drawn,
the language switch, keyboard-only use, sign-out, the admin overview, a stale mirror's marker,
the statement printed to one A4 page, and an axe-core scan. Screenshots and PDFs are kept in
the test-artefact folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.e2e.browser.chromium import AXE, CHROMIUM, artefacts, require
from tests.e2e.harness import SPEC_CATALOG, Tenant, VoxServer, admin_context, cli
from voxmeter.service import tenancy
from voxmeter.service.prices import set_price


def event(event_id: str, product: str, quantity: str) -> dict[str, str]:
    now = datetime.now(UTC).isoformat()
    return {"id": event_id, "product": product, "time": now, "quantity": quantity}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tenants(server: VoxServer) -> tuple[Tenant, Tenant, str]:
    """Operation A with usage and prices, B with other usage, and an admin token."""
    a, b = server.tenant(), server.tenant()
    events = [
        event("a-1", "ivr_minutes", "1234.5"),
        event("a-2", "tts_chars", "12345.125"),
        event("a-3", "pbx_licenses", "61"),
        event("a-4", "interactions", "3"),
    ]
    assert server.post_events(a.token, events).status_code == 200
    assert server.post_events(b.token, [event("b-1", "ivr_minutes", "99")]).status_code == 200
    with admin_context(server.db) as ctx:
        op = tenancy.find_operation(ctx, a.name, a.server)
        set_price(ctx, op, "ivr_minutes", "USD", unit_price="0.0123")
        set_price(ctx, op, "pbx_licenses", "USD", tiers=["10:5", "inf:3.5"])
    made = cli(server.db, "token", "create", "--admin", "--description", "browser admin")
    return a, b, made.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def stale_mirror(server: VoxServer) -> int:
    """A mirror created two hours ago whose upstream never answers: stale (limit 60 minutes)."""
    from dataclasses import replace

    from tests.fakes import FakeSecretBox
    from voxmeter.domain.mirrors import MirrorOptions
    from voxmeter.service.mirrors import create_mirror

    with admin_context(server.db) as ctx:
        earlier = replace(ctx, clock=lambda: ctx.clock() - 2 * 3600 * 1_000_000)
        options = MirrorOptions("http://127.0.0.1:9")
        op = create_mirror(earlier, FakeSecretBox(), "stale-mirror", "9950", options, "t0ken")
    return op.id


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page; anything the page's security policy blocked fails."""
    context = chromium.new_context(locale="en-US")
    tab = context.new_page()
    blocked: list[str] = []
    tab.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    yield tab
    context.close()
    assert not blocked, blocked


def shot(tab: Any, name: str, backend: str) -> None:
    tab.screenshot(path=str(artefacts() / f"dashboard-{name}-{backend}.png"), full_page=True)


def sign_in(tab: Any, server: VoxServer, token: str) -> None:
    tab.goto(server.url("/dashboard"))
    tab.get_by_label("Token").fill(token)
    with tab.expect_navigation():
        tab.get_by_role("button", name="Sign in").click()


def api(server: VoxServer, token: str, path: str, **params: str) -> Any:
    reply = requests.get(
        server.url(path), params=params, headers={"wolkvox-token": token}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def test_sign_in_and_every_figure_equal_to_the_apis(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], page: Any, backend: str
) -> None:
    a, _, _ = tenants
    sign_in(page, server, a.token)
    assert page.locator("h1").first.inner_text().startswith(a.name)
    assert a.token not in page.url
    assert a.token not in page.content()
    statement = api(server, a.token, "/api/v2/statement")
    billing = api(server, a.token, "/api/v2/billing.php", api="all")
    rows = page.eval_on_selector_all(
        "tr[data-api]",
        "rows => rows.map(r => [r.dataset.api, [...r.querySelectorAll('data')].map(d => d.value)])",
    )
    assert [api_ for api_, _ in rows] == [api_ for api_, _, _ in SPEC_CATALOG]
    figures = {r["description"]: r["items"] for r in billing}
    amounts = {line["api"]: line["amount"] for line in statement["lines"]}
    titles = {api_: title for api_, title, _ in SPEC_CATALOG}
    for api_, (figure, _, amount) in rows:
        assert figure == figures[titles[api_]], api_
        assert amount == amounts[api_], api_
    assert page.locator("#statement-total data").get_attribute("value") == statement["total"]
    # the style sheet loaded under the page's security policy: the charts are drawn in colour
    fill = page.eval_on_selector(".chart rect", "r => getComputedStyle(r).fill")
    assert fill == "rgb(47, 111, 159)"
    shot(page, "operation", backend)
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert a.token not in log


def test_a_chart_is_drawn_for_every_product(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], page: Any, backend: str
) -> None:
    a, _, _ = tenants
    sign_in(page, server, a.token)
    charts = page.locator("svg.chart")
    assert charts.count() == len(SPEC_CATALOG)
    chart = page.locator("#product-ivr_minutes svg.chart")
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 20
    heights = chart.locator("rect").evaluate_all(
        "rs => rs.map(r => r.getBoundingClientRect().height)"
    )
    assert max(heights) > 20  # today's bar, the month's largest
    chart.screenshot(path=str(artefacts() / f"dashboard-chart-{backend}.png"))


def test_the_language_switch(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], page: Any, backend: str
) -> None:
    a, _, _ = tenants
    sign_in(page, server, a.token)
    with page.expect_navigation():
        page.get_by_role("link", name="Español").click()
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.get_by_role("heading", name="Productos").is_visible()
    with page.expect_navigation():
        page.get_by_role("link", name="Português (Brasil)").click()
    assert page.locator("html").get_attribute("lang") == "pt-BR"
    figure = page.locator("#product-tts_chars td.figure data")
    assert figure.get_attribute("value") == "12345.125"
    assert figure.inner_text() == "12.345,125"
    shot(page, "pt-BR", backend)


def test_keyboard_alone_reaches_every_control(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], page: Any
) -> None:
    a, _, _ = tenants
    sign_in(page, server, a.token)
    controls = page.eval_on_selector_all(
        "a[href], button, input:not([type=hidden]), select, textarea",
        "els => els.map(e => e.outerHTML)",
    )
    reached: list[str] = []
    for _ in range(len(controls) + 5):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.outerHTML")
        if focused not in reached:
            reached.append(focused)
    assert set(controls) <= set(reached), set(controls) - set(reached)
    # and the sign-out button works from the keyboard
    page.locator("form.logout button").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_label("Token").is_visible()


def test_sign_out_and_the_old_cookie_no_longer_works(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], chromium: Any, page: Any
) -> None:
    a, _, _ = tenants
    sign_in(page, server, a.token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "vxm_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert not page.evaluate("document.cookie")  # not readable by any script
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert page.get_by_label("Token").is_visible()
    other = chromium.new_context()
    other.add_cookies([cookie])
    tab = other.new_page()
    reply = tab.goto(server.url("/dashboard"))
    assert reply.status == 401
    assert a.name not in tab.content()
    assert tab.get_by_label("Token").is_visible()
    other.close()


def test_the_admin_overview_sorts_and_links_to_each_operation(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], page: Any, backend: str
) -> None:
    a, b, admin = tenants
    sign_in(page, server, admin)
    assert page.get_by_role("heading", name=re.compile("All operations")).is_visible()
    names = page.locator("table.overview tbody th a").all_inner_texts()
    assert a.name in names
    assert b.name in names
    with page.expect_navigation():
        page.get_by_role("link", name="Statement total").click()  # ascending
    with page.expect_navigation():
        page.get_by_role("link", name="Statement total").click()  # descending
    totals = [
        Decimal(v)
        for v in page.locator("table.overview td.total data").evaluate_all(
            "ds => ds.map(d => d.value)"
        )
    ]
    assert totals == sorted(totals, reverse=True)
    shot(page, "overview", backend)
    with page.expect_navigation():
        page.get_by_role("link", name=a.name).click()
    statement = api(server, a.token, "/api/v2/statement")
    assert page.locator("#statement-total data").get_attribute("value") == statement["total"]
    assert page.locator("h1").first.inner_text().startswith(a.name)


def test_a_stale_mirror_is_marked_in_the_overview_and_on_its_view(
    server: VoxServer,
    tenants: tuple[Tenant, Tenant, str],
    stale_mirror: int,
    page: Any,
    backend: str,
) -> None:
    _, _, admin = tenants
    sign_in(page, server, admin)
    stale_row = page.locator(f'tr[data-operation="{stale_mirror}"]')
    assert stale_row.locator(".status-stale").inner_text() == "stale"
    assert page.locator("table.overview .status-stale").count() == 1  # no other row
    with page.expect_navigation():
        stale_row.get_by_role("link", name="stale-mirror").click()
    marker = page.locator("#stale-marker")
    assert marker.is_visible()
    assert marker.inner_text() == "stale"
    # the style sheet marks it: a light red badge with a dark red border
    colours = marker.evaluate(
        "m => [getComputedStyle(m).backgroundColor, getComputedStyle(m).borderColor]"
    )
    assert colours == ["rgb(253, 231, 233)", "rgb(164, 38, 44)"]
    assert page.locator("#stale").inner_text().endswith("these figures may be behind.")
    shot(page, "stale-mirror", backend)
    page.goto(server.url(f"/dashboard/operations/{stale_mirror}?lang=pt-BR"))
    assert page.locator("#stale-marker").inner_text() == "desatualizado"


def test_the_statement_prints_to_one_a4_page(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], page: Any, backend: str
) -> None:
    a, _, _ = tenants
    sign_in(page, server, a.token)
    with page.expect_navigation():
        page.get_by_role("link", name="Printable statement").click()
    assert page.locator("table.lines tbody tr").count() == len(SPEC_CATALOG) == 27
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    (artefacts() / f"dashboard-statement-{backend}.pdf").write_bytes(pdf)
    pages = re.findall(rb"/Type\s*/Page[^s]", pdf)
    assert len(pages) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]", pdf)
    assert box is not None
    width, height = float(box[1]), float(box[2])
    assert abs(width - 595.92) < 2  # A4: 210 x 297 mm in points
    assert abs(height - 842.88) < 2


def test_axe_finds_no_serious_or_critical_violation(
    server: VoxServer, tenants: tuple[Tenant, Tenant, str], stale_mirror: int, chromium: Any
) -> None:
    require(AXE)
    a, _, admin = tenants
    found: dict[str, list[str]] = {}
    for who, token in (("operation", a.token), ("admin", admin)):
        context = chromium.new_context(bypass_csp=True)  # so axe can be injected
        tab = context.new_page()
        tab.goto(server.url("/dashboard"))
        tab.add_script_tag(path=str(AXE))
        found[f"{who} sign-in"] = _serious(tab)
        sign_in(tab, server, token)
        paths = [tab.url]
        if who == "operation":
            with tab.expect_navigation():
                tab.get_by_role("link", name="Printable statement").click()
            paths += [tab.url, server.url("/dashboard?lang=es"), server.url("/dashboard/nowhere")]
        else:
            paths.append(server.url(f"/dashboard/operations/{stale_mirror}"))
        for url in paths:
            tab.goto(url)
            tab.add_script_tag(path=str(AXE))
            found[f"{who} {url}"] = _serious(tab)
        context.close()
    assert len(found) == 8  # two sign-in pages, four of the operation, the overview, a mirror
    assert not any(found.values()), found


def _serious(tab: Any) -> list[str]:
    result = tab.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
