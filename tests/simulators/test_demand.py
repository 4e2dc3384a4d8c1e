"""The demand model is believable: each profile peaks where such a lot peaks."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from core.city import City
from simulators.demand import CitySimulation

# Four ordinary weeks of November 2026 (no public holiday in Sachsen-Anhalt in them).
START = datetime(2026, 11, 2, tzinfo=UTC)
WEEKS = 4
DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")


@pytest.fixture(scope="module")
def by_hour_of_week(zeitz: City) -> dict[str, dict[tuple[int, int], float]]:
    """Mean occupancy rate per lot by (local weekday, hour), over four weeks."""
    simulation = CitySimulation(zeitz, START, seed=3)
    sums: dict[str, dict[tuple[int, int], list[float]]] = defaultdict(
        lambda: defaultdict(list))
    capacity = {lot.id: lot.capacity for lot in zeitz.lots}
    for _ in range(WEEKS * 7 * 24 * 60):
        minute = simulation.step()
        local = minute.time.astimezone(zeitz.tz)
        for lot, occupied in zip(zeitz.lots, minute.occupied, strict=True):
            assert 0 <= occupied <= capacity[lot.id], (lot.id, minute.time, occupied)
            sums[lot.id][(local.weekday(), local.hour)].append(occupied / lot.capacity)
    return {lot: {key: sum(v) / len(v) for key, v in hours.items()}
            for lot, hours in sums.items()}


def lots_of(city: City, profile: str) -> list[str]:
    return [lot.id for lot in city.lots if lot.profile == profile]


def peak(rates: dict[tuple[int, int], float]) -> tuple[str, int, float]:
    (day, hour), rate = max(rates.items(), key=lambda item: item[1])
    return DAYS[day], hour, rate


def test_shopping_peaks_on_saturday_late_morning(
        zeitz: City, by_hour_of_week: dict[str, dict[tuple[int, int], float]]) -> None:
    # The garages without a market day on their doorstep; small streets share the market.
    for lot_id in ("zeitz-rossmarkt", "zeitz-wendische-strasse", "zeitz-geraer-strasse"):
        day, hour, rate = peak(by_hour_of_week[lot_id])
        assert (day, 10 <= hour <= 13) == ("Sa", True), (lot_id, day, hour)
        assert 0.6 < rate <= 1.0
    for lot_id in lots_of(zeitz, "shopping"):
        rates = by_hour_of_week[lot_id]
        sunday = max(rates[(6, hour)] for hour in range(24))
        saturday = max(rates[(5, hour)] for hour in range(24))
        assert sunday < 0.5 * saturday, lot_id  # shops are closed on Sundays


def test_commuters_fill_weekdays_8_to_16(
        zeitz: City, by_hour_of_week: dict[str, dict[tuple[int, int], float]]) -> None:
    for lot_id in lots_of(zeitz, "commuter"):
        rates = by_hour_of_week[lot_id]
        working = [rates[(day, hour)] for day in range(5) for hour in range(9, 16)]
        night = [rates[(day, hour)] for day in range(7) for hour in (1, 2, 3)]
        weekend = [rates[(6, hour)] for hour in range(9, 16)]
        assert sum(working) / len(working) > 0.65 and min(working) > 0.5, lot_id
        assert max(night) < 0.1 and max(weekend) < 0.3, lot_id
        day, hour, _ = peak(rates)
        assert day in DAYS[:5] and 8 <= hour <= 16, (lot_id, day, hour)


def test_park_and_ride_is_empty_at_night(
        zeitz: City, by_hour_of_week: dict[str, dict[tuple[int, int], float]]) -> None:
    for lot_id in lots_of(zeitz, "park_and_ride"):
        rates = by_hour_of_week[lot_id]
        assert max(rates[(day, hour)] for day in range(7) for hour in (0, 1, 2, 3)) < 0.05
        assert max(rates[(day, 10)] for day in range(5)) > 0.6, lot_id


def test_residents_are_home_at_night(
        zeitz: City, by_hour_of_week: dict[str, dict[tuple[int, int], float]]) -> None:
    for lot_id in lots_of(zeitz, "residential"):
        rates = by_hour_of_week[lot_id]
        night = sum(rates[(day, 2)] for day in range(5)) / 5
        midday = sum(rates[(day, 13)] for day in range(5)) / 5
        assert night > 0.5 and night > 1.5 * midday, (lot_id, night, midday)


def test_events_fill_their_lots(zeitz: City) -> None:
    concert = next(e for e in zeitz.events if e.kind == "event")
    assert concert.date is not None
    begin = datetime.combine(concert.date, concert.start, zeitz.tz)
    simulation = CitySimulation(zeitz, begin - timedelta(hours=3), seed=5)
    index = [lot.id for lot in zeitz.lots].index(concert.lots[0])
    before = simulation.step().occupied[index]
    during = before
    while simulation.now < begin + timedelta(minutes=30):
        during = simulation.step().occupied[index]
    assert during > before + 0.3 * zeitz.lots[index].capacity


def test_holiday_looks_like_a_sunday(zeitz: City) -> None:
    # Reformation Day 2026 is a Saturday; use Good Friday 2026-04-03 against the Friday after.
    def friday_peak(day: datetime) -> int:
        simulation = CitySimulation(zeitz, day, seed=9)
        index = [lot.id for lot in zeitz.lots].index("zeitz-klinikum")
        return max(simulation.step().occupied[index] for _ in range(24 * 60))

    assert friday_peak(datetime(2026, 4, 2, 22, tzinfo=UTC)) < 0.3 * friday_peak(
        datetime(2026, 4, 9, 22, tzinfo=UTC))


def test_same_seed_same_city_other_seed_other(zeitz: City) -> None:
    def run(seed: int) -> list[tuple[list[int], list[tuple[float, str, bool]]]]:
        simulation = CitySimulation(zeitz, START, seed=seed, warm_up=timedelta(hours=1))
        return [(m.occupied, m.bay_changes) for m in (simulation.step() for _ in range(600))]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_fork_draws_futures_from_the_state_and_leaves_the_city_alone(zeitz: City) -> None:
    tuesday_2pm = datetime(2026, 11, 3, 13, tzinfo=UTC)
    simulation = CitySimulation(zeitz, tuesday_2pm, seed=3, warm_up=timedelta(days=1))
    untouched = CitySimulation(zeitz, tuesday_2pm, seed=3, warm_up=timedelta(days=1))
    twin, same, other = simulation.fork(7), simulation.fork(7), simulation.fork(8)

    assert [m.occupied for m in twin.lots] == [m.occupied for m in simulation.lots]
    assert sum(m.occupied for m in twin.lots) > 300  # a working afternoon: many cars parked
    # Each parked car leaves again from now on, never before it came (+ a minute).
    assert all(max(twin.minute, arrival + 1) <= leave
               for leave, _, _, _, arrival, _ in twin._departures)
    # The redrawn departures are not the original ones.
    assert sorted(d[0] for d in twin._departures) != sorted(
        d[0] for d in simulation._departures)

    def future(city: CitySimulation) -> list[list[int]]:
        return [city.step().occupied for _ in range(120)]

    ahead = future(twin)
    assert ahead == future(same)
    assert ahead != future(other)
    # Forking changed nothing in the city it came from.
    assert future(simulation) == future(untouched)
