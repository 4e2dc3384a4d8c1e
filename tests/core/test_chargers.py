"""Charging infrastructure: the city config's chargers (refused with a clear reason when
wrong), their registry rows (written by db migrate's sync, checked by a role that may only
read them, ids unique across cities) and the stored status of their points
(core.charging.store_readings: idempotent, the newest reading wins, NOTIFY after commit)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import CHIRPSTACK_EUI, TTN_EUI, city_toml, evse_id, write_city
from _helpers import ROOT, base_env
from psycopg import sql

from core import channels
from core.charging import (
    EvseReading,
    EvseState,
    EvseStatus,
    store_readings,
    store_readings_async,
)
from core.city import City, CityConfigError, load_cities, load_city
from core.registry import RegistryConflict, RegistryMismatch, sync_registry

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def ev_city(tmp_path: Path) -> City:
    """The test city with its charging stations, of an id of this test's own."""
    return load_city(str(write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)))


# -- The example cities ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["zeitz", "naumburg"])
def test_example_cities_have_chargers_of_every_kind(name: str) -> None:
    """Stations of the city over OCPP, one of a utility over OCPI, points serving EV bays."""
    city = load_city(name)
    protocols = {station.protocol for station in city.chargers}
    assert {"ocpp", "ocpi"} <= protocols and "mqtt" in protocols
    assert any(station.operator == "city" for station in city.chargers)
    assert any(station.operator != "city" and station.protocol == "ocpi"
               for station in city.chargers)
    kinds = {bay.id: bay.kind for _, bay in city.bays()}
    served = [bay for _, evse in city.evses() for bay in evse.bays]
    assert served and all(kinds[bay] == "ev" for bay in served)
    text = (ROOT / "cities" / f"{name}.toml").read_text(encoding="utf-8")
    charger_part = text[text.index("[[chargers]]") - 600:]
    assert "ERFUNDENE BEISPIELDATEN" in charger_part and "INVENTED EXAMPLE DATA" in charger_part


def test_lookups(ev_city: City) -> None:
    cid = ev_city.id
    station = ev_city.station(f"{cid}-cp-1")
    assert station.lot == f"{cid}-street" and station.city_operated
    owner, evse = ev_city.evse(evse_id(cid, 2, 1))
    assert owner.id == f"{cid}-cp-2" and [c.standard for c in evse.connectors] == [
        "IEC_62196_T2_COMBO", "CHADEMO"]
    # A station without a position stands where its lot is; one with a position there.
    assert ev_city.station_position(station) == (51.052, 12.142)
    assert ev_city.station_position(owner) == (51.0501, 12.1401)
    with pytest.raises(KeyError):
        ev_city.station("nope")
    with pytest.raises(KeyError):
        ev_city.evse("DE*TST*E999*1")


def second_city_toml(city_id: str) -> str:
    """The test city with chargers, with devices of its own (the test city's are fixed)."""
    return city_toml(city_id, chargers=True).replace(TTN_EUI, "70b3d57ed00000a1").replace(
        CHIRPSTACK_EUI, "70b3d57ed00000a2").replace("http://127.0.0.1:1/sign",
                                                    "http://127.0.0.1:2/sign")


def test_cities_find_a_station_across_cities(tmp_path: Path) -> None:
    first = write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)
    second = tmp_path / "second.toml"
    second.write_text(second_city_toml(f"t{secrets.token_hex(4)}"), encoding="utf-8")
    cities = load_cities([str(first), str(second)])
    city_b = cities.all[1]
    found_city, station = cities.station(f"{city_b.id}-cp-2")
    assert found_city is city_b and station.operator == "Stadtwerke Test"
    with pytest.raises(KeyError):
        cities.station("nope")


# -- Refused configs ---------------------------------------------------------------------------

CID = "tcfg"


def _with(old: str, new: str) -> str:
    text = city_toml(CID, chargers=True)
    assert old in text, old
    return text.replace(old, new, 1)


