"""The web pages in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One ``parkleit api`` process serves the module, on a database of its own with two weeks of
simulated history, live counts written through the real ingest ``Writer`` (so its NOTIFY
reaches the stream), forecasts, their published error and sign content; a second one serves
two cities (``PARKLEIT_CITIES``) to the tests of the pages' city links. Screenshots of every
page go to ``test-artifacts/pages/`` (git-ignored), so a person can look at what was tested.
Select these tests with ``-m browser``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from _browser import LEAFLET, browser_fixture, error_free_tab
from _citytoml import CHIRPSTACK_EUI, TTN_EUI, city_toml, write_city
from _helpers import ROOT, ServiceProcess, free_port, service_env, utc_now, wait_for
from _payloads import dumps, ttn_topic, ttn_uplink
from playwright.sync_api import Browser, Page
from psycopg import sql
from psycopg.types.json import Jsonb

from core.city import City, load_city
from core.db import queries
from core.registry import sync_registry
from core.settings import Settings
from ingest import Message, Writer, prepare_connection
from simulators.history import backfill_history

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "pages"
LIVE_WITHIN_MS = 5000
GARAGE_FORECAST_30 = 64.4  # free spaces, the garage's newest 30-minute forecast
GARAGE_MAE_30 = 4.4  # its published error at 30 minutes
GARAGE_BACKTEST_30 = 480  # of its points, backtest forecasts
BACKTEST_RGB = (192, 90, 0)  # the dashboard's backtest line


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Site:
    """The running API, its city and database, and a way to send sensor messages."""

    def __init__(self, url: str, city: City, db_url: str) -> None:
        self.url, self.city, self.db_url = url, city, db_url
        self.writer = Writer(city)

    def lot(self, name: str) -> str:
        return f"{self.city.id}-{name}"

    def ingest(self, *messages: tuple[str, dict[str, Any]], received: datetime) -> None:
        """Write sensor messages through the real ingest writer (which NOTIFYs at commit)."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            prepare_connection(conn)
            self.writer.write(conn, [Message(topic, dumps(body), received)
                                     for topic, body in messages], utc_now())

    def counter(self, lot: str, occupied: int, moment: datetime) -> tuple[str, dict[str, Any]]:
        return (f"parkleit/v1/{self.city.id}/lots/{self.lot(lot)}/counter",
                {"occupied": occupied, "ts": iso(moment)})

    def counts(self, lot: str, entries: int, exits: int,
               moment: datetime) -> tuple[str, dict[str, Any]]:
        return (f"parkleit/v1/{self.city.id}/lots/{self.lot(lot)}/counter",
                {"entries": entries, "exits": exits, "ts": iso(moment)})

    def bay(self, bay: str, occupied: bool, moment: datetime,
            **extra: Any) -> tuple[str, dict[str, Any]]:
        return (f"parkleit/v1/{self.city.id}/bays/{self.city.id}-{bay}",
                {"occupied": occupied, "ts": iso(moment), **extra})

    def api(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", timeout=10).json()


def seed_pages(conn: psycopg.Connection[Any], site: Site, now: datetime) -> None:
    """History, live counts, forecasts, their error, sensor health and sign content."""
    city = site.city
    sync_registry(conn, city)
    backfill_history(conn, city, end=now - timedelta(minutes=10), weeks=2, seed=3)
    site.ingest(
        site.counter("garage", 30, now - timedelta(seconds=30)),  # 70 of 100 free
        # Counted two hours ago, beyond its 15-minute staleness limit: shown as unknown.
        site.counter("small", 4, now - timedelta(hours=2)),
        # ... and its counter then restarted from another value (a swapped controller).
        site.counts("small", 500, 496, now - timedelta(hours=2) + timedelta(seconds=10)),
        site.counts("small", 9, 800, now - timedelta(hours=2) + timedelta(seconds=70)),
        site.bay("st-001", True, now - timedelta(seconds=20)),
        site.bay("st-002", True, now - timedelta(seconds=20), battery_v=2.41),
        site.bay("st-003", True, now - timedelta(seconds=20)),
        site.bay("st-004", False, now - timedelta(seconds=20)),
        # A LoRaWAN uplink three hours ago: its gateway has gone silent since.
        (ttn_topic(city.id), ttn_uplink(city.id, now - timedelta(hours=3))),
        received=now)
    garage = site.lot("garage")
    rows = []
    # A forecast 30 minutes ahead for every quarter of a day (live), and of the two days
    # before it (backtest: computed after the fact, before the first live forecast).
    for step in range(1, 3 * 4 * 24):
        target = now.replace(second=0, microsecond=0) - timedelta(minutes=15 * step)
        rows.append((target - timedelta(minutes=30), garage, 30, target, 60.0 + step % 7,
                     50.0, 75.0, 0.99, "test", "live" if step < 4 * 24 else "backtest"))
    origin = now - timedelta(minutes=1)
    for horizon in (15, 30, 60, 120):
        free = GARAGE_FORECAST_30 if horizon == 30 else 66.0
        rows.append((origin, garage, horizon, origin + timedelta(minutes=horizon), free,
                     free - 8, free + 8, 0.99, "test", "live"))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, free_p10,"
            " free_p90, p_space, model, kind) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows)
        cur.execute(
            "INSERT INTO forecast_accuracy (lot_id, horizon_min, window_days, mae, mae_rate,"
            " points, backtest_points, computed_at) VALUES (%s, 30, 7, %s, 0.044, 672, %s, %s)",
            (garage, GARAGE_MAE_30, GARAGE_BACKTEST_30, now))
        signage = queries("signage")
        sign = city.signs[0].id
        content = {"lines": [{"label": "Zentrum", "arrow": "left", "text": "70"}]}
        for minutes, ok in ((50, True), (20, False), (5, True)):
            cur.execute(signage["insert_sign_log"], {
                "time": now - timedelta(minutes=minutes), "sign_id": sign,
                "content": Jsonb(content), "ok": ok, "error": None if ok else "timed out",
                "ack": "200" if ok else None, "term": 1})
        cur.execute(signage["upsert_sign_state"], {
            "sign_id": sign, "content": Jsonb(content), "shown_since": now - timedelta(minutes=50),
            "last_ack": now - timedelta(minutes=5), "last_error": "timed out",
            "last_error_at": now - timedelta(minutes=20), "consecutive_failures": 0,
            "updated": now - timedelta(minutes=5)})


@contextmanager
def serve_pages(admin_url: str, template_db: str, mqtt_url: str, directory: Path,
                cities: list[City], seed: Callable[[psycopg.Connection[Any], list[Site]], None],
                **env: str) -> Iterator[list[Site]]:
    """``parkleit api`` of ``cities`` (config files in ``directory``) on a database of its
    own, seeded by ``seed`` before it starts: a :class:`Site` per city."""
    name = f"parkleit_t_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    db_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    port = free_port()
    sites = [Site(f"http://127.0.0.1:{port}", city, db_url) for city in cities]
    paths = [str(directory / f"{city.id}.toml") for city in cities]
    settings = Settings(DATABASE_URL=db_url, MQTT_URL=mqtt_url, CITY=paths[0])
    process = None
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            seed(conn, sites)
        process = ServiceProcess(["api", "--port", str(port)], service_env(
            settings, PARKLEIT_CITIES=",".join(paths), **env), directory / "api.log").start()

        def answers() -> bool:
            assert process is not None and process.proc is not None
            if process.proc.poll() is not None:
                raise AssertionError(f"parkleit api ended: {process.log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{sites[0].url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=30)
        yield sites
    finally:
        if process is not None:
            process.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@pytest.fixture(scope="module")
def site(admin_url: str, template_db: str, mqtt_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``parkleit api`` on a database and city of this module's own, with data in it."""
    directory = tmp_path_factory.mktemp("pages")
    city = load_city(str(write_city(directory, f"p{secrets.token_hex(4)}")))
    with serve_pages(admin_url, template_db, mqtt_url, directory, [city],
                     lambda conn, sites: seed_pages(conn, sites[0], utc_now()),
                     PARKLEIT_API_STREAM_STALE_CHECK_S="1") as [site]:
        yield site


browser = browser_fixture(LEAFLET)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; a JavaScript error on the page fails the test."""
    with error_free_tab(browser, accept_downloads=True) as tab:
        yield tab


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000  # a real picture, not an empty page
    return path


def item(site: Site, lot: str) -> str:
    return f'#lot-list li[data-lot-id="{site.lot(lot)}"]'


def test_map_shows_every_lot_and_updates_live(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/")
    lots = len(site.city.lots)
    page.wait_for_function(f"() => document.querySelectorAll('#lot-list li').length === {lots}")
    assert page.locator(".leaflet-marker-icon.lot-marker").count() == lots
    garage = page.locator(item(site, "garage"))
    assert garage.get_attribute("data-free") == "70"
    assert "70 frei" in garage.inner_text()
    assert "in 30 Min.: ~64 frei" in garage.inner_text()
    marker = page.locator(f'.lot-marker[data-lot-id="{site.lot("garage")}"]')
    assert marker.inner_text() == "70"
    assert "status-open" in (marker.get_attribute("class") or "")
    street = page.locator(item(site, "street"))  # 3 of 4 bays taken: almost full
    assert street.get_attribute("data-status") == "almost_full"
    page.wait_for_selector('#connection[data-state="live"]')

    page.evaluate("window.notReloaded = true")
    site.ingest(site.counter("garage", 45, utc_now()), received=utc_now())
    page.wait_for_function(
        f"""() => document.querySelector('{item(site, "garage")}').dataset.free === '55'""",
        timeout=LIVE_WITHIN_MS)
    assert marker.inner_text() == "55"
    assert "55 frei" in garage.inner_text()
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "map")


def test_one_city_shows_no_links_to_others(page: Page, site: Site) -> None:
    for path in ("/", "/dashboard"):
        page.goto(f"{site.url}{path}")
        page.wait_for_function("() => document.querySelector('#cities').hidden")
        assert page.locator("#cities").is_hidden(), path


def test_stale_lot_is_greyed_and_shows_no_count(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/")
    small = page.locator(item(site, "small"))
    small.wait_for()
    assert small.get_attribute("data-status") == "unknown"
    assert "is-stale" in (small.get_attribute("class") or "")
    assert small.locator(".lot-free").inner_text() == "–"
    assert "keine aktuellen Daten" in small.inner_text()
    pin = page.locator(f'.lot-marker[data-lot-id="{site.lot("small")}"] .lot-pin')
    assert pin.inner_text() == "?"
    grey = pin.evaluate("element => getComputedStyle(element).backgroundColor")
    assert grey == "rgb(213, 216, 220)"  # --unknown
    fresh = page.locator(f'.lot-marker[data-lot-id="{site.lot("garage")}"] .lot-pin')
    assert fresh.evaluate("element => getComputedStyle(element).backgroundColor") != grey

    # A count that arrives just inside the 15-minute limit shows, then greys out by itself
    # when it passes the limit, without any further message.
    now = utc_now()
    site.ingest(site.counter("small", 3, now - timedelta(seconds=900 - 6)), received=now)
    selector = item(site, "small")
    page.wait_for_function(f"() => document.querySelector('{selector}').dataset.free === '7'",
                           timeout=LIVE_WITHIN_MS)
    assert pin.inner_text() == "7"
    page.wait_for_function(
        f"() => document.querySelector('{selector}').dataset.status === 'unknown'",
        timeout=15_000)
    assert pin.inner_text() == "?"
    assert small.locator(".lot-free").inner_text() == "–"


def test_keyboard_and_screen_reader_basics(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/")
    page.wait_for_selector("#lot-list li")
    # Landmarks, a live region, a skip link first in the tab order.
    assert page.locator("header").count() == 1 and page.locator("main").count() == 1
    assert page.locator("[aria-live=polite]").count() == 1
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "lot-list-heading"
    # Markers a keyboard can reach and a screen reader names; Enter opens the details.
    marker = page.locator(f'.lot-marker[data-lot-id="{site.lot("garage")}"]')
    assert marker.get_attribute("tabindex") == "0"
    assert marker.get_attribute("role") == "button"
    assert "Parkhaus Test" in (marker.get_attribute("aria-label") or "")
    marker.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".leaflet-popup-content >> text=Parkhaus Test")


def test_english_switch(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/?lang=en")
    page.wait_for_selector("#lot-list li")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("h1") == "Free parking spaces"
    assert " free" in page.locator(item(site, "garage")).inner_text()
    page.click("#lang")
    assert page.get_attribute("html", "lang") == "de"
    assert page.inner_text("h1") == "Freie Parkplätze"
    assert "lang=" not in page.url
    assert " frei" in page.locator(item(site, "garage")).inner_text()
    page.click("#lang")
    assert page.get_attribute("html", "lang") == "en"
    assert "lang=en" in page.url


def test_dashboard_charts_render_with_data(page: Page, site: Site, tmp_path: Path) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{site.url}/dashboard")
    page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
    assert int(page.get_attribute("#occupancy", "data-points") or 0) > 100
    # The city's line is drawn: pixels of its colour on the chart's canvas.
    assert _pixels(page, "#occupancy-chart canvas", (11, 92, 173)) > 300
    assert _pixels(page, "#forecast-chart canvas", (11, 92, 173)) > 100
    # A heatmap cell for each of the 168 hours of the week, from two weeks of history.
    assert int(page.get_attribute("#heatmap", "data-cells") or 0) == 168
    # The share of time above 85 %: every lot and the city, with the API's figure for the
    # window the page asked for (a window ending now moves while the test runs).
    [asked] = [url for url in requested if "/v1/dashboard/target?" in url][-1:]
    target = site.api(asked.removeprefix(site.url))
    top = max(target["lots"], key=lambda lot: lot["share"] or 0)
    assert top["share"] > 0
    row = page.locator("#target-table tbody tr", has_text=top["name"])
    # Shown to one decimal: within half a unit of the last digit of the API's figure, however
    # the browser rounds (Intl rounds a tie up, Python's format the binary float).
    shown = re.search(r"(\d+),(\d)\s*%", row.locator(".bar-cell").inner_text())
    assert shown is not None, row.inner_text()
    assert abs(float(f"{shown[1]}.{shown[2]}") - top["share"] * 100) <= 0.05 + 1e-9
    assert page.locator("#target-table tbody tr").count() == len(site.city.lots) + 1
    # Forecast against actual, with the published error; the backtest's line apart from
    # the live one, named as such in the legend, and counted in the error.
    published = page.locator("#published-table tbody tr", has_text="Parkhaus Test")
    assert "4,4" in published.inner_text()
    assert str(GARAGE_BACKTEST_30) in published.inner_text()
    assert "davon Rückrechnung" in page.inner_text("#published-table thead")
    assert page.get_attribute("#forecast-observed", "data-mae")
    assert int(page.get_attribute("#forecast-observed", "data-backtest") or 0) > 100
    assert "aus der Rückrechnung" in page.inner_text("#forecast-observed")
    assert "Rückrechnung (Backtest)" in page.inner_text("#forecast-chart .u-legend")
    assert _pixels(page, "#forecast-chart canvas", BACKTEST_RGB) > 100
    # Sensor health: the low battery, the silent gateway.
    problems = page.locator("#sensor-problems-table tbody tr", has_text=f"{site.city.id}-st-002")
    assert "Batterie schwach" in problems.inner_text()
    counter = page.locator("#sensor-problems-table tbody tr", has_text=f"{site.lot('small')}/")
    assert "Zählersprung" in counter.inner_text()
    with psycopg.connect(site.db_url) as conn:
        [gateway] = conn.execute("SELECT DISTINCT gateway_id FROM sensor_health"
                                 " WHERE gateway_id IS NOT NULL").fetchone() or [None]
    assert "stumm" in page.locator("#gateways-table tr", has_text=str(gateway)).inner_text()
    # Signs: what each shows, and the log with the failed push.
    assert "← Zentrum 70" in page.locator("#signs-table tbody").inner_text()
    assert page.locator("#sign-log-table tbody tr").count() == 3
    assert "timed out" in page.locator("#sign-log-table tbody").inner_text()
    screenshot(page, "dashboard")

    # CSV of what is on screen: the zoomed chart gives fewer rows than the whole period.
    whole = _download(page, "occupancy", tmp_path)
    assert whole[0][:4] == ["time", "city_occupied", "city_capacity", "city_occupancy_pct"]
    box = page.locator("#occupancy-chart .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    zoomed = _download(page, "occupancy", tmp_path)
    assert 2 < len(zoomed) < len(whole) / 2
    shares = _download(page, "target", tmp_path)
    assert len(shares) == len(site.city.lots) + 2  # header, the city, every lot
    by_id = {row[0]: row for row in shares[1:]}
    assert float(by_id[top["id"]][1]) == pytest.approx(top["share"] * 100, abs=0.05)
    # The forecast CSV says which periods are backtest; in English the page says so too.
    forecasts = _download(page, "forecast", tmp_path)
    assert forecasts[0][-1] == "backtest"
    assert {row[-1] for row in forecasts[1:]} == {"true", "false"}
    page.click("#lang")
    assert "backtest (computed afterwards)" in page.inner_text("#forecast-chart .u-legend")
    assert "of them backtest" in page.inner_text("#published-table thead")

    page.goto(f"{site.url}/dashboard?lang=en")
    page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
    counter = page.locator("#sensor-problems-table tbody tr", has_text=f"{site.lot('small')}/")
    assert "counter jump" in counter.inner_text()


def _pixels(page: Page, selector: str, rgb: tuple[int, int, int]) -> int:
    """Pixels of about colour ``rgb`` on a canvas (a drawn line, not axes or grid)."""
    count: int = page.eval_on_selector(selector, """(canvas, rgb) => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let count = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 40
                && Math.abs(data[i + 1] - rgb[1]) < 40 && Math.abs(data[i + 2] - rgb[2]) < 40) {
                count += 1;
            }
        }
        return count;
    }""", list(rgb))
    return count


def _download(page: Page, panel: str, directory: Path) -> list[list[str]]:
    with page.expect_download() as download:
        page.click(f'button[data-csv="{panel}"]')
    path = directory / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.startswith(f"parkleit-{panel}-")
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_kiosk_rotates_without_interaction(page: Page, site: Site) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{site.url}/kiosk?rotate=1.5")
    page.wait_for_function(
        f"() => document.querySelectorAll('#kiosk-lots li').length === {len(site.city.lots)}")
    seen: dict[str, Callable[[], object]] = {
        "map": lambda: None,
        "signs": lambda: page.wait_for_selector("#sign-grid .sign-line .text >> text=70"),
        "forecast": lambda: page.wait_for_selector("#today-table tbody tr"),
    }
    order: list[str] = []
    for _ in range(4):
        view = page.evaluate("document.body.dataset.view")
        if not order or order[-1] != view:
            order.append(view)
            seen[view]()
            assert page.locator(f"#view-{view}").is_visible()
            screenshot(page, f"kiosk-{view}", full_page=False)
        page.wait_for_function(f"() => document.body.dataset.view !== {json.dumps(view)}",
                               timeout=4000)
    assert order == ["map", "signs", "forecast", "map"]


# -- several cities -----------------------------------------------------------------------------

SECOND_GARAGE = "Parkhaus Zweitstadt"


@pytest.fixture(scope="module")
def two(admin_url: str, template_db: str, mqtt_url: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    """``parkleit api`` of two cities (PARKLEIT_CITIES), each with its garage counted just
    now: Teststadt 70 of 100 free, Zweitstadt (other ids, devices and lot names) 12."""
    directory = tmp_path_factory.mktemp("pages-two")
    first = load_city(str(write_city(directory, f"p{secrets.token_hex(4)}")))
    second_id = f"q{secrets.token_hex(4)}"
    (directory / f"{second_id}.toml").write_text(
        city_toml(second_id).replace(TTN_EUI, "70b3d57ed00000b1")
        .replace(CHIRPSTACK_EUI, "70b3d57ed00000b2")
        .replace("http://127.0.0.1:1/sign", "http://127.0.0.1:2/sign")
        .replace('name = "Parkhaus Test"', f'name = "{SECOND_GARAGE}"')
        .replace('name = "Teststadt"', 'name = "Zweitstadt"\ntimezone = "Europe/Vienna"'),
        encoding="utf-8")
    second = load_city(str(directory / f"{second_id}.toml"))

    def seed(conn: psycopg.Connection[Any], sites: list[Site]) -> None:
        now = utc_now()
        for site in sites:
            sync_registry(conn, site.city)
        for site, occupied in zip(sites, (30, 88), strict=True):
            site.ingest(site.counter("garage", occupied, now - timedelta(seconds=30)),
                        received=now)

    with serve_pages(admin_url, template_db, mqtt_url, directory, [first, second],
                     seed) as [one, other]:
        yield one, other


def _lot_ids(page: Page) -> set[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#lot-list li", "items => items.map(item => item.dataset.lotId)")
    return set(ids)


def _city_links(page: Page) -> list[tuple[str, str, str | None]]:
    """(text, href, aria-current) of each link in the ``#cities`` nav."""
    links: list[tuple[str, str, str | None]] = [
        (text, href, current) for text, href, current in page.eval_on_selector_all(
            "#cities a", "links => links.map(link => [link.textContent,"
            " link.getAttribute('href'), link.getAttribute('aria-current')])")]
    return links


