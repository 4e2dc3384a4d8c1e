"""Sign rendering rules: what each line of a sign shows. Pure functions, no I/O.

``render(sign, city, observations, now, previous=..., forecasts=...)`` returns the
``SignContent`` and the ``SignState`` to pass as ``previous`` next time. Per line (one lot, or a
group summed):

1. Each lot is judged at ``now`` (``core.status.lot_status`` does the first two steps):
   *closed* outside its opening hours (city time zone), whatever its data;
   *stale* without an observation or count, with a published status ``unknown`` (or one not
   known here), or with ``updated`` older than the lot's ``stale_after_s`` or the sign's
   (the stricter wins); *closed* when ingest published ``closed`` for fresh data (a closure
   it knows of); otherwise its free count, clamped to 0..capacity, counts.
2. A group leaves closed lots out. All closed: the line is closed. Any other lot stale: the
   whole line is stale, as a sum missing a lot looks like a real count and stale is not free.
3. Levels from the free count: *full* at or below the full threshold, *almost full* at or below
   the almost-full one. A threshold is, summed over the line's lots, the most free spaces at
   which the lot's occupancy still reaches ``full_at`` / ``almost_full`` (so a one-lot line
   agrees with ingest's status exactly); capacity 0 is full. Entering a fuller level is
   immediate; leaving one needs free > threshold + margin, margin = max(hysteresis_spaces,
   ceil(hysteresis_fraction x capacity)), so a lot at the edge does not flap.
4. Text: open - the count; almost full - ``almost_full_text``; full - ``full_text``;
   closed - ``closed_text``; stale - ``safe_state`` (label and arrow stay, as on a sign whose
   label is printed). With ``show_forecast``, a line showing one lot, open or almost full, shows
   ``forecast_text`` instead when a forecast row at most ``forecast_horizon_min`` ahead gives
   P(full) = 1 - p_space >= ``forecast_confidence``: the earliest such row, its minutes ahead
   rounded to 5 (at least 5). Rows without p_space never count. Groups get no forecast (the
   chance of space in a sum is not derivable from per-lot chances).
5. Alternative: a line that is full or closed (not stale: then nobody knows it is full) and
   has ``alternative`` shows that lot instead while it is open, fresh and not full - unless
   the sign already shows that lot (a line of its own, or an earlier line routed to it): the
   same lot twice on one sign would read as two car parks. Label and arrow:
   ``alternative_label`` / ``alternative_arrow`` if set, else the lot's name and the line's
   arrow. Switching to it needs free > its full threshold + margin, as if it were leaving
   full.
6. Wiggle: a count within ``wiggle`` of the shown count is held until the shown line is
   ``min_change_interval_s`` old; bigger changes and any other change go out at once.
7. A ``charging`` line shows the free charging points of its lots (``charging``: per lot with
   chargers, how many of its points are free, read with their bays) as ``charging_text``
   ("2 frei"); a lot of the line missing from ``charging`` (no point has reported): the safe
   state. Neither levels, alternative nor forecast apply.
8. Width: label + " " + text fit ``line_width``. The text is never cut; a label that does not
   fit is cut and ends in "." ("Schloss Moritzb.").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from core.city import City, Lot, OpeningHours, Sign, SignDisplay, SignLine
from core.status import lot_status
from signage._content import LineContent, SignContent

__all__ = ["ForecastPoint", "Level", "LineState", "Observation", "SignState", "render"]

Level = Literal["open", "almost_full", "full", "closed", "stale"]
_RANKED: tuple[Level, Level, Level] = ("open", "almost_full", "full")
_PUBLISHED = frozenset({"open", "almost_full", "full", "closed"})


@dataclass(frozen=True, slots=True)
class Observation:
    """A lot's latest published status (the retained MQTT status or its ``lot_state`` row)."""

    free: int | None
    capacity: int
    status: str
    updated: datetime | None


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """One row of a lot's latest forecast: the time it is for and P(at least one free space)."""

    target_time: datetime
    p_space: float | None


@dataclass(frozen=True, slots=True)
class LineState:
    """What one line showed and why, kept between renders for hysteresis and pacing."""

    level: Level  # of the line's own lots, after hysteresis
    alternative_level: Level | None  # of the alternative while the line shows it, else None
    shown: LineContent
    count: int | None  # the count in ``shown.text``, None when the text is not a count
    since: datetime  # when ``shown`` last changed


@dataclass(frozen=True, slots=True)
class SignState:
    """The state of every line of one sign, in the order of the sign's lines."""

    sign_id: str
    lines: tuple[LineState, ...]