REFUSED = [
    ("unknown site lot", f'lot = "{CID}-street"', 'lot = "tcfg-nowhere"',
     "chargers[0] (id 'tcfg-cp-1').lot: unknown lot 'tcfg-nowhere'"),
    ("bay of another lot", f'bays = ["{CID}-st-001"]', f'bays = ["{CID}-ttn-1"]',
     f"bay '{CID}-ttn-1' is in lot '{CID}-lora', not in the station's lot '{CID}-street'"),
    ("unknown bay", f'bays = ["{CID}-st-001"]', 'bays = ["tcfg-st-999"]',
     "unknown bay 'tcfg-st-999'"),
    ("duplicate EVSE id", f'evse_id = "{evse_id(CID, 1, 2)}"',
     f'evse_id = "{evse_id(CID, 1, 1)}"', "duplicate EVSE id"),
    ("duplicate number", "number = 2", "number = 1", "number 1 is twice at this station"),
    ("duplicate station id", f'id = "{CID}-cp-2"', f'id = "{CID}-cp-1"',
     "chargers[1].id: duplicate charging station id 'tcfg-cp-1'"),
    ("bad EVSE id", f'evse_id = "{evse_id(CID, 2, 1)}"', 'evse_id = "not an evse"',
     "chargers[1] (id 'tcfg-cp-2').evses[0].evse_id: String should match pattern"),
    ("unknown protocol", 'protocol = "ocpi"', 'protocol = "modbus"',
     "chargers[1] (id 'tcfg-cp-2').protocol: Input should be 'ocpp', 'ocpi' or 'mqtt'"),
    ("unknown connector", 'standard = "CHADEMO"', 'standard = "SCHUKO"',
     "chargers[1] (id 'tcfg-cp-2').evses[0].connectors[1].standard: Input should be"),
    ("zero power", "max_power_kw = 50.0", "max_power_kw = 0",
     "connectors[1].max_power_kw: Input should be greater than 0"),
    ("half a position", "longitude = 12.1401\n", "",
     "chargers[1] (id 'tcfg-cp-2'): give both latitude and longitude, or neither"),
    ("no connectors",
     '\n[[chargers.evses.connectors]]\nstandard = "IEC_62196_T2_COMBO"\nformat = "CABLE"\n'
     'power_type = "DC"\nmax_power_kw = 150.0\n\n[[chargers.evses.connectors]]\n'
     'standard = "CHADEMO"\nformat = "CABLE"\npower_type = "DC"\nmax_power_kw = 50.0\n', "",
     "chargers[1] (id 'tcfg-cp-2').evses[0].connectors: Field required"),
]


