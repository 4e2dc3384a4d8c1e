"""The batch writer: one transaction per batch of MQTT messages, idempotent end to end."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from core import channels
from core.charging import EvseReading, EvseState, effective_states, store_readings
from core.city import City, Lot, OpeningHours
from core.db import queries
from core.status import LotStatus, lot_status

from ._decode import BayReading, CounterReading, DecodeError, Decoder, HealthReading
from ._state import (
    CounterState,
    apply_counter,
    jump_flagged,
    jump_reason,
    lot_quality,
    rezero_due,
)

__all__ = ["BatchResult", "Message", "Writer", "prepare_connection"]

logger = logging.getLogger(__name__)

# A lot whose numbers did not change is re-announced at most this often (heartbeats keep its
# ``updated`` fresh for signs that judge staleness from the status topic).
REANNOUNCE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as ingest received it."""

    topic: str
    payload: bytes
    received: datetime


@dataclass(slots=True)
class BatchResult:
    """What one batch did."""

    messages: int = 0
    dead_letters: int = 0
    bay_events: int = 0
    health_rows: int = 0
    superseded: int = 0
    counter_jumps: int = 0  # readings re-baselined (stored in dead_letters too, as evidence)
    newest: datetime | None = None
    changed: list[LotStatus] = field(default_factory=list)
    dead_reasons: dict[str, int] = field(default_factory=dict)
    # Charging points whose effective status (read with their bays, rules.sql evse_effective)
    # changed: published on their retained topic after commit.
    evses_changed: list[EvseState] = field(default_factory=list)


@dataclass(slots=True)
class _LotWork:
    """What one pass over the lots writes and announces."""

    occupancy_rows: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    changed: list[LotStatus] = field(default_factory=list)
    late: list[tuple[Lot, CounterReading, Message]] = field(default_factory=list)
    jumps: list[dict[str, Any]] = field(default_factory=list)  # dead letters of counter jumps


