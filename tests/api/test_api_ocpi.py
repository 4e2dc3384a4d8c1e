"""The OCPI 2.2.1 receiver: a peer's PUT and PATCH of Locations and EVSEs, with and without
its token, bad bodies and EVSEs that are not theirs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import evse_id
from _ocpipeer import PUSH_TOKEN_ENV, peer_points, write_peer_city
from fastapi.testclient import TestClient

from api import create_app
from core.city import City
from core.ocpi import authorization
from core.registry import sync_registry
from core.settings import Settings

PUSH_TOKEN = "their-push-token-" + "y" * 10
LAST = "2026-05-04T09:30:00Z"


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    return write_peer_city(tmp_path, f"t{secrets.token_hex(4)}", "http://127.0.0.1:1/x")


@pytest.fixture
def client(settings: Settings, city: City, conn: psycopg.Connection[Any],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv(PUSH_TOKEN_ENV, PUSH_TOKEN)
    sync_registry(conn, city)
    with TestClient(create_app(settings)) as client:
        yield client


def _state(conn: psycopg.Connection[Any], evse: str) -> Any:
    return conn.execute("SELECT status, updated, source FROM evse_state WHERE evse_id = %s",
                        (evse,)).fetchone()


def _url(*parts: str) -> str:
    return "/ocpi/2.2.1/locations/DE/TST/" + "/".join(parts)


def test_put_and_patch_with_the_token(client: TestClient, city: City,
                                      conn: psycopg.Connection[Any]) -> None:
    first, second = peer_points(city.id)
    auth = {"Authorization": authorization(PUSH_TOKEN)}
    location = {"id": "loc-1", "last_updated": LAST, "evses": [
        {"uid": "1", "evse_id": first, "status": "CHARGING", "last_updated": LAST},
        {"uid": "2", "evse_id": second, "status": "AVAILABLE", "last_updated": LAST}]}
    answer = client.put(_url("loc-1"), json=location, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status_code"] == 1000 and "timestamp" in answer.json()
    assert _state(conn, first)[0::2] == ("CHARGING", "ocpi")
    assert _state(conn, second)[0::2] == ("AVAILABLE", "ocpi")
    # A PATCH of one EVSE: its status and last_updated (the uid in the URL is its EVSE id).
    answer = client.patch(_url("loc-1", first), headers=auth,
                          json={"status": "OUTOFORDER", "last_updated": "2026-05-04T09:40:00Z"})
    assert answer.status_code == 200 and answer.json()["status_code"] == 1000
    assert _state(conn, first)[0] == "OUTOFORDER"
    # A PATCH without a status (a tariff changed, say) stores nothing, and is fine.
    answer = client.patch(_url("loc-1", first), headers=auth,
                          json={"last_updated": "2026-05-04T09:50:00Z"})
    assert answer.status_code == 200 and _state(conn, first)[0] == "OUTOFORDER"
    # A PUT of one EVSE object, plain token as 2.1.1 peers send it.
    answer = client.put(_url("loc-1", second), headers={"Authorization": f"Token {PUSH_TOKEN}"},
                        json={"uid": second, "status": "RESERVED", "last_updated": LAST[:-1]
                              .replace("09:30", "09:45") + "Z"})
    assert answer.status_code == 200 and _state(conn, second)[0] == "RESERVED"
    assert conn.execute("SELECT count(*) FROM evse_status WHERE source = 'ocpi'").fetchone() == (4,)


@pytest.mark.parametrize("header", [None, "Token " + "d3Jvbmc=", "Bearer x", "Token "])
def test_without_a_valid_token_is_401(client: TestClient, city: City, header: str | None,
                                      conn: psycopg.Connection[Any]) -> None:
    first, _ = peer_points(city.id)
    headers = {"Authorization": header} if header is not None else {}
    answer = client.patch(_url("loc-1", first), headers=headers,
                          json={"status": "CHARGING", "last_updated": LAST})
    assert answer.status_code == 401 and answer.json()["status_code"] == 2000
    assert _state(conn, first) is None


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"status": "CHARGING"}',
                                  b'{"status": "PARKED", "last_updated": "2026-05-04T09:30:00Z"}',
                                  b'{"status": "CHARGING", "last_updated": "yesterday"}'])
def test_a_bad_body_is_2001(client: TestClient, city: City, body: bytes,
                            conn: psycopg.Connection[Any]) -> None:
    first, _ = peer_points(city.id)
    answer = client.put(_url("loc-1", first), content=body, headers={
        "Authorization": authorization(PUSH_TOKEN), "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["status_code"] == 2001, answer.text
    assert _state(conn, first) is None


def test_an_evse_not_theirs_is_2003(client: TestClient, city: City,
                                    conn: psycopg.Connection[Any]) -> None:
    auth = {"Authorization": authorization(PUSH_TOKEN)}
    body = {"status": "CHARGING", "last_updated": LAST}
    city_point = evse_id(city.id, 1, 1)  # the city's own, over MQTT: not the peer's to set
    for url in (_url("loc-1", "DE*TST*E999*1"), _url("loc-1", city_point),
                "/ocpi/2.2.1/locations/DE/XXX/loc-1/" + peer_points(city.id)[0]):
        answer = client.patch(url, json=body, headers=auth)
        assert answer.status_code == 404 and answer.json()["status_code"] == 2003, url
    assert conn.execute("SELECT count(*) FROM evse_state").fetchone() == (0,)
