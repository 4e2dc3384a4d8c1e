"""Forwarded addresses: whose ``X-Forwarded-For`` the API believes (``API_FORWARDED_ALLOW_IPS``).

By default nobody's: a client on this host (loopback) that names itself anyone in the header
neither gets a rate-limit bucket of its own per forged address nor appears under a forged
address in the admin audit. With the proxy's address set, its header names the client, so
every visitor behind the proxy has a bucket of their own and the audit records the operator.
``parkleit api`` runs as a real process, as uvicorn reads the setting there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _helpers import ServiceProcess, service_env, wait_for

from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from parkleit.embedded import free_port, tcp_answers

BURST = 3
FORGED = [f"198.51.100.{number}" for number in range(1, 2 * BURST + 1)]


def _api(spawn: Callable[..., ServiceProcess], settings: Settings, keys: Path,
         **extra: str) -> str:
    """``parkleit api`` with a small per-address bucket (BURST requests, refilled slowly)."""
    port = free_port()
    spawn(["api", "--port", str(port)], service_env(
        settings, PARKLEIT_API_KEYS_FILE=str(keys), PARKLEIT_API_RATE_PER_IP="0.01",
        PARKLEIT_API_BURST_PER_IP=str(BURST), **extra), name="api")
    site = f"http://127.0.0.1:{port}"
    # uvicorn listens once the app has started; a connection takes no token of the bucket
    # (a readiness request would, and one that timed out on a busy machine, two).
    wait_for(lambda: tcp_answers("127.0.0.1", port), timeout=30)
    return site


def _close_and_probe(site: str, key: str, lot_id: str,
                     conn: psycopg.Connection[Any]) -> tuple[str | None, list[int]]:
    """An admin change sent with a forged address, then a request per forged address: the
    client the audit recorded, and the answers' statuses."""
    closed = httpx.post(f"{site}/v1/admin/lots/{lot_id}/close", json={"reason": "works"},
                        headers={"X-API-Key": key, "X-Forwarded-For": "203.0.113.9"})
    assert closed.status_code == 200, closed.text
    row = conn.execute("SELECT client FROM admin_audit WHERE action = 'close_lot'").fetchone()
    assert row is not None
    statuses = [httpx.get(f"{site}/v1/lots", headers={"X-Forwarded-For": address}).status_code
                for address in FORGED]
    return row[0], statuses


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "api-keys"
    return path, add_key(path, "ops")


def test_no_proxy_is_believed_by_default(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City,
        conn: psycopg.Connection[Any], keys: tuple[Path, str]) -> None:
    assert Settings.model_fields["API_FORWARDED_ALLOW_IPS"].default == ""
    sync_registry(conn, city)
    site = _api(spawn, settings, keys[0])
    client, statuses = _close_and_probe(site, keys[1], city.lots[0].id, conn)
    # The audit names the connection's address, not the one the client made up.
    assert client == "127.0.0.1"
    # One bucket for loopback whatever the header says: the admin request took one of its
    # BURST tokens, so BURST - 1 more requests pass and the rest are 429.
    assert statuses == [200] * (BURST - 1) + [429] * (len(FORGED) - BURST + 1), statuses


def test_the_proxys_header_names_the_client(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City,
        conn: psycopg.Connection[Any], keys: tuple[Path, str]) -> None:
    sync_registry(conn, city)
    site = _api(spawn, settings, keys[0], PARKLEIT_API_FORWARDED_ALLOW_IPS="127.0.0.1")
    client, statuses = _close_and_probe(site, keys[1], city.lots[0].id, conn)
    assert client == "203.0.113.9"
    assert statuses == [200] * len(FORGED)  # a bucket per visitor behind the proxy


def test_a_proxy_setting_uvicorn_would_misread_is_refused() -> None:
    """uvicorn takes what is no address as a name that never matches: a typo would silently
    trust nobody (or, with host bits in a network, not the network meant)."""
    for bad in ("proxy.internal", "10.0.0.1/8", "*,10.0.0.1"):
        with pytest.raises(ValueError, match="not an IP address or network"):
            Settings(API_FORWARDED_ALLOW_IPS=bad)
    assert Settings(API_FORWARDED_ALLOW_IPS=" 10.0.0.0/8, ::1").API_FORWARDED_ALLOW_IPS == (
        "10.0.0.0/8,::1")
