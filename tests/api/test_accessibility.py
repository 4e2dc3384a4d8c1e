"""Accessibility of every page in Debian's Chromium: axe-core (npm, a development dependency of
api/static, injected by the test and never served) finds no WCAG 2.1 A/AA violation on the map,
the dashboard, each view of the kiosk and the console (its login form and the logged-in view
with open alarms, one acknowledged), in German and in English; and the console can be used
with the keyboard alone (acknowledging an alarm, closing and opening a lot), its focus always
visible. Screenshots go to ``test-artifacts/pages/`` (git-ignored), like the page tests'.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from _browser import NODE_MODULES, browser_fixture
from _citytoml import evse_id, write_city
from _helpers import ROOT, utc_now
from playwright.sync_api import Browser, BrowserContext, Page, expect
from test_console import PASSWORD, users
from test_pages import Site, seed_pages, serve_pages

from core.channels import charger_status_topic
from core.city import load_city
from core.settings import Settings
from ingest import evaluate_alarms

pytestmark = pytest.mark.browser

AXE = NODE_MODULES / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "pages"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
KIOSK_ROTATE_S = 60
LANGS = ["de", "en"]


@pytest.fixture(scope="module")
def site(admin_url: str, template_db: str, mqtt_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``parkleit api`` with the page tests' data and charging points (the map's charging
    layer: one point charging, one free, one out of order), and an operator ``olga`` for the
    console."""
    directory = tmp_path_factory.mktemp("a11y")
    path = write_city(directory, f"a{secrets.token_hex(4)}", chargers=True)
    city = load_city(str(path))

    def seed(conn: psycopg.Connection[Any], sites: list[Site]) -> None:
        now = utc_now()
        seed_pages(conn, sites[0], now)
        ts = (now - timedelta(minutes=5)).isoformat()
        sites[0].ingest(*((charger_status_topic(city.id, evse_id(city.id, *point)),
                           {"status": status, "ts": ts})
                          for point, status in (((1, 1), "CHARGING"), ((1, 2), "AVAILABLE"),
                                                ((2, 1), "OUTOFORDER"))), received=now)

    with serve_pages(admin_url, template_db, mqtt_url, directory, [city], seed) as [site]:
        settings = Settings(DATABASE_URL=site.db_url, MQTT_URL=mqtt_url, CITY=str(path))
        added = users(settings, "add", "olga", "--role", "operator", stdin=f"{PASSWORD}\n")
        assert added.returncode == 0, added.stderr
        yield site


browser = browser_fixture(AXE)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context with axe-core in its pages; a JavaScript error on them fails
    the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="de-DE")
    # By the browser's debugging protocol, which the pages' Content-Security-Policy does not
    # govern: a <script> element (Playwright's add_script_tag) is inline script, which the
    # policy blocks, and the test must not weaken the policy (bypass_csp) of what it checks.
    context.add_init_script(path=AXE)
    errors: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: errors.append(str(error)))
        # The console's v1/console/me before logging in is a 401 by contract; Chromium logs
        # every 4xx it loads.
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" and "status of 401" not in message.text else None)

    context.on("page", watch)
    yield context
    context.close()
    assert not errors, f"errors in the page: {errors}"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it is now."""
    found: list[dict[str, Any]] = page.evaluate("""async (tags) => {
        const result = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
        return result.violations.map((violation) => ({
            id: violation.id, impact: violation.impact, help: violation.help,
            nodes: violation.nodes.map((node) => ({
                target: node.target.join(' '), summary: node.failureSummary })),
        }));
    }""", WCAG_21_AA)
    return found


def readable(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}, "
                     f"{len(violation['nodes'])} element(s)")
        for node in violation["nodes"][:5]:
            summary = " / ".join(node["summary"].splitlines()[1:3]).strip()
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def assert_accessible(page: Page, name: str) -> None:
    """No axe violation on the page, which is saved as ``test-artifacts/pages/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")  # noqa: T201 (where to look, with -s)
    violations = axe_violations(page)
    assert not violations, f"axe-core, WCAG 2.1 AA, {name}:\n{readable(violations)}"


