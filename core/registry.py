"""Writes the city registry (lots, bays, signs) from the config into the database."""

from __future__ import annotations

import logging
import random
import time

import psycopg
from psycopg.types.json import Jsonb

from core.city import City, CityConfigError
from core.db import queries

__all__ = ["RegistryConflict", "sync_registry"]

logger = logging.getLogger(__name__)

ATTEMPTS = 5
# Key of the transaction-level advisory lock under which registry syncs take turns ("parkleit").
REGISTRY_LOCK = 0x7061726B6C656974


class RegistryConflict(CityConfigError):
    """The config gives a lot, bay or sign an id another city in the database has."""


def sync_registry(conn: psycopg.Connection[tuple[object, ...]], city: City) -> None:
    """Make the registry tables match the config of ``city``, in one transaction.

    Ids are unique across the cities of an installation: a lot, bay (or its device) or sign
    another city already has raises RegistryConflict and nothing is written.

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
            pause = random.uniform(0.1, 0.5) * attempt
            logger.warning("registry sync of %s aborted (%s); attempt %d of %d in %.1f s",
                           city.id, type(exc).__name__, attempt + 1, ATTEMPTS, pause)
            time.sleep(pause)


def _sync(conn: psycopg.Connection[tuple[object, ...]], city: City) -> None:
    q = queries("core")
    with conn.transaction(), conn.cursor() as cur:
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
                "attributes": Jsonb({"profile": lot.profile, "address": lot.address}),
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
                "longitude": sign.longitude,
                "lines": Jsonb([line.model_dump() for line in sign.lines]),
            }
            for sign in city.signs
        ]
        keep = {
            "city": city.id,
            "sign_ids": [row["sign_id"] for row in sign_rows],
            "bay_ids": [row["bay_id"] for row in bay_rows],
            "lot_ids": [row["lot_id"] for row in lot_rows],
            "dev_euis": [row["dev_eui"] for row in bay_rows if row["dev_eui"]],
        }
        # One sync at a time: another city's sync still running would otherwise pass unseen
        # by this check, and the upserts below would take its new lots over once it commits.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_LOCK,))
        taken = cur.execute(q["taken_ids"], keep).fetchone()
        if taken:
            kind, ident, owner = taken
            raise RegistryConflict(
                f"{kind} {ident!r} of city {city.id!r} is already city {owner!r}'s: ids are "
                "unique across the cities of an installation")
        for query in ("delete_gone_signs", "delete_gone_bays", "delete_gone_lots"):
            cur.execute(q[query], keep)
        cur.executemany(q["upsert_lot"], lot_rows)
        cur.executemany(q["ensure_lot_state"], lot_rows)
        if bay_rows:
            cur.executemany(q["upsert_bay"], bay_rows)
        if sign_rows:
            cur.executemany(q["upsert_sign"], sign_rows)
