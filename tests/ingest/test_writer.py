"""The batch writer against a real PostgreSQL: idempotence, ordering, lot state, NOTIFY."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _helpers import utc_now

from core.city import City, load_city
from core.registry import sync_registry
from ingest import Message, Writer, prepare_connection
from ingest._state import COUNTER_JUMP_HOLD, jump_flagged

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, 13:00 in Zeitz


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def bay_msg(city: City, bay: str, occupied: bool, moment: datetime) -> Message:
    return Message(f"parkleit/v1/{city.id}/bays/{city.id}-{bay}",
                   json.dumps({"occupied": occupied, "ts": iso(moment)}).encode(), moment)


def counter_msg(city: City, lot: str, moment: datetime, **body: int) -> Message:
    return Message(f"parkleit/v1/{city.id}/lots/{city.id}-{lot}/counter",
                   json.dumps({**body, "ts": iso(moment)}).encode(), moment)


@pytest.fixture
def writer(conn: psycopg.Connection[Any], city: City) -> Writer:
    sync_registry(conn, city)
    prepare_connection(conn)
    return Writer(city, dead_letter_max_bytes=100)


def rows(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def state(conn: psycopg.Connection[Any], city: City, lot: str) -> tuple[Any, ...]:
    row: tuple[Any, ...] | None = conn.execute(
        "SELECT free, occupied, status FROM lot_state WHERE lot_id = %s",
        (f"{city.id}-{lot}",)).fetchone()
    assert row is not None
    return row


def test_redelivered_batch_adds_nothing(conn: psycopg.Connection[Any], city: City,
                                        writer: Writer) -> None:
    batch = [bay_msg(city, "st-001", True, at(1)), bay_msg(city, "st-002", True, at(2)),
             bay_msg(city, "st-001", True, at(1)),  # duplicate inside the batch
             counter_msg(city, "garage", at(3), entries=10, exits=4),
             Message(f"parkleit/v1/{city.id}/bays/nope", b"{}", at(4))]
    first = writer.write(conn, batch, at(5))
    tables = ("bay_events", "bay_state", "lot_occupancy", "dead_letters")
    before = {t: rows(conn, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    second = writer.write(conn, batch, at(6))
    after = {t: rows(conn, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    assert first.bay_events == 2 and second.bay_events == 0
    assert before["bay_events"] == after["bay_events"]
    assert before["lot_occupancy"] == after["lot_occupancy"]
    assert len(after["dead_letters"]) == 1
    assert rows(conn, "SELECT occurrences FROM dead_letters") == [(2,)]
    assert state(conn, city, "garage") == (94, 6, "open")


def test_out_of_order_never_moves_a_bay_backwards(conn: psycopg.Connection[Any], city: City,
                                                  writer: Writer) -> None:
    writer.write(conn, [bay_msg(city, "st-001", True, at(10))], at(11))
    writer.write(conn, [bay_msg(city, "st-001", False, at(5))], at(12))  # late arrival
    assert rows(conn, "SELECT occupied, time FROM bay_state") == [(True, at(10))]
    assert rows(conn, "SELECT count(*) FROM bay_events") == [(2,)]  # history keeps both
    assert state(conn, city, "street")[:2] == (3, 1)
    # Within one batch too: the newest reading wins whatever the arrival order.
    writer.write(conn, [bay_msg(city, "st-002", False, at(30)),
                        bay_msg(city, "st-002", True, at(20))], at(31))
    assert rows(conn, "SELECT occupied FROM bay_state WHERE bay_id = %s",
                f"{city.id}-st-002") == [(False,)]


def test_lot_status_thresholds(conn: psycopg.Connection[Any], city: City,
                               writer: Writer) -> None:
    # The street lot has 4 bays and almost_full = 0.75.
    seen = []
    for n in range(1, 5):
        result = writer.write(conn, [bay_msg(city, f"st-00{n}", True, at(n))], at(n))
        seen.append((state(conn, city, "street"), [s.status for s in result.changed]))
    assert [s for s, _ in seen] == [(3, 1, "open"), (2, 2, "open"), (1, 3, "almost_full"),
                                    (0, 4, "full")]
    assert all(announced for _, announced in seen)


def test_stale_lot_turns_unknown_and_is_announced(conn: psycopg.Connection[Any], city: City,
                                                  writer: Writer) -> None:
    writer.write(conn, [bay_msg(city, "st-001", True, at(0))], at(0))
    # The first refresh announces the lots never heard of, as unknown; the fresh one stays.
    first = writer.refresh(conn, at(60))
    assert sorted((s.lot_id, s.status) for s in first) == [
        (f"{city.id}-{lot}", "unknown") for lot in ("garage", "lora", "small")]
    assert writer.refresh(conn, at(61)) == []
    changed = writer.refresh(conn, at(901))  # default stale_after_s = 900
    assert [(s.lot_id, s.status) for s in changed] == [(f"{city.id}-street", "unknown")]
    assert state(conn, city, "street") == (3, 1, "unknown")


def test_counter_wrap_and_reset_across_batches(conn: psycopg.Connection[Any], city: City,
                                               writer: Writer) -> None:
    # The garage counter wraps at 1000 (counter_modulus in the test city).
    steps = [({"entries": 990, "exits": 960}, 30),  # first reading: entries - exits
             ({"entries": 995, "exits": 961}, 34),
             ({"entries": 5, "exits": 970}, 35),   # entries wrapped: +10 -9
             ({"entries": 2, "exits": 1}, 36)]     # both went down: a reset, +2 -1
    for n, (body, expected) in enumerate(steps):
        writer.write(conn, [counter_msg(city, "garage", at(n), **body)], at(n))
        assert state(conn, city, "garage")[1] == expected, body
    # An older reading arriving late is superseded, not applied.
    result = writer.write(conn, [counter_msg(city, "garage", at(1), entries=0, exits=0)], at(9))
    assert result.superseded == 1 and state(conn, city, "garage")[1] == 36


def test_counter_never_leaves_zero_to_capacity(conn: psycopg.Connection[Any], city: City,
                                               writer: Writer) -> None:
    writer.write(conn, [counter_msg(city, "small", at(0), entries=50, exits=0)], at(0))
    assert state(conn, city, "small") == (0, 10, "full")
    writer.write(conn, [counter_msg(city, "small", at(60), entries=50, exits=8)], at(60))
    assert state(conn, city, "small") == (8, 2, "open")
    writer.write(conn, [counter_msg(city, "small", at(120), entries=51, exits=12)], at(120))
    assert state(conn, city, "small") == (10, 0, "open")
    writer.write(conn, [counter_msg(city, "small", at(180), occupied=7)], at(180))
    assert state(conn, city, "small") == (3, 7, "open")


def test_notify_arrives_after_commit(conn: psycopg.Connection[Any], db_url: str, city: City,
                                     writer: Writer) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN parkleit_lot_state")
        writer.write(conn, [counter_msg(city, "garage", at(0), occupied=40)], at(0))
        notes = list(listener.notifies(timeout=5, stop_after=1))
    payload = json.loads(notes[0].payload)
    assert payload == {"lot_id": f"{city.id}-garage", "city": city.id, "free": 60,
                       "occupied": 40, "capacity": 100, "status": "open",
                       "updated": iso(at(0)), "quality": 1.0}


def test_failed_transaction_keeps_nothing(conn: psycopg.Connection[Any], city: City,
                                          writer: Writer) -> None:
    conn.execute("ALTER TABLE lot_occupancy ADD CONSTRAINT no_rows CHECK (false)")
    with pytest.raises(psycopg.errors.CheckViolation):
        writer.write(conn, [bay_msg(city, "st-001", True, at(0))], at(0))
    assert rows(conn, "SELECT count(*) FROM bay_events") == [(0,)]
    conn.execute("ALTER TABLE lot_occupancy DROP CONSTRAINT no_rows")
    # The retry announces the change that the failed attempt could not.
    result = writer.write(conn, [bay_msg(city, "st-001", True, at(0))], at(0))
    assert [s.free for s in result.changed] == [3]


def test_dead_letter_payload_is_truncated(conn: psycopg.Connection[Any], city: City,
                                          writer: Writer) -> None:
    big = b"\x00\xff" * 5000
    writer.write(conn, [Message(f"parkleit/v1/{city.id}/bays/{city.id}-st-001", big, at(0))],
                 at(0))
    row = conn.execute("SELECT payload, payload_size, reason FROM dead_letters").fetchone()
    assert row is not None
    payload, size, reason = row
    assert (len(payload), size) == (100, 10000) and reason.startswith("not JSON")


def test_sensor_health_from_battery_and_radio(conn: psycopg.Connection[Any], city: City,
                                              writer: Writer) -> None:
    msg = Message(f"parkleit/v1/{city.id}/bays/{city.id}-st-003",
                  json.dumps({"occupied": False, "ts": iso(at(0)), "battery_v": 3.1}).encode(),
                  at(0))
    writer.write(conn, [msg, msg], at(0))
    assert rows(conn, "SELECT sensor_id, battery_v FROM sensor_health") == [
        (f"{city.id}-st-003", pytest.approx(3.1))]


def test_registry_sync_follows_the_config(conn: psycopg.Connection[Any], city: City) -> None:
    sync_registry(conn, city)
    sync_registry(conn, city)
    assert rows(conn, "SELECT count(*) FROM lots WHERE city = %s", city.id) == [(4,)]
    assert rows(conn, "SELECT count(*) FROM bays") == [(6,)]
    smaller = city.model_copy(update={"lots": city.lots[:2], "signs": ()})
    sync_registry(conn, smaller)
    assert rows(conn, "SELECT lot_id FROM lots ORDER BY 1") == [
        (f"{city.id}-garage",), (f"{city.id}-small",)]
    assert rows(conn, "SELECT count(*) FROM bays") == [(0,)]
    assert rows(conn, "SELECT count(*) FROM lot_state") == [(2,)]


def test_registry_sync_survives_a_deadlock_with_a_writer(
        db_url: str, city: City, caplog: pytest.LogCaptureFixture) -> None:
    """A worker syncing as it starts while another one writes: the sync locks the bays in
    config order, a batch (foreign keys) in message order; PostgreSQL breaks the deadlock by
    aborting the sync, which is tried again (four ingest workers starting at once did it)."""
    first, *_, last = [bay.id for _, bay in city.bays()]
    with psycopg.connect(db_url, autocommit=True) as setup:
        sync_registry(setup, city)
    failed: list[BaseException] = []
    with psycopg.connect(db_url) as batch, psycopg.connect(db_url, autocommit=True) as syncer:
        syncer.execute("SET deadlock_timeout = '100ms'")  # the sync is the one aborted
        batch.execute("SET deadlock_timeout = '10s'")
        batch.execute("SELECT 1 FROM bays WHERE bay_id = %s FOR KEY SHARE", (last,))

        def sync() -> None:
            try:
                sync_registry(syncer, city)
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=sync, name="sync")
        thread.start()
        pid = syncer.info.backend_pid

        def blocked() -> bool:
            row = batch.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone()
            return row is not None and row[0] == "Lock"

        deadline = time.monotonic() + 10
        while not blocked() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert blocked(), "the sync never waited for the batch's lock"
        with caplog.at_level(logging.WARNING, logger="core.registry"):
            batch.execute("SELECT 1 FROM bays WHERE bay_id = %s FOR KEY SHARE", (first,))
            batch.commit()
            thread.join(30)
    assert not thread.is_alive() and not failed, failed
    assert "DeadlockDetected" in caplog.text
    with psycopg.connect(db_url) as check:
        assert rows(check, "SELECT count(*) FROM bays") == [(len(list(city.bays())),)]


def test_late_counter_reading_still_gets_its_history_row(
        conn: psycopg.Connection[Any], city: City, writer: Writer) -> None:
    lot = f"{city.id}-garage"
    writer.write(conn, [counter_msg(city, "garage", at(0), entries=10, exits=0)], at(0))
    writer.write(conn, [counter_msg(city, "garage", at(20), entries=16, exits=2)], at(20))
    # Reading of second 10 arrives last (another worker committed the newer one first).
    late = writer.write(conn, [counter_msg(city, "garage", at(10), entries=13, exits=1)], at(21))
    assert late.superseded == 1
    assert rows(conn, "SELECT time, occupied FROM lot_occupancy WHERE lot_id = %s ORDER BY 1",
                lot) == [(at(0), 10), (at(10), 12), (at(20), 14)]
    assert state(conn, city, "garage")[1] == 14  # the state keeps the newest reading
    writer.write(conn, [counter_msg(city, "garage", at(10), entries=13, exits=1)], at(22))
    assert rows(conn, "SELECT count(*) FROM lot_occupancy") == [(3,)]  # redelivery: no-op


def quality(conn: psycopg.Connection[Any], city: City, lot: str) -> tuple[Any, ...]:
    row: tuple[Any, ...] | None = conn.execute(
        "SELECT free, occupied, round(quality::numeric, 3)::float, flags FROM lot_state "
        "WHERE lot_id = %s", (f"{city.id}-{lot}",)).fetchone()
    assert row is not None
    return row


def test_stuck_sensor_is_left_out_of_the_count(conn: psycopg.Connection[Any], city: City,
                                               writer: Writer) -> None:
    # Street lot: 4 bays, max_dwell 48 h. st-001 reports "occupied" for three days on end,
    # ending an hour ago: sensor_status() judges "stuck" at the moment given (max_idle 7 days).
    start = utc_now().replace(microsecond=0) - timedelta(hours=74)
    writer.write(conn, [bay_msg(city, f"st-00{n}", n == 1, start) for n in range(1, 5)], start)
    assert quality(conn, city, "street") == (3, 1, 1.0, [])
    for hours in range(6, 73, 6):  # heartbeats of every sensor, st-001 never changes
        moment = start + timedelta(hours=hours)
        writer.write(conn, [bay_msg(city, f"st-00{n}", n == 1, moment) for n in range(1, 5)],
                     moment)
    assert quality(conn, city, "street") == (3, 0, 0.75, ["stuck_sensors:1"])
    # History counts the lot as its state does: the stuck bay is not a free space either.
    assert rows(conn, "SELECT free, occupied FROM lot_occupancy WHERE lot_id = %s"
                " ORDER BY time DESC LIMIT 1", f"{city.id}-street") == [(3, 0)]
    # The sensor comes back to life: it is counted again.
    moment = start + timedelta(hours=73)
    writer.write(conn, [bay_msg(city, "st-001", False, moment)], moment)
    assert quality(conn, city, "street") == (4, 0, 1.0, [])
    stuck = conn.execute("SELECT count(*) FROM sensor_status(%s) WHERE stuck",
                         (moment,)).fetchone()
    assert stuck == (0,)


def test_since_is_when_the_state_last_changed_whatever_the_batches(
        conn: psycopg.Connection[Any], city: City, writer: Writer) -> None:
    """A bay freed and taken again within one batch (a backlog, a fast replay), or whose
    "free" arrives late, changed state: its ``since`` moves on, so it does not look stuck."""
    def since(bay: str) -> datetime:
        row = conn.execute("SELECT since FROM bay_state WHERE bay_id = %s",
                           (f"{city.id}-{bay}",)).fetchone()
        assert row is not None and isinstance(row[0], datetime)
        return row[0]

    writer.write(conn, [bay_msg(city, f"st-00{n}", True, at(0)) for n in (1, 2, 3)], at(0))
    # st-001: free and taken again, both in one batch with a later heartbeat.
    writer.write(conn, [bay_msg(city, "st-001", False, at(100)),
                        bay_msg(city, "st-001", True, at(160)),
                        bay_msg(city, "st-001", True, at(700))], at(700))
    assert since("st-001") == at(160)
    # st-002: taken at 0 (heartbeats at 600, 1200); its "free" of 300 comes late, after them.
    writer.write(conn, [bay_msg(city, "st-002", True, at(600))], at(600))
    writer.write(conn, [bay_msg(city, "st-002", True, at(1200))], at(1200))
    assert since("st-002") == at(0)
    writer.write(conn, [bay_msg(city, "st-002", False, at(300))], at(1210))
    assert since("st-002") == at(600)
    assert rows(conn, "SELECT occupied, time FROM bay_state WHERE bay_id = %s",
                f"{city.id}-st-002") == [(True, at(1200))]
    # st-003: a late reading of the same state changes nothing; a new state starts a run.
    writer.write(conn, [bay_msg(city, "st-003", True, at(50))], at(1300))
    assert since("st-003") == at(0)
    writer.write(conn, [bay_msg(city, "st-003", False, at(1400)),
                        bay_msg(city, "st-003", False, at(1500))], at(1500))
    assert since("st-003") == at(1400)
    # A new bay's first batch: since is its first reading of the state it ends in.
    writer.write(conn, [bay_msg(city, "st-004", False, at(10)),
                        bay_msg(city, "st-004", True, at(20)),
                        bay_msg(city, "st-004", True, at(30))], at(30))
    assert since("st-004") == at(20)
    # Redelivered, the same batches change nothing.
    before = rows(conn, "SELECT * FROM bay_state ORDER BY bay_id")
    writer.write(conn, [bay_msg(city, "st-001", False, at(100)),
                        bay_msg(city, "st-002", False, at(300))], at(1600))
    assert rows(conn, "SELECT * FROM bay_state ORDER BY bay_id") == before


def test_silent_sensors_lower_the_quality_and_stale_scores_zero(
        conn: psycopg.Connection[Any], city: City, writer: Writer) -> None:
    writer.write(conn, [bay_msg(city, f"st-00{n}", False, at(0)) for n in range(1, 5)], at(0))
    later = at(3000)  # st-001..003 silent for 50 min: still fresh (limit 4 x 900 s)
    writer.write(conn, [bay_msg(city, "st-004", True, later)], later)
    assert quality(conn, city, "street")[2:] == (1.0, [])
    much_later = at(4000)
    writer.write(conn, [bay_msg(city, "st-004", False, much_later)], much_later)
    assert quality(conn, city, "street")[2:] == (0.25, ["silent_sensors:3"])
    writer.refresh(conn, much_later + timedelta(seconds=901))
    assert quality(conn, city, "street")[2:] == (0.0, ["stale"])


def test_implausible_counter_is_clamped_and_flagged(conn: psycopg.Connection[Any], city: City,
                                                    writer: Writer) -> None:
    writer.write(conn, [counter_msg(city, "small", at(0), occupied=14)], at(0))
    assert quality(conn, city, "small") == (0, 10, 0.7, ["clamped"])
    writer.write(conn, [counter_msg(city, "small", at(1), occupied=4)], at(1))
    assert quality(conn, city, "small") == (6, 4, 1.0, [])


def empty_at_four(conn: psycopg.Connection[Any], tmp_path: Path, city_path: Path) -> City:
    """The test city with its garage known to be empty at 04:00, synced."""
    text = city_path.read_text().replace("counter_modulus = 1000",
                                         "counter_modulus = 1000\nempty_at = 04:00:00")
    (tmp_path / "drift.toml").write_text(text)
    drifting = load_city(str(tmp_path / "drift.toml"))
    sync_registry(conn, drifting)
    prepare_connection(conn)
    return drifting


def test_counter_drift_is_re_zeroed_when_the_lot_is_known_empty(
        conn: psycopg.Connection[Any], tmp_path: Path, city_path: Path) -> None:
    drifting = empty_at_four(conn, tmp_path, city_path)
    writer = Writer(drifting)
    night = datetime(2026, 11, 25, 2, 50, tzinfo=UTC)  # 03:50 in Zeitz
    writer.write(conn, [counter_msg(drifting, "garage", night, entries=500, exits=488)], night)
    assert quality(conn, drifting, "garage")[:2] == (88, 12)  # 12 cars the counter missed
    writer.refresh(conn, night + timedelta(minutes=5))  # 03:55: not yet
    assert quality(conn, drifting, "garage")[:2] == (88, 12)
    writer.refresh(conn, night + timedelta(minutes=11))  # 04:01: re-zeroed once
    assert quality(conn, drifting, "garage") == (100, 0, 0.88, ["drift:12"])
    morning = night + timedelta(hours=4)
    writer.write(conn, [counter_msg(drifting, "garage", morning, entries=510, exits=490)],
                 morning)
    assert quality(conn, drifting, "garage")[:2] == (92, 8)  # counted on from zero: +10 -2
    writer.refresh(conn, night + timedelta(minutes=40))  # the same night: not again
    assert quality(conn, drifting, "garage")[1] == 8


def test_counter_jump_is_re_baselined_flagged_and_kept(conn: psycopg.Connection[Any],
                                                       city: City, writer: Writer) -> None:
    """A counter restarting from another value (a swapped controller) moves no count: the
    new values become the baseline, the count stays, the lot and its counter are flagged
    and the raw reading is kept in dead_letters."""
    base = utc_now().replace(microsecond=0) - timedelta(minutes=10)

    def send(seconds: float, **body: int) -> Any:
        moment = base + timedelta(seconds=seconds)
        return writer.write(conn, [counter_msg(city, "garage", moment, **body)], moment)

    send(0, entries=500, exits=470)
    send(60, entries=505, exits=471)
    swapped = counter_msg(city, "garage", base + timedelta(seconds=120), entries=900, exits=20)
    result = writer.write(conn, [swapped], swapped.received)
    assert (result.counter_jumps, result.dead_letters) == (1, 0)
    assert quality(conn, city, "garage") == (66, 34, 0.7, ["counter_jump"])
    assert rows(conn, "SELECT topic, payload, reason FROM dead_letters") == [(
        swapped.topic, swapped.payload,
        "counter_jump: entries 505 -> 900, exits 471 -> 20 in 60 s (at most 25 each way and a "
        "net change of 100); re-baselined, occupied 34 kept")]
    garage = f"{city.id}-garage"
    assert rows(conn, "SELECT sensor_id, network, counter_jump, last_reading"
                " FROM sensor_status(%s) WHERE lot_id = %s", swapped.received, garage) == [
        (f"{garage}/counter", "counter", True, swapped.received)]
    assert rows(conn, "SELECT counter_jump FROM sensor_status(%s) WHERE lot_id = %s",
                swapped.received, f"{city.id}-small") == [(False,)]
    send(180, entries=903, exits=21)  # counted on from the new baseline: +3 -1
    assert quality(conn, city, "garage") == (64, 36, 0.7, ["counter_jump"])
    # A late reading of the new controller is judged against the stored row before it (the
    # old controller's): history keeps the count there too, and the reading.
    late = send(90, entries=898, exits=20)
    assert (late.superseded, late.counter_jumps) == (1, 1)
    assert [occupied for (occupied,) in rows(
        conn, "SELECT occupied FROM lot_occupancy WHERE lot_id = %s ORDER BY time", garage)
    ] == [30, 34, 34, 34, 36]
    assert rows(conn, "SELECT count(*) FROM dead_letters WHERE reason LIKE %s",
                "% (a late reading: history only)") == [(1,)]
    # The flag holds for 24 hours after the jump, then goes.
    send(120 + 86_340, entries=1400, exits=513)
    assert quality(conn, city, "garage")[2:] == (0.7, ["counter_jump"])
    send(120 + 86_400, entries=1401, exits=513)
    assert quality(conn, city, "garage") == (58, 42, 1.0, [])


def test_re_zeroing_ends_a_counter_jump(conn: psycopg.Connection[Any], tmp_path: Path,
                                        city_path: Path) -> None:
    drifting = empty_at_four(conn, tmp_path, city_path)
    writer = Writer(drifting)
    night = datetime(2026, 11, 25, 2, 50, tzinfo=UTC)  # 03:50 in Zeitz
    for minutes, entries, exits in ((0, 500, 490), (2, 20, 700)):
        moment = night + timedelta(minutes=minutes)
        writer.write(conn, [counter_msg(drifting, "garage", moment, entries=entries,
                                        exits=exits)], moment)
    assert quality(conn, drifting, "garage") == (90, 10, 0.7, ["counter_jump"])
    writer.refresh(conn, night + timedelta(minutes=11))  # 04:01: re-zeroed
    assert quality(conn, drifting, "garage") == (100, 0, 0.9, ["drift:10"])
    assert rows(conn, "SELECT counter_jump_at FROM lot_state WHERE lot_id = %s",
                f"{drifting.id}-garage") == [(None,)]


@pytest.mark.usefixtures("writer")  # the registry synced
def test_sensor_status_holds_a_counter_jump_as_long_as_ingest(
        conn: psycopg.Connection[Any], city: City) -> None:
    garage = f"{city.id}-garage"
    minute = timedelta(minutes=1)
    at = utc_now()
    for ago in (COUNTER_JUMP_HOLD - minute, COUNTER_JUMP_HOLD + minute):
        conn.execute("UPDATE lot_state SET counter_jump_at = %s WHERE lot_id = %s",
                     (at - ago, garage))
        [(shown,)] = rows(conn, "SELECT counter_jump FROM sensor_status(%s)"
                                " WHERE sensor_id = %s", at, f"{garage}/counter")
        assert shown == jump_flagged(at - ago, at) == (ago < COUNTER_JUMP_HOLD)


def test_an_operators_count_correction_is_flagged_for_a_day_or_until_re_zeroing(
        conn: psycopg.Connection[Any], tmp_path: Path, city_path: Path) -> None:
    drifting = empty_at_four(conn, tmp_path, city_path)
    writer, garage = Writer(drifting), f"{drifting.id}-garage"
    noon = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 12:00 in Zeitz
    writer.write(conn, [counter_msg(drifting, "garage", noon, entries=500, exits=460)], noon)
    # The console sets the count (as api._lotadmin.correct_count does) at 12:05.
    corrected = noon + timedelta(minutes=5)
    conn.execute("UPDATE lot_state SET occupied = 25, free = 75, updated = %s, "
                 "corrected_at = %s WHERE lot_id = %s", (corrected, corrected, garage))
    later = noon + timedelta(minutes=10)
    writer.write(conn, [counter_msg(drifting, "garage", later, entries=503, exits=461)], later)
    assert quality(conn, drifting, "garage") == (73, 27, 1.0, ["manual_correction"])
    # A day later the flag is gone by itself.
    day = corrected + COUNTER_JUMP_HOLD + timedelta(minutes=1)
    writer.write(conn, [counter_msg(drifting, "garage", day, entries=504, exits=461)], day)
    assert quality(conn, drifting, "garage") == (72, 28, 1.0, [])
    # Corrected again: the next re-zeroing (04:00) ends the flag, as the count is known then.
    conn.execute("UPDATE lot_state SET corrected_at = %s WHERE lot_id = %s", (day, garage))
    writer.refresh(conn, day + timedelta(minutes=1))
    assert quality(conn, drifting, "garage")[3] == ["manual_correction"]
    night = datetime(2026, 11, 26, 3, 1, tzinfo=UTC)  # 04:01 in Zeitz
    writer.refresh(conn, night)
    assert quality(conn, drifting, "garage")[:2] == (100, 0)
    assert "manual_correction" not in quality(conn, drifting, "garage")[3]
    assert rows(conn, "SELECT corrected_at FROM lot_state WHERE lot_id = %s", garage) == [
        (None,)]
