"""The console's monthly report against a real uvicorn server and PostgreSQL, at fixed
instants: a month of known occupancy, bay readings, sign pushes and forecasts seeded by
direct inserts, and every figure checked exactly; the month's bounds in Europe/Berlin (745 and
743 hours in the months the clocks change); the CSV against the JSON; the role boundary and
bad input; and in Debian's Chromium the printable page, its screenshot and its PDF."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from _browser import browser_fixture
from _helpers import problem
from playwright.sync_api import Browser, expect
from test_accessibility import AXE, axe_violations, readable
from test_console import ARTIFACTS, PASSWORD, Console, console_tab, make_console  # noqa: F401

from core.city import City
from core.clock import Clock

# The app's clock for these tests (the report refuses months that have not begun).
NOW = datetime(2027, 4, 10, 12, 0, tzinfo=UTC)
# October 2026 in Berlin: from 1 October 00:00 CEST to 1 November 00:00 CET.
OCT_START = datetime(2026, 9, 30, 22, 0, tzinfo=UTC)
OCT_END = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
OCT_BUCKETS = 745 * 4

Reports = Callable[[], Console]


def _offset_to(moment: datetime) -> float:
    """The clock offset that makes the app's clock show ``moment`` now."""
    return Clock.starting_at(moment).offset.total_seconds()


@pytest.fixture
def reports(make_console: Callable[..., Console]) -> Console:  # noqa: F811
    return make_console(CLOCK_OFFSET_S=_offset_to(NOW))


