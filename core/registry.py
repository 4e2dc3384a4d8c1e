"""Writes the city registry (lots, bays, signs, charging stations and points) from the config
into the database, or checks it against the config where the database role may only read it."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from core.city import City, CityConfigError
from core.db import queries
from core.runtime import backoff

__all__ = ["RegistryConflict", "RegistryMismatch", "sync_registry"]

logger = logging.getLogger(__name__)

ATTEMPTS = 5
# Key of the transaction-level advisory lock under which registry syncs take turns ("parkleit").
REGISTRY_LOCK = 0x7061726B6C656974


class RegistryConflict(CityConfigError):
    """The config gives a lot, bay, sign, charging station or EVSE an id another city in the
    database has."""


class RegistryMismatch(CityConfigError):
    """The registry differs from the config, and this database role may not write it."""


def sync_registry(conn: psycopg.Connection[tuple[object, ...]], city: City) -> None:
    """Make the registry tables match the config of ``city``, in one transaction.

    A database role that may not write the registry (a service's own role, core/sql/roles.sql:
    only ``db migrate`` writes it) checks instead that it matches the config, and raises
    RegistryMismatch naming the first difference if not.

    Ids are unique across the cities of an installation: a lot, bay (or its device), sign,
    charging station or EVSE another city already has raises RegistryConflict and nothing is
    written.

    Every ingest worker syncs as it starts, while the others may already be writing: the
    upserts lock every bay in config order, a batch locks its bays (foreign keys) in message
    order, so PostgreSQL may break a deadlock by aborting the sync. It is tried again.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _sync(conn, city)
            return
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            if attempt == ATTEMPTS:
                raise
            pause = backoff(attempt, 0.3, 2.0, jitter=0.6)
            logger.warning("registry sync of %s aborted (%s); attempt %d of %d in %.1f s",
                           city.id, type(exc).__name__, attempt + 1, ATTEMPTS, pause)
            time.sleep(pause)


def _rows(city: City) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``city``'s lots, bays and signs, as the upsert_* queries write them (the
    jsonb columns as plain values)."""
    lot_rows = [
        {
            "lot_id": lot.id, "city": city.id, "name": lot.name, "kind": lot.kind,
            "counting": lot.counting, "capacity": lot.capacity,
            "disabled_spaces": lot.disabled_spaces, "ev_spaces": lot.ev_spaces,
            "latitude": lot.latitude, "longitude": lot.longitude,
            "opening_hours": lot.opening_hours, "almost_full": lot.almost_full,
            "full_at": lot.full_at, "stale_after_s": lot.stale_after_s,
            "counter_modulus": lot.counter_modulus,
            "max_dwell_s": round(lot.max_dwell_h * 3600),
            "max_idle_s": round(lot.max_idle_h * 3600), "empty_at": lot.empty_at,
            "attributes": {"profile": lot.profile, "address": lot.address},
        }
        for lot in city.lots
    ]
    bay_rows = [
        {"bay_id": bay.id, "lot_id": lot.id, "kind": bay.kind, "network": bay.network,
         "dev_eui": bay.dev_eui}
        for lot, bay in city.bays()
    ]
    sign_rows = [
        {
            "sign_id": sign.id, "city": city.id, "name": sign.name, "driver": sign.driver,
            "address": sign.address, "latitude": sign.latitude,
            "longitude": sign.longitude, "lines": [line.model_dump() for line in sign.lines],
        }
        for sign in city.signs
    ]
    return lot_rows, bay_rows, sign_rows


def _charger_rows(city: City) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``city``'s charging stations and points, as upsert_station and
    upsert_point write them (the jsonb and array columns as plain values)."""
    station_rows = []
    for station in city.chargers:
        latitude, longitude = city.station_position(station)
        station_rows.append({
            "charge_point_id": station.id, "city": city.id, "lot_id": station.lot,
            "name": station.name, "operator": station.operator, "protocol": station.protocol,
            "bnetza_id": station.bnetza_id, "latitude": latitude, "longitude": longitude,
        })
    point_rows = [
        {"evse_id": evse.evse_id, "charge_point_id": station.id, "number": evse.number,
         "bays": list(evse.bays),
         "connectors": [connector.model_dump() for connector in evse.connectors],
         "tariff": evse.tariff}
        for station, evse in city.evses()
    ]
    return station_rows, point_rows


