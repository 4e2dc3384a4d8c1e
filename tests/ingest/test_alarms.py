"""The alarms' evaluator against a real PostgreSQL: each kind raised from the data the parts
record (written through ingest's own writer at fixed instants where ingest writes it) and
cleared when its cause is gone; one open alarm per cause, its acknowledgement kept while it
stays open; and the real ``parkleit ingest`` raising alarms at its stale check and telling a
webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import psycopg
import pytest
from _helpers import ServiceProcess, service_env, start_ingest, utc_now, wait_for
from _payloads import dumps, native_bay, ttn_topic, ttn_uplink

from core.alarms import ALARM_KINDS
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from ingest import Message, Writer, evaluate_alarms, prepare_connection
from simulators._mqtt import mqtt_client

MINUTE = timedelta(minutes=1)


@pytest.fixture
def t0() -> datetime:
    return utc_now().replace(microsecond=0)


@pytest.fixture
def writer(conn: psycopg.Connection[Any], city: City) -> Writer:
    sync_registry(conn, city)
    prepare_connection(conn)
    return Writer(city)


def bay(city: City, name: str, moment: datetime, occupied: bool = True, **extra: Any) -> Message:
    return Message(f"parkleit/v1/{city.id}/bays/{city.id}-{name}",
                   dumps(native_bay(moment, occupied, **extra)), moment)


def counter(city: City, lot: str, moment: datetime, **body: int) -> Message:
    return Message(f"parkleit/v1/{city.id}/lots/{city.id}-{lot}/counter",
                   json.dumps({**body, "ts": moment.isoformat()}).encode(), moment)


def uplink(city: City, moment: datetime) -> Message:
    """An uplink of the TTN bay, heard best by the gateway ``zeitz-rathaus``."""
    return Message(ttn_topic(city.id), dumps(ttn_uplink(city.id, moment)), moment)


def open_alarms(conn: psycopg.Connection[Any], city: City) -> dict[tuple[str, str], Any]:
    """The city's open alarms by (kind, target): (id, severity, since, acknowledged_by)."""
    rows = conn.execute("SELECT kind, target, id, severity, since, acknowledged_by FROM alarms "
                        "WHERE city = %s AND cleared_at IS NULL", (city.id,)).fetchall()
    return {(kind, target): rest for kind, target, *rest in rows}


def test_a_silent_sensor_raises_and_a_fresh_reading_clears(
        conn: psycopg.Connection[Any], city: City, writer: Writer, t0: datetime) -> None:
    sensor = f"{city.id}-st-001"
    writer.write(conn, [bay(city, "st-001", t0)], t0)
    assert ("sensor_silent", sensor) not in open_alarms(conn, city)
    evaluate_alarms(conn, city.id, t0)
    assert ("sensor_silent", sensor) not in open_alarms(conn, city)
    # Four staleness limits (4 × 900 s) without a reading: silent since then.
    late = t0 + timedelta(hours=1, minutes=5)
    changes = evaluate_alarms(conn, city.id, late)
    raised = [c for c in changes if (c.kind, c.target) == ("sensor_silent", sensor)]
    assert len(raised) == 1 and raised[0].event == "raised"
    assert raised[0].detail["lot_id"] == f"{city.id}-street"
    alarm_id, severity, since, _ = open_alarms(conn, city)[("sensor_silent", sensor)]
    assert (severity, since) == ("warning", t0 + timedelta(hours=1))
    # Evaluated again, the cause still there: the same alarm, nothing raised twice.
    again = evaluate_alarms(conn, city.id, late + MINUTE)
    assert not [c for c in again if c.target == sensor]
    assert open_alarms(conn, city)[("sensor_silent", sensor)][0] == alarm_id
    # A fresh reading: cleared at the evaluation that sees it; the row stays, cleared.
    fresh = late + 2 * MINUTE
    writer.write(conn, [bay(city, "st-001", fresh)], fresh)
    cleared = [c for c in evaluate_alarms(conn, city.id, fresh) if c.target == sensor]
    assert [(c.event, c.id, c.cleared_at) for c in cleared] == [("cleared", alarm_id, fresh)]
    assert ("sensor_silent", sensor) not in open_alarms(conn, city)
    assert conn.execute("SELECT cleared_at FROM alarms WHERE id = %s",
                        (alarm_id,)).fetchone() == (fresh,)
    # Silent once more: a new alarm (a new row), not the old one reopened.
    evaluate_alarms(conn, city.id, fresh + timedelta(hours=2))
    assert open_alarms(conn, city)[("sensor_silent", sensor)][0] != alarm_id


