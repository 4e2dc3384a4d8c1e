"""Two ``parkleit signage`` processes for one city: one leads and pushes, the other stands by;
kill the leader or cut its database session and the other takes over within 10 s, the signs
keep their content, and no two instances ever push in the same interval (``core.leader``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from _helpers import ServiceProcess, service_env, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.rows import dict_row
from test_signage_service import FAST, Rig, _rig, retained

from signage.ntcip import SourceMode

TAKEOVER_S = 10.0  # the limit


@pytest.fixture
def rig(tmp_path: Path, db_url: str, mqtt_url: str) -> Iterator[Rig]:
    """Signs that fall back 5 s after their central goes quiet: longer than a takeover."""
    yield from _rig(tmp_path, db_url, mqtt_url, minute_s=5.0)


def pushes(rig: Rig) -> list[dict[str, Any]]:
    """Every push of the test's signs, in order of time: when, which sign, which term."""
    with psycopg.connect(rig.db_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT time, sign_id, term FROM sign_log ORDER BY time").fetchall()


def roles(rig: Rig) -> dict[str, dict[str, Any]]:
    """Each signage instance's retained role (``services/signage/{client id}``)."""
    found: dict[str, dict[str, Any]] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: found.update(
        {msg.topic: json.loads(msg.payload)} if msg.payload else {})
    client.connect(rig.settings.mqtt.host, rig.settings.mqtt.port)
    client.subscribe(f"parkleit/v1/{rig.cid}/services/signage/+", qos=1)
    client.loop_start()
    try:
        time.sleep(1.0)  # the retained ones arrive at once
    finally:
        client.disconnect()
        client.loop_stop()
    return found


def two_signage(spawn: Callable[..., ServiceProcess],
                rig: Rig) -> tuple[ServiceProcess, ServiceProcess]:
    """Ingest and two signage processes; (leader, standby)."""
    spawn(["ingest"], service_env(rig.settings), name="ingest").wait_log("connected to MQTT")
    first = spawn(["signage"], service_env(rig.settings, **FAST), name="signage-a")
    first.wait_log("leading signage")
    second = spawn(["signage"], service_env(rig.settings, **FAST), name="signage-b")
    second.wait_log("standing by")
    return first, second


def assert_one_term_at_a_time(rows: list[dict[str, Any]]) -> None:
    """Each term's pushes all come after every push of the terms before it."""
    assert all(row["term"] is not None for row in rows)
    terms = [row["term"] for row in rows]
    assert terms == sorted(terms), "a push of an older term after one of a newer term"


def test_one_leads_the_other_takes_over_when_it_is_killed(
        spawn: Callable[..., ServiceProcess], rig: Rig) -> None:
    leader, standby = two_signage(spawn, rig)
    rig.publish_counter(20)
    wait_for(lambda: rig.bank.texts("a")[:1] == ["80"], timeout=5, interval=0.05)
    time.sleep(1.0)  # keep-alives flow (every 0.3 s): all of them from the leader
    before = pushes(rig)
    assert {row["term"] for row in before} == {before[0]["term"]}
    assert "leading signage" not in standby.log.read_text()

    # Each instance says its role on MQTT; the service's own topic says it runs.
    assert sorted(role["role"] for role in roles(rig).values()) == ["leader", "standby"]
    assert retained(rig.settings, f"parkleit/v1/{rig.cid}/services/signage") == "online"

    leader.kill()
    killed = time.monotonic()
    taken = wait_for(lambda: "leading signage" in standby.log.read_text(), timeout=TAKEOVER_S)
    assert taken and time.monotonic() - killed < TAKEOVER_S
    signs = {f"{rig.cid}-a", f"{rig.cid}-b"}
    wait_for(lambda: {row["sign_id"] for row in pushes(rig)
                      if row["term"] > before[0]["term"]} == signs, timeout=TAKEOVER_S)
    assert time.monotonic() - killed < TAKEOVER_S  # both signs pushed by the new leader
    # The signs never fell back to their own program and show what the new leader pushed.
    for name in ("a", "b"):
        assert rig.bank.source(name) == SourceMode.CENTRAL
    assert rig.bank.texts("a")[:1] == ["80"]
    rig.publish_counter(30)  # and the new leader follows the lots
    wait_for(lambda: rig.bank.texts("a")[:1] == ["70"], timeout=5, interval=0.05)
    assert_one_term_at_a_time(pushes(rig))
    # The killed leader's last will said offline; the one left answered it with online, and
    # says it leads now (the dead one's role expires by itself).
    assert retained(rig.settings, f"parkleit/v1/{rig.cid}/services/signage") == "online"
    assert "leader" in [role["role"] for role in roles(rig).values()
                        if role["term"] is not None and role["term"] > before[0]["term"]]


def test_a_leader_whose_session_is_cut_stops_before_the_other_starts(
        spawn: Callable[..., ServiceProcess], rig: Rig) -> None:
    leader, _ = two_signage(spawn, rig)
    rig.publish_counter(20)
    wait_for(lambda: rig.bank.texts("a")[:1] == ["80"], timeout=5, interval=0.05)
    with psycopg.connect(rig.db_url, autocommit=True) as conn:
        # The database ends the leader's lock session (as on a failover or a cut link): the
        # lock is free at once, while the old leader learns it only at its next check.
        # (Signage's: ingest's workers hold one too, for the alarms.)
        ended = conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks AS l "
            "JOIN pg_stat_activity AS a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND a.application_name = 'parkleit-signage-leadership'").fetchall()
    assert ended == [(True,)]
    cut = time.monotonic()
    first_term = pushes(rig)[0]["term"]
    wait_for(lambda: "no longer leading" in leader.log.read_text(), timeout=TAKEOVER_S)
    # Either instance may win the lock now (the old one tries again too): a new term acts.
    wait_for(lambda: any(row["term"] > first_term for row in pushes(rig)), timeout=TAKEOVER_S)
    assert time.monotonic() - cut < TAKEOVER_S
    rig.publish_counter(30)
    wait_for(lambda: rig.bank.texts("a")[:1] == ["70"], timeout=TAKEOVER_S, interval=0.05)
    rows = pushes(rig)
    assert len({row["term"] for row in rows}) >= 2
    assert_one_term_at_a_time(rows)
    for name in ("a", "b"):
        assert rig.bank.source(name) == SourceMode.CENTRAL