def test_axe_sees_a_violation_it_is_shown(context: BrowserContext, site: Site) -> None:
    """The check itself can fail: an image without a text alternative is found and named."""
    page = context.new_page()
    page.goto(f"{site.url}/")
    page.wait_for_selector("#lot-list li")
    page.evaluate("document.querySelector('main').append(Object.assign("
                  "document.createElement('img'), { src: 'static/favicon.svg' }))")
    violations = axe_violations(page)
    assert [violation["id"] for violation in violations] == ["image-alt"]
    assert "image-alt (critical)" in readable(violations)


@pytest.mark.parametrize("lang", LANGS)
def test_map(context: BrowserContext, site: Site, lang: str) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/?lang={lang}")
    page.wait_for_function(
        f"() => document.querySelectorAll('#lot-list li').length === {len(site.city.lots)}")
    page.wait_for_selector('#connection[data-state="live"]')
    # With the charging layer: its markers and its list of stations.
    page.wait_for_selector("#charge-list li.charge-station")
    page.wait_for_selector(".charge-marker")
    assert_accessible(page, f"a11y-map-{lang}")
    # With a lot's popup open, from its marker.
    page.locator(f'.lot-marker[data-lot-id="{site.lot("garage")}"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".leaflet-popup-content >> text=Parkhaus Test")
    # Once faded in: half-way, its text is paler than it will be.
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")
    assert_accessible(page, f"a11y-map-popup-{lang}")


@pytest.mark.parametrize("lang", LANGS)
def test_dashboard(context: BrowserContext, site: Site, lang: str) -> None:
    page = context.new_page()
    page.goto(f"{site.url}/dashboard?lang={lang}")
    page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
    assert_accessible(page, f"a11y-dashboard-{lang}")


@pytest.mark.parametrize("lang", LANGS)
def test_kiosk_each_view(context: BrowserContext, site: Site, lang: str) -> None:
    page = context.new_page()
    page.set_viewport_size({"width": 1920, "height": 1080})
    # The page's own timers on a clock the test moves on: each view stays while axe looks.
    page.clock.install()
    page.goto(f"{site.url}/kiosk?rotate={KIOSK_ROTATE_S}&lang={lang}")
    page.wait_for_function(
        f"() => document.querySelectorAll('#kiosk-lots li').length === {len(site.city.lots)}")
    assert page.locator(".lot-marker").count() == len(site.city.lots)
    ready = {"map": ".lot-marker", "signs": "#sign-grid .sign-line .text >> text=70",
             "forecast": "#today-table tbody tr"}
    for view, selector in ready.items():
        page.wait_for_function(f"() => document.body.dataset.view === '{view}'")
        page.wait_for_selector(selector)
        assert_accessible(page, f"a11y-kiosk-{view}-{lang}")
        page.clock.fast_forward(KIOSK_ROTATE_S * 1000)


def raise_alarms(site: Site) -> int:
    """The alarms of the seeded data (a stale lot, a counter jump, a low battery, a silent
    gateway, ...), raised as ingest's evaluator does; one of them acknowledged. How many are
    open."""
    with psycopg.connect(site.db_url, autocommit=True) as conn:
        evaluate_alarms(conn, site.city.id, utc_now())
        conn.execute("UPDATE alarms SET acknowledged_by = 'olga', acknowledged_at = since, "
                     "ack_comment = 'Techniker informiert' WHERE id = (SELECT min(id) FROM "
                     "alarms WHERE kind = 'battery_low')")
        row = conn.execute("SELECT count(*) FROM alarms WHERE cleared_at IS NULL").fetchone()
    assert row is not None and row[0] >= 3
    return int(row[0])


@pytest.mark.parametrize("lang", LANGS)
def test_console_login_and_logged_in(context: BrowserContext, site: Site, lang: str) -> None:
    alarms = raise_alarms(site)
    page = context.new_page()
    page.goto(f"{site.url}/console?lang={lang}")
    expect(page.locator("#username")).to_be_focused()
    assert_accessible(page, f"a11y-console-login-{lang}")
    # A failed attempt: the error is announced (role=alert) and must be readable too.
    page.fill("#username", "olga")
    page.fill("#password", "not the password")
    page.press("#password", "Enter")
    expect(page.locator("#login-error")).not_to_be_empty()
    assert_accessible(page, f"a11y-console-login-error-{lang}")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page.locator("#who")).to_contain_text("olga")
    expect(page.locator("#lot-rows tr")).to_have_count(len(site.city.lots))
    expect(page.locator("#alarm-rows tr")).to_have_count(alarms)
    expect(page.locator("#alarm-rows .ack form")).to_have_count(alarms - 1)
    assert_accessible(page, f"a11y-console-{lang}")


