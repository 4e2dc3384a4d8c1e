"""One API for several cities: ``?city=`` on every list, lots and signs found by id across
cities, DATEX II with a table per city, the live stream and the pages per city."""

from __future__ import annotations

import json
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import CHIRPSTACK_EUI, TTN_EUI, city_toml
from _helpers import datex2_schema, utc_now, wait_for
from fastapi.testclient import TestClient
from test_api_stream_admin import FAST, Stream, counter, serve

from api import create_app
from core.city import Cities, load_cities
from core.datex2 import NAMESPACES
from core.registry import sync_registry
from core.settings import Settings
from ingest import Writer, prepare_connection


@pytest.fixture
def other_path(tmp_path: Path) -> Path:
    """A second test city: other ids, devices and name, in Vienna's timezone."""
    city_id = f"u{secrets.token_hex(4)}"
    text = (city_toml(city_id).replace(TTN_EUI, "70b3d57ed00000a1")
            .replace(CHIRPSTACK_EUI, "70b3d57ed00000a2")
            .replace("http://127.0.0.1:1/sign", "http://127.0.0.1:2/sign")
            .replace('name = "Teststadt"', 'name = "Zweitstadt"\ntimezone = "Europe/Vienna"'))
    path = tmp_path / f"{city_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cities(city_path: Path, other_path: Path) -> Cities:
    return load_cities([str(city_path), str(other_path)])


@pytest.fixture
def two(settings: Settings, cities: Cities, city_path: Path, other_path: Path,
        conn: psycopg.Connection[Any]) -> Iterator[TestClient]:
    """The API of both cities, each with one lot counted just now."""
    now = utc_now()
    prepare_connection(conn)
    for city, occupied in zip(cities, (30, 60), strict=True):
        sync_registry(conn, city)
        Writer(city).write(conn, [counter(city, "garage", occupied, now)], now)
    both = settings.model_copy(update={"CITIES": (str(city_path), str(other_path))})
    with TestClient(create_app(both, cities)) as client:
        yield client


def _ids(rows: list[dict[str, Any]]) -> set[str]:
    return {row["id"] for row in rows}


def test_lists_cover_every_city_or_the_one_asked_for(two: TestClient, cities: Cities) -> None:
    first, second = cities
    every = two.get("/v1/lots", params={"limit": 1000}).json()
    assert every["total"] == len(first.lots) + len(second.lots)
    assert {(lot["id"], lot["city"]) for lot in every["lots"]} == {
        (lot.id, city.id) for city in cities for lot in city.lots}

    only = two.get("/v1/lots", params={"city": second.id}).json()
    assert _ids(only["lots"]) == {lot.id for lot in second.lots}
    assert only["total"] == len(second.lots)
    garage = next(lot for lot in only["lots"] if lot["id"] == f"{second.id}-garage")
    assert (garage["occupied"], garage["status"]) == (60, "open")

    geojson = two.get("/v1/lots", params={"city": first.id, "format": "geojson"}).json()
    assert {feature["properties"]["city"] for feature in geojson["features"]} == {first.id}

    signs = two.get("/v1/signs", params={"city": first.id}).json()["signs"]
    assert [(sign["id"], sign["city"]) for sign in signs] == [(first.signs[0].id, first.id)]
    assert len(two.get("/v1/signs").json()["signs"]) == 2

    parkapi = two.get("/v1/parkapi", params={"city": second.id}).json()
    assert {lot["id"] for lot in parkapi["lots"]} == {lot.id for lot in second.lots}
    assert len(two.get("/v1/parkapi").json()["lots"]) == len(first.lots) + len(second.lots)


def test_a_lot_is_found_by_id_whatever_its_city(two: TestClient, cities: Cities) -> None:
    second = cities.all[1]
    lot = two.get(f"/v1/lots/{second.id}-garage").json()
    assert (lot["city"], lot["occupied"]) == (second.id, 60)
    history = two.get(f"/v1/lots/{second.id}-garage/history").json()
    assert history["timezone"] == "Europe/Vienna"  # the lot's own city's
    assert two.get(f"/v1/lots/{second.id}-garage/forecast").status_code == 200
    assert two.get("/v1/lots/nowhere").status_code == 404


@pytest.mark.parametrize("path", ["/v1/lots", "/v1/signs", "/v1/parkapi", "/v1/export.csv",
                                  "/v1/datex2/parking-table", "/v1/stream", "/",
                                  "/v1/dashboard/occupancy"])
