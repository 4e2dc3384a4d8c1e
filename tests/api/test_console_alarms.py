"""The console's alarms against a real uvicorn server and PostgreSQL: alarms raised by ingest's
evaluator, read and filtered by every role, acknowledged by an operator (role boundaries, CSRF,
bad input), audited with before and after; an acknowledged alarm stays open through
re-evaluations and a restart of the API until its cause is gone; the open alarms as Prometheus
gauges; the routes in the OpenAPI; and in Debian's Chromium: log in, see an alarm, acknowledge
it, see it cleared."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import test_console
from _helpers import problem, utc_now
from _payloads import dumps, ttn_topic, ttn_uplink
from playwright.sync_api import Browser, expect
from test_api_stream_admin import counter
from test_console import ARTIFACTS, Console, console_tab, log_in_on_page

from api._statemetrics import CityGauges
from core.alarms import ALARM_KINDS
from ingest import Message, Writer, evaluate_alarms

COMMENT = "Techniker ist informiert"
# The console's fixtures: a real server with the test's database and city, Chromium.
make_console, console, browser = (test_console.make_console, test_console.console,
                                  test_console.browser)


def _lots_without_data(console: Console) -> list[str]:
    """The lots make_console wrote no reading for (it wrote the garage's)."""
    return sorted(lot.id for lot in console.city.lots if lot.id != console.lot("garage"))


def _evaluate(console: Console, now: datetime | None = None) -> None:
    evaluate_alarms(console.conn, console.city.id, now or utc_now())


def _open(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/v1/console/alarms", params=params)
    assert answer.status_code == 200, answer.text
    alarms: list[dict[str, Any]] = answer.json()["alarms"]
    return alarms


def test_alarm_routes_role_boundaries_and_bad_input(console: Console) -> None:
    for name, role in (("paul", "planner"), ("olga", "operator"), ("ada", "admin")):
        console.add(name, role)
    _evaluate(console)
    row = console.conn.execute("SELECT min(id) FROM alarms").fetchone()
    assert row is not None and row[0] is not None
    first = row[0]
    ack = f"/v1/console/alarms/{first}/ack"
    with console.client() as anonymous:
        problem(anonymous.get("/v1/console/alarms"), 401)
        problem(anonymous.post(ack, json={"comment": COMMENT}), 401)
        problem(anonymous.post(ack, content=b"{not json",
                                headers={"Content-Type": "application/json"}), 401)
    planner, planner_csrf = console.login("paul")
    alarms = _open(planner)
    assert sorted(alarm["target"] for alarm in alarms) == _lots_without_data(console)
    assert {(a["kind"], a["severity"], a["city"], a["cleared_at"], a["acknowledged_by"])
            for a in alarms} == {("lot_no_data", "critical", console.city.id, None, None)}
    refused = problem(planner.post(ack, json={"comment": COMMENT},
                                    headers={"X-CSRF-Token": planner_csrf}), 403)
    assert "operator" in refused["detail"]
    operator, csrf = console.login("olga")
    for headers in ({}, {"X-CSRF-Token": "x" * 43}, {"X-CSRF-Token": planner_csrf}):
        denied = problem(operator.post(ack, json={"comment": COMMENT}, headers=headers), 403)
        assert "X-CSRF-Token" in denied["detail"]
    token = {"X-CSRF-Token": csrf}
    for body in ({}, {"comment": ""}, {"comment": "a\x00b"}, {"comment": "x" * 501},
                 {"comment": COMMENT, "cleared": True}):
        problem(operator.post(ack, json=body, headers=token), 422)
    problem(operator.post("/v1/console/alarms/0/ack", json={"comment": COMMENT},
                           headers=token), 422)
    problem(operator.post("/v1/console/alarms/999999/ack", json={"comment": COMMENT},
                           headers=token), 404)
    for params in ({"kind": "fire"}, {"severity": "info"}, {"state": "closed"},
                   {"limit": "0"}, {"city": "Not a city!"}):
        problem(planner.get("/v1/console/alarms", params=params), 422)
    # Nothing of the refused attempts reached the row or the audit.
    assert console.conn.execute("SELECT acknowledged_by FROM alarms WHERE id = %s",
                                (first,)).fetchone() == (None,)
    assert console.conn.execute("SELECT count(*) FROM admin_audit").fetchone() == (0,)
    for client, name in ((operator, "olga"), (console.login("ada")[0], "ada")):
        csrf_of = csrf if name == "olga" else client.get("/v1/console/me").json()["csrf_token"]
        acked = client.post(ack, json={"comment": f"{COMMENT} ({name})"},
                            headers={"X-CSRF-Token": csrf_of})
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged_by"] == name
        assert acked.json()["cleared_at"] is None


def test_alarm_filters(console: Console) -> None:
    console.add("paul", "planner")
    _evaluate(console)
    planner, _ = console.login("paul")
    every = len(_lots_without_data(console))
    assert len(_open(planner, kind="lot_no_data")) == every
    assert _open(planner, kind="battery_low") == []
    assert len(_open(planner, severity="critical")) == every
    assert _open(planner, severity="warning") == []
    assert len(_open(planner, city=console.city.id)) == every
    assert _open(planner, city="elsewhere") == []
    assert len(_open(planner, limit="1")) == 1


def test_an_acknowledged_alarm_stays_open_through_evaluations_and_a_restart_until_cleared(
        make_console: Callable[..., Console]) -> None:
    console = make_console()
    console.add("olga", "operator")
    console.add("paul", "planner")
    now = utc_now()
    _evaluate(console, now)
    small = console.lot("small")
    [alarm] = [a for a in _open(console.login("paul")[0]) if a["target"] == small]
    operator, csrf = console.login("olga")
    acked = operator.post(f"/v1/console/alarms/{alarm['id']}/ack", json={"comment": COMMENT},
                          headers={"X-CSRF-Token": csrf})
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["id"], body["acknowledged_by"], body["ack_comment"], body["cleared_at"]) == (
        alarm["id"], "olga", COMMENT, None)
    # Audited like a lot's closing: the person, the alarm's target, before and after.
    [audit] = _problem_free(operator.get("/v1/console/audit"))["entries"]
    assert (audit["actor_kind"], audit["actor"], audit["action"], audit["target"]) == (
        "user", "olga", "ack_alarm", small)
    assert audit["detail"] == {"alarm_id": alarm["id"], "kind": "lot_no_data",
                               "comment": COMMENT}
    assert audit["before"] == {"acknowledged_by": None, "acknowledged_at": None,
                               "ack_comment": None, "cleared_at": None}
    assert audit["after"]["acknowledged_by"] == "olga"
    assert audit["after"]["ack_comment"] == COMMENT and audit["after"]["cleared_at"] is None
    # Evaluated again, the cause still there: the same alarm, open and acknowledged.
    _evaluate(console, now + timedelta(minutes=1))
    # A new API process (a restart): the alarms are rows, the acknowledgement with them.
    restarted = make_console()
    planner, _ = restarted.login("paul")
    [still] = [a for a in _open(planner) if a["target"] == small]
    assert (still["id"], still["acknowledged_by"], still["cleared_at"]) == (
        alarm["id"], "olga", None)
    # The cause goes away (a reading of the lot): cleared, acknowledgement kept.
    later = now + timedelta(minutes=2)
    Writer(console.city).write(console.conn, [counter(console.city, "small", 3, later)], later)
    _evaluate(console, later)
    assert small not in [a["target"] for a in _open(planner)]
    [cleared] = [a for a in _open(planner, state="all") if a["id"] == alarm["id"]]
    assert cleared["cleared_at"] is not None and cleared["acknowledged_by"] == "olga"


def _problem_free(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _gauges(text: str, name: str) -> dict[tuple[str, str], float]:
    """``{(kind, severity): value}`` of the metric ``name`` in a Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = dict(part.split("=", 1) for part in line[len(name) + 1:].split("}")[0]
                          .split(","))
            found[(labels["kind"].strip('"'), labels["severity"].strip('"'))] = float(
                line.rsplit(" ", 1)[1])
    return found


def test_open_alarms_are_prometheus_gauges_by_kind_and_severity(console: Console) -> None:
    console.add("olga", "operator")
    console.app.state.city_gauges = CityGauges(ttl_s=0)
    before = httpx.get(f"{console.url}/metrics/city", timeout=30).text
    assert set(_gauges(before, "parkleit_alarms_open").values()) == {0.0}
    assert len(_gauges(before, "parkleit_alarms_open")) == 2 * len(ALARM_KINDS)
    _evaluate(console)
    every = len(_lots_without_data(console))
    text = httpx.get(f"{console.url}/metrics/city", timeout=30).text
    gauges = _gauges(text, "parkleit_alarms_open")
    assert gauges[("lot_no_data", "critical")] == every
    assert sum(gauges.values()) == every
    assert _gauges(text, "parkleit_alarms_unacknowledged")[("lot_no_data", "critical")] == every
    operator, csrf = console.login("olga")
    [first, *_] = _open(operator)
    assert operator.post(f"/v1/console/alarms/{first['id']}/ack", json={"comment": "ok"},
                         headers={"X-CSRF-Token": csrf}).status_code == 200
    text = httpx.get(f"{console.url}/metrics/city", timeout=30).text
    assert _gauges(text, "parkleit_alarms_open")[("lot_no_data", "critical")] == every
    assert _gauges(text, "parkleit_alarms_unacknowledged")[
        ("lot_no_data", "critical")] == every - 1


def test_the_alarm_routes_are_documented(console: Console) -> None:
    spec = httpx.get(f"{console.url}/openapi.json", timeout=30).json()
    listed = spec["paths"]["/v1/console/alarms"]["get"]
    acked = spec["paths"]["/v1/console/alarms/{alarm_id}/ack"]["post"]
    assert (listed["operationId"], acked["operationId"]) == ("consoleAlarms", "consoleAckAlarm")
    assert {"401", "403", "422"} <= set(listed["responses"])
    assert {"401", "403", "404", "422"} <= set(acked["responses"])
    for status in ("401", "403", "404", "422"):
        assert "application/problem+json" in acked["responses"][status]["content"], status
    assert acked["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Alarm"}
    assert {"city", "kind", "severity", "state", "limit"} <= {
        parameter["name"] for parameter in listed["parameters"]}
    assert "X-CSRF-Token" in {parameter["name"] for parameter in acked["parameters"]}
    assert spec["components"]["schemas"]["AckAlarm"]["required"] == ["comment"]


@pytest.mark.browser
def test_the_console_shows_an_alarm_and_acknowledges_it(console: Console,
                                                        browser: Browser) -> None:
    console.add("olga", "operator")
    now = utc_now()
    _evaluate(console, now)
    small = console.lot("small")
    name = console.city.lot(small).name
    with console_tab(browser) as tab:
        tab.goto(f"{console.url}/console")
        log_in_on_page(tab, "olga")
        row = tab.locator("#alarm-rows tr").filter(has_text=name)
        expect(row).to_have_count(1)
        expect(row.locator(".badge")).to_have_text("kritisch")
        expect(row.locator(".badge")).to_have_class("badge severity-critical")
        expect(row).to_contain_text("Keine aktuellen Daten")
        # Without a comment: the page says what is missing, nothing is sent.
        ack = row.get_by_role("button", name=f"Quittieren: Keine aktuellen Daten, {name}")
        ack.click()
        expect(tab.locator("#alarm-error")).to_have_text(
            "Bitte einen Kommentar zur Quittierung angeben.")
        row.get_by_label(f"Kommentar zur Quittierung: Keine aktuellen Daten, {name}").fill(
            COMMENT)
        ack.click()
        expect(row).to_contain_text("quittiert von olga um")
        expect(row).to_contain_text(COMMENT)
        expect(tab.locator("#audit-rows")).to_contain_text(COMMENT)
        assert console.conn.execute(
            "SELECT acknowledged_by, ack_comment, cleared_at FROM alarms WHERE target = %s",
            (small,)).fetchone() == ("olga", COMMENT, None)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "console-alarms.png"), full_page=True)
        # In English, the same alarm.
        tab.locator("#lang").click()
        expect(row).to_contain_text("No current data")
        expect(row).to_contain_text("acknowledged by olga")
        # The cause goes away: the page's next read no longer lists it.
        later = now + timedelta(minutes=1)
        Writer(console.city).write(console.conn, [counter(console.city, "small", 3, later)],
                                   later)
        _evaluate(console, later)
        expect(tab.locator("#alarm-rows tr").filter(has_text=name)).to_have_count(0,
                                                                                   timeout=15000)


@pytest.mark.browser
def test_a_silent_gateway_appears_on_the_console_and_clears_when_it_is_heard_again(
        console: Console, browser: Browser) -> None:
    console.add("olga", "operator")
    city, now = console.city, utc_now()

    def uplink(moment: datetime) -> None:  # through the gateways of the TTN test message
        Writer(city).write(console.conn, [Message(ttn_topic(city.id), dumps(ttn_uplink(
            city.id, moment)), moment)], moment)

    uplink(now - timedelta(hours=2))  # then nothing through it: silent for an hour and more
    _evaluate(console, now)
    with console_tab(browser) as tab:
        tab.goto(f"{console.url}/console")
        log_in_on_page(tab, "olga")
        row = tab.locator("#alarm-rows tr").filter(has_text="zeitz-rathaus")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Gateway meldet sich nicht")
        expect(row.locator(".badge")).to_have_text("kritisch")
        # The gateway is heard again: the next evaluation clears it, the page drops it.
        later = now + timedelta(minutes=1)
        uplink(later)
        _evaluate(console, later)
        expect(row).to_have_count(0, timeout=15000)
        assert console.conn.execute(
            "SELECT cleared_at FROM alarms WHERE kind = 'gateway_silent'"
            " AND target = 'zeitz-rathaus'").fetchone() == (later,)
