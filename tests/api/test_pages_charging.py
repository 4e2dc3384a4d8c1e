"""The drivers' map's charging layer and the dashboard's blocked hours in Debian's Chromium:
a marker per charging station and the same in the accessible list, each point's status in
plain words (German and English), the filters (a free point, a connector, a minimum power)
hiding what does not fit; the dashboard's table of blocked hours."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from _browser import LEAFLET, browser_fixture, error_free_tab
from _citytoml import evse_id, write_city
from _helpers import utc_now
from playwright.sync_api import Browser, Page, expect
from test_pages import Site, screenshot, serve_pages

from core.channels import charger_status_topic
from core.city import load_city
from core.registry import sync_registry

pytestmark = pytest.mark.browser


def seed_chargers(conn: psycopg.Connection[Any], site: Site, now: datetime) -> None:
    """Station 1 on the street: point 1 available with its bay empty (free), point 2
    charging; station 2 in the garage (DC: CCS and CHAdeMO) out of order; the garage counted."""
    city = site.city
    sync_registry(conn, city)
    cid = city.id
    ago = now - timedelta(minutes=30)

    def status(point: str, word: str) -> tuple[str, dict[str, Any]]:
        return charger_status_topic(cid, point), {"status": word, "ts": ago.isoformat()}

    site.ingest(
        site.counter("garage", 30, now - timedelta(seconds=30)),
        *(site.bay(f"st-00{n}", n == 2, now - timedelta(seconds=20)) for n in range(1, 5)),
        status(evse_id(cid, 1, 1), "AVAILABLE"), status(evse_id(cid, 1, 2), "CHARGING"),
        status(evse_id(cid, 2, 1), "OUTOFORDER"),
        received=now)


@pytest.fixture(scope="module")
def site(admin_url: str, template_db: str, mqtt_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("pages-charging")
    city = load_city(str(write_city(directory, f"c{secrets.token_hex(4)}", chargers=True)))
    with serve_pages(admin_url, template_db, mqtt_url, directory, [city],
                     lambda conn, sites: seed_chargers(conn, sites[0], utc_now())) as [site]:
        yield site


browser = browser_fixture(LEAFLET)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; a JavaScript error on the page fails the test."""
    with error_free_tab(browser) as tab:
        yield tab


def test_the_charging_layer_and_its_filters(page: Page, site: Site) -> None:
    cid = site.city.id
    street, garage = f"{cid}-cp-1", f"{cid}-cp-2"
    page.goto(f"{site.url}/")
    stations = page.locator("#charge-list li.charge-station")
    expect(stations).to_have_count(2)
    marker = page.locator(f'.charge-marker[data-station-id="{street}"]')
    expect(marker).to_be_visible()
    assert marker.inner_text().strip() == "⚡1"
    assert marker.get_attribute("aria-label") == "Ladesäule Teststraße: 1 von 2 Ladepunkten frei"
    one = page.locator(f'#charge-list li[data-evse-id="{evse_id(cid, 1, 1)}"]')
    assert one.inner_text() == "Ladepunkt 1: frei (Typ 2 22 kW)"
    assert "belegt, es wird geladen" in page.inner_text(
        f'#charge-list li[data-evse-id="{evse_id(cid, 1, 2)}"]')
    assert "gestört" in page.inner_text(f'#charge-list li[data-evse-id="{evse_id(cid, 2, 1)}"]')
    screenshot(page, "map-charging")

    # A connector the street's station has not: its marker and list item are gone.
    page.select_option("#charge-connector", "CHADEMO")
    expect(marker).to_have_count(0)
    expect(stations).to_have_count(1)
    expect(page.locator(f'.charge-marker[data-station-id="{garage}"]')).to_be_visible()
    page.select_option("#charge-connector", "")
    # Only stations with a free point: the garage's (out of order) goes.
    page.check("#charge-free")
    expect(page.locator(f'.charge-marker[data-station-id="{garage}"]')).to_have_count(0)
    expect(marker).to_be_visible()
    expect(page.locator(f'#charge-list li[data-evse-id="{evse_id(cid, 1, 2)}"]')).to_have_count(0)
    # 50 kW at least: the street's 22 kW point is filtered out too.
    page.select_option("#charge-power", "50")
    expect(marker).to_have_count(0)
    expect(stations).to_have_count(0)
    assert page.inner_text("#charge-count") == "0 Ladestationen passen"
    page.select_option("#charge-power", "0")
    expect(marker).to_be_visible()

    page.click("#lang")  # the filter still on: the points it lets through
    assert one.inner_text() == "Charging point 1: free (Typ 2 22 kW)"
    assert page.locator(f'.charge-marker[data-station-id="{street}"]').get_attribute(
        "aria-label") == "Ladesäule Teststraße: 1 of 1 charging points free"


def test_dashboard_blocked_hours(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/dashboard")
    page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
    rows = page.locator("#chargers-table tbody tr")
    expect(rows).to_have_count(3)
    assert "ab 15 Minuten" in page.inner_text("#chargers-note")
    assert evse_id(site.city.id, 1, 1) in page.inner_text("#chargers-table")