def _copy(conn: psycopg.Connection[Any], statement: str, rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


GARAGE_PATTERN = (90, 85, 50, 50)  # per hour: > 85 % a quarter of the time; 85 % is not above


def seed_october(conn: psycopg.Connection[Any], city: City) -> None:
    """A month of known data in October 2026 (Berlin)."""
    garage, small = f"{city.id}-garage", f"{city.id}-small"
    readings = []
    for index in range(OCT_BUCKETS):
        moment = OCT_START + index * QUARTER
        occupied = GARAGE_PATTERN[index % 4]
        readings.append((moment, garage, occupied, 100 - occupied, 100, "history"))
        if index < OCT_BUCKETS // 2:  # the small lot: data for the first half only
            readings.append((moment + timedelta(minutes=7), small, 9, 1, 10, "history"))
    # November in Berlin but October in UTC, and the hour before the month: not counted.
    for minute in range(0, 60, 15):
        readings.append((OCT_END + timedelta(minutes=minute), garage, 100, 0, 100, "history"))
        readings.append((OCT_START - timedelta(minutes=60 - minute), garage, 100, 0, 100,
                         "history"))
    _copy(conn, "COPY lot_occupancy (time, lot_id, occupied, free, capacity, source) FROM STDIN",
          readings)

    # Bays of the street lot (silent after four staleness limits, 1 h; stuck when occupied
    # for longer than two days): 1 fine, 2 silent for 2 h once, 3 always occupied (stuck),
    # 4 never heard. The LoRaWAN lot's two bays are never heard either.
    street = [bay.id for bay in city.lot(f"{city.id}-street").all_bays()]
    events = []
    for step in range(745 * 2):
        moment = OCT_START + step * timedelta(minutes=30)
        events.append((moment, street[0], step % 2 == 0, "native"))
        if not 400 <= step < 404:
            events.append((moment, street[1], step % 2 == 0, "native"))
        events.append((moment, street[2], True, "native"))
    _copy(conn, "COPY bay_events (time, bay_id, occupied, source) FROM STDIN", events)

    # The sign: last push before the month went through; failed for 74.5 h in it (10 %).
    sign = f"{city.id}-vms-1"
    failed_at = OCT_START + timedelta(days=10)
    _copy(conn, "COPY sign_log (time, sign_id, content, ok, error, ack) FROM STDIN", [
        (OCT_START - timedelta(days=10), sign, '{"lines": []}', True, None, "ok"),
        (failed_at, sign, '{"lines": []}', False, "timeout", None),
        (failed_at + timedelta(hours=74.5), sign, '{"lines": []}', True, None, "ok")])

    # Forecasts of the garage, 30 minutes ahead, against readings at their targets: errors
    # 2, 4, 6, 0 (one backtest); one target in November (Berlin) is not scored.
    forecasts = []
    for number, (bucket, error, kind) in enumerate(
            ((8, 2, "live"), (9, -4, "live"), (10, 6, "backtest"), (11, 0, "live"))):
        target = OCT_START + bucket * QUARTER
        actual = 100 - GARAGE_PATTERN[bucket % 4]
        forecasts.append((target - timedelta(minutes=30), garage, 30, target, float(actual + error),
                          "test", kind))
        assert number == bucket - 8
    forecasts.append((OCT_END - timedelta(minutes=15), garage, 30, OCT_END + QUARTER, 0.0,
                      "test", "live"))
    _copy(conn, "COPY forecasts (time, lot_id, horizon_min, target_time, free, model, kind) "
          "FROM STDIN", forecasts)


def _login_planner(console: Console) -> httpx.Client:
    console.add("paul", "planner")
    client, _ = console.login("paul")
    return client


def test_october_figures_exactly_with_berlin_bounds_and_the_dst_hour(reports: Console) -> None:
    seed_october(reports.conn, reports.city)
    client = _login_planner(reports)
    answer = client.get(f"/v1/console/reports/{reports.city.id}/2026-10")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    report = answer.json()
    lot = reports.lot
    assert report["period"] == {
        "city": reports.city.id, "city_name": "Teststadt", "month": "2026-10",
        "timezone": "Europe/Berlin", "start": "2026-09-30T22:00:00Z",
        "end": "2026-10-31T23:00:00Z", "until": "2026-10-31T23:00:00Z", "complete": True,
        "hours": 745.0, "generated": report["period"]["generated"]}
    assert report["period"]["generated"].startswith("2027-04-10T12:")

    occupancy = {entry["lot_id"]: entry for entry in report["occupancy"]}
    assert occupancy[lot("garage")] == {
        "lot_id": lot("garage"), "name": "Parkhaus Test", "capacity": 100,
        "mean_occupied": 68.75, "mean_rate": 0.6875, "peak_occupied": 90.0,
        "peak_rate": 0.9, "peak_at": "2026-09-30T22:00:00Z", "share_above_85": 0.25}
    assert occupancy[lot("small")]["mean_rate"] == 0.9
    assert occupancy[lot("small")]["share_above_85"] == 1.0
    assert occupancy[lot("street")]["mean_rate"] is None  # no counts: no figures
    assert occupancy[lot("street")]["share_above_85"] is None

    quality = {entry["lot_id"]: entry for entry in report["data_quality"]}
    # Every quarter hour of the 745-hour month, and half of them for the small lot.
    assert quality[lot("garage")]["buckets"] == OCT_BUCKETS == 2980
    assert quality[lot("garage")]["coverage"] == 1.0
    assert quality[lot("small")]["coverage"] == 0.5
    assert (quality[lot("garage")]["bays"], quality[lot("garage")]["bays_silent"]) == (0, 0)
    street, lora = quality[lot("street")], quality[lot("lora")]
    assert (street["bays"], street["bays_silent"], street["bays_stuck"]) == (4, 2, 1)
    assert (lora["bays"], lora["bays_silent"], lora["bays_stuck"]) == (2, 2, 0)
    # A past month: the lot's quality now says nothing about it.
    assert quality[lot("garage")]["quality_now"] is None
    assert quality[lot("garage")]["flags_now"] is None

    assert report["signs"] == [{
        "sign_id": f"{reports.city.id}-vms-1", "name": "Einfahrt Nord",
        "available_share": 0.9, "known_share": 1.0, "pushes": 2, "failed_pushes": 1}]
    assert report["forecast_error"] == [{
        "lot_id": lot("garage"), "horizon_min": 30, "mae": 3.0, "mae_rate": 0.03,
        "points": 4, "backtest_points": 1}]


def test_the_march_clock_change_month_has_743_hours_and_the_month_under_way_ends_now(
        reports: Console) -> None:
    client = _login_planner(reports)
    march = client.get(f"/v1/console/reports/{reports.city.id}/2027-03").json()["period"]
    assert (march["start"], march["end"], march["hours"]) == (
        "2027-02-28T23:00:00Z", "2027-03-31T22:00:00Z", 743.0)
    assert march["complete"] is True
    april = client.get(f"/v1/console/reports/{reports.city.id}/2027-04")
    assert april.status_code == 200, april.text
    period = april.json()["period"]
    assert period["complete"] is False and period["start"] == "2027-03-31T22:00:00Z"
    assert period["until"].startswith("2027-04-10T12:")
    # The month under way shows the lots' quality now (the fixture's garage reading).
    quality = {entry["lot_id"]: entry for entry in april.json()["data_quality"]}
    assert isinstance(quality[reports.lot("garage")]["flags_now"], list)


def test_the_csv_is_one_row_per_figure_and_matches_the_json(reports: Console) -> None:
    seed_october(reports.conn, reports.city)
    client = _login_planner(reports)
    path = f"/v1/console/reports/{reports.city.id}/2026-10"
    report = client.get(path).json()
    exported = client.get(path, params={"format": "csv"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"] == (
        f'attachment; filename="parkleit-report-{reports.city.id}-2026-10.csv"')
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(rows[0]) == ["section", "subject", "horizon_min", "figure", "value"]
    figures = {(row["section"], row["subject"], row["horizon_min"], row["figure"]): row["value"]
               for row in rows}
    assert len(figures) == len(rows)  # one row per figure

    def expected() -> Iterator[tuple[tuple[str, str, str, str], Any]]:
        for name, value in report["period"].items():
            yield ("period", reports.city.id, "", name), value
        for section, key in (("occupancy", "lot_id"), ("data_quality", "lot_id"),
                             ("signs", "sign_id"), ("forecast_error", "lot_id"),
                             ("alarms", "kind")):
            for item in report[section]:
                horizon = str(item.get("horizon_min", ""))
                for name, value in item.items():
                    if name not in (key, "horizon_min"):
                        yield (section, item[key], horizon, name), value

    wanted = dict(expected())
    assert set(figures) == set(wanted)
    for key, value in wanted.items():
        text = figures[key]
        if key[-1] == "generated":  # two requests, two moments
            assert text.startswith("2027-04-10T12:"), text
        elif value is None:
            assert text == "", key
        elif isinstance(value, bool):
            assert text == str(value).lower(), key
        elif isinstance(value, (int, float)):
            assert float(text) == value, key
        elif isinstance(value, list):
            assert text == ";".join(value), key
        else:
            assert text == value, key
    assert figures[("occupancy", reports.lot("garage"), "", "share_above_85")] == "0.25"
    assert figures[("forecast_error", reports.lot("garage"), "30", "mae")] == "3.0"


def test_alarms_and_their_time_to_acknowledge(reports: Console) -> None:
    seed_october(reports.conn, reports.city)
    city, lot = reports.city.id, reports.lot("small")
    start = datetime(2026, 10, 10, 8, tzinfo=UTC)
    # (kind, severity, since, acknowledged after minutes or None, cleared after hours or None)
    for kind, severity, since, ack, cleared in (
            ("lot_no_data", "critical", start, 10, 2),
            ("lot_no_data", "critical", start + timedelta(days=1), 30, None),
            ("lot_no_data", "critical", start + timedelta(days=2), None, 1),
            ("battery_low", "warning", start, None, None),
            # Before the month (Berlin) and after it: not counted.
            ("lot_no_data", "critical", datetime(2026, 9, 30, 21, 59, tzinfo=UTC), 5, 1),
            ("lot_no_data", "critical", datetime(2026, 10, 31, 23, 0, tzinfo=UTC), 5, 1)):
        acked = None if ack is None else since + timedelta(minutes=ack)
        reports.conn.execute(
            "INSERT INTO alarms (city, kind, severity, target, since, cleared_at,"
            " acknowledged_by, acknowledged_at, ack_comment) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (city, kind, severity, f"{lot}-{since:%d%H}", since,
             None if cleared is None else since + timedelta(hours=cleared),
             None if acked is None else "olga", acked, None if acked is None else "ok"))
    report = _login_planner(reports).get(f"/v1/console/reports/{city}/2026-10").json()
    assert report["alarms"] == [
        {"kind": "battery_low", "severity": "warning", "raised": 1, "acknowledged": 0,
         "mean_minutes_to_ack": None, "max_minutes_to_ack": None, "open_at_end": 1},
        {"kind": "lot_no_data", "severity": "critical", "raised": 3, "acknowledged": 2,
         "mean_minutes_to_ack": 20.0, "max_minutes_to_ack": 30.0, "open_at_end": 1}]


def test_role_boundary_and_bad_input(reports: Console) -> None:
    city = reports.city.id
    with reports.client() as anonymous:
        for params in ({}, {"format": "csv"}):
            problem(anonymous.get(f"/v1/console/reports/{city}/2026-10", params=params), 401)
    client = _login_planner(reports)
    for month in ("2026-13", "2026-1", "26-10", "2026-00", "0000-01", "2026-10-01", "oct"):
        problem(client.get(f"/v1/console/reports/{city}/{month}"), 422)
    # Not begun yet (the clock says 10 April 2027): May 2027 and far ahead.
    for month in ("2027-05", "9999-12"):
        body = problem(client.get(f"/v1/console/reports/{city}/{month}"), 422)
        assert "has not begun" in body["errors"][0]["detail"], body
    body = problem(client.get("/v1/console/reports/nowhere/2026-10"), 404)
    assert "nowhere" in body["detail"]
    problem(client.get(f"/v1/console/reports/{city}/2026-10", params={"format": "pdf"}), 422)
    # In the OpenAPI, with its JSON model.
    operation = httpx.get(f"{reports.url}/openapi.json").json()["paths"][
        "/v1/console/reports/{city}/{month}"]["get"]
    assert operation["operationId"] == "consoleMonthlyReport"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MonthlyReport"}


def test_the_console_form_leads_to_the_report_page(reports: Console) -> None:
    answer = httpx.get(f"{reports.url}/console/reports", params={"month": "2026-10"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"reports/{reports.city.id}/2026-10"
    page = httpx.get(f"{reports.url}/console/reports/{reports.city.id}/2026-10")
    assert page.status_code == 200 and 'href="../../../static/css/pages.css"' in page.text
    assert '"month": "2026-10"' in page.text
    problem(httpx.get(f"{reports.url}/console/reports/nowhere/2026-10"), 404)
    problem(httpx.get(f"{reports.url}/console/reports/{reports.city.id}/2026-13"), 422)


# -- the printable page in Chromium ------------------------------------------------------------


browser = browser_fixture(AXE)


@pytest.mark.browser
def test_the_printable_report_page(reports: Console, browser: Browser) -> None:
    seed_october(reports.conn, reports.city)
    reports.add("paul", "planner")
    with console_tab(browser, script=str(AXE), viewport={"width": 1280, "height": 900}) as tab:
        tab.goto(f"{reports.url}/console/reports/{reports.city.id}/2026-10")
        expect(tab.locator("#report-status")).to_have_text(
            "Bitte zuerst in der Leitstelle anmelden.")
        tab.goto(f"{reports.url}/console")
        tab.get_by_label("Benutzername").fill("paul")
        tab.get_by_label("Passwort", exact=True).fill(PASSWORD)
        tab.keyboard.press("Enter")
        expect(tab.locator("#who")).to_contain_text("paul")
        # The console's report form, as a person uses it.
        tab.get_by_label("Monat", exact=True).fill("2026-10")
        tab.get_by_role("button", name="Bericht öffnen").click()
        expect(tab).to_have_url(f"{reports.url}/console/reports/{reports.city.id}/2026-10")
        garage = tab.locator("#occupancy-rows tr", has_text="Parkhaus Test")
        expect(garage).to_contain_text("68,8 %")
        expect(garage).to_contain_text("25,0 %")
        expect(tab.locator("#report-period")).to_contain_text("745 Stunden")
        expect(tab.locator("#sign-rows")).to_contain_text("90,0 %")
        expect(tab.locator("#forecast-rows")).to_contain_text("3,00")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "console-report.png"), full_page=True)
        violations = axe_violations(tab)
        assert not violations, readable(violations)
        tab.get_by_role("button", name="English").click()
        expect(tab.locator("#report-period")).to_contain_text("745 hours")
        expect(tab.get_by_role("heading", name="Occupancy")).to_be_visible()
        violations = axe_violations(tab)
        assert not violations, readable(violations)
        # Printed: no navigation; the PDF is the browser's print on A4.
        tab.emulate_media(media="print")
        expect(tab.locator(".report-actions")).to_be_hidden()
        expect(tab.locator("#occupancy-rows")).to_be_visible()
        tab.screenshot(path=str(ARTIFACTS / "console-report-print.png"), full_page=True)
        pdf = tab.pdf(path=str(ARTIFACTS / "console-report.pdf"), prefer_css_page_size=True)
        assert pdf.startswith(b"%PDF")
        # One A4 page (595 x 842 points) for this city's report.
        boxes = re.findall(rb"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]", pdf)
        assert [(round(float(width)), round(float(height))) for width, height in boxes] == [
            (595, 842)], boxes
