"""The charging points in the API: ``GET /v1/charging/locations`` (OCPI 2.2.1-style) and the
DATEX II v3.7 AFIR publications, valid against the official schemas (AFIR extension included):
only the city's own points unless a setting says otherwise, OCPI statuses mapped one to one
onto RefillPointStatusEnum, a point without a reading unknown."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import xmlschema
from _citytoml import evse_id, write_city
from _helpers import datex2_document, utc_now
from fastapi.testclient import TestClient

from api import create_app
from api._datex_energy import (
    REFILL_POINT_STATUS,
    energy_status_publication,
    energy_table_publication,
)
from core.charging import EvseReading, EvseState, EvseStatus, store_readings
from core.city import City, load_city
from core.datex2 import NAMESPACES
from core.registry import sync_registry
from core.settings import Settings

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
XSI_TYPE = f"{{{NAMESPACES['xsi']}}}type"


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with its charging stations (overrides conftest's)."""
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


def _find(element: ET.Element, path: str) -> ET.Element:
    found = element.find(path, NAMESPACES)
    assert found is not None, path
    return found


def _text(element: ET.Element, path: str) -> str:
    return _find(element, path).text or ""


def _points(document: bytes) -> dict[str, ET.Element]:
    root = ET.fromstring(document)
    return {point.get("id", ""): point for point in root.iterfind(".//aegi:refillPoint",
                                                                   NAMESPACES)}


def _statuses(document: bytes) -> dict[str, tuple[str, str | None, str]]:
    """EVSE id -> (status, lastUpdated, referenced version)."""
    root = ET.fromstring(document)
    result = {}
    for status in root.iterfind(".//aegi:refillPointStatus", NAMESPACES):
        assert status.get(XSI_TYPE) == "aegi:ElectricChargingPointStatus"
        reference = _find(status, "afac:reference")
        updated = status.find("afac:lastUpdated", NAMESPACES)
        result[reference.get("id", "")] = (_text(status, "aegi:status"),
                                           None if updated is None else updated.text,
                                           reference.get("version", ""))
    return result


# -- the publications themselves ---------------------------------------------------------------


