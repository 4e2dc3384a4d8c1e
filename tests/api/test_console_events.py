"""Events in the operator console against a real uvicorn server and PostgreSQL: planners enter,
list and delete them (sessions, CSRF, audit), bad events get a 422, the config's events are
listed read-only, and an event's closed and reserved lots are closed in /v1/lots and in
ingest's lot state inside its window only (the app's injectable clock, ingest's ``now``); in
Debian's Chromium a planner enters and deletes an event on the console page (axe-core: no
WCAG 2.1 AA violation, German and English)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from _browser import browser_fixture
from _citytoml import write_city
from _helpers import problem, wait_for
from playwright.sync_api import Browser, expect
from test_accessibility import AXE, axe_violations, readable
from test_api_stream_admin import counter, iso
from test_console import ARTIFACTS, Console, console_tab, log_in_on_page, make_console  # noqa: F401

from ingest import Writer

EVENTS = "/v1/console/events"


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with a config event and a sign line that has an alternative."""
    city_id = f"t{secrets.token_hex(4)}"
    path = write_city(tmp_path, city_id)
    text = path.read_text(encoding="utf-8").replace(
        'label = "Zentrum", arrow = "left" }',
        f'label = "Zentrum", arrow = "left", alternative = "{city_id}-small" }}')
    text += f"""
[[events]]
name = "Wochenmarkt"
kind = "market"
lots = ["{city_id}-street"]
weekly = "Mo,Tu,We,Th,Fr,Sa,Su"
start = 07:00:00
end = 13:00:00
cars = 20
"""
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def console(make_console: Callable[..., Console]) -> Console:  # noqa: F811
    return make_console()


def _event(console: Console, starts: datetime, ends: datetime, **fields: Any) -> dict[str, Any]:
    return {"name": "Konzert im Schlosspark", "city": console.city.id, "starts": iso(starts),
            "ends": iso(ends), **fields}


def _status(console: Console, lot: str) -> str:
    lots: list[dict[str, Any]] = httpx.get(f"{console.url}/v1/lots", timeout=10).json()["lots"]
    status: str = next(entry for entry in lots if entry["id"] == lot)["status"]
    return status


def _app_now(console: Console) -> datetime:
    now: datetime = console.app.state.settings.clock.now()
    return now