@dataclass(frozen=True, slots=True)
class _Count:
    """A line whose lots are open and fresh: the sums the levels are judged on."""

    free: int
    capacity: int
    full_max: int  # free at or below this is full
    almost_max: int  # free at or below this (and above full_max) is almost full


def render(
    sign: Sign,
    city: City,
    observations: Mapping[str, Observation],
    now: datetime,
    *,
    previous: SignState | None = None,
    forecasts: Mapping[str, Sequence[ForecastPoint]] | None = None,
    charging: Mapping[str, int] | None = None,
) -> tuple[SignContent, SignState]:
    """What ``sign`` shows at ``now`` and the state to pass as ``previous`` next time."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("render needs a timezone-aware now")
    # A state from another sign, or from before its lines were reconfigured, is not ours.
    usable = (previous is not None and previous.sign_id == sign.id
              and len(previous.lines) == len(sign.lines))
    # Lots the sign names on a line of their own; routed-to lots join as lines are rendered.
    shown = {line.lots[0] for line in sign.lines
             if len(line.lots) == 1 and line.kind == "parking"}
    states: list[LineState] = []
    for index, line in enumerate(sign.lines):
        if line.kind == "charging":
            states.append(_charging_line(line, sign, charging or {}, now,
                                         previous.lines[index] if usable and previous else None))
            continue
        state = _render_line(line, sign, city, observations, forecasts or {}, now,
                             previous.lines[index] if usable and previous is not None else None,
                             frozenset(shown))
        if state.alternative_level is not None and line.alternative is not None:
            shown.add(line.alternative)
        states.append(state)
    return (SignContent(sign.id, tuple(state.shown for state in states)),
            SignState(sign.id, tuple(states)))


def _render_line(line: SignLine, sign: Sign, city: City,
                 observations: Mapping[str, Observation],
                 forecasts: Mapping[str, Sequence[ForecastPoint]], now: datetime,
                 previous: LineState | None, elsewhere: frozenset[str]) -> LineState:
    display = sign.display
    own = _aggregate(line.lots, sign, city, observations, now)
    level = _settle(own, previous.level if previous else None, display)
    label, arrow, shown_level, counted, shown_lots = line.label, line.arrow, level, own, line.lots
    alternative_level: Level | None = None
    if (line.alternative is not None and line.alternative not in elsewhere
            and level in ("full", "closed")):
        other = _aggregate((line.alternative,), sign, city, observations, now)
        # Not shown before: judge it as if leaving full, so it must have a margin of space.
        before = previous.alternative_level if previous else None
        candidate = _settle(other, before or "full", display)
        if candidate in ("open", "almost_full"):
            alternative_level = shown_level = candidate
            counted, shown_lots = other, (line.alternative,)
            label = line.alternative_label or city.lot(line.alternative).name
            arrow = line.alternative_arrow or line.arrow

    count: int | None = None
    if shown_level == "open" and isinstance(counted, _Count):
        text, count = str(counted.free), counted.free
    else:
        text = _fixed_text(shown_level, display)
    if display.show_forecast and shown_level in ("open", "almost_full") and len(shown_lots) == 1:
        minutes = _minutes_until_full(forecasts.get(shown_lots[0], ()), now, display)
        if minutes is not None:
            text, count = display.forecast_text.format(minutes=minutes), None
    if (count is not None and previous is not None and previous.count is not None
            and (previous.alternative_level is None) == (alternative_level is None)
            and abs(count - previous.count) <= display.wiggle
            and now - previous.since < timedelta(seconds=display.min_change_interval_s)):
        text, count = previous.shown.text, previous.count

    shown = LineContent(_fit(label, text, display.line_width), arrow, text)
    since = previous.since if previous is not None and previous.shown == shown else now
    return LineState(level, alternative_level, shown, count, since)


def _charging_line(line: SignLine, sign: Sign, charging: Mapping[str, int], now: datetime,
                   previous: LineState | None) -> LineState:
    """A line of free charging points: their count, or the safe state while a lot's unknown."""
    display = sign.display
    if all(lot_id in charging for lot_id in line.lots):
        free: int | None = sum(charging[lot_id] for lot_id in line.lots)
        text = display.charging_text.format(free=free)
        level: Level = "open" if free else "full"
    else:
        free, text, level = None, display.safe_state, "stale"
    shown = LineContent(_fit(line.label, text, display.line_width), line.arrow, text)
    since = previous.since if previous is not None and previous.shown == shown else now
    return LineState(level, None, shown, free, since)