def _check(cur: psycopg.Cursor[tuple[object, ...]], city: City) -> None:
    """Raise RegistryMismatch unless the registry holds ``city`` exactly as its config says."""
    lot_rows, bay_rows, sign_rows = _rows(city)
    station_rows, point_rows = _charger_rows(city)
    differing = cur.execute(queries("core")["registry_differences"], {
        "city": city.id, "lots": Jsonb(lot_rows, dumps=_dumps),
        "bays": Jsonb(bay_rows, dumps=_dumps), "signs": Jsonb(sign_rows, dumps=_dumps),
        "stations": Jsonb(station_rows, dumps=_dumps),
        "points": Jsonb(point_rows, dumps=_dumps),
    }).fetchall()
    if differing:
        kind, ident = differing[0]
        more = f" and {len(differing) - 1} more" if len(differing) > 1 else ""
        raise RegistryMismatch(
            f"the registry in the database differs from the config of city {city.id!r} "
            f"({kind} {ident!r}{more}); this service's database role may only read it: run "
            "`parkleit db migrate` with this config first")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)  # empty_at: a time, as PostgreSQL reads it


def _sync(conn: psycopg.Connection[tuple[object, ...]], city: City) -> None:
    q = queries("core")
    with conn.transaction(), conn.cursor() as cur:
        may_write = cur.execute(q["may_write_registry"]).fetchone()
        if not (may_write and may_write[0]):
            _check(cur, city)
            return
        lot_rows, bay_rows, sign_rows = _rows(city)
        station_rows, point_rows = _charger_rows(city)
        keep = {
            "city": city.id,
            "sign_ids": [row["sign_id"] for row in sign_rows],
            "bay_ids": [row["bay_id"] for row in bay_rows],
            "lot_ids": [row["lot_id"] for row in lot_rows],
            "dev_euis": [row["dev_eui"] for row in bay_rows if row["dev_eui"]],
            "charge_point_ids": [row["charge_point_id"] for row in station_rows],
            "evse_ids": [row["evse_id"] for row in point_rows],
        }
        # One sync at a time: another city's sync still running would otherwise pass unseen
        # by this check, and the upserts below would take its new lots over once it commits.
        cur.execute(q["lock_registry"], {"key": REGISTRY_LOCK})
        taken = cur.execute(q["taken_ids"], keep).fetchone()
        if taken:
            kind, ident, owner = taken
            raise RegistryConflict(
                f"{kind} {ident!r} of city {city.id!r} is already city {owner!r}'s: ids are "
                "unique across the cities of an installation")
        for query in ("delete_gone_points", "delete_gone_stations", "delete_gone_signs",
                      "delete_gone_bays", "delete_gone_lots"):
            cur.execute(q[query], keep)
        lot_params = [{**row, "attributes": Jsonb(row["attributes"])} for row in lot_rows]
        cur.executemany(q["upsert_lot"], lot_params)
        cur.executemany(q["ensure_lot_state"], lot_params)
        if bay_rows:
            cur.executemany(q["upsert_bay"], bay_rows)
        if sign_rows:
            cur.executemany(q["upsert_sign"], [{**row, "lines": Jsonb(row["lines"])}
                                               for row in sign_rows])
        if station_rows:
            cur.executemany(q["upsert_station"], station_rows)
        if point_rows:
            cur.executemany(q["upsert_point"], [
                {**row, "connectors": Jsonb(row["connectors"])} for row in point_rows])
