"""Standard formats of the open-data API: DATEX II v3.7 parking and VMS publications, valid
against the official schemas in ../shared/schemas/datex2-v3.7 and saying what the lots and
signs report, and the ParkAPI lots feed exactly as OpenTripPlanner's ``park-api`` updater reads
it. Pure functions on the Zeitz config, then the HTTP endpoints on a migrated database."""

from __future__ import annotations

import json
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import xmlschema
from _citytoml import write_city
from _helpers import datex2_document, utc_now
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from api import create_app
from api._datex_parking import parking_status_publication, parking_table_publication
from api._live import lot_view
from api._models import Lot as LotView
from api._parkapi import parkapi_lots
from core.city import City, load_city
from core.datex2 import NAMESPACES
from core.registry import sync_registry
from core.settings import Settings
from core.status import LotReading

NOW = datetime(2024, 7, 3, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 in Zeitz: all lots open
NIGHT = datetime(2024, 7, 3, 22, 0, tzinfo=UTC)  # Thursday 00:00 in Zeitz
XSI_TYPE = f"{{{NAMESPACES['xsi']}}}type"


# -- reading the documents back ------------------------------------------------------------------

@dataclass
class Place:
    """One prk:Place or prk:SpecificArea of a parking table read back."""

    type: str
    version: str
    name: str
    latitude: float | None
    longitude: float | None
    supply: int
    layout: str | None
    structure: str | None
    parent: str | None
    open_all_hours: bool
    information: str | None
    address: str | None
    users: list[str]
    energy: list[str]


def _text(element: ET.Element, path: str) -> str | None:
    return element.findtext(path, None, NAMESPACES)


def _table(document: bytes) -> tuple[ET.Element, ET.Element, dict[str, Place]]:
    root = ET.fromstring(document)
    table = root.find("prk:parkingTable", NAMESPACES)
    assert table is not None
    places: dict[str, Place] = {}
    for element in table.findall("prk:hierarchyElementGeneral", NAMESPACES):
        latitude = _text(element, "fac:locationReference/loc:pointByCoordinates/"
                                  "loc:pointCoordinates/loc:latitude")
        longitude = _text(element, "fac:locationReference/loc:pointByCoordinates/"
                                   "loc:pointCoordinates/loc:longitude")
        parent = element.find("prk:parentId", NAMESPACES)
        hours = element.find("fac:operatingHours", NAMESPACES)
        qualification = ("prk:additionalCharacteristics/prk:assignment/"
                         "prk:exclusivelyAssignedFor/fac:qualification/")
        places[element.get("id", "")] = Place(
            type=element.get(XSI_TYPE, ""),
            version=element.get("version", ""),
            name=_text(element, "fac:name/com:values/com:value") or "",
            latitude=None if latitude is None else float(latitude),
            longitude=None if longitude is None else float(longitude),
            supply=int(_text(element, "prk:supply/prk:quantity") or -1),
            layout=_text(element, "prk:layout"),
            structure=_text(element, "prk:commonComponents/prk:characteristics/"
                                     "prk:structureType"),
            parent=None if parent is None else parent.get("id"),
            open_all_hours=hours is not None and hours.get(XSI_TYPE) == "fac:OpenAllHours",
            information=_text(element, "fac:additionalInformation/com:values/com:value"),
            address=_text(element, "fac:locationReference/loc:_locationReferenceExtension/"
                                   "locx:facilityLocation/locx:address/locx:addressLine/"
                                   "locx:text/com:values/com:value"),
            users=[user.text or "" for user in element.findall(
                qualification + "fac:userQualification/fac:userGroup", NAMESPACES)],
            energy=[energy.text or "" for energy in element.findall(
                qualification + "fac:propulsionEnergyType", NAMESPACES)],
        )
    return root, table, places


@dataclass
class Status:
    """One prk:PlaceStatus read back."""

    version: str
    opening: str | None
    status: list[str]
    vacant: int | None
    occupied: int | None
    occupancy: float | None
    last_updated: str | None
    faults: list[str]


def _statuses(document: bytes) -> tuple[ET.Element, dict[str, Status]]:
    root = ET.fromstring(document)
    found: dict[str, Status] = {}
    for info in root.findall("prk:parkingStatusInformation", NAMESPACES):
        if info.get(XSI_TYPE) == "prk:ParkingStatusInformation":  # EV spaces: _ev_statuses
            continue
        assert info.get(XSI_TYPE) == "prk:PlaceStatus"
        reference = info.find("fac:reference", NAMESPACES)
        assert reference is not None and reference.get("targetClass") == "fac:FacilityObject"
        vacant = _text(info, "prk:occupancy/prk:numberOfVacantSpaces")
        occupied = _text(info, "prk:occupancy/prk:numberOfOccupiedSpaces")
        occupancy = _text(info, "prk:occupancy/prk:occupancy")
        found[reference.get("id", "")] = Status(
            version=reference.get("version", ""),
            opening=_text(info, "fac:openingStatus"),
            status=[status.text or "" for status in info.findall("prk:status", NAMESPACES)],
            vacant=None if vacant is None else int(vacant),
            occupied=None if occupied is None else int(occupied),
            occupancy=None if occupancy is None else float(occupancy),
            last_updated=_text(info, "fac:lastUpdated"),
            faults=[fault.text or "" for fault in info.findall("prk:parkingFault", NAMESPACES)],
        )
    return root, found


def _ev_statuses(document: bytes) -> dict[str, dict[str, str | None]]:
    """The statuses of the lots' EV spaces (``{lot}/ev``): version, lastUpdated, the spaces
    override and the vacant spaces."""
    found: dict[str, dict[str, str | None]] = {}
    for info in ET.fromstring(document).findall("prk:parkingStatusInformation", NAMESPACES):
        if info.get(XSI_TYPE) == "prk:ParkingStatusInformation":
            reference = info.find("fac:reference", NAMESPACES)
            assert reference is not None and reference.get("targetClass") == "fac:FacilityObject"
            found[reference.get("id", "")] = {
                "version": reference.get("version"),
                "updated": _text(info, "fac:lastUpdated"),
                "spaces": _text(info, "prk:occupancy/prk:numberOfSpacesOverride"),
                "vacant": _text(info, "prk:occupancy/prk:numberOfVacantSpaces")}
    return found


def _unknown(version: str) -> Status:
    return Status(version, "open", ["unknown"], None, None, None, None,
                  ["noParkingInformationAvailable"])


def _closed(version: str) -> Status:
    return Status(version, "closed", [], None, None, None, None, [])


# -- pure functions, Zeitz --------------------------------------------------------------------

def test_parking_table_describes_every_zeitz_lot(datex2: xmlschema.XMLSchema,
                                                 zeitz: City) -> None:
    document = parking_table_publication([zeitz], NOW)
    datex2.validate(document)
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root, table, places = _table(document)
    assert root.get(XSI_TYPE) == "prk:ParkingTablePublication"
    assert root.get("modelBaseVersion") == "3" and root.get("lang") == "de"
    assert _text(root, "com:publicationTime") == "2024-07-03T10:00:00+00:00"
    assert _text(root, "com:publicationCreator/com:nationalIdentifier") == "parkleit-zeitz"
    # Zeitz is illustrative: its lots must not be published as real.
    assert _text(root, "prk:headerInformation/com:informationStatus") == "test"
    assert table.get("id") == "zeitz-lots"
    expected_ids: list[str] = []
    kinds = {"garage": ("building", "offStreetStructure"),
             "surface": ("openSpace", "offStreetSurface"), "on_street": (None, "onStreet")}
    for lot in zeitz.lots:
        expected_ids.append(lot.id)
        place = places[lot.id]
        assert place.type == "prk:Place"
        assert (place.name, place.latitude, place.longitude, place.supply) == (
            lot.name, lot.latitude, lot.longitude, lot.capacity)
        assert (place.layout, place.structure) == kinds[lot.kind]
        assert place.address == (lot.address or None)
        if lot.opening_hours == "24/7":
            assert place.open_all_hours and place.information is None
        else:
            assert not place.open_all_hours
            assert place.information is not None and lot.opening_hours in place.information
        for suffix, spaces in (("disabled", lot.disabled_spaces), ("ev", lot.ev_spaces)):
            if spaces:
                expected_ids.append(f"{lot.id}/{suffix}")
                area = places[f"{lot.id}/{suffix}"]
                assert (area.type, area.parent, area.supply) == (
                    "prk:SpecificArea", lot.id, spaces)
                assert (area.users, area.energy) == (
                    (["personsWithDisabilities"], []) if suffix == "disabled"
                    else ([], ["battery"]))
    assert list(places) == expected_ids
    altmarkt = places["zeitz-altmarkt"]
    assert altmarkt.supply == 320 and places["zeitz-altmarkt/disabled"].supply == 8
    assert places["zeitz-altmarkt/ev"].supply == 12


def test_versions_change_exactly_with_a_lots_record(zeitz: City) -> None:
    _, table, places = _table(parking_table_publication([zeitz], NOW))
    _, later_table, later = _table(parking_table_publication([zeitz], NOW + timedelta(days=3)))
    assert later_table.get("version") == table.get("version")
    assert {key: place.version for key, place in later.items()} == {
        key: place.version for key, place in places.items()}
    lots = list(zeitz.lots)
    lots[1] = lots[1].model_copy(update={"capacity": lots[1].capacity + 1})
    changed_city = zeitz.model_copy(update={"lots": tuple(lots)})
    _, changed_table, changed = _table(parking_table_publication([changed_city], NOW))
    assert changed_table.get("version") != table.get("version")
    differ = {key for key in places if changed[key].version != places[key].version}
    assert differ == {lots[1].id}
    # The status publication refers to exactly these versions.
    root, statuses = _statuses(parking_status_publication([changed_city], {}, NOW))
    reference = root.find("prk:parkingTableReference", NAMESPACES)
    assert reference is not None
    assert (reference.get("id"), reference.get("version"), reference.get("targetClass")) == (
        "zeitz-lots", changed_table.get("version"), "prk:ParkingTable")
    assert {key: status.version for key, status in statuses.items()} == {
        lot.id: changed[lot.id].version for lot in zeitz.lots}


def _views(city: City, readings: dict[str, LotReading], now: datetime) -> dict[str, LotView]:
    """The lots' views (what every output publishes of a lot) from their readings, as the
    routes build them; readings of lots the city does not have are kept under their key."""
    views = {}
    for lot_id, reading in readings.items():
        lot = next((lot for lot in city.lots if lot.id == lot_id), city.lots[0])
        row = {"free": reading.free, "updated": reading.updated, "closed": reading.closed}
        views[lot_id] = lot_view(city, lot, row, now)
    return views


def test_parking_status_of_fresh_full_almost_full_closed_and_stale_lots(
        datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    altmarkt, rossmarkt, wendische, bahnhof, moritzburg, *rest = zeitz.lots
    counted = NOW - timedelta(seconds=90)
    readings = {
        altmarkt.id: LotReading(200, counted),  # 120 of 320 occupied
        rossmarkt.id: LotReading(0, counted),  # full
        wendische.id: LotReading(5, counted),  # 90 of 95: almost full
        bahnhof.id: LotReading(50, NOW - timedelta(hours=2)),  # stale
        moritzburg.id: LotReading(30, counted, closed=True),  # closed by an operator
        "elsewhere": LotReading(1, counted),  # not a Zeitz lot: ignored
    }
    document = parking_status_publication([zeitz], _views(zeitz, readings, NOW), NOW)
    datex2.validate(document)
    root, statuses = _statuses(document)
    assert root.get(XSI_TYPE) == "prk:ParkingStatusPublication"
    assert _text(root, "prk:headerInformation/com:informationStatus") == "test"
    _, _, places = _table(parking_table_publication([zeitz], NOW))
    assert list(statuses) == [lot.id for lot in zeitz.lots]
    version = {lot_id: place.version for lot_id, place in places.items()}
    at = "2024-07-03T09:58:30+00:00"
    assert statuses[altmarkt.id] == Status(version[altmarkt.id], "open", ["spacesAvailable"],
                                           200, 120, 37.5, at, [])
    assert statuses[rossmarkt.id] == Status(version[rossmarkt.id], "open", ["full"],
                                            0, 240, 100, at, [])
    assert statuses[wendische.id] == Status(version[wendische.id], "open", ["almostFull"],
                                            5, 90, 94.7, at, [])
    # Stale is not free: unknown, with no number at all.
    assert statuses[bahnhof.id] == _unknown(version[bahnhof.id])
    assert statuses[moritzburg.id] == _closed(version[moritzburg.id])
    for lot in rest:  # no reading at all
        assert statuses[lot.id] == _unknown(version[lot.id])


def test_parking_status_of_ev_spaces_as_the_lots_views(datex2: xmlschema.XMLSchema,
                                                     zeitz: City) -> None:
    """A lot's EV charging spaces (the table's SpecificArea ``{lot}/ev``) carry the figures of
    its view's ``ev`` (its free charging points where every EV space has one), where it knows
    them."""
    altmarkt, rossmarkt, wendische, bahnhof, moritzburg, *_ = zeitz.lots
    counted = NOW - timedelta(seconds=90)
    views = {
        # 3 of its 12 points free; 12 EV spaces as the table says
        altmarkt.id: lot_view(zeitz, altmarkt, {"free": 200, "updated": counted}, NOW,
                              free_points=(3, 12)),
        # more points (10) than the table's EV spaces (8): the count overrides the supply
        rossmarkt.id: lot_view(zeitz, rossmarkt, {"free": 5, "updated": counted}, NOW,
                               free_points=(0, 10)),
        # no charger, no sensor on its EV spaces: nobody knows
        wendische.id: lot_view(zeitz, wendische, {"free": 5, "updated": counted}, NOW),
        # stale: stale is not free, for the EV spaces neither
        bahnhof.id: lot_view(zeitz, bahnhof, {"free": 5, "updated": NOW - timedelta(hours=2)},
                             NOW, free_points=(6, 6)),
        # a point at one of its two EV spaces, free: it says nothing of the other space
        moritzburg.id: lot_view(zeitz, moritzburg, {"free": 5, "updated": counted}, NOW,
                                free_points=(1, 1)),
    }
    assert (views[altmarkt.id].ev.free, views[rossmarkt.id].ev.capacity) == (3, 10)
    assert (views[moritzburg.id].ev.free, views[moritzburg.id].ev.capacity) == (None, 2)
    document = parking_status_publication([zeitz], views, NOW)
    datex2.validate(document)
    _, _, places = _table(parking_table_publication([zeitz], NOW))
    at = "2024-07-03T09:58:30+00:00"
    assert _ev_statuses(document) == {
        f"{altmarkt.id}/ev": {"version": places[f"{altmarkt.id}/ev"].version, "updated": at,
                              "spaces": None, "vacant": "3"},
        f"{rossmarkt.id}/ev": {"version": places[f"{rossmarkt.id}/ev"].version, "updated": at,
                               "spaces": "10", "vacant": "0"},
    }
    assert len(_statuses(document)[1]) == len(zeitz.lots)  # the lots' own, as before


def test_a_lot_with_chargers_but_no_ev_spaces_configured_publishes_them(
        datex2: xmlschema.XMLSchema, tmp_path: Path) -> None:
    """Each charging point charges a car on a space of its own: a lot whose config names no EV
    spaces but has two points has an EV area of two spaces, with their status."""
    city = load_city(str(write_city(tmp_path, "tev", chargers=True)))
    street = city.lot("tev-street")
    assert (street.ev_spaces, city.ev_spaces(street.id)) == (0, 2)
    table = parking_table_publication([city], NOW)
    datex2.validate(table)
    _, _, places = _table(table)
    assert places[f"{street.id}/ev"].supply == 2
    view = lot_view(city, street, {"free": 5, "updated": NOW - timedelta(seconds=30)}, NOW,
                    free_points=(1, 2))
    assert (view.ev.free, view.ev.capacity) == (1, 2)
    document = parking_status_publication([city], {street.id: view}, NOW)
    datex2.validate(document)
    assert _ev_statuses(document)[f"{street.id}/ev"]["vacant"] == "1"


def test_lots_closed_by_their_opening_hours(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    readings = {lot.id: LotReading(10, NIGHT - timedelta(seconds=30)) for lot in zeitz.lots}
    document = parking_status_publication([zeitz], _views(zeitz, readings, NIGHT), NIGHT)
    datex2.validate(document)
    _, statuses = _statuses(document)
    assert statuses["zeitz-altmarkt"].opening == "closed"  # Mo-Sa 06:00-23:00
    assert statuses["zeitz-altmarkt"].vacant is None and statuses["zeitz-altmarkt"].status == []
    assert statuses["zeitz-rossmarkt"].opening == "open"  # 24/7
    assert statuses["zeitz-rossmarkt"].vacant == 10


def test_the_schema_check_can_fail(datex2: xmlschema.XMLSchema, zeitz: City) -> None:
    document = parking_status_publication([zeitz], {}, NOW)
    broken = document.replace(b"<prk:status>unknown</prk:status>",
                              b"<prk:status>closed</prk:status>", 1)
    assert broken != document
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        datex2.validate(broken)
    reordered = document.replace(
        b"<fac:openingStatus>open</fac:openingStatus>\n"
        b"    <prk:parkingFault>noParkingInformationAvailable</prk:parkingFault>",
        b"<prk:parkingFault>noParkingInformationAvailable</prk:parkingFault>\n"
        b"    <fac:openingStatus>open</fac:openingStatus>", 1)
    assert reordered != document
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        datex2.validate(reordered)


# What OpenTripPlanner's ParkAPIUpdater/CarParkAPIUpdater read from each element of "lots".
OTP_REQUIRED = {"id", "name", "coords", "state"}
OTP_INTEGERS = {"total", "total:disabled", "free", "free:disabled"}


def _check_otp_shape(document: dict[str, Any]) -> None:
    """The document holds nothing OpenTripPlanner would misread."""
    assert set(document) == {"last_updated", "last_downloaded", "data_source", "lots"}
    for lot in document["lots"]:
        assert set(lot) >= OTP_REQUIRED
        assert isinstance(lot["id"], str) and isinstance(lot["name"], str)
        assert isinstance(lot["coords"]["lat"], float)
        assert isinstance(lot["coords"]["lng"], float)
        assert lot["state"] in {"open", "closed", "nodata"}
        for key in OTP_INTEGERS & set(lot):
            # Jackson's asInt() reads null (and strings it cannot parse) as 0.
            assert type(lot[key]) is int and lot[key] >= 0, (lot["id"], key)
        assert all(value is not None for value in lot.values()), lot["id"]
        assert isinstance(lot["forecast"], bool)
    json.dumps(document, allow_nan=False)


def test_parkapi_feed_as_opentripplanner_reads_it(zeitz: City) -> None:
    altmarkt, rossmarkt, wendische, bahnhof, moritzburg, *_ = zeitz.lots
    readings = {
        altmarkt.id: LotReading(200, NOW - timedelta(seconds=90)),
        rossmarkt.id: LotReading(0, NOW - timedelta(seconds=30)),
        wendische.id: LotReading(5, NOW - timedelta(seconds=400)),
        bahnhof.id: LotReading(50, NOW - timedelta(hours=2)),
        moritzburg.id: LotReading(30, NOW - timedelta(seconds=10), closed=True),
    }
    views = _views(zeitz, readings, NOW)
    document = parkapi_lots([views.get(lot.id) or lot_view(zeitz, lot, {}, NOW)
                             for lot in zeitz.lots], NOW, data_source="https://parken.example/")
    _check_otp_shape(document)
    assert document["last_downloaded"] == "2024-07-03T10:00:00"
    # The newest count published: Moritzburg's is newer but closed, so not published.
    assert document["last_updated"] == "2024-07-03T09:59:30"
    assert document["data_source"] == "https://parken.example/"
    lots = {lot["id"]: lot for lot in document["lots"]}
    assert list(lots) == [lot.id for lot in zeitz.lots]
    assert lots[altmarkt.id] == {
        "id": altmarkt.id, "name": "Parkhaus Altmarkt", "lot_type": "Parkhaus",
        "address": "Altmarkt 20, 06712 Zeitz", "coords": {"lat": 51.04905, "lng": 12.1369},
        "state": "open", "total": 320, "total:disabled": 8, "free": 200,
        "opening_hours": "Mo-Sa 06:00-23:00; Su 10:00-20:00", "forecast": False,
    }
    assert (lots[rossmarkt.id]["state"], lots[rossmarkt.id]["free"]) == ("open", 0)
    assert (lots[wendische.id]["state"], lots[wendische.id]["free"]) == ("open", 5)
    assert lots[bahnhof.id]["state"] == "nodata" and "free" not in lots[bahnhof.id]
    assert lots[moritzburg.id]["state"] == "closed" and "free" not in lots[moritzburg.id]
    assert all("free:disabled" not in lot for lot in lots.values())  # not measured


# -- through HTTP, on the test's own database ----------------------------------------------------

_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """A city with a lot in each state, one closed by its opening hours now, and four signs."""
    city_id = f"f{secrets.token_hex(4)}"
    # Two days from today, an hour in the morning: closed now whatever the clock says.
    closed_day = _DAYS[(utc_now().astimezone(load_city("zeitz").tz).weekday() + 3) % 7]
    lots = [
        ("fresh", "garage", 100, "24/7", 'disabled_spaces = 2\nev_spaces = 3\n'
                                          'address = "Markt 1"'),
        ("full", "surface", 10, "24/7", ""),
        ("hours", "surface", 20, f"{closed_day} 08:00-09:00", ""),
        ("works", "garage", 50, "24/7", ""),
        ("stale", "on_street", 30, "24/7", ""),
        ("never", "surface", 5, "24/7", ""),
    ]
    text = f'[city]\nid = "{city_id}"\nname = "Formatstadt"\n'
    for index, (suffix, kind, capacity, hours, extra) in enumerate(lots):
        text += (f'\n[[lots]]\nid = "{city_id}-{suffix}"\nname = "Platz {suffix}"\n'
                 f'kind = "{kind}"\ncounting = "counter"\ncapacity = {capacity}\n'
                 f'latitude = {51.05 + index / 1000}\nlongitude = 12.14\n'
                 f'opening_hours = "{hours}"\n{extra}\n')
    for suffix in ("ok", "bad", "new", "gone"):
        text += (f'\n[[signs]]\nid = "{city_id}-vms-{suffix}"\nname = "Tafel {suffix}"\n'
                 f'driver = "http"\naddress = "http://127.0.0.1:1/sign"\nlatitude = 51.06\n'
                 f'longitude = 12.14\nlines = [{{ lots = ["{city_id}-fresh"], '
                 f'label = "Zentrum" }}]\n')
    path = tmp_path / f"{city_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Seeded:
    city: City
    counted: datetime


@pytest.fixture
def seeded(conn: psycopg.Connection[tuple[Any, ...]], city: City) -> Seeded:
    """The registry of ``city`` with lot and sign states as ingest and signage write them."""
    sync_registry(conn, city)
    now = utc_now()
    counted = (now - timedelta(seconds=60)).replace(microsecond=0)
    states = {  # free, stored status, updated
        "fresh": (60, "open", counted),
        "full": (0, "full", counted),
        "hours": (20, "closed", counted),
        "works": (40, "closed", counted),  # an operator's closure: only ingest knows it
        "stale": (25, "open", now - timedelta(hours=2)),  # written fresh, stale by now
    }
    for suffix, (free, status, updated) in states.items():
        lot = city.lot(f"{city.id}-{suffix}")
        conn.execute("UPDATE lot_state SET free = %s, occupied = %s, status = %s, updated = %s"
                     " WHERE lot_id = %s",
                     (free, lot.capacity - free, status, updated, lot.id))
    content = Jsonb({"lines": [{"label": "Zentrum", "arrow": "straight", "text": "60"}]})
    conn.execute(
        "INSERT INTO sign_state (sign_id, content, shown_since, last_ack, last_error,"
        " last_error_at, consecutive_failures, updated) VALUES"
        " (%s, %s, %s, %s, NULL, NULL, 0, %s), (%s, %s, %s, %s, %s, %s, 3, %s),"
        " (%s, %s, %s, %s, NULL, NULL, 0, %s)",
        (f"{city.id}-vms-ok", content, counted, now - timedelta(seconds=10),
         now - timedelta(seconds=10),
         f"{city.id}-vms-bad", content, counted, counted, "no answer within 2 s",
         now - timedelta(seconds=5), now - timedelta(seconds=5),
         # Last heard of long ago (the signage service is down): not known to work.
         f"{city.id}-vms-gone", content, counted, now - timedelta(hours=1),
         now - timedelta(hours=1)))
    return Seeded(city, counted)


def test_http_parking_publications(datex2: xmlschema.XMLSchema, seeded: Seeded,
                                   api_client: TestClient) -> None:
    city = seeded.city
    table_xml = datex2_document(api_client, datex2, "/v1/datex2/parking-table")
    _, table, places = _table(table_xml)
    assert list(places) == [f"{city.id}-fresh", f"{city.id}-fresh/disabled",
                            f"{city.id}-fresh/ev", *(lot.id for lot in city.lots[1:])]
    assert places[f"{city.id}-fresh"].address == "Markt 1"
    assert places[f"{city.id}-stale"].structure == "onStreet"

    status_xml = datex2_document(api_client, datex2, "/v1/datex2/parking-status")
    root, statuses = _statuses(status_xml)
    reference = root.find("prk:parkingTableReference", NAMESPACES)
    assert reference is not None and reference.get("version") == table.get("version")
    version = {lot_id: place.version for lot_id, place in places.items()}
    at = seeded.counted.isoformat(timespec="seconds")
    assert statuses == {
        f"{city.id}-fresh": Status(version[f"{city.id}-fresh"], "open", ["spacesAvailable"],
                                   60, 40, 40, at, []),
        f"{city.id}-full": Status(version[f"{city.id}-full"], "open", ["full"],
                                  0, 10, 100, at, []),
        f"{city.id}-hours": _closed(version[f"{city.id}-hours"]),
        f"{city.id}-works": _closed(version[f"{city.id}-works"]),
        f"{city.id}-stale": _unknown(version[f"{city.id}-stale"]),
        f"{city.id}-never": _unknown(version[f"{city.id}-never"]),
    }


def test_http_vms_publications(datex2: xmlschema.XMLSchema, seeded: Seeded,
                               api_client: TestClient) -> None:
    city = seeded.city
    table_xml = datex2_document(api_client, datex2, "/v1/datex2/vms-table")
    controllers = ET.fromstring(table_xml).findall(
        "vms:vmsControllerTable/vms:vmsController", NAMESPACES)
    assert [controller.get("id") for controller in controllers] == [
        sign.id for sign in city.signs]

    status_xml = datex2_document(api_client, datex2, "/v1/datex2/vms-status")
    shown: dict[str, tuple[str | None, list[str], list[str]]] = {}
    for status in ET.fromstring(status_xml).findall("vms:vmsControllerStatus", NAMESPACES):
        reference = status.find("vms:vmsControllerReference", NAMESPACES)
        vms = status.find("vms:vmsStatus/vms:vmsStatus", NAMESPACES)
        assert reference is not None and vms is not None
        lines = [line.text or "" for line in vms.iterfind(
            "vms:vmsMessage/vms:vmsMessage/vms:displayAreaSettings/vms:displayAreaSettings/"
            "vms:textLine/vms:textLine/vms:textLine", NAMESPACES)]
        faults = [fault.text or "" for fault in vms.iterfind(
            "vms:vmsFault/com:faultDescription/com:values/com:value", NAMESPACES)]
        shown[reference.get("id", "")] = (_text(vms, "vms:workingStatus"), lines, faults)
    assert shown == {
        f"{city.id}-vms-bad": ("notWorking", ["Zentrum 60"], ["no answer within 2 s"]),
        f"{city.id}-vms-gone": (None, ["Zentrum 60"], []),
        f"{city.id}-vms-new": (None, [], []),  # never served: nothing claimed
        f"{city.id}-vms-ok": ("working", ["Zentrum 60"], []),
    }


def test_http_parkapi(seeded: Seeded, api_client: TestClient) -> None:
    city = seeded.city
    response = api_client.get("/v1/parkapi")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    _check_otp_shape(document)
    assert document["last_updated"] == seeded.counted.replace(tzinfo=None).isoformat()
    lots = {lot["id"].removeprefix(f"{city.id}-"): lot for lot in document["lots"]}
    assert {key: (lot["state"], lot.get("free"), lot["total"]) for key, lot in lots.items()} == {
        "fresh": ("open", 60, 100), "full": ("open", 0, 10), "hours": ("closed", None, 20),
        "works": ("closed", None, 50), "stale": ("nodata", None, 30),
        "never": ("nodata", None, 5)}
    assert lots["fresh"]["total:disabled"] == 2
    assert lots["fresh"]["coords"] == {"lat": 51.05, "lng": 12.14}


def test_http_vms_of_a_city_without_signs_is_not_found(settings: Settings, city: City) -> None:
    with TestClient(create_app(settings, city.model_copy(update={"signs": ()}))) as client:
        for path in ("/v1/datex2/vms-table", "/v1/datex2/vms-status"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.text)
