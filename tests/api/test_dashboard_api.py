"""The dashboard's JSON (``/v1/dashboard/...``) against figures worked out from the raw rows."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from _helpers import utc_now
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from core.city import City
from core.db import queries
from core.registry import sync_registry
from forecasting import backtest, load_newest, predict, train
from forecasting._service import load_panel
from ingest import Message, Writer, prepare_connection
from simulators.history import backfill_history

END = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday, 01:00 in Zeitz
START = END - timedelta(days=7)
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}
TRAINED = datetime(2026, 11, 25, 12, 7, tzinfo=UTC)  # a Wednesday, 13:07 in Zeitz
HORIZONS = (15, 30, 60, 120)  # the settings' default


@pytest.fixture
def history(conn: psycopg.Connection[Any], city: City) -> list[tuple[Any, ...]]:
    """A week of simulated occupancy; the raw rows (time, lot, occupied, capacity)."""
    sync_registry(conn, city)
    backfill_history(conn, city, end=END, weeks=1, seed=5)
    return conn.execute("SELECT time, lot_id, occupied, capacity FROM lot_occupancy"
                        " WHERE time >= %s AND time < %s", (START, END)).fetchall()


def _buckets(rows: list[tuple[Any, ...]], minutes: int) -> dict[tuple[str, datetime],
                                                                  tuple[float, int]]:
    """Mean occupied and capacity per lot and bucket of ``minutes``."""
    grouped: dict[tuple[str, datetime], list[tuple[int, int]]] = defaultdict(list)
    for time, lot_id, occupied, capacity in rows:
        start = time - timedelta(minutes=time.minute % minutes, seconds=time.second,
                                 microseconds=time.microsecond)
        grouped[lot_id, start].append((occupied, capacity))
    return {key: (sum(o for o, _ in values) / len(values), max(c for _, c in values))
            for key, values in grouped.items()}


def test_share_above_target_counts_quarter_hours(api_client: TestClient, city: City,
                                                 history: list[tuple[Any, ...]]) -> None:
    body = api_client.get("/v1/dashboard/target", params=WINDOW).json()
    buckets = _buckets(history, 15)
    for lot in body["lots"]:
        mine = {key: value for key, value in buckets.items() if key[0] == lot["id"]}
        above = sum(1 for occupied, capacity in mine.values() if occupied / capacity > 0.85)
        assert (lot["periods"], lot["above"]) == (len(mine), above), lot["id"]
    assert {lot["id"] for lot in body["lots"]} == {lot.id for lot in city.lots}
    assert any(lot["above"] for lot in body["lots"])  # the check can tell zero from not
    city_periods: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (_, start), (occupied, capacity) in buckets.items():
        city_periods[start][0] += occupied
        city_periods[start][1] += capacity
    above = sum(1 for occupied, capacity in city_periods.values() if occupied / capacity > 0.85)
    assert (body["city"]["periods"], body["city"]["above"]) == (len(city_periods), above)


def test_heatmap_is_local_hour_of_week(api_client: TestClient, city: City,
                                       history: list[tuple[Any, ...]]) -> None:
    lot = city.lots[0].id
    body = api_client.get("/v1/dashboard/heatmap", params={**WINDOW, "lot_id": lot}).json()
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for (lot_id, start), (occupied, capacity) in _buckets(history, 60).items():
        if lot_id == lot:
            local = start.astimezone(city.tz)
            cells[local.isoweekday(), local.hour].append(occupied / capacity)
    assert len(cells) == 168
    for (weekday, hour), rates in cells.items():
        assert body["rates"][weekday - 1][hour] == pytest.approx(sum(rates) / len(rates),
                                                                 abs=1e-3)
        assert body["hours"][weekday - 1][hour] == len(rates)


@pytest.mark.usefixtures("history")
def test_occupancy_series_add_up_to_the_city(api_client: TestClient, city: City) -> None:
    body = api_client.get("/v1/dashboard/occupancy",
                          params={**WINDOW, "resolution": "1h"}).json()
    assert len(body["times"]) == 7 * 24
    capacity = sum(lot.capacity for lot in city.lots)
    assert set(body["city"]["capacity"]) == {capacity}
    for i in (0, 50, 167):
        total = sum(lot["occupied"][i] for lot in body["lots"])
        assert body["city"]["occupied"][i] == pytest.approx(total, abs=0.05)


def test_a_new_city_sees_its_forecast_quality_from_a_backtest(
        api_client: TestClient, conn: psycopg.Connection[Any], city: City) -> None:
    """Three weeks of history and a model trained on them, no live forecast yet: forecast
    against actual and the published error come from the backtest, marked so; a backtest is
    never the current forecast; once live forecasts come, they are told apart."""
    sync_registry(conn, city)
    backfill_history(conn, city, end=TRAINED, weeks=3, seed=5)
    assert train(conn, city, now=TRAINED).kind == "gbr"
    result = backtest(conn, city, now=TRAINED)
    assert result.out_of_sample is True and result.rows > 0
    garage = f"{city.id}-garage"

    two_days = {"from": (TRAINED - timedelta(days=2)).isoformat(), "to": TRAINED.isoformat()}
    for scope in ({}, {"lot_id": garage}):
        body = api_client.get("/v1/dashboard/forecast",
                              params={**two_days, **scope, "horizon": 60}).json()
        assert len(body["times"]) == 2 * 96  # every quarter hour of the two days
        assert body["backtest"] == [True] * 2 * 96
        assert None not in body["forecast"] and None not in body["actual"]
    assert {(row["lot_id"], row["horizon_min"]) for row in body["published"]} == {
        (lot.id, horizon) for lot in city.lots for horizon in HORIZONS}
    # Seven days of quarter hours (less the readings the simulated sensors missed), all
    # of them backtest.
    assert all(600 < row["backtest_points"] == row["points"] <= 7 * 96
               for row in body["published"])
    lot = api_client.get(f"/v1/lots/{garage}/forecast").json()
    assert (lot["origin"], lot["points"]) == (None, [])
    assert [(row["horizon_min"], row["backtest_points"] == row["points"])
            for row in lot["accuracy"]] == [(horizon, True) for horizon in HORIZONS]
    assert _current_forecasts(conn, city, TRAINED - timedelta(minutes=30)) == ([], [])
    assert conn.execute(queries("api", "metrics")["newest_forecast"],
                        {"city": city.id, "now": TRAINED}).fetchall() == []

    # Out of sample: the model in use, which has seen these targets, forecasts otherwise.
    loaded = load_newest(conn, city)
    panel = load_panel(conn, city, since=TRAINED - timedelta(days=28), until=TRAINED)
    assert loaded is not None and panel is not None
    origins, stored = zip(*conn.execute(
        "SELECT time, free FROM forecasts WHERE lot_id = %s AND horizon_min = 60 ORDER BY time",
        (garage,)), strict=True)
    in_sample = loaded.model.predict(panel, [panel.position(at) for at in origins], 60)
    assert np.mean(in_sample[panel.lot_ids.index(garage)] != np.array(stored)) > 0.2

    origin = predict(conn, city, horizons=HORIZONS, now=TRAINED).origin
    body = api_client.get("/v1/dashboard/forecast", params={
        "lot_id": garage, "horizon": 60, "from": two_days["from"],
        "to": (TRAINED + timedelta(hours=3)).isoformat()}).json()
    assert body["times"][-1] == (origin + timedelta(minutes=60)).isoformat().replace(
        "+00:00", "Z")
    assert body["backtest"] == [True] * (len(body["times"]) - 1) + [False]
    assert api_client.get(f"/v1/lots/{garage}/forecast").json()["origin"] == \
        origin.isoformat().replace("+00:00", "Z")
    lots, signs = _current_forecasts(conn, city, TRAINED)
    assert lots == [origin] * len(city.lots) and {row["lot_id"] for row in signs} == {
        lot.id for lot in city.lots}

    before = conn.execute("SELECT count(*), count(*) FILTER (WHERE kind = 'live') "
                          "FROM forecasts").fetchone()
    again = backtest(conn, city, now=TRAINED)
    assert (again.rows, again.first) == (0, None)
    assert conn.execute("SELECT count(*), count(*) FILTER (WHERE kind = 'live') "
                        "FROM forecasts").fetchone() == before


def _current_forecasts(conn: psycopg.Connection[Any], city: City, now: datetime) -> tuple[
        list[datetime], list[dict[str, Any]]]:
    """The origins of the lots' current 30-minute forecast (``/v1/lots``, those with one) and
    the forecast rows the signs read, at ``now``."""
    lot_ids = [lot.id for lot in city.lots]
    with conn.cursor(row_factory=dict_row) as cur:
        lots = cur.execute(queries("api")["live_lots"], {"lot_ids": lot_ids, "now": now},
                           ).fetchall()
        origins = [row["forecast_origin"] for row in lots if row["forecast_origin"] is not None]
        signs = cur.execute(queries("signage")["latest_forecasts"], {
            "lot_ids": lot_ids, "since": now - timedelta(hours=1), "now": now}).fetchall()
    return origins, signs


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/v1/dashboard/occupancy", {"from": END.isoformat(), "to": START.isoformat()}, 422),
    ("/v1/dashboard/occupancy", {"from": "2020-01-01T00:00:00Z", "to": END.isoformat()}, 422),
    ("/v1/dashboard/occupancy", {"resolution": "5m"}, 422),
    ("/v1/dashboard/heatmap", {"from": "yesterday"}, 422),
    ("/v1/dashboard/heatmap", {"lot_id": "no-such-lot"}, 404),
    ("/v1/dashboard/forecast", {"horizon": 45}, 422),
])
def test_bad_input_gets_a_problem(api_client: TestClient, path: str, params: dict[str, str],
                                  status: int) -> None:
    response = api_client.get(path, params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_pages_are_served_in_the_asked_language(api_client: TestClient) -> None:
    for path in ("/", "/kiosk", "/dashboard"):
        german = api_client.get(path)
        assert german.status_code == 200
        assert '<html lang="de">' in german.text
        assert '<html lang="en">' in api_client.get(path, params={"lang": "en"}).text
    assert '<html lang="de">' in api_client.get("/", params={"lang": "xx"}).text
    # the configuration cannot end its <script> element early
    assert "</script>" not in api_client.get("/").text.split('id="parkleit-config">')[1][:5000]\
        .split("</script>")[0]
    assert api_client.get("/static/js/i18n.js").status_code == 200
    assert api_client.get("/static/../pages.sql").status_code == 404


def test_sensor_health_shows_a_counter_jump(api_client: TestClient, conn: psycopg.Connection[Any],
                                            city: City) -> None:
    """A garage counter restarting from another value: its counter is a sensor with a
    problem, its lot carries the flag, and the open API's quality says so too."""
    sync_registry(conn, city)
    prepare_connection(conn)
    writer = Writer(city)
    now = utc_now().replace(microsecond=0)
    garage = f"{city.id}-garage"
    for seconds, entries, exits in ((-120, 500, 470), (-60, 9, 800)):
        moment = now + timedelta(seconds=seconds)
        writer.write(conn, [Message(f"parkleit/v1/{city.id}/lots/{garage}/counter",
                                    json.dumps({"entries": entries, "exits": exits,
                                                "ts": moment.isoformat()}).encode(), moment)],
                     moment)
    body = api_client.get("/v1/dashboard/sensors").json()
    lots = {lot["id"]: lot for lot in body["lots"]}
    assert (lots[garage]["sensors"], lots[garage]["counter_jump"]) == (1, 1)
    assert lots[garage]["flags"] == ["counter_jump"]
    assert lots[f"{city.id}-small"]["counter_jump"] == 0
    jumped = body["problems"][0]  # jumps come first
    assert (jumped["sensor_id"], jumped["network"], jumped["counter_jump"], jumped["silent"]) == (
        f"{garage}/counter", "counter", True, False)
    assert [p["sensor_id"] for p in body["problems"] if p["counter_jump"]] == [f"{garage}/counter"]
    lot = api_client.get(f"/v1/lots/{garage}").json()
    assert (lot["occupied"], lot["quality"], lot["quality_flags"]) == (30, 0.7, ["counter_jump"])