def test_the_table_holds_the_citys_own_points(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    document = energy_table_publication([zeitz], NOW)
    datex2.validate(document)
    root = ET.fromstring(document)
    assert root.get(XSI_TYPE) == "aegi:EnergyInfrastructureTablePublication"
    table = _find(root, "aegi:energyInfrastructureTable")
    assert table.get("id") == "zeitz-charging"
    own = [evse.evse_id for station, evse in zeitz.evses() if station.operator == "city"]
    points = _points(document)
    # By site (the lots in config order); the utility's points are not the city's to publish.
    assert sorted(points) == sorted(own) and own
    sites = [site.get("id") for site in table.iterfind("aegi:energyInfrastructureSite",
                                                        NAMESPACES)]
    assert sites == ["zeitz-altmarkt", "zeitz-schlossstrasse", "zeitz-kramerstrasse"]

    station = _find(table, ".//aegi:energyInfrastructureStation[@id='zeitz-cp-altmarkt-1']")
    bnetza = _find(station, "afac:externalIdentifier")
    assert _text(bnetza, "afac:identifier") == "99001"
    assert _text(station, "aegi:numberOfRefillPoints") == "2"
    assert _text(station, "aegi:totalMaximumPower") == "44000"
    assert _text(station, "afac:operator/afac:name/com:values/com:value") == "Stadt Zeitz"

    point = points["DE*ZTZ*E0002*1"]
    assert point.get(XSI_TYPE) == "aegi:ElectricChargingPoint"
    assert _text(point, "aegi:deliveryUnit") == "kWh"
    assert _text(point, "aegi:currentType") == "ac"
    assert _text(point, "afac:dedicatedParkingSpaces/aegi:numberOfSpaces") == "1"
    connector = _find(point, "aegi:connector")
    assert [_text(connector, name) for name in (
        "aegi:connectorType", "aegi:connectorFormat", "aegi:maxPowerAtSocket")] == [
        "iec62196T2", "socket", "11000"]
    assert "Tarif: 0,49 EUR/kWh" in _text(point, "afac:additionalInformation//com:value")


def test_every_operator_when_the_setting_says_so(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    naumburg = load_city("naumburg")
    document = energy_table_publication([zeitz, naumburg], NOW, all_operators=True)
    datex2.validate(document)
    points = _points(document)
    assert sorted(points) == sorted(evse.evse_id for city in (zeitz, naumburg)
                                    for _, evse in city.evses())
    fast = points["DE*SWZ*E1001*1"]
    assert _text(fast, "aegi:currentType") == "dc"
    assert [(_text(c, "aegi:connectorType"), _text(c, "aegi:connectorFormat"),
             _text(c, "aegi:maxPowerAtSocket"))
            for c in fast.iterfind("aegi:connector", NAMESPACES)] == [
        ("iec62196T2COMBO", "otherCable", "150000"), ("chademo", "otherCable", "50000")]
    station = _find(ET.fromstring(document),
                    ".//aegi:energyInfrastructureStation[@id='zeitz-cp-bahnhof-pr-1']")
    assert _text(station, "afac:operator/afac:name/com:values/com:value") == (
        "Stadtwerke Zeitz (Beispiel)")


@pytest.mark.parametrize("status", list(EvseStatus))
def test_each_ocpi_status_is_its_refill_point_status(datex2: xmlschema.XMLSchema, zeitz: City,
                                                     status: EvseStatus) -> None:
    evse = "DE*ZTZ*E0001*1"
    reported = NOW - timedelta(seconds=42)
    states = {evse: EvseState(evse, status, reported, reported, "ocpp")}
    document = energy_status_publication([zeitz], states, NOW)
    datex2.validate(document)
    statuses = _statuses(document)
    assert statuses[evse][:2] == (REFILL_POINT_STATUS[status], "2026-11-24T08:59:18+00:00")
    assert statuses["DE*ZTZ*E0001*2"][:2] == ("unknown", None)  # nothing reported yet


def test_the_mapping_is_one_to_one() -> None:
    assert dict(REFILL_POINT_STATUS) == {
        EvseStatus.AVAILABLE: "available", EvseStatus.BLOCKED: "blocked",
        EvseStatus.CHARGING: "charging", EvseStatus.INOPERATIVE: "inoperative",
        EvseStatus.OUTOFORDER: "outOfOrder", EvseStatus.PLANNED: "planned",
        EvseStatus.REMOVED: "removed", EvseStatus.RESERVED: "reserved",
        EvseStatus.UNKNOWN: "unknown"}


def test_the_status_references_the_tables_versions(datex2: xmlschema.XMLSchema,
                                                   zeitz: City) -> None:
    table = ET.fromstring(energy_table_publication([zeitz], NOW))
    versions = {element.get("id"): element.get("version") for element in table.iter()
                if element.get("version") is not None}
    status = energy_status_publication([zeitz], {}, NOW)
    datex2.validate(status)
    root = ET.fromstring(status)
    reference = _find(root, "aegi:tableReference")
    assert reference.get("version") == versions["zeitz-charging"]
    for evse, (text, updated, version) in _statuses(status).items():
        assert (text, updated, version) == ("unknown", None, versions[evse])
    for reference in root.iterfind(".//afac:reference", NAMESPACES):
        assert reference.get("version") == versions[reference.get("id")]
    # A changed point changes its version, its station's, its site's and the table's.
    changed = zeitz.model_copy(update={"chargers": (
        zeitz.chargers[0].model_copy(update={"name": "Neue Ladestation"}), *zeitz.chargers[1:])})
    again = ET.fromstring(energy_table_publication([changed], NOW))
    after = {element.get("id"): element.get("version") for element in again.iter()
             if element.get("version") is not None}
    differ = {ident for ident in versions if versions[ident] != after[ident]}
    assert differ == {"zeitz-charging", "zeitz-altmarkt", "zeitz-cp-altmarkt-1"}


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def states(conn: psycopg.Connection[Any], city: City) -> dict[str, datetime]:
    """The registry of ``city``, with two points that reported (stored as ingest does)."""
    sync_registry(conn, city)
    now = utc_now().replace(microsecond=0)
    reported = {evse_id(city.id, 1, 1): now - timedelta(minutes=5),
                evse_id(city.id, 2, 1): now - timedelta(minutes=1)}
    with conn.transaction():
        store_readings(conn, city.id, [
            EvseReading(evse_id(city.id, 1, 1), EvseStatus.CHARGING, reported[
                evse_id(city.id, 1, 1)], "mqtt"),
            EvseReading(evse_id(city.id, 2, 1), EvseStatus.OUTOFORDER, reported[
                evse_id(city.id, 2, 1)], "ocpi")])
    return reported


def _rfc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_charging_locations(api_client: TestClient, city: City,
                            states: dict[str, datetime]) -> None:
    cid = city.id
    answer = api_client.get("/v1/charging/locations")
    assert answer.status_code == 200, answer.text
    locations = answer.json()["locations"]
    assert [location["id"] for location in locations] == [f"{cid}-cp-1", f"{cid}-cp-2"]
    street, garage = locations
    assert street["coordinates"] == {"latitude": "51.052", "longitude": "12.142"}
    assert garage["coordinates"] == {"latitude": "51.0501", "longitude": "12.1401"}
    assert (street["lot_id"], street["parking_type"], street["city_id"]) == (
        f"{cid}-street", "ON_STREET", cid)
    assert street["operator"] == {"name": "Stadt Teststadt"}
    assert garage["operator"] == {"name": "Stadtwerke Test"}
    assert (street["country_code"], street["party_id"], street["bnetza_id"]) == (
        "DE", "TST", "12345")
    one, two = street["evses"]
    assert (one["evse_id"], one["status"], one["bays"], one["tariff"]) == (
        evse_id(cid, 1, 1), "CHARGING", [f"{cid}-st-001"], "0,49 EUR/kWh")
    assert one["last_updated"] == _rfc(states[evse_id(cid, 1, 1)])
    assert one["connectors"] == [{
        "id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
        "max_electric_power": 22000, "last_updated": _rfc(states[evse_id(cid, 1, 1)])}]
    # Nothing reported yet: unknown, and no time.
    assert (two["status"], two["last_updated"], two["status_since"]) == ("UNKNOWN", None, None)
    assert street["last_updated"] == _rfc(states[evse_id(cid, 1, 1)])
    (fast,) = garage["evses"]
    assert fast["status"] == "OUTOFORDER"
    assert [c["standard"] for c in fast["connectors"]] == ["IEC_62196_T2_COMBO", "CHADEMO"]

    assert api_client.get("/v1/charging/locations", params={"city": cid}).json() == (
        answer.json())
    bad = api_client.get("/v1/charging/locations", params={"city": "atlantis"})
    assert bad.status_code == 422


@pytest.mark.usefixtures("states")
def test_http_afir_publications(api_client: TestClient, city: City, settings: Settings,
                                datex2: xmlschema.XMLSchema) -> None:
    cid = city.id
    table, status = (f"/v1/datex2/energy-infrastructure-{kind}" for kind in ("table", "status"))
    assert list(_points(datex2_document(api_client, datex2, table))) == [
        evse_id(cid, 1, 1), evse_id(cid, 1, 2)]  # the city's
    statuses = _statuses(datex2_document(api_client, datex2, status))
    assert {evse: entry[0] for evse, entry in statuses.items()} == {
        evse_id(cid, 1, 1): "charging", evse_id(cid, 1, 2): "unknown"}

    with TestClient(create_app(settings.model_copy(
            update={"API_AFIR_ALL_OPERATORS": True}))) as every:
        # By site, the lots in config order: the garage comes first.
        assert list(_points(datex2_document(every, datex2, table))) == [
            evse_id(cid, 2, 1), evse_id(cid, 1, 1), evse_id(cid, 1, 2)]
        statuses = _statuses(datex2_document(every, datex2, status))
        assert statuses[evse_id(cid, 2, 1)][0] == "outOfOrder"


@pytest.fixture
def no_chargers(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    plain = write_city(tmp_path, f"t{secrets.token_hex(4)}")
    with TestClient(create_app(settings.model_copy(update={"CITY": str(plain)}))) as client:
        yield client


def test_a_city_without_published_points_is_404(no_chargers: TestClient) -> None:
    for path in ("/v1/datex2/energy-infrastructure-table",
                 "/v1/datex2/energy-infrastructure-status"):
        answer = no_chargers.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert no_chargers.get("/v1/charging/locations").json() == {"locations": []}