def _aggregate(lot_ids: Sequence[str], sign: Sign, city: City,
               observations: Mapping[str, Observation],
               now: datetime) -> _Count | Literal["closed", "stale"]:
    free = capacity = full_max = almost_max = 0
    any_open = False
    for lot_id in lot_ids:
        lot = city.lot(lot_id)
        judged = _judge(lot, observations.get(lot_id), sign, now, city.tz)
        if judged == "closed":
            continue
        if judged == "stale":
            return "stale"
        any_open = True
        lot_free, lot_capacity = judged
        free += lot_free
        capacity += lot_capacity
        full_max += _most_free_reaching(lot_capacity, lot.full_at)
        almost_max += _most_free_reaching(lot_capacity, lot.almost_full)
    return _Count(free, capacity, full_max, almost_max) if any_open else "closed"


def _judge(lot: Lot, seen: Observation | None, sign: Sign, now: datetime,
           tz: ZoneInfo) -> tuple[int, int] | Literal["closed", "stale"]:
    """Rule 1: closed, stale, or (free, capacity) of one lot at ``now``."""
    if not _hours(lot.opening_hours).is_open(now, tz):
        return "closed"
    if (seen is None or seen.updated is None or seen.status not in _PUBLISHED
            or now - seen.updated > timedelta(seconds=min(sign.stale_after_s,
                                                          lot.stale_after_s))):
        return "stale"
    if seen.status == "closed":  # a closed lot publishes no count (core.status)
        return "closed"
    status = lot_status(lot, _hours(lot.opening_hours), seen.free, seen.updated, now, tz)
    if status == "unknown" or seen.free is None:
        return "stale"
    capacity = max(seen.capacity, 0)
    return min(max(seen.free, 0), capacity), capacity


@lru_cache(maxsize=256)
def _hours(text: str) -> OpeningHours:
    return OpeningHours(text)


def _most_free_reaching(capacity: int, fraction: float) -> int:
    """The most free spaces at which occupancy still reaches ``fraction`` (0 if capacity 0)."""
    if capacity <= 0:
        return 0
    # Start from the arithmetic answer, then settle it with ingest's own comparison
    # (1 - free / capacity >= fraction) so float rounding cannot make the two disagree.
    most = min(capacity, max(0, math.floor(capacity * (1 - fraction))))
    while most < capacity and 1 - (most + 1) / capacity >= fraction:
        most += 1
    while most > 0 and not 1 - most / capacity >= fraction:
        most -= 1
    return most


def _settle(line: _Count | Literal["closed", "stale"], previous: Level | None,
            display: SignDisplay) -> Level:
    """Rule 3: the level of ``line`` given the level shown before (hysteresis)."""
    if not isinstance(line, _Count):
        return line
    entered = _RANKED.index(_level(line, 0))
    if previous not in _RANKED:
        return _RANKED[entered]
    margin = max(display.hysteresis_spaces,
                 math.ceil(round(display.hysteresis_fraction * line.capacity, 6)))
    kept = min(_RANKED.index(previous), _RANKED.index(_level(line, margin)))
    return _RANKED[max(entered, kept)]


def _level(line: _Count, margin: int) -> Level:
    if line.free <= line.full_max + margin:
        return "full"
    if line.free <= line.almost_max + margin:
        return "almost_full"
    return "open"


def _fixed_text(level: Level, display: SignDisplay) -> str:
    if level == "almost_full":
        return display.almost_full_text
    if level == "full":
        return display.full_text
    if level == "closed":
        return display.closed_text
    return display.safe_state


def _minutes_until_full(points: Sequence[ForecastPoint], now: datetime,
                        display: SignDisplay) -> int | None:
    """Rule 4: minutes (rounded to 5) until the earliest confident full, or None."""
    horizon = timedelta(minutes=display.forecast_horizon_min)
    for point in sorted(points, key=lambda point: point.target_time):
        ahead = point.target_time - now
        if ahead <= timedelta(0) or ahead > horizon or point.p_space is None:
            continue
        if 1 - point.p_space >= display.forecast_confidence:  # NaN compares False: skipped
            return max(5, 5 * math.floor(ahead.total_seconds() / 300 + 0.5))
    return None


def _fit(label: str, text: str, width: int) -> str:
    """Rule 7: ``label`` cut so that label, a space and ``text`` fit ``width``."""
    room = width - len(text) - (1 if text else 0)
    if len(label) <= room:
        return label
    if room <= 1:
        return label[:max(room, 0)]
    return label[:room - 1].rstrip(" .-/") + "."
