"""``PARKLEIT_DATABASE_READ_URL``: the API's read-only queries go to a second database (a
streaming replica in production), its admin writes to the primary. The "replica" here is a
copy of the test's database, reached as a role that can only read (as a hot standby refuses
writes); a history row that only the copy has shows which database answered."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from _helpers import utc_now
from fastapi.testclient import TestClient
from psycopg import sql

from api import create_app
from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings


def _at(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc if user is None else f"{user}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@pytest.fixture
def replica(admin_url: str, db_url: str, city: City) -> Iterator[str]:
    """The URL of a read-only role on a copy of the test's database (its registry synced)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        sync_registry(conn, city)
    primary = urlsplit(db_url).path.lstrip("/")
    copy, reader = f"{primary}_replica", f"reader_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(copy), sql.Identifier(primary)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
        admin.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
            sql.Identifier(reader)))
    with psycopg.connect(_at(admin_url, copy), autocommit=True) as owner:
        owner.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(
            sql.Identifier(reader)))
        owner.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(reader)))
    try:
        yield _at(admin_url, copy, reader)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(copy)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(reader)))


def _count(url: str, query: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def test_reads_go_to_the_read_url_and_admin_writes_to_the_primary(
        settings: Settings, city: City, db_url: str, admin_url: str, replica: str,
        tmp_path: Path) -> None:
    lot = city.lots[0]
    hour = (utc_now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    # Only the copy has this reading: a history that shows it was read there.
    copy_url = _at(admin_url, urlsplit(replica).path.lstrip("/"))
    with psycopg.connect(copy_url, autocommit=True) as owner:
        owner.execute("INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, "
                      "source) VALUES (%s, %s, 1, %s, %s, 'counter')",
                      (hour, lot.id, lot.capacity - 1, lot.capacity))
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), psycopg.connect(replica) as ro:
        ro.execute("DELETE FROM lot_occupancy")  # the read role can only read
    keys = tmp_path / "keys"
    key = add_key(keys, "ops")
    with TestClient(create_app(settings.model_copy(update={
            "DATABASE_READ_URL": replica, "API_KEYS_FILE": keys}))) as client:
        lots = client.get("/v1/lots", params={"city": city.id})
        assert lots.status_code == 200, lots.text
        assert {item["id"] for item in lots.json()["lots"]} == {lot.id for lot in city.lots}
        history = client.get(f"/v1/lots/{lot.id}/history", params={
            "from": (hour - timedelta(hours=1)).isoformat(),
            "to": (hour + timedelta(hours=1)).isoformat(), "resolution": "1h"})
        assert history.status_code == 200, history.text
        assert [point["free_min"] for point in history.json()["points"]] == [lot.capacity - 1]
        assert client.get("/v1/signs", params={"city": city.id}).status_code == 200
        closed = client.post(f"/v1/admin/lots/{lot.id}/close", json={"reason": "works"},
                             headers={"X-API-Key": key})
        assert closed.status_code == 200, closed.text
    closures = "SELECT count(*) FROM lot_closures WHERE lot_id = %s"
    assert _count(db_url, closures, lot.id) == 1  # the write went to the primary
    assert _count(copy_url, closures, lot.id) == 0
    assert _count(db_url, "SELECT count(*) FROM lot_occupancy") == 0


def test_without_a_read_url_the_reads_use_the_database_url(settings: Settings) -> None:
    assert settings.DATABASE_READ_URL is None
    assert settings.read_database_url == settings.DATABASE_URL
    other = settings.model_copy(update={"DATABASE_READ_URL": "postgresql://r@replica/parkleit"})
    assert other.read_database_url == "postgresql://r@replica/parkleit"
    with pytest.raises(ValueError, match="scheme"):
        Settings(DATABASE_READ_URL="mysql://replica/parkleit")
