"""The open-data API against a real database with simulated history and live lot states."""

from __future__ import annotations

import csv
import io
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _citytoml import city_toml
from _helpers import PROBLEM, ServiceProcess, service_env, utc_now, wait_for
from _payloads import counter_topic, dumps, iso, native_bay
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

import api._history
from api import create_app
from api._http import http_date
from api._models import History
from core import channels
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from ingest import Message, Writer, prepare_connection
from parkleit.embedded import free_port
from simulators.history import backfill_history

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with special spaces: a counter lot with disabled and EV capacity only,
    and a bay lot whose two sensed bays are a disabled and an EV space."""
    city_id = f"t{secrets.token_hex(4)}"
    text = city_toml(city_id).replace(
        "counter_modulus = 1000", "counter_modulus = 1000\ndisabled_spaces = 4\nev_spaces = 6"
    ).replace('network = "ttn"', 'network = "ttn", kind = "disabled"').replace(
        'network = "chirpstack"', 'network = "chirpstack", kind = "ev"')
    path = tmp_path / f"{city_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Seeded:
    now: datetime
    garage: str
    small: str
    street: str
    lora: str


@pytest.fixture
def seeded(conn: Conn, city: City) -> Seeded:
    """Three days of simulated history, then live readings through the ingest writer: the
    garage counted a minute ago, the small lot two hours ago (stale), the sensor lot's
    disabled bay free and EV bay taken, the street never; two live forecast runs and a
    newer backtest run (the published error's, never the current forecast)."""
    now = utc_now()
    ids = Seeded(now, *(f"{city.id}-{name}" for name in ("garage", "small", "street", "lora")))
    sync_registry(conn, city)
    backfill_history(conn, city, end=now - timedelta(minutes=30), weeks=3 / 7)
    messages = [
        Message(counter_topic(city.id, "garage"),
                dumps({"occupied": 60, "ts": iso(now - timedelta(minutes=1))}), now),
        Message(counter_topic(city.id, "small"),
                dumps({"occupied": 3, "ts": iso(now - timedelta(hours=2))}), now),
        Message(f"parkleit/v1/{city.id}/bays/{city.id}-ttn-1",
                dumps(native_bay(now - timedelta(seconds=30), occupied=False)), now),
        Message(f"parkleit/v1/{city.id}/bays/{city.id}-cs-1",
                dumps(native_bay(now - timedelta(seconds=30), occupied=True)), now),
    ]
    prepare_connection(conn)
    result = Writer(city).write(conn, messages, now)
    assert result.dead_letters == 0
    for origin, base, kind in ((now - timedelta(hours=1), 10.0, "live"),
                               (now - timedelta(minutes=20), 30.0, "live"),
                               (now - timedelta(minutes=5), 90.0, "backtest")):
        for horizon in (15, 30, 60):
            conn.execute(
                "INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, free_p10,"
                " free_p90, p_space, model, kind)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'gbm-test', %s)",
                (origin, ids.garage, horizon, origin + timedelta(minutes=horizon),
                 base + horizon / 15, base - 5, base + 7.5, 0.95, kind))
    conn.execute(
        "INSERT INTO forecast_accuracy (lot_id, horizon_min, window_days, mae, mae_rate, points,"
        " backtest_points, computed_at) VALUES (%s, 30, 7, 4.25, 0.0425, 300, 120, %s),"
        " (%s, 60, 7, 6.5, 0.065, 280, 0, %s)", (ids.garage, now, ids.garage, now))
    return ids


def by_id(lots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {lot["id"]: lot for lot in lots}


def parse(text: str) -> datetime:
    assert text.endswith("Z"), text  # RFC 3339 in UTC
    return datetime.fromisoformat(text)


def assertproblem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["instance"] == response.request.url.path
    return body


def test_lots_carry_live_status_special_spaces_and_forecast(
        api_client: TestClient, seeded: Seeded, city: City) -> None:
    response = api_client.get("/v1/lots")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["total"] == len(city.lots) == len(body["lots"])
    assert [lot["id"] for lot in body["lots"]] == sorted(lot.id for lot in city.lots)
    lots = by_id(body["lots"])

    garage = lots[seeded.garage]
    assert (garage["free"], garage["occupied"], garage["capacity"]) == (40, 60, 100)
    assert garage["status"] == "open" and garage["stale"] is False
    assert parse(garage["updated"]) == seeded.now - timedelta(minutes=1)
    assert garage["quality"] == 1.0
    assert (garage["latitude"], garage["longitude"]) == (51.05, 12.14)
    assert garage["opening_hours"] == "24/7"
    # A counter lot has no bay sensors: special spaces as capacity only.
    assert garage["disabled"] == {"capacity": 4, "free": None}
    assert garage["ev"] == {"capacity": 6, "free": None}
    forecast = garage["forecast_30"]
    # The newest live run; the newer backtest run is never the current forecast.
    assert parse(forecast["origin"]) == seeded.now - timedelta(minutes=20)
    assert forecast["free"] == 32.0 and forecast["free_p10"] == 25.0
    assert forecast["free_p90"] == 37.5 and forecast["p_space"] == 0.95
    assert forecast["model"] == "gbm-test"

    small = lots[seeded.small]  # counted two hours ago, stale after 15 minutes
    assert small["status"] == "unknown" and small["stale"] is True
    assert small["free"] is None and small["occupied"] is None
    assert parse(small["updated"]) == seeded.now - timedelta(hours=2)
    assert small["quality"] == 0.0 and small["quality_flags"] == ["stale"]

    lora = lots[seeded.lora]  # one bay of each kind, both sensed
    assert (lora["free"], lora["status"]) == (1, "open")
    assert lora["disabled"] == {"capacity": 1, "free": 1}
    assert lora["ev"] == {"capacity": 1, "free": 0}

    street = lots[seeded.street]  # never counted
    assert street["status"] == "unknown" and street["updated"] is None
    assert street["free"] is None and street["forecast_30"] is None

    single = api_client.get(f"/v1/lots/{seeded.garage}")
    assert single.status_code == 200 and single.json() == garage


@pytest.mark.usefixtures("seeded")
def test_geojson_feature_collection_in_lon_lat_order(api_client: TestClient, city: City) -> None:
    plain = by_id(api_client.get("/v1/lots").json()["lots"])
    by_format = api_client.get("/v1/lots", params={"format": "geojson"})
    by_accept = api_client.get("/v1/lots", headers={"Accept": "application/geo+json"})
    for response in (by_format, by_accept):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/geo+json"
        assert "Accept" in response.headers["vary"]
        collection = response.json()
        assert collection["type"] == "FeatureCollection"
        assert len(collection["features"]) == len(city.lots)
        for feature in collection["features"]:
            lot = city.lot(feature["id"])
            assert feature["type"] == "Feature"
            assert feature["geometry"] == {"type": "Point",
                                           "coordinates": [lot.longitude, lot.latitude]}
            assert feature["properties"] == plain[lot.id]
    assert by_format.json() == by_accept.json()
    # An explicit format wins over the Accept header.
    assert "lots" in api_client.get("/v1/lots?format=json",
                                    headers={"Accept": "application/geo+json"}).json()


def test_pagination_with_link_header(api_client: TestClient, seeded: Seeded) -> None:
    first = api_client.get("/v1/lots", params={"limit": 3})
    body = first.json()
    assert (len(body["lots"]), body["total"], body["limit"], body["offset"]) == (3, 4, 3, 0)
    links = first.links
    assert "prev" not in links and links["next"]["url"].endswith("offset=3&limit=3")
    second = api_client.get(links["next"]["url"])
    assert [lot["id"] for lot in second.json()["lots"]] == [seeded.street]
    assert "next" not in second.links and "offset=0" in second.links["prev"]["url"]
    beyond = api_client.get("/v1/lots", params={"offset": 10}).json()
    assert beyond["lots"] == [] and beyond["total"] == 4


def raw_rows(conn: Conn, lot_id: str, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT time, free FROM lot_occupancy WHERE lot_id = %s AND time >= %s"
                        " AND time < %s ORDER BY time", (lot_id, start, end)).fetchall()


def check_buckets(points: list[dict[str, Any]], expected: dict[datetime, list[int]]) -> None:
    assert [parse(point["time"]) for point in points] == sorted(expected)
    for point in points:
        values = expected[parse(point["time"])]
        assert point["samples"] == len(values)
        assert point["free"] == pytest.approx(sum(values) / len(values), abs=0.006)
        assert point["free_min"] == min(values)
        assert point["free"] + point["occupied"] == pytest.approx(100, abs=0.02)


def test_history_at_every_resolution_matches_the_raw_rows(
        api_client: TestClient, seeded: Seeded, conn: Conn, city: City) -> None:
    tz = city.tz
    today = seeded.now.astimezone(tz).date()
    day_start = datetime.combine(today - timedelta(days=2), time(0), tz)
    day_end = datetime.combine(today, time(0), tz)
    # One extra reading gives one hour 13 samples: a day's mean must weigh its hours by them.
    conn.execute("INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source) "
                 "VALUES (%s, %s, 100, 0, 100, 'history')",
                 (day_start + timedelta(hours=10, seconds=150), seeded.garage))
    # Local midnights as local times with their offset: the API takes any offset.
    days = api_client.get(f"/v1/lots/{seeded.garage}/history", params={
        "from": day_start.isoformat(), "to": day_end.isoformat(), "resolution": "1d"})
    assert days.status_code == 200, days.text
    body = days.json()
    assert parse(body["from"]) == day_start and body["timezone"] == "Europe/Berlin"
    expected: dict[datetime, list[int]] = defaultdict(list)
    for moment, free in raw_rows(conn, seeded.garage, day_start, day_end):
        expected[datetime.combine(moment.astimezone(tz).date(), time(0), tz)].append(free)
    assert len(body["points"]) == 2
    check_buckets(body["points"], expected)

    start = datetime.combine(today - timedelta(days=1), time(10, 7), tz)
    end = datetime.combine(today - timedelta(days=1), time(16), tz)
    for resolution, width in (("1h", 3600), ("15m", 900)):
        response = api_client.get(f"/v1/lots/{seeded.garage}/history", params={
            "from": start.isoformat(), "to": end.isoformat(), "resolution": resolution})
        assert response.status_code == 200, response.text
        history = response.json()
        aligned = datetime.fromtimestamp(start.timestamp() // width * width, UTC)
        assert parse(history["from"]) == aligned
        expected = defaultdict(list)
        for moment, free in raw_rows(conn, seeded.garage, aligned, end):
            expected[datetime.fromtimestamp(moment.timestamp() // width * width, UTC)].append(
                free)
        assert len(history["points"]) == (6 if resolution == "1h" else 24)
        check_buckets(history["points"], expected)
        assert "max-age=3600" in response.headers["cache-control"]  # a window long past

    recent = api_client.get(f"/v1/lots/{seeded.garage}/history")  # the last 24 h at 15m
    assert 95 <= len(recent.json()["points"]) <= 97
    assert "max-age=60" in recent.headers["cache-control"]


@pytest.mark.parametrize(("query", "name"), [
    ({"resolution": "5m"}, "resolution"),
    ({"from": "2024-03-01T10:00:00"}, "from"),  # no offset
    ({"from": "yesterday"}, "from"),
    ({"from": "2024-03-02T00:00:00Z", "to": "2024-03-01T00:00:00Z"}, "from"),
    ({"from": "2020-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z", "resolution": "1h"},
     "from"),
    ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
    ({"to": "9999-12-31T23:59:59-01:00"}, "to"),
])
def test_bad_history_input_is_a_422problem(
        api_client: TestClient, seeded: Seeded, query: dict[str, str], name: str) -> None:
    body = assertproblem(api_client.get(f"/v1/lots/{seeded.garage}/history", params=query),
                          422)
    assert [error["name"] for error in body["errors"]] == [name]
    assert name in body["detail"]


def test_history_of_400_days_at_15m_is_the_buckets_as_the_model_says(
        api_client: TestClient, seeded: Seeded, conn: Conn) -> None:
    to = (seeded.now - timedelta(hours=1)).replace(microsecond=0)  # its last bucket is past
    query = {"from": (to - timedelta(days=400)).isoformat(), "to": to.isoformat()}
    response = api_client.get(f"/v1/lots/{seeded.garage}/history", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    # The points are JSON the database wrote: the document must still be what the model says.
    fields = {("from_" if key == "from" else key): value for key, value in body.items()}
    assert History.model_validate(fields).model_dump(mode="json", by_alias=True) == body
    rows = conn.execute(
        "SELECT bucket, round(free::float8 * 100) / 100, free_min, samples FROM lot_occupancy_15m"
        " WHERE lot_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket",
        (seeded.garage, parse(body["from"]), to)).fetchall()
    assert len(rows) > 200  # three days
    assert [(parse(p["time"]), p["free"], p["free_min"], p["samples"])
            for p in body["points"]] == rows
    assert response.headers["last-modified"] == http_date(rows[-1][0] + timedelta(minutes=15))

    too_long = api_client.get(f"/v1/lots/{seeded.garage}/history", params={
        **query, "from": (to - timedelta(days=401)).isoformat()})
    assert assertproblem(too_long, 422)["errors"][0]["name"] == "from"
    empty = api_client.get(f"/v1/lots/{seeded.garage}/history", params={
        "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"})
    assert empty.status_code == 200 and empty.json()["points"] == []
    assert "last-modified" not in empty.headers


@pytest.mark.parametrize("resolution", ["15m", "1h", "1d"])
def test_history_read_in_two_parts_is_the_history_read_at_once(
        api_client: TestClient, seeded: Seeded, city: City, monkeypatch: pytest.MonkeyPatch,
        resolution: api._history.Resolution) -> None:
    to = (seeded.now - timedelta(hours=1)).replace(microsecond=0)
    query = {"from": (to - timedelta(days=3)).isoformat(), "to": to.isoformat(),
             "resolution": resolution}
    at_once = api_client.get(f"/v1/lots/{seeded.garage}/history", params=query)
    monkeypatch.setattr(api._history, "PARALLEL_ABOVE", timedelta(hours=1))
    start = parse(at_once.json()["from"])
    assert len(api._history.history_parts(start, to, resolution, city.tz)) == 2
    in_parts = api_client.get(f"/v1/lots/{seeded.garage}/history", params=query)
    assert in_parts.status_code == at_once.status_code == 200
    assert len(at_once.json()["points"]) >= 3  # 1d: days cut at a local midnight, not in two
    assert in_parts.json() == at_once.json()
    # The last bucket may still be filling (a local day): its Last-Modified is the time of
    # the request then, which may have moved on to the next second between the two requests.
    first, second = (parsedate_to_datetime(answer.headers["last-modified"])
                     for answer in (at_once, in_parts))
    still_open = parse(at_once.json()["points"][-1]["time"]) + api._history.BUCKET[
        resolution] > to
    assert second - first in ((timedelta(0), timedelta(seconds=1)) if still_open
                              else (timedelta(0),))


def test_forecast_with_intervals_and_published_error(
        api_client: TestClient, seeded: Seeded) -> None:
    response = api_client.get(f"/v1/lots/{seeded.garage}/forecast")
    assert response.status_code == 200
    forecast = response.json()
    origin = seeded.now - timedelta(minutes=20)  # the newest live run, not the backtest one
    assert parse(forecast["origin"]) == origin
    # The 15-minute horizon of the newest run lies in the past: no forecast any more.
    assert [point["horizon_min"] for point in forecast["points"]] == [30, 60]
    for point in forecast["points"]:
        assert parse(point["target_time"]) == origin + timedelta(minutes=point["horizon_min"])
        assert point["free"] == 30 + point["horizon_min"] / 15
        assert (point["free_p10"], point["free_p90"]) == (25.0, 37.5)
        assert point["p_space"] == 0.95 and point["model"] == "gbm-test"
    assert [(a["horizon_min"], a["mae"], a["mae_rate"], a["points"], a["backtest_points"],
             a["window_days"]) for a in forecast["accuracy"]] == [
        (30, 4.25, 0.0425, 300, 120, 7), (60, 6.5, 0.065, 280, 0, 7)]
    assert response.headers["last-modified"]

    none_yet = api_client.get(f"/v1/lots/{seeded.small}/forecast").json()
    assert none_yet == {"lot_id": seeded.small, "origin": None, "points": [], "accuracy": []}


def test_signs_show_what_they_last_confirmed(
        api_client: TestClient, seeded: Seeded, conn: Conn, city: City) -> None:
    [sign] = api_client.get("/v1/signs").json()["signs"]
    config = city.signs[0]
    assert sign["id"] == config.id and sign["showing"] is None and sign["stale"] is True
    assert sign["lines"] == [{"label": "Zentrum", "arrow": "left", "lots": [seeded.garage]}]
    assert "address" not in sign  # the sign's network address is not public
    shown = {"lines": [{"label": "Zentrum", "arrow": "left", "text": "40"}]}
    conn.execute("INSERT INTO sign_state (sign_id, content, shown_since, last_ack, updated) "
                 "VALUES (%s, %s, %s, %s, %s)",
                 (config.id, Jsonb(shown), seeded.now - timedelta(minutes=5),
                  seeded.now - timedelta(seconds=10), seeded.now - timedelta(seconds=10)))
    response = api_client.get("/v1/signs")
    [sign] = response.json()["signs"]
    assert sign["showing"] == shown["lines"] and sign["stale"] is False
    assert parse(sign["last_ack"]) == seeded.now - timedelta(seconds=10)
    assert response.headers["last-modified"]


def test_csv_export_parses_back_and_matches_history(
        api_client: TestClient, seeded: Seeded, conn: Conn) -> None:
    start = (seeded.now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=12)
    window = {"from": start.isoformat(), "to": end.isoformat()}
    response = api_client.get("/v1/export.csv", params={
        **window, "resolution": "1h", "lot": [seeded.garage, seeded.small]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["lot_id", "time", "occupied", "free", "free_min", "capacity",
                             "samples"]
    assert len(rows) == 24
    assert [row["lot_id"] for row in rows] == [seeded.garage] * 12 + [seeded.small] * 12
    history = api_client.get(f"/v1/lots/{seeded.garage}/history",
                             params={**window, "resolution": "1h"}).json()["points"]
    for row, point in zip(rows[:12], history, strict=True):
        assert parse(row["time"]) == parse(point["time"])
        assert float(row["free"]) == point["free"] and int(row["samples"]) == point["samples"]
        assert int(row["free_min"]) == point["free_min"]

    raw = api_client.get("/v1/export.csv", params={**window, "resolution": "raw"})
    raw_rows_back = list(csv.DictReader(io.StringIO(raw.text)))
    stored = conn.execute("SELECT count(*) FROM lot_occupancy WHERE time >= %s AND time < %s",
                          (start, end)).fetchone()
    assert stored is not None and len(raw_rows_back) == stored[0] > 0

    etag = response.headers["etag"]
    again = api_client.get("/v1/export.csv", headers={"If-None-Match": etag}, params={
        **window, "resolution": "1h", "lot": [seeded.garage, seeded.small]})
    assert again.status_code == 304 and again.content == b""
    conn.execute("INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source) "
                 "VALUES (%s, %s, 0, 10, 10, 'history')", (start + timedelta(seconds=1),
                                                          seeded.small))
    changed = api_client.get("/v1/export.csv", headers={"If-None-Match": etag}, params={
        **window, "resolution": "1h", "lot": [seeded.garage, seeded.small]})
    assert changed.status_code == 200 and changed.headers["etag"] != etag

    unknown = api_client.get("/v1/export.csv", params={"lot": "atlantis"})
    assert assertproblem(unknown, 422)["errors"][0]["name"] == "lot"


def test_etag_304_cache_control_gzip_and_cors(
        api_client: TestClient, seeded: Seeded, conn: Conn, city: City) -> None:
    first = api_client.get("/v1/lots", headers={"Origin": "https://example.org"})
    assert first.status_code == 200
    assert first.headers["access-control-allow-origin"] == "*"
    assert "ETag" in first.headers["access-control-expose-headers"]
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert first.headers["cache-control"] == "public, max-age=10"
    assert first.headers["last-modified"].endswith(" GMT")
    assert first.headers["content-encoding"] == "gzip"  # httpx asks for it and decodes
    plain = api_client.get("/v1/lots", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == first.json()
    assert plain.headers["etag"] == etag

    head = api_client.head("/v1/lots")
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag

    cached = api_client.get("/v1/lots", headers={"If-None-Match": f'"x", {etag}'})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag and cached.headers["cache-control"]

    # A count 16 minutes old makes the garage stale: a new body, a new ETag, never a 304 (a
    # writer of lot_state NOTIFYs, as ingest does; the API reads its views again then).
    conn.execute("UPDATE lot_state SET updated = %s WHERE lot_id = %s",
                 (seeded.now - timedelta(minutes=16), seeded.garage))
    conn.execute("SELECT pg_notify(%s, %s)", (channels.LOTS_CHANGED, city.id))
    after = wait_for(lambda: (answer := api_client.get(
        "/v1/lots", headers={"If-None-Match": etag})).status_code == 200 and answer, timeout=5)
    assert after.headers["etag"] != etag
    garage = by_id(after.json()["lots"])[seeded.garage]
    assert garage["status"] == "unknown" and garage["stale"] and garage["free"] is None

    preflight = api_client.options("/v1/lots", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"

    for path in (f"/v1/lots/{seeded.garage}", f"/v1/lots/{seeded.garage}/history",
                 f"/v1/lots/{seeded.garage}/forecast", "/v1/signs", "/v1/export.csv"):
        assert api_client.get(path).headers["cache-control"].startswith("public, max-age=")


@pytest.mark.usefixtures("seeded")
def test_problem_details(api_client: TestClient, settings: Settings, conn: Conn) -> None:
    body = assertproblem(api_client.get("/v1/lots/atlantis"), 404)
    assert "atlantis" in body["detail"]
    for path in ("/v1/lots/atlantis/history", "/v1/lots/atlantis/forecast", "/v2/nothing"):
        assertproblem(api_client.get(path), 404)
    body = assertproblem(api_client.get("/v1/lots", params={"limit": "0"}), 422)
    assert body["errors"] == [{"location": "query", "name": "limit",
                               "detail": "Input should be greater than or equal to 1"}]
    assertproblem(api_client.get("/v1/lots", params={"format": "kml"}), 422)
    assertproblem(api_client.get("/v1/lots", params={"offset": "-1"}), 422)
    assertproblem(api_client.post("/v1/lots"), 405)

    # An unexpected failure: a 500 problem that tells nothing of the internals.
    conn.execute("ALTER TABLE lot_state RENAME TO lot_state_gone")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        failed = client.get("/v1/lots")
    body = assertproblem(failed, 500)
    assert "lot_state" not in failed.text and "Traceback" not in failed.text


def test_healthz_and_metrics(api_client: TestClient, seeded: Seeded) -> None:
    health = api_client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["schema_version"] >= 1
    assert health.headers["cache-control"] == "no-store"
    api_client.get(f"/v1/lots/{seeded.garage}")
    api_client.get("/v1/lots/atlantis")
    metrics = api_client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert ('parkleit_api_requests_total{method="GET",route="/v1/lots/{lot_id}",status="200"} '
            '1.0') in text
    assert 'route="/v1/lots/{lot_id}",status="404"} 1.0' in text
    assert 'parkleit_api_request_seconds_count{method="GET",route="/healthz"} 1.0' in text


def test_database_gone_is_a_503_problem_then_recovers(
        api_client: TestClient, seeded: Seeded, conn: Conn) -> None:
    # A route that reads the database at every request (the lot list and a lot are served
    # from the process's snapshot, tests/api/test_api_snapshot.py).
    path = f"/v1/lots/{seeded.garage}/forecast"
    assert api_client.get(path).status_code == 200
    # Every pooled connection of the API dies under it, as when the server restarts.
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                 " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    gone = api_client.get(path)
    assertproblem(gone, 503)
    assert gone.headers["retry-after"] == "5" and "terminat" not in gone.text
    wait_for(lambda: api_client.get("/healthz").status_code == 200, timeout=10)


def test_openapi_names_every_operation(api_client: TestClient) -> None:
    schema = api_client.get("/openapi.json").json()
    operations = {operation["operationId"] for path in schema["paths"].values()
                  for operation in path.values()}
    assert {"listLots", "getLot", "getLotHistory", "getLotForecast", "listSigns",
            "exportHistoryCsv", "getHealth", "getMetrics", "listChargingLocations",
            "datex2_energy_infrastructure_table", "datex2_energy_infrastructure_status"
            } <= operations
    lots = schema["paths"]["/v1/lots"]["get"]["responses"]
    assert "application/geo+json" in lots["200"]["content"]
    assert PROBLEM in lots["422"]["content"]
    assert api_client.get("/docs").status_code == 200


def test_parkleit_api_serves_and_stops_on_sigterm(
        spawn: Callable[..., ServiceProcess], settings: Settings, conn: Conn,
        city: City) -> None:
    sync_registry(conn, city)
    port = free_port()
    process = spawn(["api", "--port", str(port)], service_env(settings), name="api")

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, timeout=20)
    lots = httpx.get(f"http://127.0.0.1:{port}/v1/lots", timeout=5)
    assert lots.status_code == 200 and lots.json()["total"] == len(city.lots)
    assert process.terminate(timeout=20) == 0


def test_parkleit_api_bad_config_exits_2(
        spawn: Callable[..., ServiceProcess], settings: Settings) -> None:
    process = spawn(["api"], service_env(settings, PARKLEIT_API_PORT="70000"), name="bad")
    assert process.proc is not None and process.proc.wait(30) == 2
    lines = process.log.read_text().strip().splitlines()
    assert lines == ["parkleit: PARKLEIT_API_PORT: Input should be less than or equal to 65535"]
