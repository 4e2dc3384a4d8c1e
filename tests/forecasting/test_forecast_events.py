"""The forecaster takes the events planners entered in the console (table ``events``) as it
takes the city config's: ``event_calendar`` reads both, the event feature is set over a console
event's window (from an hour before it), and a model trained before an event was entered
forecasts with it."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from core.city import City, DatedEvent, Event
from forecasting import GradientBoostingForecaster, Panel, event_calendar
from forecasting._features import LotStats, panel_grid
from forecasting._service import _with_events

START = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
BERLIN = "Europe/Berlin"


def _enter(conn: psycopg.Connection[Any], city: str, name: str, starts: str, ends: str,
           lots: list[str], closed: list[str] | None = None) -> None:
    conn.execute(
        "INSERT INTO events (city, name, starts, ends, lots, closed_lots, created_by, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, 'paul', %s)",
        (city, name, datetime.fromisoformat(starts), datetime.fromisoformat(ends), lots,
         closed or [], START))


def _flags(panel: Panel, steps: int, events: Any) -> Any:
    stats = LotStats(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros((2, 1)))
    return panel_grid(panel, steps, lot_stats=stats, country=None, subdiv=None,
                      events=events).event


def test_a_console_event_is_in_the_event_feature_over_its_window_beside_the_configs(
        conn: psycopg.Connection[Any], city: City) -> None:
    garage, street = f"{city.id}-garage", f"{city.id}-street"
    market = Event(name="Wochenmarkt", kind="market", lots=(street,), weekly="Sa",
                   start=time(8, 0), end=time(12, 0), cars=40)
    configured = city.model_copy(update={"events": (market,)})
    # A concert on Saturday evening to past midnight (a window no config event can have).
    _enter(conn, city.id, "Konzert", "2026-06-06T20:00:00+02:00", "2026-06-07T01:00:00+02:00",
           [garage])
    _enter(conn, "elsewhere", "Fußball", "2026-06-03T18:00:00+02:00",
           "2026-06-03T21:00:00+02:00", [garage])  # another city's
    _enter(conn, city.id, "Bauarbeiten", "2026-06-02T06:00:00+02:00",
           "2026-06-02T18:00:00+02:00", [], closed=[garage])  # no lot with more demand
    calendar = event_calendar(conn, configured)
    assert calendar == (market, DatedEvent(
        name="Konzert", lots=(garage,), starts=datetime.fromisoformat("2026-06-06T18:00:00Z"),
        ends=datetime.fromisoformat("2026-06-06T23:00:00Z")))
    steps = 7 * 96
    panel = Panel((garage, street), np.array([100.0, 10.0]), START, np.full((2, steps), 5.0),
                  BERLIN)
    flags = _flags(panel, steps, calendar)
    times = pd.date_range(START, periods=steps, freq="15min")
    concert = ((times >= pd.Timestamp("2026-06-06T19:00:00+02:00"))
               & (times < pd.Timestamp("2026-06-07T01:00:00+02:00")))
    np.testing.assert_array_equal(flags[0], concert.astype(float))
    local = times.tz_convert(BERLIN)
    saturday = (local.day_of_week == 5) & (local.hour >= 7) & (local.hour < 12)
    np.testing.assert_array_equal(flags[1], saturday.astype(float))
    # Without the database's events, the garage has no flag at all.
    assert not _flags(panel, steps, city.events)[0].any()


def test_a_model_trained_before_an_event_was_entered_forecasts_with_it(
        conn: psycopg.Connection[Any], city: City) -> None:
    garage, street = f"{city.id}-garage", f"{city.id}-street"
    steps = 3 * 7 * 96
    rng = np.random.default_rng(3)
    free = np.clip(50 + rng.normal(0, 5, (2, steps)), 0, 100)
    panel = Panel((garage, street), np.array([100.0, 100.0]), START, free, BERLIN)
    model = GradientBoostingForecaster(max_iter=5, calibration_days=0).fit(panel)
    _enter(conn, city.id, "Konzert", "2026-06-20T20:00:00+02:00", "2026-06-20T23:00:00+02:00",
           [street])
    current = _with_events(model, event_calendar(conn, city))
    assert model.events == ()  # the stored model is left as it was
    grid = current._grid(panel, steps, lot_stats=model.lot_stats_)
    times = pd.date_range(START, periods=steps, freq="15min")
    on = ((times >= pd.Timestamp("2026-06-20T19:00:00+02:00"))
          & (times < pd.Timestamp("2026-06-20T23:00:00+02:00")))
    np.testing.assert_array_equal(grid.event[1], on.astype(float))
    assert not grid.event[0].any()
    assert not model._grid(panel, steps, lot_stats=model.lot_stats_).event.any()
