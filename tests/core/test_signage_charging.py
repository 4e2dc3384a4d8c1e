"""A sign's charging line ("E-Laden n frei") through ``parkleit signage`` with its database
role: the free charging points of the line's lots, read with their bays (a point whose bay is
occupied is not free), rendered and logged like every other line."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import city_toml, evse_id
from _helpers import ServiceProcess, service_env, utc_now, wait_for
from _payloads import counter_topic, dumps, iso, native_bay
from test_db_roles import Roles, _no_refusal, roles  # noqa: F401 (the roles fixture)

from core.channels import charger_status_topic
from core.city import City
from core.settings import Settings
from ingest import Message, Writer, prepare_connection


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with its chargers, its sign carrying a charging line for the street."""
    city_id = f"t{secrets.token_hex(4)}"
    text = city_toml(city_id, chargers=True).replace(
        'label = "Zentrum", arrow = "left" }]',
        'label = "Zentrum", arrow = "left" },\n'
        f'         {{ lots = ["{city_id}-street"], label = "E-Laden", kind = "charging" }}]')
    assert "kind = \"charging\"" in text
    path = tmp_path / f"{city_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _lines(conn: psycopg.Connection[Any]) -> list[list[str]]:
    rows = conn.execute("SELECT content FROM sign_log ORDER BY time DESC LIMIT 1").fetchall()
    return [[f"{line['label']} {line['text']}" for line in row[0]["lines"]] for row in rows]


def test_a_charging_line_counts_free_points(
        roles: Roles, settings: Settings, city: City, conn: psycopg.Connection[Any],  # noqa: F811
        spawn: Callable[..., ServiceProcess]) -> None:
    cid, now = city.id, utc_now()
    ago = iso(now - timedelta(minutes=30))
    messages = [Message(counter_topic(cid, "garage"),
                        dumps({"occupied": 60, "ts": iso(now - timedelta(seconds=5))}), now)]
    messages += [Message(f"parkleit/v1/{cid}/bays/{cid}-st-00{n}",
                         dumps(native_bay(now - timedelta(seconds=5), occupied=False)), now)
                 for n in range(1, 5)]
    messages += [Message(charger_status_topic(cid, evse_id(cid, 1, n)),
                         dumps({"status": "AVAILABLE", "ts": ago}), now) for n in (1, 2)]
    prepare_connection(conn)
    Writer(city).write(conn, messages, now)
    signage = spawn(["signage"], service_env(
        settings, PARKLEIT_DATABASE_URL=roles.urls["signage"], PARKLEIT_SIGNAGE_METRICS_PORT="0",
        PARKLEIT_SIGNAGE_RESYNC_S="1", PARKLEIT_SIGNAGE_TICK_S="0.2"), name="signage")
    # Its sign does not answer (127.0.0.1:1): each push is logged, with what it would show.
    wait_for(lambda: any("E-Laden 2 frei" in lines for lines in _lines(conn)), timeout=30)
    # A car on point 1's bay: that point is not free any more.
    Writer(city).write(conn, [Message(f"parkleit/v1/{cid}/bays/{cid}-st-001",
                                      dumps(native_bay(utc_now(), occupied=True)), utc_now())],
                       utc_now())
    wait_for(lambda: any("E-Laden 1 frei" in lines for lines in _lines(conn)), timeout=30)
    assert signage.terminate() == 0
    _no_refusal(signage)