@pytest.mark.parametrize(("old", "new", "reason"), [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_refused_charger_config(tmp_path: Path, old: str, new: str, reason: str) -> None:
    path = tmp_path / "city.toml"
    path.write_text(_with(old, new), encoding="utf-8")
    with pytest.raises(CityConfigError) as info:
        load_city(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and reason in message, message
    assert "\n" not in message


def test_a_second_city_with_the_same_evse_id_is_refused(tmp_path: Path) -> None:
    first = write_city(tmp_path, "tfirst", chargers=True)
    clash = tmp_path / "tsecond.toml"
    clash.write_text(second_city_toml("tsecond").replace(
        evse_id("tsecond", 2, 1), evse_id("tfirst", 2, 1)), encoding="utf-8")
    with pytest.raises(CityConfigError, match=r"EVSE 'DE\*TST\*ETFIRST2\*1' is also in city "
                                              r"'tfirst'"):
        load_cities([str(first), str(clash)])


def test_db_migrate_exits_2_naming_the_charger_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(_with(f'lot = "{CID}-street"', 'lot = "tcfg-nowhere"'), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "parkleit", "db", "migrate", "--city",
                             str(path)], cwd=ROOT, env=base_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert (f"{path}: chargers[0] (id 'tcfg-cp-1').lot: unknown lot 'tcfg-nowhere'"
            in result.stderr)
    assert "Traceback" not in result.stderr


# -- The registry -------------------------------------------------------------------------------


def _stations(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT charge_point_id, city, lot_id, operator, protocol, bnetza_id, latitude, longitude"
        " FROM charging_stations ORDER BY charge_point_id").fetchall()


def _points(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT evse_id, charge_point_id, number, bays, connectors, tariff"
        " FROM charging_points ORDER BY evse_id").fetchall()


def test_sync_writes_stations_and_points(conn: psycopg.Connection[Any], ev_city: City) -> None:
    cid = ev_city.id
    sync_registry(conn, ev_city)
    assert _stations(conn) == [
        (f"{cid}-cp-1", cid, f"{cid}-street", "city", "mqtt", "12345", 51.052, 12.142),
        (f"{cid}-cp-2", cid, f"{cid}-garage", "Stadtwerke Test", "ocpi", None, 51.0501, 12.1401),
    ]
    ac = {"standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE"}
    assert _points(conn) == [
        (evse_id(cid, 1, 1), f"{cid}-cp-1", 1, [f"{cid}-st-001"],
         [{**ac, "max_power_kw": 22.0}], "0,49 EUR/kWh"),
        (evse_id(cid, 1, 2), f"{cid}-cp-1", 2, [], [{**ac, "max_power_kw": 11.0}], None),
        (evse_id(cid, 2, 1), f"{cid}-cp-2", 1, [],
         [{"standard": "IEC_62196_T2_COMBO", "format": "CABLE", "power_type": "DC",
           "max_power_kw": 150.0},
          {"standard": "CHADEMO", "format": "CABLE", "power_type": "DC", "max_power_kw": 50.0}],
         None),
    ]
    # Again: nothing changes. Without the second station: it and its point are gone, and so
    # is the state of that point.
    sync_registry(conn, ev_city)
    assert len(_points(conn)) == 3
    with conn.transaction():
        store_readings(conn, cid, [EvseReading(evse_id(cid, 2, 1), EvseStatus.CHARGING, T0,
                                               "ocpi")])
    smaller = ev_city.model_copy(update={"chargers": ev_city.chargers[:1]})
    sync_registry(conn, smaller)
    assert [row[0] for row in _stations(conn)] == [f"{cid}-cp-1"]
    assert [row[0] for row in _points(conn)] == [evse_id(cid, 1, 1), evse_id(cid, 1, 2)]
    assert conn.execute("SELECT count(*) FROM evse_state").fetchone() == (0,)


def test_charger_ids_are_unique_across_cities_in_the_database(
        conn: psycopg.Connection[Any], ev_city: City, tmp_path: Path) -> None:
    """A second city whose station id another city already has is refused, nothing written."""
    sync_registry(conn, ev_city)
    other_id = f"t{secrets.token_hex(4)}"
    other = load_city_text(tmp_path, second_city_toml(other_id).replace(
        f'id = "{other_id}-cp-2"', f'id = "{ev_city.id}-cp-2"'))
    with pytest.raises(RegistryConflict, match=f"charging station '{ev_city.id}-cp-2' of city "
                                               f"'{other_id}' is already city '{ev_city.id}''s"):
        sync_registry(conn, other)
    assert conn.execute("SELECT count(*) FROM lots WHERE city = %s", (other_id,)).fetchone() == (
        0,)
    clash = load_city_text(tmp_path, second_city_toml(other_id).replace(
        evse_id(other_id, 1, 2), evse_id(ev_city.id, 1, 2)))
    with pytest.raises(RegistryConflict, match=r"EVSE 'DE\*TST\*E"):
        sync_registry(conn, clash)


def load_city_text(directory: Path, text: str) -> City:
    path = directory / f"city-{secrets.token_hex(4)}.toml"
    path.write_text(text, encoding="utf-8")
    return load_city(str(path))


@pytest.fixture
def reader(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A role that may only read the registry, as a service's own role (core/sql/roles.sql)."""
    role = f"parkleit_ro_{secrets.token_hex(4)}"
    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT SELECT ON lots, bays, signs, charging_stations, "
                         "charging_points TO {}").format(sql.Identifier(role)))
    yield role
    conn.execute("RESET ROLE")
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_reading_role_checks_the_chargers(conn: psycopg.Connection[Any], ev_city: City,
                                            reader: str) -> None:
    """A role that may only read the registry passes when the chargers match the config and
    names the first charger that differs when not."""
    sync_registry(conn, ev_city)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(reader)))
    sync_registry(conn, ev_city)  # matches: nothing raised
    station = ev_city.chargers[1]
    moved = station.model_copy(update={"latitude": 51.06, "longitude": 12.15})
    with pytest.raises(RegistryMismatch, match=f"charging station '{station.id}'"):
        sync_registry(conn, ev_city.model_copy(update={"chargers": (ev_city.chargers[0],
                                                                     moved)}))
    evse = ev_city.chargers[0].evses[1]
    rebayed = ev_city.chargers[0].model_copy(update={"evses": (
        ev_city.chargers[0].evses[0], evse.model_copy(update={"bays": (f"{ev_city.id}-st-002",)}))})
    with pytest.raises(RegistryMismatch, match=r"EVSE 'DE\*TST"):
        sync_registry(conn, ev_city.model_copy(update={"chargers": (rebayed,
                                                                     ev_city.chargers[1])}))
    with pytest.raises(RegistryMismatch, match="charging station"):
        sync_registry(conn, ev_city.model_copy(update={"chargers": ev_city.chargers[:1]}))