def test_each_kind_is_raised_from_the_recorded_data_and_cleared_when_it_is_gone(
        conn: psycopg.Connection[Any], city: City, writer: Writer, t0: datetime) -> None:
    cid = city.id
    start = t0 - timedelta(days=3)
    # A bay occupied for three days (its lot allows two), with reports all along.
    writer.write(conn, [bay(city, "st-002", start)], start)
    writer.write(conn, [bay(city, "st-002", t0 - MINUTE)], t0 - MINUTE)
    # A bay whose battery is low; the TTN bay's uplinks through the gateway zeitz-rathaus,
    # the last 70 minutes ago (a gateway is silent after an hour; the sensor after four
    # staleness limits, so not yet).
    writer.write(conn, [bay(city, "st-003", t0 - MINUTE, battery_v=2.5)], t0 - MINUTE)
    writer.write(conn, [uplink(city, t0 - 70 * MINUTE)], t0 - 70 * MINUTE)
    # The garage counter jumps (a swapped controller) one minute ago; the small lot's
    # counter last spoke 20 minutes ago (its staleness limit: 15).
    writer.write(conn, [counter(city, "garage", t0 - 3 * MINUTE, entries=500, exits=470)],
                 t0 - 3 * MINUTE)
    writer.write(conn, [counter(city, "garage", t0 - 2 * MINUTE, entries=505, exits=471)],
                 t0 - 2 * MINUTE)
    writer.write(conn, [counter(city, "garage", t0 - MINUTE, entries=900, exits=20)],
                 t0 - MINUTE)
    writer.write(conn, [counter(city, "small", t0 - 20 * MINUTE, occupied=3)], t0 - 20 * MINUTE)
    # What signage records of its sign: nothing confirmed for ten minutes, refused as in
    # local control; the forecaster's published error of the garage: 30 % of capacity.
    sign = f"{cid}-vms-1"
    conn.execute(
        "INSERT INTO sign_state (sign_id, last_ack, last_error, last_error_at, "
        "consecutive_failures, updated) VALUES (%s, %s, 'the sign is in local control', %s, "
        "4, %s)", (sign, t0 - 10 * MINUTE, t0 - 2 * MINUTE, t0 - 2 * MINUTE))
    conn.execute("INSERT INTO forecast_accuracy (lot_id, horizon_min, window_days, mae, "
                 "mae_rate, points, computed_at) VALUES (%s, 60, 7, 30, 0.3, 500, %s)",
                 (f"{cid}-garage", t0 - MINUTE))

    # What ingest heard on the retained service topics: signage says offline.
    changes = evaluate_alarms(conn, cid, t0, offline_services=["signage"])
    assert {c.event for c in changes} == {"raised"}
    alarms = open_alarms(conn, city)
    expected = {
        ("bay_stuck", f"{cid}-st-002"): "warning",
        ("battery_low", f"{cid}-st-003"): "warning",
        ("gateway_silent", "zeitz-rathaus"): "critical",
        ("counter_jump", f"{cid}-garage/counter"): "warning",
        ("lot_no_data", f"{cid}-small"): "critical",
        ("sign_no_ack", sign): "critical",
        ("sign_local_mode", sign): "warning",
        ("forecast_error", f"{cid}-garage"): "warning",
        ("service_offline", "signage"): "critical",
    }
    for cause, severity in expected.items():
        assert alarms[cause][1] == severity, cause
    assert alarms[("bay_stuck", f"{cid}-st-002")][2] == start + timedelta(days=2)
    assert alarms[("gateway_silent", "zeitz-rathaus")][2] == t0 - 10 * MINUTE
    assert alarms[("lot_no_data", f"{cid}-small")][2] == t0 - 5 * MINUTE
    assert alarms[("sign_no_ack", sign)][2] == t0 - 5 * MINUTE
    # The lots heard from are not without data; the fresh garage is not.
    assert ("lot_no_data", f"{cid}-garage") not in alarms
    # Every kind the vocabulary names is one the evaluator raises (with the silent sensor
    # of the test above and the silent OCPI source of tests/ocpi_peer), and it raises no other.
    assert {kind for kind, _ in alarms} | {"sensor_silent", "charger_source_silent"} == set(
        ALARM_KINDS)

    # The causes go away, each where its part records it.
    later = t0 + 5 * MINUTE
    writer.write(conn, [bay(city, "st-002", later, occupied=False),
                        bay(city, "st-003", later, battery_v=3.6), uplink(city, later),
                        counter(city, "small", later, occupied=4)], later)
    conn.execute("UPDATE sign_state SET last_ack = %s, last_error = NULL, "
                 "consecutive_failures = 0 WHERE sign_id = %s", (later, sign))
    conn.execute("UPDATE forecast_accuracy SET mae = 5, mae_rate = 0.05")
    conn.execute("UPDATE lot_state SET counter_jump_at = NULL WHERE lot_id = %s",
                 (f"{cid}-garage",))  # as a re-zeroing does
    cleared = {(c.kind, c.target) for c in evaluate_alarms(conn, cid, later)
               if c.event == "cleared"}
    assert set(expected) <= cleared
    assert not set(expected) & set(open_alarms(conn, city))


