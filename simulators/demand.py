"""The demand model of the city simulator: who arrives where, when, and for how long.

Minute by minute, for every lot: arrivals are a non-homogeneous Poisson process whose rate
follows the lot's profile by hour of week (public holidays of the city's state count as
Sundays), scaled by season, by a day-to-day factor (weather-like, autocorrelated), and by
the events of the city config (markets, concerts). Each car parks for a lognormal dwell
time of its profile. A car that finds its lot full (or closed) drives on to the nearest
open lot with space, or gives up. Seeded: the same seed and start give the same city.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

import holidays
import numpy as np

from core.city import City, Lot, OpeningHours

__all__ = ["PROFILES", "CitySimulation", "LotDemand", "Minute", "Profile", "day_kind"]

_H = 24


def _hours(values: dict[int, float], base: float = 0.0) -> tuple[float, ...]:
    return tuple(values.get(hour, base) for hour in range(_H))


@dataclass(frozen=True)
class Profile:
    """Arrivals per space and hour by local hour of day, and the dwell time distribution."""

    weekday: tuple[float, ...]
    saturday: tuple[float, ...]
    sunday: tuple[float, ...]  # and public holidays
    dwell_median_h: float
    dwell_sigma: float
    season: tuple[float, ...] = (1.0,) * 12  # January .. December

    def rate(self, day_kind: int, hour: int) -> float:
        """Arrivals per space per hour; day_kind 0 = Mon-Fri, 1 = Sat, 2 = Sun/holiday."""
        return (self.weekday, self.saturday, self.sunday)[day_kind][hour]


# Shops in Germany close on Sundays; Saturday late morning is the shopping peak.
_SHOPPING = Profile(
    weekday=_hours({8: .12, 9: .2, 10: .28, 11: .32, 12: .3, 13: .26, 14: .25, 15: .28,
                    16: .32, 17: .3, 18: .2, 19: .08, 20: .03}, .004),
    saturday=_hours({8: .2, 9: .42, 10: .55, 11: .55, 12: .42, 13: .3, 14: .22, 15: .18,
                     16: .12, 17: .06}, .004),
    sunday=_hours({11: .04, 12: .05, 13: .06, 14: .07, 15: .06, 16: .05}, .003),
    dwell_median_h=1.3, dwell_sigma=0.6,
    season=(.85, .88, .95, 1.0, 1.0, .97, .9, .9, 1.0, 1.02, 1.08, 1.22),
)
# Commuters arrive 6-9 and stay a working day.
_COMMUTER = Profile(
    weekday=_hours({5: .03, 6: .13, 7: .3, 8: .24, 9: .08, 10: .04, 11: .03, 12: .03,
                    13: .02, 14: .02}, .003),
    saturday=_hours({7: .05, 8: .06, 9: .05, 10: .04}, .004),
    sunday=_hours({}, .003),
    dwell_median_h=8.4, dwell_sigma=0.22,
    season=(1.0, 1.0, 1.0, .97, .97, .97, .85, .82, .97, 1.0, 1.0, .94),
)
# Park and ride: early trains, empty at night and at the weekend.
_PARK_AND_RIDE = Profile(
    weekday=_hours({5: .08, 6: .26, 7: .26, 8: .12, 9: .04, 10: .02, 11: .02, 12: .02}),
    saturday=_hours({7: .03, 8: .05, 9: .05, 10: .04, 11: .03}),
    sunday=_hours({9: .02, 10: .03, 11: .02}),
    dwell_median_h=9.2, dwell_sigma=0.25,
    season=(1.0, 1.0, 1.0, .97, .97, .97, .82, .8, .97, 1.0, 1.0, .93),
)
# Residents come home in the evening and leave in the morning.
_RESIDENTIAL = Profile(
    weekday=_hours({15: .07, 16: .14, 17: .22, 18: .22, 19: .15, 20: .1, 21: .06, 22: .04},
                   .012),
    saturday=_hours({12: .05, 13: .05, 14: .05, 15: .06, 16: .08, 17: .1, 18: .1, 19: .08,
                     20: .06, 21: .04}, .012),
    sunday=_hours({14: .05, 15: .06, 16: .08, 17: .1, 18: .1, 19: .08, 20: .06, 21: .04},
                  .012),
    dwell_median_h=13.0, dwell_sigma=0.4,
)
# An event venue: little everyday demand; its peaks come from the event calendar.
_EVENT = Profile(
    weekday=_hours({9: .05, 10: .07, 11: .08, 12: .08, 13: .08, 14: .08, 15: .08, 16: .07,
                    17: .05, 18: .03}, .003),
    saturday=_hours({10: .1, 11: .12, 12: .12, 13: .12, 14: .12, 15: .12, 16: .1, 17: .06},
                    .004),
    sunday=_hours({10: .1, 11: .13, 12: .13, 13: .13, 14: .13, 15: .12, 16: .1, 17: .05},
                  .004),
    dwell_median_h=2.0, dwell_sigma=0.5,
    season=(.6, .65, .8, .95, 1.1, 1.2, 1.3, 1.3, 1.1, .9, .75, .9),
)

PROFILES: dict[str, Profile] = {
    "shopping": _SHOPPING, "commuter": _COMMUTER, "park_and_ride": _PARK_AND_RIDE,
    "residential": _RESIDENTIAL, "event": _EVENT,
}

def day_kind(local_day: date, public_holidays: holidays.HolidayBase) -> int:
    """0 Monday to Friday, 1 Saturday, 2 Sunday or a public holiday (``Profile.rate``)."""
    if local_day.weekday() == 6 or local_day in public_holidays:
        return 2
    return 1 if local_day.weekday() == 5 else 0


class LotDemand:
    """The demand model's usual arrivals at one space of each lot of ``city`` (its profile by
    hour of week, public holidays as Sundays, season; no events, no day-to-day factor): what
    other simulators that need "how busy is this lot now" follow."""

    def __init__(self, city: City) -> None:
        self.city = city
        self._holidays = holidays.country_holidays("DE", subdiv=city.city.state)

    def per_space_hour(self, lot_id: str, moment: datetime) -> float:
        """Cars arriving per space and hour at ``lot_id`` at ``moment``."""
        profile = PROFILES[self.city.lot(lot_id).profile]
        local = moment.astimezone(self.city.tz)
        return (profile.rate(day_kind(local.date(), self._holidays), local.hour)
                * profile.season[local.month - 1])


DIVERT_PROBABILITY = 0.6
DIVERT_RADIUS_M = 1500.0
DAY_FACTOR_MEMORY = 0.6  # AR(1) of the log day factor: bad weather lasts a few days
DAY_FACTOR_NOISE = 0.09
WARM_UP = timedelta(days=2)


@dataclass(slots=True)
class Minute:
    """What happened in one simulated minute."""

    time: datetime  # the start of the minute, UTC
    occupied: list[int]  # per lot, at the end of the minute (index as City.lots)
    entries: list[int]  # cars in, per lot, during the minute
    exits: list[int]  # cars out
    bay_changes: list[tuple[float, str, bool]] = field(default_factory=list)
    # (second within the minute, bay id, occupied), in time order


@dataclass(frozen=True, slots=True)
class _Demand:
    """Extra arrivals at one lot from an event: minutes [first, last), and when they leave."""

    lot: int
    first: int
    last: int
    per_minute: float
    leave_at: float | None  # a minute (for events); None: the lot's usual dwell (markets)


@dataclass(slots=True)
class _LotModel:
    lot: Lot
    hours: OpeningHours
    profile: Profile
    mu: float
    bays: list[str]  # empty for counter lots
    free_bays: list[int]
    occupied: int = 0
    neighbours: list[int] = field(default_factory=list)


def _distance_m(a: Lot, b: Lot) -> float:
    lat = math.radians((a.latitude + b.latitude) / 2)
    dx = (a.longitude - b.longitude) * 111_320 * math.cos(lat)
    dy = (a.latitude - b.latitude) * 110_540
    return math.hypot(dx, dy)


class CitySimulation:
    """The city minute by minute from ``start``; iterate it or call ``step()``."""

    def __init__(self, city: City, start: datetime, *, seed: int = 1,
                 warm_up: timedelta = WARM_UP) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.city = city
        self.tz: ZoneInfo = city.tz
        self.rng = np.random.default_rng(seed)
        self._holidays = holidays.country_holidays("DE", subdiv=city.city.state)
        self.lots = [self._model(lot) for lot in city.lots]
        for index, model in enumerate(self.lots):
            others = sorted((_distance_m(model.lot, other.lot), j)
                            for j, other in enumerate(self.lots) if j != index)
            model.neighbours = [j for d, j in others if d <= DIVERT_RADIUS_M]
        # (minute, seq, lot, bay, arrival minute, whether the dwell came from the profile)
        self._departures: list[tuple[float, int, int, int, float, bool]] = []
        self._seq = 0
        self._day: date | None = None
        self._day_factor = 0.0
        self._day_rates: np.ndarray = np.zeros((len(self.lots), _H))
        self._events: list[_Demand] = []
        self.minute = math.floor((start - warm_up).timestamp() / 60)
        end = math.floor(start.timestamp() / 60)
        while self.minute < end:
            self.step()

    def _model(self, lot: Lot) -> _LotModel:
        profile = PROFILES[lot.profile]
        bays = [bay.id for bay in lot.all_bays()] if lot.counting == "bays" else []
        return _LotModel(lot, OpeningHours(lot.opening_hours), profile,
                         math.log(profile.dwell_median_h * 60), bays, list(range(len(bays))))

    @property
    def now(self) -> datetime:
        """The start of the next minute to simulate (UTC)."""
        return datetime.fromtimestamp(self.minute * 60, UTC)

    def __iter__(self) -> Iterator[Minute]:
        while True:
            yield self.step()

    def _new_day(self, local_day: date) -> None:
        self._day = local_day
        self._day_factor = (DAY_FACTOR_MEMORY * self._day_factor
                            + self.rng.normal(0.0, DAY_FACTOR_NOISE))
        kind = day_kind(local_day, self._holidays)
        scale = math.exp(self._day_factor)
        for index, model in enumerate(self.lots):
            season = model.profile.season[local_day.month - 1]
            self._day_rates[index] = [
                model.lot.capacity * model.profile.rate(kind, hour) * season * scale / 60
                for hour in range(_H)]
        self._events = []
        for event in self.city.events:
            if not event.occurs_on(local_day):
                continue
            begin = datetime.combine(local_day, event.start, self.tz)
            finish = datetime.combine(local_day, event.end, self.tz)
            if event.kind == "event":  # arrive in the hour before, leave at the end
                arrive_from, arrive_to = begin - timedelta(minutes=60), begin
            else:  # a market: people come and go while it runs
                arrive_from, arrive_to = begin, finish - timedelta(minutes=30)
            share = sum(self.city.lot(lot_id).capacity for lot_id in event.lots)
            span = max(1, int((arrive_to - arrive_from).total_seconds() // 60))
            first = int(arrive_from.timestamp() // 60)
            leave_at = finish.timestamp() / 60 if event.kind == "event" else None
            for lot_id in event.lots:
                index = next(i for i, m in enumerate(self.lots) if m.lot.id == lot_id)
                per_minute = event.cars * self.lots[index].lot.capacity / share / span
                self._events.append(_Demand(index, first, first + span, per_minute, leave_at))

    def step(self) -> Minute:
        """Simulate one minute and say what happened."""
        minute = self.minute
        moment = datetime.fromtimestamp(minute * 60, UTC)
        local = moment.astimezone(self.tz)
        if local.date() != self._day:
            self._new_day(local.date())
        n = len(self.lots)
        entries, exits = [0] * n, [0] * n
        changes: list[tuple[float, str, bool]] = []
        # Arrivals (the profile's rate plus any event's) at random seconds of the minute,
        # taken in time order together with the departures due in it: a car finds the lot
        # as it is at that second.
        rates = self._day_rates[:, local.hour].copy()
        for demand in self._events:
            if demand.first <= minute < demand.last:
                rates[demand.lot] += demand.per_minute
        counts = self.rng.poisson(rates)
        arrivals = sorted((minute + float(self.rng.uniform(0, 1)), wanted)
                          for wanted in map(int, np.flatnonzero(counts))
                          for _ in range(int(counts[wanted])))
        for at, wanted in arrivals:
            self._depart_until(at, minute, exits, changes)
            target = self._find_space(wanted, moment)
            if target is not None:
                dwell, drawn = self._dwell(wanted, target, minute)
                self._park(target, at, dwell, drawn, entries, changes, minute)
        self._depart_until(minute + 1, minute, exits, changes)
        self.minute += 1
        return Minute(moment, [m.occupied for m in self.lots], entries, exits, changes)

    def _depart_until(self, until: float, minute: int, exits: list[int],
                      changes: list[tuple[float, str, bool]]) -> None:
        """Let every car due to leave before ``until`` (a minute, fractional) go."""
        while self._departures and self._departures[0][0] < until:
            leave, _, index, bay, _, _ = heapq.heappop(self._departures)
            model = self.lots[index]
            model.occupied -= 1
            exits[index] += 1
            if bay >= 0:
                model.free_bays.append(bay)
                changes.append(((leave - minute) * 60, model.bays[bay], False))

    def _find_space(self, index: int, moment: datetime) -> int | None:
        model = self.lots[index]
        if model.occupied < model.lot.capacity and model.hours.is_open(moment, self.tz):
            return index
        if self.rng.random() >= DIVERT_PROBABILITY:
            return None
        for other in model.neighbours:
            candidate = self.lots[other]
            if (candidate.occupied < candidate.lot.capacity
                    and candidate.hours.is_open(moment, self.tz)):
                return other
        return None

    def _dwell(self, wanted: int, index: int, minute: int) -> tuple[float, bool]:
        """Minutes the car stays, and whether they were drawn from the profile of the lot it
        parks at (else: its event's end)."""
        for demand in self._events:
            if (demand.lot == wanted and demand.leave_at is not None
                    and demand.first <= minute < demand.last):
                return max(20.0, demand.leave_at - minute + float(self.rng.normal(10, 12))), False
        model = self.lots[index]
        return float(self.rng.lognormal(model.mu, model.profile.dwell_sigma)), True

    def fork(self, seed: int) -> CitySimulation:
        """A copy of the city as it is now that goes on with random numbers of its own
        (``seed``): what happens next is drawn again, including when each parked car leaves
        (from its lot's dwell distribution given how long it has stayed; an event's cars
        keep leaving at its end). Many forks sample the city's possible futures."""
        shared: list[object] = [self.city, self._holidays]
        for model in self.lots:  # the city's parts never change: the twin shares them
            shared += [model.lot, model.hours, model.profile]
        twin = copy.deepcopy(self, memo={id(part): part for part in shared})
        twin.rng = np.random.default_rng(seed)
        normal = NormalDist()
        for position, entry in enumerate(twin._departures):
            _, seq, index, bay, arrival, drawn = entry
            if not drawn:
                continue
            model = twin.lots[index]
            sigma = model.profile.dwell_sigma
            stayed = max(twin.minute - arrival, 1e-6)
            # Inverse CDF of the lognormal dwell truncated below at the time stayed.
            low = normal.cdf((math.log(stayed) - model.mu) / sigma)
            u = min(low + (1.0 - low) * float(twin.rng.uniform()), 1.0 - 1e-12)
            dwell = math.exp(model.mu + sigma * normal.inv_cdf(u))
            twin._departures[position] = (arrival + max(dwell, 1.0), seq, index, bay,
                                          arrival, drawn)
        heapq.heapify(twin._departures)
        return twin

    def _park(self, index: int, at: float, dwell: float, drawn: bool, entries: list[int],
              changes: list[tuple[float, str, bool]], minute: int) -> None:
        model = self.lots[index]
        model.occupied += 1
        entries[index] += 1
        bay = -1
        if model.bays:
            pick = int(self.rng.integers(len(model.free_bays)))
            model.free_bays[pick], model.free_bays[-1] = model.free_bays[-1], model.free_bays[pick]
            bay = model.free_bays.pop()
            changes.append(((at - minute) * 60, model.bays[bay], True))
        self._seq += 1
        heapq.heappush(self._departures, (at + max(dwell, 1.0), self._seq, index, bay, at,
                                          drawn))