def test_planners_enter_list_and_delete_events_with_session_csrf_and_audit(
        console: Console) -> None:
    for name, role in (("paul", "planner"), ("olga", "operator"), ("ada", "admin")):
        console.add(name, role)
    now = _app_now(console)
    body = _event(console, now + timedelta(days=2), now + timedelta(days=2, hours=3),
                  lots=[console.lot("street")], closed_lots=[console.lot("garage")],
                  reserved_lots=[console.lot("small")])
    # Nobody logged in: 401 for reads and writes.
    with console.client() as anonymous:
        problem(anonymous.get(EVENTS), 401)
        problem(anonymous.post(EVENTS, json=body), 401)
        problem(anonymous.delete(f"{EVENTS}/1"), 401)
    planner, csrf = console.login("paul")
    # A write without the session's token, or with another's: 403, and nothing stored.
    _, other_csrf = console.login("olga")
    for headers in ({}, {"X-CSRF-Token": "x" * 43}, {"X-CSRF-Token": other_csrf}):
        denied = problem(planner.post(EVENTS, json=body, headers=headers), 403)
        assert "X-CSRF-Token" in denied["detail"]
    assert console.conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
    # A planner enters it (the issue: planners enter events).
    created = planner.post(EVENTS, json=body, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["source"] == "console" and event["on"] is False
    assert event["created_by"] == "paul"
    assert event["closed_lots"] == [console.lot("garage")]
    assert event["reserved_lots"] == [console.lot("small")]
    # The sign line of the closed garage routes to its alternative meanwhile.
    assert event["routed"] == [{"sign_id": f"{console.city.id}-vms-1",
                                "sign_name": "Einfahrt Nord", "line": 1,
                                "lots": [console.lot("garage")],
                                "alternative": console.lot("small")}]
    # Listed with the config's event (its next occurrence, read-only), soonest first.
    listed = planner.get(EVENTS)
    assert listed.status_code == 200 and listed.headers["Cache-Control"] == "no-store"
    events = listed.json()["events"]
    assert [(entry["source"], entry["name"]) for entry in events][-1] == (
        "console", "Konzert im Schlosspark")
    config = [entry for entry in events if entry["source"] == "config"]
    assert config and all(entry["id"] is None and entry["name"] == "Wochenmarkt"
                          for entry in config)
    assert datetime.fromisoformat(config[0]["ends"]) > now
    assert datetime.fromisoformat(config[0]["starts"]) < now + timedelta(days=1)
    # Deleting needs the token too; a planner deletes; a second time it is gone (404).
    path = f"{EVENTS}/{event['id']}"
    problem(planner.delete(path), 403)
    deleted = planner.delete(path, headers={"X-CSRF-Token": csrf})
    assert deleted.status_code == 200 and deleted.json()["id"] == event["id"], deleted.text
    problem(planner.delete(path, headers={"X-CSRF-Token": csrf}), 404)
    assert [entry["source"] for entry in planner.get(EVENTS).json()["events"]] == [
        "config"] * len(config)
    # Operators and admins may too.
    for name in ("olga", "ada"):
        client, token = console.login(name)
        made = client.post(EVENTS, json=body, headers={"X-CSRF-Token": token})
        assert made.status_code == 201, made.text
    audit = console.conn.execute(
        "SELECT user_name, action, target, before, after FROM admin_audit ORDER BY time"
    ).fetchall()
    assert [row[:2] for row in audit] == [("paul", "create_event"), ("paul", "delete_event"),
                                          ("olga", "create_event"), ("ada", "create_event")]
    assert audit[0][2] == f"event/{event['id']}"
    assert audit[0][3] is None and audit[0][4]["name"] == "Konzert im Schlosspark"
    assert audit[1][3]["closed_lots"] == [console.lot("garage")] and audit[1][4] is None


def test_events_that_cannot_be_are_refused_with_a_422_naming_the_field(
        console: Console) -> None:
    console.add("paul", "planner")
    client, csrf = console.login("paul")
    now = _app_now(console)
    later = now + timedelta(hours=2)
    garage = console.lot("garage")
    cases = [
        ("ends", _event(console, later, later)),  # no window
        ("ends", _event(console, later, later - timedelta(minutes=1))),  # ends before it starts
        ("ends", _event(console, now - timedelta(days=1),
                        now - timedelta(hours=1))),  # entirely in the past
        ("city", {**_event(console, now, later), "city": "nowhere"}),
        ("closed_lots", _event(console, now, later, closed_lots=["nowhere-lot"])),
        ("lots", _event(console, now, later, lots=["Not An Id"])),
        ("reserved_lots", _event(console, now, later, closed_lots=[garage],
                                 reserved_lots=[garage])),
        ("starts", {**_event(console, now, later), "starts": "2026-12-12 19:00"}),  # no offset
        ("name", _event(console, now, later, name="")),
        ("colour", _event(console, now, later, colour="red")),  # unknown field
    ]
    for field, body in cases:
        refused = problem(client.post(EVENTS, json=body, headers={"X-CSRF-Token": csrf}), 422)
        assert field in str(refused), (field, refused)
    assert console.conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert console.conn.execute("SELECT count(*) FROM admin_audit").fetchone() == (0,)
    # An event that began but has not ended is accepted (it is on now).
    on = client.post(EVENTS, json=_event(console, now - timedelta(hours=1), later),
                     headers={"X-CSRF-Token": csrf})
    assert on.status_code == 201 and on.json()["on"] is True, on.text


def test_a_lot_is_closed_in_the_api_and_by_ingest_inside_the_event_window_only(
        console: Console) -> None:
    console.add("paul", "planner")
    client, csrf = console.login("paul")
    garage, small = console.lot("garage"), console.lot("small")
    start = _app_now(console)
    created = client.post(EVENTS, json=_event(
        console, start + timedelta(hours=1), start + timedelta(hours=2),
        closed_lots=[garage], reserved_lots=[small]), headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    writer = Writer(console.city)

    def ingest_status(offset: timedelta) -> str:
        """A reading of the garage at start + offset, written by ingest at that moment."""
        moment = start + offset
        writer.write(console.conn, [counter(console.city, "garage", 40, moment)], moment)
        row = console.conn.execute("SELECT status FROM lot_state WHERE lot_id = %s",
                                   (garage,)).fetchone()
        assert row is not None
        return str(row[0])

    # Before the window: open (the fixture counted 40 of 100 just now).
    assert _status(console, garage) == "open"
    assert ingest_status(timedelta(minutes=30)) == "open"
    # Inside: the API closes both lots at its clock at once; ingest derives closed too.
    console.advance(90 * 60)
    assert _status(console, garage) == "closed"
    assert _status(console, small) == "closed"
    assert ingest_status(timedelta(minutes=90)) == "closed"
    assert _status(console, garage) == "closed"
    # After it: open again, by ingest's next reading and in the API.
    console.advance(60 * 60)
    assert ingest_status(timedelta(minutes=150)) == "open"
    assert _status(console, garage) == "open"
    assert _status(console, small) != "closed"


def test_an_event_on_now_closes_its_lots_at_once_and_deleting_it_opens_them(
        console: Console) -> None:
    console.add("paul", "planner")
    console.add("olga", "operator")
    client, csrf = console.login("paul")
    operator, operator_csrf = console.login("olga")
    garage, small = console.lot("garage"), console.lot("small")
    now = _app_now(console)
    created = client.post(EVENTS, json=_event(
        console, now - timedelta(minutes=10), now + timedelta(hours=1),
        closed_lots=[garage, small]), headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text

    def stored(lot: str) -> str:
        row = console.conn.execute("SELECT status FROM lot_state WHERE lot_id = %s",
                                   (lot,)).fetchone()
        assert row is not None
        return str(row[0])

    assert stored(garage) == "closed" and _status(console, garage) == "closed"
    # Opening it by hand does not end the event's closure: it stays closed while the event is on.
    opened = operator.post(f"/v1/console/lots/{garage}/open",
                           headers={"X-CSRF-Token": operator_csrf})
    assert opened.status_code == 200 and opened.json()["status"] == "closed", opened.text
    assert stored(garage) == "closed"
    # An operator's own closure of the small lot outlasts the event's deletion.
    closed = operator.post(f"/v1/console/lots/{small}/close", json={"reason": "Baustelle"},
                           headers={"X-CSRF-Token": operator_csrf})
    assert closed.status_code == 200, closed.text
    deleted = client.delete(f"{EVENTS}/{created.json()['id']}", headers={"X-CSRF-Token": csrf})
    assert deleted.status_code == 200, deleted.text
    assert stored(garage) == "open" and _status(console, garage) == "open"
    assert stored(small) == "closed" and _status(console, small) == "closed"


def test_the_lots_snapshot_reads_again_the_moment_an_event_begins(console: Console) -> None:
    console.add("paul", "planner")
    client, csrf = console.login("paul")
    garage = console.lot("garage")
    views = console.app.state.hub.views
    wait_for(lambda: views.listening, timeout=10)
    views.max_age = timedelta(minutes=10)  # only the event's start may make it read again
    assert _status(console, garage) == "open"
    before = views.reads
    begins = _app_now(console) + timedelta(seconds=3)
    created = client.post(EVENTS, json=_event(console, begins, begins + timedelta(hours=1),
                                               closed_lots=[garage]),
                          headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201 and not created.json()["on"], created.text
    # The entry NOTIFYs the views: read again, they know when the event begins.
    wait_for(lambda: _status(console, garage) == "open" and views.reads > before, timeout=5)

    def from_memory() -> bool:  # once the entry's NOTIFY has been read too (in the background)
        reads = views.reads
        return _status(console, garage) == "open" and views.reads == reads

    wait_for(from_memory, timeout=5)
    wait_for(lambda: _status(console, garage) == "closed", timeout=10)
    assert _app_now(console) >= begins


browser = browser_fixture(AXE)


@pytest.mark.browser
def test_the_console_page_enters_and_deletes_an_event(console: Console,
                                                      browser: Browser) -> None:
    console.add("paul", "planner")
    garage = console.lot("garage")
    berlin = ZoneInfo("Europe/Berlin")
    now = _app_now(console).astimezone(berlin)
    with console_tab(browser, script=str(AXE), viewport={"width": 1280, "height": 900},
                     timezone_id="Europe/Berlin") as tab:
        tab.goto(f"{console.url}/console")
        log_in_on_page(tab, "paul")
        events = tab.locator("#event-rows")
        # The config's event is listed, read-only (no delete button).
        expect(events).to_contain_text("Wochenmarkt")
        expect(events).to_contain_text("Konfiguration (nur lesbar)")
        # A planner enters an event that closes the garage.
        form = tab.locator("#event-form")
        form.get_by_label("Veranstaltung", exact=True).fill("Stadtfest")
        form.get_by_label("Beginn").fill((now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        form.get_by_label("Ende").fill((now + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M"))
        choice = form.get_by_label(console.city.lot(garage).name, exact=True)
        expect(choice).to_have_value("none")
        choice.select_option("closed")
        form.get_by_role("button", name="Veranstaltung eintragen").click()
        row = events.locator("tr", has_text="Stadtfest")
        expect(row).to_contain_text("gesperrt: Parkhaus Test")
        expect(row).to_contain_text("Tafel Einfahrt Nord, Zeile 1: Alternative Parkplatz Klein")
        expect(row).to_contain_text("Leitstelle")
        expect(tab.locator("#audit-rows")).to_contain_text("create_event")
        stored = console.conn.execute(
            "SELECT name, starts, ends, closed_lots, created_by FROM events").fetchall()
        assert len(stored) == 1 and stored[0][0] == "Stadtfest"
        assert stored[0][2] - stored[0][1] == timedelta(hours=3)
        assert abs(stored[0][1] - (now + timedelta(hours=1))) < timedelta(minutes=1)
        assert stored[0][3:] == ([garage], "paul")
        expect(choice).to_have_value("none")  # the form is empty again
        violations = axe_violations(tab)
        assert not violations, readable(violations)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "console-events.png"), full_page=True)
        # In English too.
        tab.locator("#lang").click()
        expect(row).to_contain_text("closed: Parkhaus Test")
        violations = axe_violations(tab)
        assert not violations, readable(violations)
        row.get_by_role("button", name="Delete the event Stadtfest").click()
        expect(events.locator("tr", has_text="Stadtfest")).to_have_count(0)
        expect(tab.locator("#audit-rows")).to_contain_text("delete_event")
        assert console.conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
