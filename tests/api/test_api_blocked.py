"""Every output reads a charging point with its bays (rules.sql evse_effective), from rows
written by the ingest writer: the charging locations, the AFIR status (``blocked``,
``occupied``) and a lot's ``ev.free`` (its free points where it has chargers)."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import evse_id, write_city
from _helpers import utc_now, wait_for
from _payloads import counter_topic, dumps, iso, native_bay
from fastapi.testclient import TestClient

from core.channels import charger_status_topic
from core.city import City
from core.datex2 import NAMESPACES
from core.registry import sync_registry
from ingest import Message, Writer, prepare_connection


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


def _write(conn: psycopg.Connection[Any], city: City, now: datetime, parked: datetime) -> None:
    """The street's four bays heard 30 s ago, bay 1 (point 1 of station 1 serves it) occupied
    since ``parked``; every point reported an hour ago (station 1 available, the garage's
    fast charger charging); the garage counted a minute ago."""
    cid = city.id
    messages = [Message(counter_topic(cid, "garage"),
                        dumps({"occupied": 60, "ts": iso(now - timedelta(minutes=1))}), now)]
    messages += [Message(f"parkleit/v1/{cid}/bays/{cid}-st-00{n}",
                         dumps(native_bay(now - timedelta(seconds=30), occupied=False)), now)
                 for n in (2, 3, 4)]
    messages.append(Message(f"parkleit/v1/{cid}/bays/{cid}-st-001",
                            dumps(native_bay(parked, occupied=True)), now))
    hour_ago = iso(now - timedelta(hours=1))
    for point, status in ((evse_id(cid, 1, 1), "AVAILABLE"), (evse_id(cid, 1, 2), "AVAILABLE"),
                          (evse_id(cid, 2, 1), "CHARGING")):
        messages.append(Message(charger_status_topic(cid, point),
                                dumps({"status": status, "ts": hour_ago}), now))
    prepare_connection(conn)
    assert Writer(city).write(conn, messages, now).dead_letters == 0


def _evses(client: TestClient) -> dict[str, dict[str, Any]]:
    answer = client.get("/v1/charging/locations")
    assert answer.status_code == 200, answer.text
    return {evse["evse_id"]: evse for location in answer.json()["locations"]
            for evse in location["evses"]}


def _afir(client: TestClient) -> dict[str, str]:
    answer = client.get("/v1/datex2/energy-infrastructure-status")
    assert answer.status_code == 200, answer.text
    root = ET.fromstring(answer.content)
    return {status.find("afac:reference", NAMESPACES).get("id", ""):  # type: ignore[union-attr]
            status.findtext("aegi:status", "", NAMESPACES)
            for status in root.iterfind(".//aegi:refillPointStatus", NAMESPACES)}


def _ev(client: TestClient) -> dict[str, dict[str, Any]]:
    return {lot["id"]: lot["ev"] for lot in client.get("/v1/lots").json()["lots"]}


@pytest.mark.parametrize("minutes", [20, 5])
def test_outputs_read_the_point_with_its_bay(conn: psycopg.Connection[Any], city: City,
                                             api_client: TestClient,
                                             minutes: int) -> None:
    cid, now = city.id, utc_now().replace(microsecond=0)
    sync_registry(conn, city)
    parked = now - timedelta(minutes=minutes)
    _write(conn, city, now, parked)
    blocked = minutes > city.city.charger_blocked_after_min
    one, two, fast = _evses(api_client), evse_id(cid, 1, 2), evse_id(cid, 2, 1)
    point = one[evse_id(cid, 1, 1)]
    assert (point["status"], point["free"], point["bay_occupied"]) == (
        "BLOCKED" if blocked else "AVAILABLE", False, True)
    if blocked:
        assert point["status_since"] == iso(parked + timedelta(minutes=15))
    assert (one[two]["status"], one[two]["free"], one[two]["bay_occupied"]) == (
        "AVAILABLE", True, None)
    assert (one[fast]["status"], one[fast]["free"]) == ("CHARGING", False)
    # The AFIR status: blocked once the limit ran out, occupied before (a car on its bay).
    assert _afir(api_client) == {evse_id(cid, 1, 1): "blocked" if blocked else "occupied",
                                 two: "available"}
    # ev.free: the street's free points (one of two), the garage's none (charging); lots
    # without chargers keep their figure.
    ev = _ev(api_client)
    assert ev[f"{cid}-street"] == {"capacity": 2, "free": 1}
    assert ev[f"{cid}-garage"] == {"capacity": 1, "free": 0}
    assert ev[f"{cid}-lora"] == {"capacity": 0, "free": None}


def test_the_car_gone_frees_the_point(conn: psycopg.Connection[Any], city: City,
                                      api_client: TestClient) -> None:
    cid, now = city.id, utc_now().replace(microsecond=0)
    sync_registry(conn, city)
    _write(conn, city, now - timedelta(seconds=10), now - timedelta(minutes=30))
    assert _ev(api_client)[f"{cid}-street"]["free"] == 1
    prepare_connection(conn)
    Writer(city).write(conn, [Message(f"parkleit/v1/{cid}/bays/{cid}-st-001",
                                      dumps(native_bay(now, occupied=False)), now)], now)
    point = _evses(api_client)[evse_id(cid, 1, 1)]
    assert (point["status"], point["free"], point["bay_occupied"]) == ("AVAILABLE", True, False)
    # /v1/lots answers from the lots' views, read again once ingest's NOTIFY is heard.
    wait_for(lambda: _ev(api_client)[f"{cid}-street"] == {"capacity": 2, "free": 2}, timeout=5)


def test_dashboard_blocked_hours(conn: psycopg.Connection[Any], city: City,
                                 api_client: TestClient) -> None:
    cid, now = city.id, utc_now().replace(microsecond=0)
    sync_registry(conn, city)
    t0 = now - timedelta(hours=7)
    one, two, fast = evse_id(cid, 1, 1), evse_id(cid, 1, 2), evse_id(cid, 2, 1)
    bay = f"parkleit/v1/{cid}/bays/{cid}-st-001"

    def at(hours: float) -> str:
        return iso(t0 + timedelta(hours=hours))

    messages = [Message(charger_status_topic(cid, point), dumps({"status": s, "ts": at(h)}), now)
                for point, s, h in (
                    (one, "AVAILABLE", 0), (one, "CHARGING", 3), (one, "AVAILABLE", 4.5),
                    (two, "AVAILABLE", 0), (two, "BLOCKED", 1), (two, "AVAILABLE", 2),
                    (fast, "AVAILABLE", 0))]
    # Bay 1: a car from 1 h to 2 h (not charging: blocked 45 min after the 15-min limit), one
    # charging from 3 h to 4 h, one from 5 h to 5.5 h (blocked the last 15 min).
    messages += [Message(bay, dumps(native_bay(t0 + timedelta(hours=h), occupied=o)), now)
                 for h, o in ((0, False), (1, True), (2, False), (3, True), (4, False),
                              (5, True), (5.5, False))]
    prepare_connection(conn)
    assert Writer(city).write(conn, messages, now).dead_letters == 0
    answer = api_client.get("/v1/dashboard/chargers", params={
        "city": cid, "from": iso(t0), "to": iso(t0 + timedelta(hours=6))})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["blocked_after_min"] == 15
    assert [(p["evse_id"], p["blocked_hours"]) for p in body["points"]] == [
        (one, 1.0), (two, 1.0), (fast, 0.0)]
    assert body["points"][0]["bays"] == [f"{cid}-st-001"]
    # A window cut through the first car's stay counts only its part.
    part = api_client.get("/v1/dashboard/chargers", params={
        "city": cid, "from": iso(t0 + timedelta(hours=1.5)), "to": iso(t0 + timedelta(hours=3))})
    assert {p["evse_id"]: p["blocked_hours"] for p in part.json()["points"]}[one] == 0.5
    assert api_client.get("/v1/dashboard/chargers", params={
        "city": cid, "from": iso(now), "to": iso(t0)}).status_code == 422