# -- Stored status -----------------------------------------------------------------------------


def _history(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT time, evse_id, status, source FROM evse_status"
                        " ORDER BY evse_id, time").fetchall()


def _state(conn: psycopg.Connection[Any], evse: str) -> tuple[Any, ...] | None:
    return conn.execute("SELECT status, since, updated, source FROM evse_state"
                        " WHERE evse_id = %s", (evse,)).fetchone()


def _store(conn: psycopg.Connection[Any], city: City, *readings: EvseReading) -> list[EvseState]:
    with conn.transaction():
        return store_readings(conn, city.id, readings)


def test_store_readings_is_idempotent_and_newest_wins(conn: psycopg.Connection[Any],
                                                     ev_city: City) -> None:
    sync_registry(conn, ev_city)
    one, two = evse_id(ev_city.id, 1, 1), evse_id(ev_city.id, 1, 2)
    first = EvseReading(one, EvseStatus.AVAILABLE, T0, "mqtt")
    changed = _store(conn, ev_city, first)
    assert changed == [EvseState(one, EvseStatus.AVAILABLE, T0, T0, "mqtt")]
    # The same reading again (a redelivery): nothing added, nothing changed.
    assert _store(conn, ev_city, first) == []
    assert _history(conn) == [(T0, one, "AVAILABLE", "mqtt")]
    # The same status, newer: stored, the state's ``updated`` moves, no change announced.
    assert _store(conn, ev_city, EvseReading(one, EvseStatus.AVAILABLE, T0 + timedelta(minutes=1),
                                             "mqtt")) == []
    assert _state(conn, one) == ("AVAILABLE", T0, T0 + timedelta(minutes=1), "mqtt")
    # A batch out of order: both stored, the newest is the state; ``since`` when it changed.
    late, newest = T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)
    changed = _store(conn, ev_city,
                     EvseReading(one, EvseStatus.OUTOFORDER, newest, "ocpp"),
                     EvseReading(one, EvseStatus.CHARGING, late, "mqtt"),
                     EvseReading(two, EvseStatus.RESERVED, late, "mqtt"))
    assert changed == [EvseState(one, EvseStatus.OUTOFORDER, newest, newest, "ocpp"),
                       EvseState(two, EvseStatus.RESERVED, late, late, "mqtt")]
    assert _state(conn, one) == ("OUTOFORDER", newest, newest, "ocpp")
    # An older reading arriving later: kept in the history, the state stays.
    assert _store(conn, ev_city, EvseReading(one, EvseStatus.AVAILABLE,
                                             T0 + timedelta(seconds=30), "mqtt")) == []
    assert _state(conn, one) == ("OUTOFORDER", newest, newest, "ocpp")
    assert [row[2] for row in _history(conn) if row[1] == one] == [
        "AVAILABLE", "AVAILABLE", "AVAILABLE", "CHARGING", "OUTOFORDER"]