def test_an_acknowledged_alarm_stays_open_and_acknowledged_until_its_cause_is_gone(
        conn: psycopg.Connection[Any], city: City, writer: Writer, t0: datetime) -> None:
    writer.write(conn, [counter(city, "garage", t0, occupied=10)], t0)
    late = t0 + timedelta(minutes=20)
    evaluate_alarms(conn, city.id, late)
    cause = ("lot_no_data", f"{city.id}-garage")
    alarm_id = open_alarms(conn, city)[cause][0]
    conn.execute("UPDATE alarms SET acknowledged_by = 'olga', acknowledged_at = %s, "
                 "ack_comment = 'Techniker informiert' WHERE id = %s", (late, alarm_id))
    assert evaluate_alarms(conn, city.id, late + MINUTE) == []
    assert open_alarms(conn, city)[cause][0] == alarm_id
    assert open_alarms(conn, city)[cause][3] == "olga"
    fresh = late + 2 * MINUTE
    writer.write(conn, [counter(city, "garage", fresh, occupied=11)], fresh)
    assert [(c.event, c.id) for c in evaluate_alarms(conn, city.id, fresh)
            if c.target == cause[1]] == [("cleared", alarm_id)]
    # The acknowledgement stays on the cleared row (the report's time to acknowledge).
    assert conn.execute("SELECT acknowledged_by, ack_comment FROM alarms WHERE id = %s",
                        (alarm_id,)).fetchone() == ("olga", "Techniker informiert")


def test_two_evaluators_side_by_side_raise_each_alarm_once(
        db_url: str, conn: psycopg.Connection[Any], city: City, t0: datetime) -> None:
    """Ingest workers of one city evaluate at the same time: one open alarm per cause, and
    each change told by one of them."""
    sync_registry(conn, city)
    results: list[int] = []

    def evaluate() -> None:
        with psycopg.connect(db_url, autocommit=True) as own:
            results.append(len(evaluate_alarms(own, city.id, t0)))

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    total = conn.execute("SELECT count(*) FROM alarms WHERE city = %s", (city.id,)).fetchone()
    assert total is not None and total[0] == len(city.lots)  # every lot: no data yet
    assert sorted(results) == [0, 0, 0, len(city.lots)]


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"type": self.headers["Content-Type"],
                                    "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alarms", received
    server.shutdown()
    server.server_close()