def test_map_shows_one_city_and_links_to_the_other(page: Page,
                                                   two: tuple[Site, Site]) -> None:
    first, second = two
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url)
            if "/v1/" in request.url else None)
    page.goto(f"{first.url}/")  # no ?city=: the installation's first
    page.wait_for_function(
        f"() => document.querySelectorAll('#lot-list li').length === {len(first.city.lots)}")
    assert _lot_ids(page) == {lot.id for lot in first.city.lots}
    assert page.locator(".leaflet-marker-icon.lot-marker").count() == len(first.city.lots)
    assert page.inner_text(".subtitle .city-name") == "Teststadt"
    assert page.locator(item(first, "garage")).get_attribute("data-free") == "70"
    nav = page.locator("#cities")
    assert nav.is_visible()
    assert nav.get_attribute("aria-label") == "Städte"
    assert _city_links(page) == [("Teststadt", f"/?city={first.city.id}", "page"),
                                 ("Zweitstadt", f"/?city={second.city.id}", None)]
    page.wait_for_selector('#connection[data-state="live"]')
    # Every API request of the page names its city (v1/lots, v1/stream).
    assert requests and all(f"city={first.city.id}" in url for url in requests), requests
    requests.clear()

    page.click("#cities a >> text=Zweitstadt")
    page.wait_for_url(f"{second.url}/?city={second.city.id}")
    page.wait_for_function(
        f"() => document.querySelectorAll('#lot-list li').length === {len(second.city.lots)}")
    assert _lot_ids(page) == {lot.id for lot in second.city.lots}
    assert page.inner_text(".subtitle .city-name") == "Zweitstadt"
    assert page.title() == "Freie Parkplätze – Zweitstadt"
    garage = page.locator(item(second, "garage"))
    assert garage.get_attribute("data-free") == "12"
    assert SECOND_GARAGE in garage.inner_text() and "12 frei" in garage.inner_text()
    assert page.locator(f'.lot-marker[data-lot-id="{second.lot("garage")}"]').inner_text() == "12"
    assert [current for *_, current in _city_links(page)] == [None, "page"]
    page.wait_for_selector('#connection[data-state="live"]')
    # Live: a count of the other city changes nothing here, one of this city shows at once.
    now = utc_now()
    first.ingest(first.counter("garage", 10, now), received=now)
    second.ingest(second.counter("garage", 95, now), received=now)
    page.wait_for_function(
        f"""() => document.querySelector('{item(second, "garage")}').dataset.free === '5'""",
        timeout=LIVE_WITHIN_MS)
    assert _lot_ids(page) == {lot.id for lot in second.city.lots}
    assert requests and all(f"city={second.city.id}" in url for url in requests), requests
    screenshot(page, "map-second-city")

    page.click("#lang")
    assert page.get_attribute("html", "lang") == "en"
    assert f"city={second.city.id}" in page.url and "lang=en" in page.url
    assert nav.get_attribute("aria-label") == "Towns"
    assert _city_links(page) == [
        ("Teststadt", f"/?city={first.city.id}&lang=en", None),
        ("Zweitstadt", f"/?city={second.city.id}&lang=en", "page")]
    page.click("#cities a >> text=Teststadt")
    page.wait_for_url(f"{first.url}/?city={first.city.id}&lang=en")
    page.wait_for_selector(item(first, "garage"))
    assert page.get_attribute("html", "lang") == "en"
    assert _lot_ids(page) == {lot.id for lot in first.city.lots}
    assert "90 free" in page.locator(item(first, "garage")).inner_text()


def test_dashboard_of_the_second_city(page: Page, two: tuple[Site, Site]) -> None:
    first, second = two
    page.goto(f"{second.url}/dashboard?city={second.city.id}")
    page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
    assert page.inner_text(".subtitle .city-name") == "Zweitstadt"
    assert page.get_attribute("#map-link", "href") == f"/?city={second.city.id}"
    assert _city_links(page) == [
        ("Teststadt", f"/dashboard?city={first.city.id}", None),
        ("Zweitstadt", f"/dashboard?city={second.city.id}", "page")]
    # Its own lots only: the target table has the city and each of its lots.
    rows = page.locator("#target-table tbody tr")
    assert rows.count() == len(second.city.lots) + 1
    assert SECOND_GARAGE in page.inner_text("#target-table tbody")
    assert "Parkhaus Test" not in page.inner_text("#target-table tbody")
    page.click("#lang")
    assert page.get_attribute("#map-link", "href") == f"/?city={second.city.id}&lang=en"
    page.click("#map-link")
    page.wait_for_url(f"{second.url}/?city={second.city.id}&lang=en")
    page.wait_for_selector(item(second, "garage"))
    assert _lot_ids(page) == {lot.id for lot in second.city.lots}