def test_a_rolled_back_batch_leaves_nothing(conn: psycopg.Connection[Any], ev_city: City) -> None:
    sync_registry(conn, ev_city)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
        store_readings(conn, ev_city.id, [
            EvseReading(evse_id(ev_city.id, 1, 1), EvseStatus.CHARGING, T0, "mqtt"),
            EvseReading("DE*TST*E404*1", EvseStatus.CHARGING, T0, "mqtt")])
    assert _history(conn) == []


def test_changes_are_notified_after_commit(db_url: str, conn: psycopg.Connection[Any],
                                           ev_city: City) -> None:
    sync_registry(conn, ev_city)
    one = evse_id(ev_city.id, 1, 1)
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channels.EVSE_STATE)))
        _store(conn, ev_city, EvseReading(one, EvseStatus.CHARGING, T0, "mqtt"))
        _store(conn, ev_city, EvseReading(one, EvseStatus.CHARGING, T0 + timedelta(1), "mqtt"))
        heard = [note.payload for note in listener.notifies(timeout=1.0, stop_after=2)]
    assert len(heard) == 1  # the second reading changed no status
    city_id, state = EvseState.from_notification(heard[0])
    assert city_id == ev_city.id
    assert state == EvseState(one, EvseStatus.CHARGING, T0, T0, "mqtt")
    assert state.as_dict() == {"evse_id": one, "status": "CHARGING",
                               "since": "2026-11-24T09:00:00Z",
                               "updated": "2026-11-24T09:00:00Z", "source": "mqtt"}


def test_store_readings_async_is_the_same(db_url: str, conn: psycopg.Connection[Any],
                                          ev_city: City) -> None:
    sync_registry(conn, ev_city)
    one = evse_id(ev_city.id, 2, 1)

    async def run() -> tuple[list[EvseState], list[EvseState]]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
            async with aconn.transaction():
                first = await store_readings_async(aconn, ev_city.id, [
                    EvseReading(one, EvseStatus.BLOCKED, T0, "ocpi")])
            async with aconn.transaction():
                again = await store_readings_async(aconn, ev_city.id, [
                    EvseReading(one, EvseStatus.BLOCKED, T0, "ocpi")])
            return first, again

    first, again = asyncio.run(run())
    assert first == [EvseState(one, EvseStatus.BLOCKED, T0, T0, "ocpi")]
    assert again == []
    assert _history(conn) == [(T0, one, "BLOCKED", "ocpi")]


def test_a_reading_needs_an_aware_time_and_a_known_source() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        EvseReading("DE*TST*E1*1", EvseStatus.CHARGING, datetime(2026, 11, 24), "mqtt")
    with pytest.raises(ValueError, match="unknown source"):
        EvseReading("DE*TST*E1*1", EvseStatus.CHARGING, T0, "modbus")
    with pytest.raises(ValueError):
        EvseReading("DE*TST*E1*1", "FREE", T0, "mqtt")  # type: ignore[arg-type]


def test_topics_carry_the_evse_id() -> None:
    assert channels.charger_status_topic("zeitz", "DE*ZTZ*E0001*1") == (
        "parkleit/v1/zeitz/chargers/DE*ZTZ*E0001*1/status")
    assert channels.charger_state_topic("zeitz", "DE*ZTZ*E0001*1") == (
        "parkleit/v1/zeitz/chargers/DE*ZTZ*E0001*1/state")
    assert channels.charger_status_topics("zeitz") == "parkleit/v1/zeitz/chargers/+/status"
