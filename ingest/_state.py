"""Lot-state rules: counter arithmetic, data quality and re-zeroing. Pure functions.

Counter plausibility. A garage counter sends cumulative ``entries`` and ``exits``; ingest
counts the lot on by their increases. Between two readings ``elapsed`` apart:

- a counter that went down wrapped around at ``counter_modulus`` (it was in the top quarter,
  it is now in the bottom quarter) or was reset to zero; both going down at once is the
  device restarting from zero, counting since then;
- each way, no more vehicles can have passed than the lot's ``lanes`` let through:
  ``lanes × 900 vehicles/hour × elapsed``, rounded up, plus ``COUNTER_SLACK`` (10) for bursts
  and timestamp jitter. A barrier lane passes 600-900 vehicles an hour in the field; 900 is
  the upper end, so that real traffic is never judged implausible (a one-lane lot: 25 a
  minute, 85 in five minutes, 910 in an hour);
- entries − exits cannot change by more than the capacity (occupancy stays in
  [0, capacity]).

A reading that breaks either bound however it is explained (a restart from zero
counting more than could pass, a wrap that skipped thousands, a controller swapped or
reconfigured, a simulator started again with another offset) cannot be counted: the counter
is re-baselined (its new values are the reference for the next reading), the occupancy of the
last good reading stays, and the lot carries the flag ``counter_jump`` for
``COUNTER_JUMP_HOLD`` (24 h) or until its next re-zeroing at ``empty_at``, whichever comes
first. After a long gap the bounds widen with it: an hour's silence allows 910 each way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.city import Lot

from ._decode import CounterReading

__all__ = [
    "COUNTER_JUMP_HOLD", "COUNTER_SLACK", "LANE_VEHICLES_PER_HOUR", "CounterState",
    "apply_counter", "counter_change", "counter_delta", "jump_flagged", "jump_reason",
    "lane_limit", "lot_quality", "rezero_due",
]

LANE_VEHICLES_PER_HOUR = 900  # a barrier lane passes 600-900 vehicles an hour: the upper end
COUNTER_SLACK = 10  # vehicles on top of the lanes' throughput: bursts, timestamp jitter
COUNTER_JUMP_HOLD = timedelta(hours=24)  # how long a lot is flagged after a counter jump


def counter_delta(previous: int, current: int, modulus: int) -> int:
    """Increase of a cumulative counter from ``previous`` to ``current``.

    A counter that goes down either wrapped around (it was near its modulus and is now near
    zero) or was reset (it restarted from zero, so ``current`` counts since the reset).
    """
    if current >= previous:
        return current - previous
    if previous >= modulus * 3 // 4 and current < modulus // 4:
        return current + modulus - previous
    return current


def lane_limit(lot: Lot, elapsed: timedelta) -> int:
    """The most vehicles the lot's lanes can pass one way in ``elapsed``, with the slack."""
    seconds = max(elapsed.total_seconds(), 0.0)
    return math.ceil(lot.lanes * LANE_VEHICLES_PER_HOUR * seconds / 3600) + COUNTER_SLACK


def counter_change(lot: Lot, before: tuple[int, int], after: tuple[int, int],
                   elapsed: timedelta) -> tuple[int, int] | None:
    """Vehicles in and out between readings ``(entries, exits)`` ``elapsed`` apart, or None
    when no way of explaining the change is plausible (the module docstring has the rule)."""
    limit = lane_limit(lot, elapsed)
    modulus = lot.counter_modulus
    (entries_before, exits_before), (entries, exits) = before, after
    explanations = [(counter_delta(entries_before, entries, modulus),
                     counter_delta(exits_before, exits, modulus))]
    if entries < entries_before and exits < exits_before:
        # Both went down: the device restarted from zero (first choice), or both wrapped.
        explanations.insert(0, (entries, exits))
    for came, left in explanations:
        if came <= limit and left <= limit and abs(came - left) <= lot.capacity:
            return came, left
    return None


@dataclass(frozen=True, slots=True)
class CounterState:
    """What ingest keeps per counter-counted lot between messages."""

    occupied: int | None
    entries: int | None
    exits: int | None
    time: datetime | None
    clamped: bool = False  # the newest reading gave a count outside [0, capacity]
    jumped: bool = False  # the newest reading was implausible: re-baselined, count kept