def test_console_by_keyboard_alone(context: BrowserContext, site: Site) -> None:
    """Log in, acknowledge an alarm with a comment, close a lot with a reason and open it
    again with Tab, Enter and Space only; every element that takes the focus shows it."""
    raise_alarms(site)
    page = context.new_page()
    page.goto(f"{site.url}/console")
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("olga")
    press(page, "Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text("olga")
    expect(page.locator("#alarms-h")).to_be_focused()  # the page moves the focus to its work

    # The first alarm not yet acknowledged: its comment, then its button.
    first = page.locator("#alarm-rows tr").filter(has=page.locator("form")).first
    comment = str(first.locator("input").get_attribute("id"))
    for _ in range(10):
        if press(page, "Tab") == comment:
            break
    else:
        raise AssertionError(f"Tab never reached #{comment}")
    page.keyboard.type("Techniker unterwegs")
    press(page, "Tab")
    expect(first.get_by_role("button")).to_be_focused()
    page.keyboard.press("Enter")
    acked = page.locator(f"#alarm-rows tr[data-alarm='{comment.removeprefix('comment-')}']")
    expect(acked).to_contain_text("quittiert von olga")
    expect(acked).to_contain_text("Techniker unterwegs")
    expect(page.locator("#alarms-h")).to_be_focused()  # back on top of the alarms

    lot = site.lot("garage")
    name = site.city.lot(lot).name
    row = page.locator(f"tr[data-lot='{lot}']")
    expect(row.locator(".badge")).to_have_text("frei")
    reason = f"reason-{lot}"
    for _ in range(60):  # past the other alarms' forms
        if press(page, "Tab") == reason:
            break
    else:
        raise AssertionError(f"Tab never reached #{reason}")
    expect(page.get_by_label(f"Grund für die Schließung von {name}")).to_be_focused()
    page.keyboard.type("Baustelle Ebene 2")
    press(page, "Tab")
    button = row.get_by_role("button", name=f"{name} schließen")
    expect(button).to_be_focused()
    page.keyboard.press("Space")
    expect(row.locator(".badge")).to_have_text("geschlossen")
    expect(page.locator("#audit-rows")).to_contain_text("Baustelle Ebene 2")
    # The same button, now to open it again, keeps the focus (the reason field is gone).
    reopen = row.get_by_role("button", name=f"{name} wieder öffnen")
    expect(reopen).to_be_focused()
    assert focus_shown(page)["shown"], focus_shown(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-keyboard.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(row.locator(".badge")).to_have_text("frei")
    expect(row.get_by_role("button", name=f"{name} schließen")).to_be_focused()
    # Back to the reason field with Shift+Tab, the focus still shown.
    assert press(page, "Shift+Tab") == reason


def focus_shown(page: Page) -> dict[str, Any]:
    """The focused element, and whether it shows the focus: a visible outline of at least
    2 px, on an element the page shows."""
    shown: dict[str, Any] = page.evaluate("""() => {
        const element = document.activeElement;
        const style = getComputedStyle(element);
        const box = element.getBoundingClientRect();
        return {
            id: element.id, tag: element.tagName,
            name: element.getAttribute('aria-label') || element.textContent.trim().slice(0, 40),
            shown: element !== document.body && element.matches(':focus-visible')
                && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2
                && box.width > 0 && box.height > 0,
        };
    }""")
    return shown


def press(page: Page, key: str) -> str:
    """Press ``key``; the id of the element that then has the focus, which must show it."""
    page.keyboard.press(key)
    focused = focus_shown(page)
    assert focused["shown"], f"after {key}, the focus is not visible: {focused}"
    return str(focused["id"])