def test_the_ingest_service_raises_alarms_and_tells_the_webhook(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City,
        conn: psycopg.Connection[Any], webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    start_ingest(spawn, settings, PARKLEIT_INGEST_STALE_CHECK_S="0.5",
                 PARKLEIT_ALARM_WEBHOOK_URL=url)
    # No lot has been heard from: each has an alarm, raised by the service itself.
    query = "SELECT count(*) FROM alarms WHERE kind = 'lot_no_data' AND cleared_at IS NULL"
    wait_for(lambda: conn.execute(query).fetchone() == (len(city.lots),), timeout=20)
    wait_for(lambda: received, timeout=10)
    [post] = received
    assert post["type"] == "application/json"
    assert post["body"]["city"] == city.id
    changes = post["body"]["changes"]
    assert sorted(change["target"] for change in changes) == sorted(lot.id for lot in city.lots)
    assert {(change["event"], change["kind"], change["severity"]) for change in changes} == {
        ("raised", "lot_no_data", "critical")}
    assert all(change["since"].endswith("Z") and change["cleared_at"] is None
               for change in changes)
    # A service's retained status says offline (its last will): an alarm, told; online again:
    # cleared, told.
    topic = f"parkleit/v1/{city.id}/services/signage"
    client = mqtt_client(settings, f"pub-{city.id}")
    offline = ("SELECT count(*) FROM alarms WHERE kind = 'service_offline' AND target = "
               "'signage' AND cleared_at IS NULL")
    try:
        client.publish(topic, "offline", qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: conn.execute(offline).fetchone() == (1,), timeout=20)
        wait_for(lambda: len(received) == 2, timeout=10)
        assert [(c["event"], c["kind"], c["target"]) for c in received[1]["body"]["changes"]
                ] == [("raised", "service_offline", "signage")]
        client.publish(topic, "online", qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: conn.execute(offline).fetchone() == (0,), timeout=20)
        wait_for(lambda: len(received) == 3, timeout=10)
        assert [(c["event"], c["kind"]) for c in received[2]["body"]["changes"]] == [
            ("cleared", "service_offline")]
    finally:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
    # Nothing of the service topics went to the sensor data (no dead letters).
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def test_of_two_ingest_workers_only_the_leader_evaluates_and_the_other_takes_over(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City,
        conn: psycopg.Connection[Any]) -> None:
    """Two workers of one city: exactly one raises each alarm, once; killed (-9), the other
    takes the evaluation over and raises the next one, once."""
    workers = [spawn(["ingest", "--client-id", f"ingest-{city.id}-{n}"],
                     service_env(settings, PARKLEIT_INGEST_STALE_CHECK_S="0.5"),
                     name=f"ingest{n}") for n in (0, 1)]
    for worker in workers:
        worker.wait_log("connected to MQTT")
    no_data = "SELECT count(*) FROM alarms WHERE kind = 'lot_no_data'"
    wait_for(lambda: conn.execute(no_data).fetchone() == (len(city.lots),), timeout=20)
    [leader] = wait_for(lambda: [w for w in workers if "leading alarms" in w.tail(200)])
    [standby] = [w for w in workers if w is not leader]
    standby.wait_log("standing by: another instance leads alarms")
    time.sleep(2)  # four stale checks more of each
    raised = [w.log.read_text().count("alarm raised: lot_no_data") for w in (leader, standby)]
    assert raised == [len(city.lots), 0]
    assert conn.execute(no_data).fetchone() == (len(city.lots),)
    # The leader dies; a service's status says offline: the standby leads and raises it, once.
    leader.kill()
    client = mqtt_client(settings, f"pub-{city.id}")
    topic = f"parkleit/v1/{city.id}/services/signage"
    offline = ("SELECT count(*) FROM alarms WHERE kind = 'service_offline' "
               "AND target = 'signage'")
    try:
        client.publish(topic, "offline", qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: conn.execute(offline).fetchone() == (1,), timeout=20)
        standby.wait_log("leading alarms")
        time.sleep(1.5)
        assert standby.log.read_text().count("alarm raised: service_offline signage") == 1
        assert conn.execute(offline).fetchone() == (1,)
    finally:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
