"""The blocked rule against the city simulator's ground truth: a simulated week of the
example city's Schloßstraße (two charging points on bays, their status over MQTT; cars on
them charge, or block them: combustion cars, and electric cars that stay after charging),
with the sensors' and the network's faults, played through the ingest writer into the real
database; every five simulated minutes (a third of the city's 15-minute limit) the points
the rule calls BLOCKED (rules.sql evse_effective) are compared with the points a car really
stood on without charging for the city's limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from core.charging import EvseStatus, effective_states
from core.city import load_city
from core.registry import sync_registry
from ingest import Message, Writer, prepare_connection
from simulators._faults import FaultConfig
from simulators._feed import CityFeed

START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday
WEEK_S = 7 * 24 * 3600
EVERY_MIN = 5


def test_blocked_precision_and_recall_over_a_week(conn: psycopg.Connection[Any]) -> None:
    zeitz = load_city("zeitz")
    sync_registry(conn, zeitz)
    site = "zeitz-schlossstrasse"
    city = zeitz.model_copy(update={
        "lots": tuple(lot for lot in zeitz.lots if lot.id == site),
        "chargers": tuple(s for s in zeitz.chargers if s.lot == site),
        "signs": (), "events": ()})
    faults = FaultConfig.parse("drop,duplicate,late,stuck,flapping,malformed")
    feed = CityFeed(city, START, seed=7, faults=faults, duration_s=WEEK_S)
    assert len(feed.chargers.points) == 2
    writer = Writer(city)
    prepare_connection(conn)
    limit_ms = city.city.charger_blocked_after_min * 60_000
    hits = false_alarms = misses = 0
    batch: list[Message] = []
    idle_since: dict[str, datetime] = {}  # from the truth's CSV lines, as a reader has it
    for number, minute in enumerate(feed, start=1):
        batch.extend(Message(m.topic, m.payload, m.time) for m in minute.messages)
        for line in minute.chargers:
            time, evse_id, car, charging = line.split(",")
            if car == "true" and charging == "false":
                idle_since.setdefault(evse_id, datetime.fromisoformat(time))
            else:
                idle_since.pop(evse_id, None)
        if number % EVERY_MIN or not minute.truth:
            continue
        writer.write(conn, batch, minute.end)
        batch = []
        said = {evse_id for evse_id, point in effective_states(conn, city, minute.end).items()
                if point.state.status is EvseStatus.BLOCKED}
        truth = feed.chargers.blocked(round(minute.end.timestamp() * 1000), limit_ms)
        assert truth == {evse_id for evse_id, since in idle_since.items()
                         if minute.end - since >= timedelta(milliseconds=limit_ms)}
        hits += len(said & truth)
        false_alarms += len(said - truth)
        misses += len(truth - said)
    precision = hits / (hits + false_alarms)
    recall = hits / (hits + misses)
    figures = (f"{hits} hits, {false_alarms} false, {misses} missed ({EVERY_MIN}-minute samples "
               f"of 2 points); precision {precision:.3f}, recall {recall:.3f}")
    assert hits > 60, figures  # blocking really happened, often enough to measure
    assert precision >= 0.9 and recall >= 0.9, figures