def apply_counter(state: CounterState, reading: CounterReading, lot: Lot) -> CounterState | None:
    """The lot's state after ``reading``, or None when the reading is not newer.

    Cumulative counters make older readings redundant: the newest one already includes
    everything an older one counted, so an out-of-order or redelivered reading changes nothing.
    """
    if state.time is not None and reading.time <= state.time:
        return None
    if reading.occupied is not None:
        return replace(state, occupied=_clamp(reading.occupied, lot.capacity), time=reading.time,
                       clamped=not 0 <= reading.occupied <= lot.capacity, jumped=False)
    assert reading.entries is not None and reading.exits is not None
    if state.entries is None or state.exits is None or state.time is None:
        # First reading: counters installed at zero give the occupancy directly.
        occupied = state.occupied if state.occupied is not None else (
            reading.entries - reading.exits)
    else:
        change = counter_change(lot, (state.entries, state.exits),
                                (reading.entries, reading.exits), reading.time - state.time)
        if change is None:
            # Re-baselined: the new values are the reference from now on; the count stays.
            return replace(state, entries=reading.entries, exits=reading.exits,
                           time=reading.time, jumped=True)
        occupied = (state.occupied or 0) + change[0] - change[1]
    return CounterState(_clamp(occupied, lot.capacity), reading.entries, reading.exits,
                        reading.time, clamped=not 0 <= occupied <= lot.capacity)


def jump_reason(before: CounterState, reading: CounterReading, lot: Lot) -> str:
    """The dead-letter reason of a reading that ``apply_counter`` judged a counter jump."""
    assert before.time is not None
    elapsed = reading.time - before.time
    return (f"counter_jump: entries {before.entries} -> {reading.entries}, exits "
            f"{before.exits} -> {reading.exits} in {elapsed.total_seconds():.0f} s (at most "
            f"{lane_limit(lot, elapsed)} each way and a net change of {lot.capacity}); "
            f"re-baselined, occupied {before.occupied} kept")


def _clamp(occupied: int, capacity: int) -> int:
    return min(max(occupied, 0), capacity)


def lot_quality(lot: Lot, *, stale: bool, fresh_bays: int = 0, stuck_bays: int = 0,
                clamped: bool = False, drift: int | None = None,
                jumped: bool = False, corrected: bool = False) -> tuple[float, list[str]]:
    """A 0..1 score of how far the lot's count can be trusted, and the reasons.

    Bay-counted: the share of bays whose sensor was heard recently and is not stuck. Counter-
    counted: 1, less for a reading that had to be clamped, for a counter jump (``jumped``:
    within ``COUNTER_JUMP_HOLD``, the count carried over a re-baselining may miss the cars of
    that interval) and for the drift the counter had accumulated by its last re-zeroing. A
    count an operator set by hand (``corrected``: within ``COUNTER_JUMP_HOLD`` of it, until the
    next re-zeroing) is flagged ``manual_correction`` and costs nothing: it was counted.
    Stale data scores 0.
    """
    if stale:
        return 0.0, ["stale"]
    flags: list[str] = []
    if lot.counting == "bays":
        silent = max(0, lot.capacity - fresh_bays)
        if stuck_bays:
            flags.append(f"stuck_sensors:{stuck_bays}")
        if silent:
            flags.append(f"silent_sensors:{silent}")
        score = max(0, fresh_bays - stuck_bays) / lot.capacity if lot.capacity else 0.0
    else:
        score = 1.0
        if clamped:
            flags.append("clamped")
            score -= 0.3
        if jumped:
            flags.append("counter_jump")
            score -= 0.3
        if drift:
            flags.append(f"drift:{drift}")
            score -= min(0.7, abs(drift) / max(lot.capacity, 1))
        if corrected:
            flags.append("manual_correction")
    return round(min(1.0, max(0.0, score)), 3), flags


def jump_flagged(jumped_at: datetime | None, now: datetime) -> bool:
    """Whether a lot whose counter last jumped at ``jumped_at`` still carries the flag."""
    return jumped_at is not None and now - jumped_at < COUNTER_JUMP_HOLD


def rezero_due(lot: Lot, rezeroed_on: date | None, now: datetime, tz: ZoneInfo) -> bool:
    """Whether a counter lot known to be empty at ``lot.empty_at`` is to be re-zeroed now.

    Once a day, within the hour after ``empty_at``: a counter that misses cars drifts, and
    the hour the lot is known to be empty is when the true count is known (zero).
    """
    if lot.empty_at is None or lot.counting != "counter":
        return False
    local = now.astimezone(tz)
    start = datetime.combine(local.date(), lot.empty_at, tz)
    return rezeroed_on != local.date() and start <= local < start + timedelta(hours=1)