def test_an_unknown_city_is_refused_naming_the_known_ones(two: TestClient, cities: Cities,
                                                          path: str) -> None:
    answer = two.get(path, params={"city": "atlantis"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail = json.dumps(answer.json())
    assert "atlantis" in detail and all(city.id in detail for city in cities)


def _tables(document: bytes) -> list[str]:
    root = ET.fromstring(document)
    return [table.get("id", "") for table in root.iterfind("prk:parkingTable", NAMESPACES)]


def test_datex2_publishes_a_table_per_city_and_stays_valid(two: TestClient,
                                                           cities: Cities) -> None:
    schema = datex2_schema()
    first, second = cities
    table = two.get("/v1/datex2/parking-table").content
    schema.validate(table)
    assert _tables(table) == [f"{first.id}-lots", f"{second.id}-lots"]
    assert _tables(two.get("/v1/datex2/parking-table", params={"city": second.id}).content) == [
        f"{second.id}-lots"]

    status = two.get("/v1/datex2/parking-status").content
    schema.validate(status)
    root = ET.fromstring(status)
    references = [ref.get("id") for ref in root.iterfind("prk:parkingTableReference", NAMESPACES)]
    assert references == [f"{first.id}-lots", f"{second.id}-lots"]
    vacant = {
        info.find("fac:reference", NAMESPACES).get("id"):  # type: ignore[union-attr]
        info.findtext("prk:occupancy/prk:numberOfVacantSpaces", None, NAMESPACES)
        for info in root.iterfind("prk:parkingStatusInformation", NAMESPACES)}
    assert vacant[f"{first.id}-garage"] == "70" and vacant[f"{second.id}-garage"] == "40"

    for path in ("/v1/datex2/vms-table", "/v1/datex2/vms-status"):
        document = two.get(path).content
        schema.validate(document)
        assert len(re.findall(rb"<vms:vmsControllerTable\b", document)) == (
            2 if path.endswith("table") else 0)


def test_export_needs_one_timezone(two: TestClient, cities: Cities) -> None:
    first, second = cities
    refused = two.get("/v1/export.csv")
    assert refused.status_code == 422
    assert "Europe/Vienna" in refused.text and "Europe/Berlin" in refused.text
    answer = two.get("/v1/export.csv", params={"city": second.id, "resolution": "raw"})
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].endswith(f'"parkleit-{second.id}-raw.csv"')
    rows = answer.text.splitlines()[1:]
    assert rows and {row.split(",")[0] for row in rows} == {f"{second.id}-garage"}
    # Lots of one city need no city parameter.
    one = two.get("/v1/export.csv", params={"lot": f"{first.id}-garage", "resolution": "raw"})
    assert one.status_code == 200 and f"{first.id}-garage" in one.text


def test_pages_and_dashboard_show_one_city_with_links_to_the_others(
        two: TestClient, cities: Cities) -> None:
    first, second = cities

    def config(path: str, **params: str) -> dict[str, Any]:
        html = two.get(path, params=params).text
        found = re.search(r'id="parkleit-config">(.*?)</script>', html, re.DOTALL)
        assert found, path
        result: dict[str, Any] = json.loads(found.group(1))
        return result

    assert config("/")["city"]["id"] == first.id  # the installation's first by default
    page = config("/dashboard", city=second.id)
    assert page["city"] == {"id": second.id, "name": "Zweitstadt",
                            "timezone": "Europe/Vienna", "illustrative": False}
    assert page["cities"] == [{"id": first.id, "name": "Teststadt"},
                              {"id": second.id, "name": "Zweitstadt"}]
    assert config("/kiosk", city=second.id)["city"]["id"] == second.id

    occupancy = two.get("/v1/dashboard/occupancy", params={"city": second.id}).json()
    assert {lot["id"] for lot in occupancy["lots"]} == {lot.id for lot in second.lots}
    # A lot of another city is not one of this city's.
    assert two.get("/v1/dashboard/heatmap", params={
        "city": second.id, "lot_id": f"{first.id}-garage"}).status_code == 404


def test_city_gauges_carry_the_city(two: TestClient, cities: Cities) -> None:
    text = two.get("/metrics/city").text
    for city in cities:
        assert f'parkleit_lot_data_age_seconds{{city="{city.id}",lot="{city.id}-garage"}}' in text
        assert f'parkleit_forecast_age_seconds{{city="{city.id}"}}' in text


def test_the_stream_filters_by_city(settings: Settings, cities: Cities, city_path: Path,
                                    other_path: Path,
                                    conn: psycopg.Connection[Any]) -> None:
    first, second = cities
    prepare_connection(conn)
    for city in cities:
        sync_registry(conn, city)
    both = settings.model_copy(update={"CITIES": (str(city_path), str(other_path)), **FAST})
    app = create_app(both, cities)
    with serve(app) as url:
        wait_for(lambda: app.state.hub.connected, timeout=10)
        stream = Stream(f"{url}/v1/stream?city={second.id}")
        try:
            current = stream.lots(len(second.lots))
            assert set(current) == {lot.id for lot in second.lots}
            now = utc_now()
            Writer(first).write(conn, [counter(first, "garage", 5, now)], now)  # not asked for
            later = now + timedelta(milliseconds=1)
            Writer(second).write(conn, [counter(second, "garage", 7, later)], later)
            change = stream.next(timeout=2.0)
            assert json.loads(change["data"])["lot_id"] == f"{second.id}-garage"
        finally:
            stream.close()
        narrowed = Stream(f"{url}/v1/stream?city={first.id}&lots={first.id}-garage")
        try:
            assert set(narrowed.lots(1)) == {f"{first.id}-garage"}
        finally:
            narrowed.close()
        refused = Stream(f"{url}/v1/stream?city={first.id}&lots={second.id}-garage")
        try:
            wait_for(lambda: refused.status is not None, timeout=5)
            assert refused.status == 422  # that lot is not in the city asked for
        finally:
            refused.close()