def prepare_connection(conn: psycopg.Connection[Any]) -> None:
    """Per-connection set-up (pool ``configure`` callback): the staging tables."""
    with conn.transaction():
        conn.execute(queries("ingest")["create_staging"])


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows of equal keys as one list per key (parameters of an ``unnest`` statement)."""
    return {key: [row[key] for row in rows] for key in rows[0]}


class Writer:
    """Decodes batches of messages and writes them in one transaction each."""

    def __init__(self, city: City, *, dead_letter_max_bytes: int = 4096) -> None:
        self.city = city
        self.decoder = Decoder(city)
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self._lots = {lot.id: lot for lot in city.lots}
        self._hours = {lot.id: OpeningHours(lot.opening_hours) for lot in city.lots}
        self._lot_of_bay = {bay.id: lot.id for lot, bay in city.bays()}
        self._announced: dict[str, LotStatus] = {}
        # The bays charging points serve: a change of one can change its point's status.
        self._points_of_bay: dict[str, set[str]] = defaultdict(set)
        for _, evse in city.evses():
            for bay in evse.bays:
                self._points_of_bay[bay].add(evse.evse_id)
        self._points_announced: dict[str, tuple[str, datetime]] = {}
        self._q = queries("ingest")

    def write(self, conn: psycopg.Connection[Any], messages: Sequence[Message],
              now: datetime) -> BatchResult:
        """Write one batch; nothing is kept if it raises (the caller retries or gives up)."""
        result = BatchResult(messages=len(messages))
        bays: list[BayReading] = []
        health: list[HealthReading] = []
        evses: list[EvseReading] = []
        counters: dict[str, list[tuple[CounterReading, Message]]] = defaultdict(list)
        dead: list[dict[str, Any]] = []
        for message in messages:
            try:
                evse = self.decoder.charger_status(message.topic, message.payload,
                                                   message.received)
                if evse is not None:
                    evses.append(evse)
                    if result.newest is None or evse.ts > result.newest:
                        result.newest = evse.ts
                    continue
                readings = self.decoder.decode(message.topic, message.payload, message.received)
            except DecodeError as exc:
                dead.append(self._dead_letter(message, str(exc)))
                continue
            except Exception as exc:  # a decoder bug must not stop ingest; keep the evidence
                logger.exception("decoder failed on topic %s", message.topic[:200])
                dead.append(self._dead_letter(message, f"decoder error: {type(exc).__name__}"))
                continue
            for reading in readings:
                if isinstance(reading, BayReading):
                    bays.append(reading)
                elif isinstance(reading, CounterReading):
                    counters[reading.lot_id].append((reading, message))
                else:
                    health.append(reading)
                if result.newest is None or reading.time > result.newest:
                    result.newest = reading.time

        q = self._q
        with conn.transaction(), conn.cursor() as cur:
            if bays:
                with cur.copy(q["copy_bay_events"]) as copy:
                    for bay in bays:
                        copy.write_row((bay.time, bay.bay_id, bay.occupied, bay.seq, bay.source))
                cur.execute(q["insert_bay_events"])
                result.bay_events = max(cur.rowcount, 0)
                cur.execute(q["advance_bay_state"])
            if health:
                with cur.copy(q["copy_sensor_health"]) as copy:
                    for h in health:
                        copy.write_row((h.time, h.sensor_id, h.battery_v, h.battery_pct, h.rssi,
                                        h.snr, h.gateway_id, h.frame_count))
                cur.execute(q["insert_sensor_health"])
                result.health_rows = max(cur.rowcount, 0)
            reported: list[EvseState] = []
            if evses:
                reported = store_readings(conn, self.city.id, evses)
            touched = {evse_id for bay in bays
                       for evse_id in self._points_of_bay.get(bay.bay_id, ())}
            if evses or touched:
                result.evses_changed = self._points_changed(conn, now, reported, touched)
            bay_lots = sorted({self._lot_of_bay[b.bay_id] for b in bays})
            work = self._update_lots(conn, bay_lots, counters, now)
            result.changed, result.superseded = work.changed, len(work.late)
            result.counter_jumps = len(work.jumps)
            if dead or work.jumps:
                cur.executemany(q["insert_dead_letter"], dead + work.jumps)
            self._notify(conn, result.changed)
        self._remember(result.changed)
        self._remember_points(result.evses_changed)
        result.dead_letters = len(dead)
        for row in dead:
            result.dead_reasons[row["reason"]] = result.dead_reasons.get(row["reason"], 0) + 1
        return result

    def refresh(self, conn: psycopg.Connection[Any], now: datetime) -> list[LotStatus]:
        """Re-derive every lot's status for the time ``now`` (staleness, opening hours)."""
        with conn.transaction():
            changed = self._update_lots(conn, [], {}, now, all_lots=True).changed
            self._notify(conn, changed)
        self._remember(changed)
        return changed

    def refresh_points(self, conn: psycopg.Connection[Any], now: datetime) -> list[EvseState]:
        """The charging points whose effective status changed by the time ``now`` alone (a
        car standing on a bay without charging for the city's limit makes its point
        blocked)."""
        if not self.city.chargers:
            return []
        with conn.transaction():
            changed = self._points_changed(conn, now, [])
        self._remember_points(changed)
        return changed

    def _points_changed(self, conn: psycopg.Connection[Any], now: datetime,
                        reported: list[EvseState],
                        touched: set[str] | None = None) -> list[EvseState]:
        """The effective states (rules.sql evse_effective) at ``now`` that differ from the
        ones announced, and those of the points whose reported status just changed. These
        and the points whose bays were ``touched`` (a point's ``free`` may change without
        its status) are NOTIFYd on ``EVSE_STATE`` for the live stream to read again
        (store_readings NOTIFYs the reported changes only)."""
        news = {state.evse_id for state in reported}
        points = effective_states(conn, self.city, now)
        changed = [point.state for evse_id, point in points.items()
                   if evse_id in news or self._points_announced.get(evse_id) != (
                       point.state.status, point.state.since)]
        heard = {state.evse_id for state in changed} - news | (touched or set())
        if heard:
            conn.execute(queries("core")["notify_evse_state"], {
                "channel": channels.EVSE_STATE,
                "payloads": [points[evse_id].state.notification(self.city.id)
                             for evse_id in sorted(heard) if evse_id in points]})
        return changed

    def _remember_points(self, announced: list[EvseState]) -> None:
        for state in announced:
            self._points_announced[state.evse_id] = (state.status, state.since)

    def _notify(self, conn: psycopg.Connection[Any], changed: list[LotStatus]) -> None:
        """NOTIFY inside the transaction: listeners hear it only once it commits."""
        if changed:
            payloads = [status.notification(self.city.id) for status in changed]
            conn.execute(self._q["notify"], {"channel": channels.LOT_STATE,
                                             "payloads": payloads})

    def _remember(self, announced: list[LotStatus]) -> None:
        for status in announced:
            self._announced[status.lot_id] = status

    def reject(self, conn: psycopg.Connection[Any], message: Message, reason: str) -> BatchResult:
        """Store one message as a dead letter only (the database refused its readings)."""
        with conn.transaction():
            conn.execute(self._q["insert_dead_letter"], self._dead_letter(message, reason))
        return BatchResult(messages=1, dead_letters=1, dead_reasons={reason: 1})

    def _update_lots(
        self,
        conn: psycopg.Connection[Any],
        bay_lots: list[str],
        counters: dict[str, list[tuple[CounterReading, Message]]],
        now: datetime,
        *,
        all_lots: bool = False,
    ) -> _LotWork:
        work = _LotWork()
        lot_ids = sorted(self._lots) if all_lots else sorted({*bay_lots, *counters})
        if not lot_ids:
            return work
        if all_lots:
            bay_lots = [lot_id for lot_id in lot_ids if self._lots[lot_id].counting == "bays"]
        q = self._q
        with conn.cursor(row_factory=dict_row) as cur:
            states = {row["lot_id"]: row for row in cur.execute(
                q["lock_lot_states"], {"lot_ids": lot_ids})}
            closed = {row["lot_id"] for row in cur.execute(
                q["operator_closures"], {"lot_ids": lot_ids, "now": now})}
            limits = {row["lot_id"]: row["capacity"] for row in cur.execute(
                q["capacity_limits"], {"lot_ids": lot_ids, "now": now})}
            counts = {row["lot_id"]: row for row in cur.execute(
                q["bay_lot_counts"], {"lot_ids": bay_lots, "now": now})} if bay_lots else {}
        for lot_id in lot_ids:
            old = states.get(lot_id)
            if old is None:
                continue  # registry not synced for this lot yet; its readings stay in history
            self._update_lot(self._lots[lot_id], old, counts.get(lot_id),
                             counters.get(lot_id, []), lot_id in closed, now, work,
                             limits.get(lot_id))
        # One statement each for all lots: arrays of columns, not a statement per row.
        with conn.cursor() as cur:
            if work.updates:
                cur.execute(q["update_lot_states"], _columns(work.updates))
                # Whether announced or not (quality, flags, a disabled bay): the API's views.
                cur.execute(q["notify"], {"channel": channels.LOTS_CHANGED,
                                          "payloads": [self.city.id]})
            if work.occupancy_rows:
                cur.execute(q["insert_lot_occupancy"], _columns(work.occupancy_rows))
            if work.late:
                late_rows = self._late_counter_rows(conn, work)
                if late_rows:
                    cur.execute(q["insert_lot_occupancy"], _columns(late_rows))
        return work

    def _update_lot(self, lot: Lot, old: dict[str, Any], bay_count: dict[str, Any] | None,
                    readings: list[tuple[CounterReading, Message]], closed: bool,
                    now: datetime, work: _LotWork, limit: int | None = None) -> None:
        """One lot's new state from its bay count or counter readings, into ``work``.

        ``limit``: an operator's reduced capacity of a counter lot in force. Free spaces and
        status are judged against it; the count is not cut to it (the cars are still there,
        and are counted out as they leave).
        """
        occupied, updated, free = old["occupied"], old["updated"], old["free"]
        counter = CounterState(old["occupied"], old["counter_entries"], old["counter_exits"],
                               old["counter_time"], clamped="clamped" in old["flags"])
        rezeroed_on, drift, jumped_at = old["rezeroed_on"], old["drift"], old["counter_jump_at"]
        # An operator's count correction (the console) is in ``old`` already: the baseline.
        corrected_at = old["corrected_at"]
        quality_of: dict[str, Any] = {}
        if bay_count is not None:
            if bay_count["known"]:
                occupied = bay_count["occupied"]
                # Stuck sensors are left out: their bays count neither free nor occupied.
                free = lot.capacity - bay_count["stuck"] - occupied
                if updated is None or bay_count["latest"] > updated:
                    updated = bay_count["latest"]
                    work.occupancy_rows.append(self._occupancy_row(lot, updated, occupied,
                                                                   "bays", free=free))
            quality_of = {"fresh_bays": bay_count["fresh"], "stuck_bays": bay_count["stuck"]}
        if readings:
            counter, newest_jump = self._apply_counters(lot, counter, readings, work)
            jumped_at = newest_jump or jumped_at
            if counter.time != old["counter_time"]:  # a reading was applied
                occupied, updated = counter.occupied, counter.time
        if rezero_due(lot, rezeroed_on, now, self.city.tz):
            # The lot is known to be empty now: what the counter still shows is drift, and a
            # counter jump before it no longer matters.
            drift, occupied, rezeroed_on = occupied or 0, 0, now.astimezone(
                self.city.tz).date()
            counter, jumped_at, corrected_at = replace(counter, occupied=0), None, None
            work.occupancy_rows.append(self._occupancy_row(lot, now, 0, "counter"))
            logger.info("re-zeroed counter of %s (drift %d)", lot.id, drift)
        judged = lot  # the lot with the capacity its free spaces are counted against
        if lot.counting == "counter":
            if limit is not None and limit < lot.capacity:
                judged = lot.model_copy(update={"capacity": limit})
            free = None if occupied is None else max(0, judged.capacity - occupied)
            quality_of = {"clamped": counter.clamped, "drift": drift,
                          "jumped": jump_flagged(jumped_at, now),
                          "corrected": jump_flagged(corrected_at, now)}
        status = lot_status(judged, self._hours[lot.id], free, updated, now, self.city.tz,
                            closed=closed)
        quality, flags = lot_quality(
            lot, stale=updated is None or status == "unknown", **quality_of)
        announced = LotStatus(lot.id, free, occupied, judged.capacity, status, updated, quality)
        new = {"lot_id": lot.id, "free": free, "occupied": occupied,
               "capacity": judged.capacity, "status": status, "updated": updated,
               "counter_entries": counter.entries, "counter_exits": counter.exits,
               "counter_time": counter.time, "quality": quality, "flags": ",".join(flags),
               "rezeroed_on": rezeroed_on, "drift": drift, "counter_jump_at": jumped_at,
               "corrected_at": corrected_at}
        same_quality = old["quality"] is not None and abs(old["quality"] - quality) < 1e-3
        if not same_quality or flags != old["flags"] or any(
                new[key] != old[key] for key in new if key not in ("flags", "quality")):
            work.updates.append(new)
        if self._should_announce(announced):
            work.changed.append(announced)

    def _apply_counters(self, lot: Lot, counter: CounterState,
                        readings: list[tuple[CounterReading, Message]],
                        work: _LotWork) -> tuple[CounterState, datetime | None]:
        """The counter after ``readings`` (in time order), and when it last jumped in them.

        A reading not newer than the counter goes to ``work.late``; an implausible one is
        re-baselined (``apply_counter``) and its message kept in ``work.jumps``.
        """
        jumped_at = None
        for reading, message in sorted(readings, key=lambda pair: pair[0].time):
            applied = apply_counter(counter, reading, lot)
            if applied is None:
                work.late.append((lot, reading, message))
                continue
            if applied.jumped:
                jumped_at = reading.time
                work.jumps.append(self._jump_letter(message, counter, reading, lot))
            counter = applied
            assert counter.occupied is not None  # an applied reading always sets it
            work.occupancy_rows.append(self._occupancy_row(
                lot, reading.time, counter.occupied, "counter", reading.entries,
                reading.exits))
        return counter, jumped_at

    def _jump_letter(self, message: Message, before: CounterState, reading: CounterReading,
                     lot: Lot, note: str = "") -> dict[str, Any]:
        reason = jump_reason(before, reading, lot) + note
        logger.warning("lot %s: %s", lot.id, reason)
        return self._dead_letter(message, reason)

    def _late_counter_rows(self, conn: psycopg.Connection[Any],
                           work: _LotWork) -> list[dict[str, Any]]:
        """History rows for counter readings older than the lot's current state.

        They no longer change the lot's state, but history keeps them: each is counted on
        from the stored row just before it (cumulative counters telescope, so the rows after
        it stay right). A redelivered reading finds its own row and adds nothing. One that
        is implausible after that row keeps its count (and goes to ``work.jumps`` as well).
        """
        previous = self._q["previous_occupancy"]
        params = {"lot_ids": [lot.id for lot, _, _ in work.late],
                  "times": [reading.time for _, reading, _ in work.late]}
        with conn.cursor(row_factory=dict_row) as cur:
            before = cur.execute(previous, params).fetchall()
        rows = []
        for (lot, reading, message), prev in zip(work.late, before, strict=True):
            state = CounterState(prev["occupied"], prev["entries"], prev["exits"], prev["time"])
            applied = apply_counter(state, reading, lot)
            if applied is None or applied.occupied is None:
                continue
            if applied.jumped:
                work.jumps.append(self._jump_letter(message, state, reading, lot,
                                                    " (a late reading: history only)"))
            rows.append(self._occupancy_row(lot, reading.time, applied.occupied, "counter",
                                            reading.entries, reading.exits))
        return rows

    def _should_announce(self, status: LotStatus) -> bool:
        old = self._announced.get(status.lot_id)
        if old is None or (old.free, old.occupied, old.capacity, old.status) != (
                status.free, status.occupied, status.capacity, status.status):
            return True
        return (status.updated is not None and old.updated is not None
                and status.updated - old.updated >= REANNOUNCE_AFTER)

    @staticmethod
    def _occupancy_row(lot: Lot, time: datetime, occupied: int, source: str,
                       entries: int | None = None, exits: int | None = None, *,
                       free: int | None = None) -> dict[str, Any]:
        # ``free`` as the lot state has it: bays of stuck sensors count neither free nor
        # occupied, so it can be less than capacity - occupied.
        return {"time": time, "lot_id": lot.id, "occupied": occupied,
                "free": lot.capacity - occupied if free is None else free,
                "capacity": lot.capacity, "source": source, "entries": entries, "exits": exits}

    def _dead_letter(self, message: Message, reason: str) -> dict[str, Any]:
        return {
            "received": message.received,
            "topic": message.topic[:1024].replace("\x00", "\ufffd"),
            "payload": message.payload[: self.dead_letter_max_bytes],
            "payload_size": len(message.payload),
            "digest": hashlib.sha256(message.payload).digest(),
            "reason": reason[:500].replace("\x00", "\ufffd"),
        }
