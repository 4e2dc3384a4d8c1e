"""Sign rendering rules (signage/_render.py): tables of cases, every transition. No services."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.city import City, Lot, OpeningHours, Sign, load_city
from core.status import lot_status
from signage import (
    ForecastPoint,
    LineContent,
    Observation,
    SignContent,
    SignState,
    render,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEDNESDAY = datetime(2024, 7, 3, 10, 0, tzinfo=UTC)  # 12:00 in Berlin (CEST)
SATURDAY = datetime(2024, 7, 6, 10, 0, tzinfo=UTC)
STALE = -1  # in a step: the lot's observation is 1000 s old
NONE = -2  # in a step: the lot has no observation at all


def _lot(lot_id: str, name: str, capacity: int, **extra: Any) -> dict[str, Any]:
    return {"id": lot_id, "name": name, "kind": "garage", "counting": "counter",
            "capacity": capacity, "latitude": 51.05, "longitude": 12.13, **extra}


CITY = City.model_validate({
    "city": {"id": "t", "name": "Teststadt", "timezone": "Europe/Berlin"},
    "lots": [
        _lot("p-main", "Parkhaus Altmarkt", 100),  # almost full at <= 10 free, full at 0
        _lot("p-alt", "Parkhaus Roßmarkt", 50),  # almost full at <= 5 free
        _lot("p-big", "Parkhaus Groß", 500),  # margin 2 % = 10 spaces
        _lot("p-edge", "Parkdeck Rand", 40, almost_full=0.8, full_at=0.95),  # <= 8, <= 2 free
        _lot("p-quick", "Parkplatz Schnell", 100, stale_after_s=60),
        _lot("p-day", "Parkplatz Tag", 40, opening_hours="Mo-Fr 06:00-22:00"),
        _lot("p-night", "Parkplatz Nacht", 30, opening_hours="Fr-Sa 20:00-02:00"),
        _lot("p-dst", "Parkplatz Sommerzeit", 20, opening_hours="Mo-Su 07:00-20:00"),
        _lot("p-g1", "Gruppe Eins", 60),  # almost full at <= 6 free
        _lot("p-empty", "Parkplatz Null", 0),
    ],
})


def _sign(*lines: dict[str, Any], sign_id: str = "s1", **display: Any) -> Sign:
    return Sign.model_validate({
        "id": sign_id, "name": "Einfahrt", "driver": "http", "address": "http://127.0.0.1:1/",
        "latitude": 51.06, "longitude": 12.14, "lines": list(lines), "display": display,
    })


def _line(*lots: str, label: str = "Altmarkt", **extra: Any) -> dict[str, Any]:
    return {"lots": list(lots), "label": label, "arrow": "straight", **extra}


def _observations(now: datetime, frees: Mapping[str, int],
                  statuses: Mapping[str, str] | None = None) -> dict[str, Observation]:
    """Fresh observations (10 s old) of ``frees``; STALE: 1000 s old; NONE: left out."""
    seen: dict[str, Observation] = {}
    for lot_id, free in frees.items():
        if free == NONE:
            continue
        age = 1000 if free == STALE else 10
        status = (statuses or {}).get(lot_id, "open")
        seen[lot_id] = Observation(50 if free == STALE else free, CITY.lot(lot_id).capacity,
                                   status, now - timedelta(seconds=age))
    return seen


def _run(sign: Sign, steps: Sequence[tuple[float, Mapping[str, int]]],
         start: datetime = WEDNESDAY,
         forecasts: Mapping[str, Sequence[ForecastPoint]] | None = None) -> list[LineContent]:
    """Render ``sign`` at each (seconds after start, frees) step; line 0 of each render."""
    state: SignState | None = None
    shown: list[LineContent] = []
    for seconds, frees in steps:
        now = start + timedelta(seconds=seconds)
        content, state = render(sign, CITY, _observations(now, frees), now, previous=state,
                                 forecasts=forecasts)
        shown.append(content.lines[0])
    return shown


def _texts(sign: Sign, lot_id: str, frees: Sequence[int], gap: float = 60) -> list[str]:
    """Texts of a one-lot line over ``frees``, ``gap`` seconds apart."""
    steps = [(index * gap, {lot_id: free}) for index, free in enumerate(frees)]
    return [line.text for line in _run(sign, steps)]


# --------------------------------------------------------------------------------------------
# Levels and hysteresis (steps a minute apart, so the wiggle rule never holds a count)
# --------------------------------------------------------------------------------------------

# (case id, lot, display settings, free counts in turn, texts expected in turn)
HYSTERESIS: list[tuple[str, str, dict[str, Any], list[int], list[str]]] = [
    ("open stays open above almost full", "p-main", {}, [50, 11], ["50", "11"]),
    ("open to almost full at the threshold", "p-main", {}, [11, 10], ["11", "fast voll"]),
    ("almost full holds within the margin, no flap", "p-main", {},
     [10, 11, 10, 12, 11, 12], ["fast voll"] * 6),
    ("almost full to open beyond the margin", "p-main", {}, [10, 13], ["fast voll", "13"]),
    ("almost full to full", "p-main", {}, [10, 0], ["fast voll", "besetzt"]),
    ("open to full at once", "p-main", {}, [50, 0], ["50", "besetzt"]),
    ("full holds within the margin, no flap", "p-main", {},
     [0, 1, 2, 0, 1, 2], ["besetzt"] * 6),
    ("full to almost full beyond the margin", "p-main", {}, [0, 3], ["besetzt", "fast voll"]),
    ("full to almost full keeps the almost-full margin", "p-main", {},
     [0, 12, 13], ["besetzt", "fast voll", "13"]),
    ("full to open at once on a big jump", "p-main", {}, [0, 60], ["besetzt", "60"]),
    ("one car at the edge of full", "p-main", {},
     [1, 0, 1, 0, 1], ["fast voll", "besetzt", "besetzt", "besetzt", "besetzt"]),
    ("margin is 2 % of a big lot", "p-big", {},
     [0, 10, 11, 50, 60, 61], ["besetzt", "besetzt", "fast voll", "fast voll", "fast voll",
                               "61"]),
    ("full_at below 1", "p-edge", {},
     [3, 2, 4, 5, 10, 11], ["fast voll", "besetzt", "besetzt", "fast voll", "fast voll", "11"]),
    ("no margin configured: edges flap", "p-main",
     {"hysteresis_spaces": 0, "hysteresis_fraction": 0},
     [10, 11, 0, 1], ["fast voll", "11", "besetzt", "fast voll"]),
    ("margin in spaces wins over a smaller fraction", "p-main", {"hysteresis_spaces": 5},
     [0, 5, 6], ["besetzt", "besetzt", "fast voll"]),
    ("stale forgets the level: back at the raw level", "p-main", {},
     [0, STALE, 2], ["besetzt", "--", "fast voll"]),
    ("custom texts", "p-main", {"full_text": "BESETZT", "almost_full_text": "wenig frei"},
     [10, 0], ["wenig frei", "BESETZT"]),
]


@pytest.mark.parametrize(("lot_id", "display", "frees", "expected"),
                         [case[1:] for case in HYSTERESIS], ids=[case[0] for case in HYSTERESIS])
def test_levels_and_hysteresis(lot_id: str, display: dict[str, Any], frees: list[int],
                               expected: list[str]) -> None:
    assert _texts(_sign(_line(lot_id), **display), lot_id, frees) == expected


@pytest.mark.parametrize(("capacity", "almost_full", "full_at"), [
    (100, 0.9, 1.0), (100, 0.9, 0.95), (7, 0.85, 0.9), (3, 1 / 3, 2 / 3), (333, 0.1, 0.3),
    (10, 0.7, 0.7), (1, 0.5, 1.0),
])
def test_first_render_agrees_with_ingest_status(capacity: int, almost_full: float,
                                                full_at: float) -> None:
    """Without history a one-lot line shows exactly ingest's status, at every count."""
    lot = Lot.model_validate(_lot("p-x", "X", capacity, almost_full=almost_full,
                                  full_at=full_at))
    city = CITY.model_copy(update={"lots": (lot,)})
    sign = _sign(_line("p-x"))
    as_text = {"full": "besetzt", "almost_full": "fast voll"}
    for free in range(capacity + 1):
        seen = Observation(free, capacity, "open", WEDNESDAY - timedelta(seconds=10))
        content, _ = render(sign, city, {"p-x": seen}, WEDNESDAY)
        status = lot_status(lot, OpeningHours("24/7"), free, seen.updated, WEDNESDAY, BERLIN)
        assert content.lines[0].text == as_text.get(status, str(free)), (free, status)


# --------------------------------------------------------------------------------------------
# Opening hours: closed whatever the data, across midnight, daylight saving time
# --------------------------------------------------------------------------------------------


def _berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


# (case id, lot, now, expected text; the lot has 7 free spaces, fresh)
OPENING: list[tuple[str, str, datetime, str]] = [
    ("weekday lot open at noon", "p-day", WEDNESDAY, "7"),
    ("weekday lot closed at the weekend", "p-day", SATURDAY, "geschlossen"),
    ("closed a minute before opening (CEST)", "p-day", _berlin(2024, 7, 3, 5, 59),
     "geschlossen"),
    ("open at the opening minute (CEST)", "p-day", _berlin(2024, 7, 3, 6, 0), "7"),
    ("open a minute before closing", "p-day", _berlin(2024, 7, 3, 21, 59), "7"),
    ("closed at the closing minute", "p-day", _berlin(2024, 7, 3, 22, 0), "geschlossen"),
    ("04:00 UTC is 06:00 in summer: open", "p-day", datetime(2024, 7, 3, 4, 0, tzinfo=UTC),
     "7"),
    ("04:00 UTC is 05:00 in winter: closed", "p-day", datetime(2024, 1, 10, 4, 0, tzinfo=UTC),
     "geschlossen"),
    ("night lot closed Friday before 20:00", "p-night", _berlin(2024, 7, 5, 19, 59),
     "geschlossen"),
    ("night lot open Friday 20:00", "p-night", _berlin(2024, 7, 5, 20, 0), "7"),
    ("night lot open Friday 23:30", "p-night", _berlin(2024, 7, 5, 23, 30), "7"),
    ("Friday's night runs past midnight into Saturday", "p-night",
     _berlin(2024, 7, 6, 1, 59), "7"),
    ("closed at 02:00 Saturday", "p-night", _berlin(2024, 7, 6, 2, 0), "geschlossen"),
    ("Saturday's night runs into Sunday", "p-night", _berlin(2024, 7, 7, 1, 0), "7"),
    ("no Sunday night: closed early Monday", "p-night", _berlin(2024, 7, 8, 1, 0),
     "geschlossen"),
    ("no Thursday night", "p-night", _berlin(2024, 7, 4, 23, 0), "geschlossen"),
    ("spring forward: Saturday 05:30 UTC is 06:30 CET, closed", "p-dst",
     datetime(2024, 3, 30, 5, 30, tzinfo=UTC), "geschlossen"),
    ("spring forward: Sunday 05:30 UTC is 07:30 CEST, open", "p-dst",
     datetime(2024, 3, 31, 5, 30, tzinfo=UTC), "7"),
    ("fall back: Saturday 05:30 UTC is 07:30 CEST, open", "p-dst",
     datetime(2024, 10, 26, 5, 30, tzinfo=UTC), "7"),
    ("fall back: Sunday 05:30 UTC is 06:30 CET, closed", "p-dst",
     datetime(2024, 10, 27, 5, 30, tzinfo=UTC), "geschlossen"),
    ("night past midnight: 00:59 UTC on the spring-forward night is 01:59 CET, open",
     "p-night", datetime(2024, 3, 31, 0, 59, tzinfo=UTC), "7"),
    ("night past midnight: 01:00 UTC on the spring-forward night is 03:00 CEST, closed",
     "p-night", datetime(2024, 3, 31, 1, 0, tzinfo=UTC), "geschlossen"),
]


@pytest.mark.parametrize(("lot_id", "now", "expected"), [case[1:] for case in OPENING],
                         ids=[case[0] for case in OPENING])
def test_opening_hours(lot_id: str, now: datetime, expected: str) -> None:
    content, _ = render(_sign(_line(lot_id)), CITY, _observations(now, {lot_id: 7}), now)
    assert content.lines[0].text == expected


# (case id, free or STALE/NONE, published status, expected text), on Saturday or Wednesday
CLOSED: list[tuple[str, datetime, int, str, str]] = [
    ("outside hours beats no data", SATURDAY, NONE, "open", "geschlossen"),
    ("outside hours beats stale data", SATURDAY, STALE, "open", "geschlossen"),
    ("outside hours beats a published open", SATURDAY, 7, "open", "geschlossen"),
    ("published closed with fresh data is closed", WEDNESDAY, 7, "closed", "geschlossen"),
    ("published closed with stale data is stale", WEDNESDAY, STALE, "closed", "--"),
    ("published open within hours shows the count", WEDNESDAY, 7, "open", "7"),
]


@pytest.mark.parametrize(("now", "free", "status", "expected"), [case[1:] for case in CLOSED],
                         ids=[case[0] for case in CLOSED])
def test_closed(now: datetime, free: int, status: str, expected: str) -> None:
    seen = _observations(now, {"p-day": free}, {"p-day": status})
    content, _ = render(_sign(_line("p-day")), CITY, seen, now)
    assert content.lines[0].text == expected


# --------------------------------------------------------------------------------------------
# Stale data: the safe state, never a number
# --------------------------------------------------------------------------------------------

NOW = WEDNESDAY
FRESH = NOW - timedelta(seconds=10)

# (case id, lot, observation or None, stale?)
STALENESS: list[tuple[str, str, Observation | None, bool]] = [
    ("no observation", "p-main", None, True),
    ("never updated", "p-main", Observation(50, 100, "unknown", None), True),
    ("no count", "p-main", Observation(None, 100, "unknown", FRESH), True),
    ("ingest published unknown", "p-main", Observation(50, 100, "unknown", FRESH), True),
    ("a status this version does not know", "p-main", Observation(50, 100, "maybe", FRESH),
     True),
    ("older than the sign's limit", "p-main",
     Observation(50, 100, "open", NOW - timedelta(seconds=301)), True),
    ("exactly the sign's limit is still fresh", "p-main",
     Observation(50, 100, "open", NOW - timedelta(seconds=300)), False),
    ("older than the lot's stricter limit", "p-quick",
     Observation(50, 100, "open", NOW - timedelta(seconds=61)), True),
    ("within the lot's stricter limit", "p-quick",
     Observation(50, 100, "open", NOW - timedelta(seconds=60)), False),
    ("stale while full is still stale", "p-main",
     Observation(0, 100, "full", NOW - timedelta(seconds=900)), True),
]


@pytest.mark.parametrize("safe_state", ["--", ""])
@pytest.mark.parametrize(("lot_id", "seen", "stale"), [case[1:] for case in STALENESS],
                         ids=[case[0] for case in STALENESS])
def test_stale_shows_the_safe_state(lot_id: str, seen: Observation | None, stale: bool,
                                    safe_state: str) -> None:
    sign = _sign(_line(lot_id), safe_state=safe_state)
    content, _ = render(sign, CITY, {lot_id: seen} if seen else {}, NOW)
    expected = safe_state if stale else "50"
    assert content.lines[0] == LineContent("Altmarkt", "straight", expected)


# --------------------------------------------------------------------------------------------
# Group lines
# --------------------------------------------------------------------------------------------

GROUP = ("p-g1", "p-edge", "p-day")  # thresholds: full <= 0 + 2 + 0, almost <= 6 + 8 + 4

# (case id, now, frees, expected text)
GROUPS: list[tuple[str, datetime, dict[str, int], str]] = [
    ("sum of the lots", WEDNESDAY, {"p-g1": 30, "p-edge": 20, "p-day": 10}, "60"),
    ("a closed lot is left out", SATURDAY, {"p-g1": 30, "p-edge": 20, "p-day": 10}, "50"),
    ("a closed lot without data is left out", SATURDAY, {"p-g1": 30, "p-edge": 20,
                                                         "p-day": NONE}, "50"),
    ("one stale lot makes the line stale", WEDNESDAY,
     {"p-g1": 30, "p-edge": STALE, "p-day": 10}, "--"),
    ("one missing lot makes the line stale", WEDNESDAY,
     {"p-g1": 30, "p-edge": NONE, "p-day": 10}, "--"),
    ("full at the summed full threshold", WEDNESDAY, {"p-g1": 0, "p-edge": 2, "p-day": 0},
     "besetzt"),
    ("almost full at the summed threshold", WEDNESDAY, {"p-g1": 6, "p-edge": 8, "p-day": 4},
     "fast voll"),
    ("one lot full, the others with space", WEDNESDAY, {"p-g1": 0, "p-edge": 0, "p-day": 40},
     "40"),
    ("negative and excess counts are clamped per lot", WEDNESDAY,
     {"p-g1": -5, "p-edge": 99, "p-day": 10}, "50"),
]


@pytest.mark.parametrize(("now", "frees", "expected"), [case[1:] for case in GROUPS],
                         ids=[case[0] for case in GROUPS])
def test_group_lines(now: datetime, frees: dict[str, int], expected: str) -> None:
    content, _ = render(_sign(_line(*GROUP, label="Zentrum")), CITY,
                        _observations(now, frees), now)
    assert content.lines[0] == LineContent("Zentrum", "straight", expected)


def test_group_of_closed_lots_is_closed() -> None:
    content, _ = render(_sign(_line("p-day", "p-night", label="Zentrum")), CITY,
                        _observations(SATURDAY, {"p-day": 5, "p-night": 5}), SATURDAY)
    assert content.lines[0].text == "geschlossen"


def test_group_hysteresis_uses_the_summed_capacity() -> None:
    """p-big + p-main: 600 spaces, margin 12; full when no space at all."""
    sign = _sign(_line("p-big", "p-main", label="Zentrum"))
    steps = [(0.0, {"p-big": 0, "p-main": 0}), (60.0, {"p-big": 12, "p-main": 0}),
             (120.0, {"p-big": 12, "p-main": 1})]
    assert [line.text for line in _run(sign, steps)] == ["besetzt", "besetzt", "fast voll"]


# --------------------------------------------------------------------------------------------
# Counts: clamping, capacity 0
# --------------------------------------------------------------------------------------------

# (case id, lot, free, published capacity, expected)
COUNTS: list[tuple[str, str, int, int, str]] = [
    ("negative free is clamped to 0: full", "p-main", -3, 100, "besetzt"),
    ("free above capacity is clamped", "p-main", 130, 100, "100"),
    ("capacity 0 is full", "p-empty", 0, 0, "besetzt"),
    ("free on a lot of capacity 0 is clamped: full", "p-empty", 5, 0, "besetzt"),
    ("the published capacity bounds the count", "p-main", 130, 120, "120"),
]


@pytest.mark.parametrize(("lot_id", "free", "capacity", "expected"),
                         [case[1:] for case in COUNTS], ids=[case[0] for case in COUNTS])
def test_counts(lot_id: str, free: int, capacity: int, expected: str) -> None:
    seen = {lot_id: Observation(free, capacity, "open", FRESH)}
    content, _ = render(_sign(_line(lot_id)), CITY, seen, NOW)
    assert content.lines[0].text == expected


# --------------------------------------------------------------------------------------------
# Wiggle: small count changes wait for the minimum interval, everything else goes out at once
# --------------------------------------------------------------------------------------------

# (case id, display settings, (seconds, free) steps, expected texts)
WIGGLE: list[tuple[str, dict[str, Any], list[tuple[float, int]], list[str]]] = [
    ("one car held", {}, [(0, 50), (10, 49)], ["50", "50"]),
    ("two cars held", {}, [(0, 50), (10, 52)], ["50", "50"]),
    ("three cars at once", {}, [(0, 50), (10, 47)], ["50", "47"]),
    ("held change released after the interval", {},
     [(0, 50), (10, 49), (20, 49), (29.9, 49), (30, 49)], ["50", "50", "50", "50", "49"]),
    ("the interval counts from the last change, not the last render", {},
     [(0, 50), (29, 49), (40, 48), (59, 49), (70, 49)], ["50", "50", "48", "48", "49"]),
    ("drift does not pile up behind the wiggle", {},
     [(0, 50), (5, 49), (10, 48), (15, 47)], ["50", "50", "50", "47"]),
    ("a level change goes out at once", {}, [(0, 12), (5, 10)], ["12", "fast voll"]),
    ("leaving a level goes out at once", {}, [(0, 10), (5, 14)], ["fast voll", "14"]),
    ("going stale goes out at once", {}, [(0, 50), (5, STALE)], ["50", "--"]),
    ("coming back from stale goes out at once", {},
     [(0, 50), (5, STALE), (10, 49)], ["50", "--", "49"]),
    ("wiggle 0: every change at once", {"wiggle": 0}, [(0, 50), (1, 49)], ["50", "49"]),
    ("interval 0: every change at once", {"min_change_interval_s": 0},
     [(0, 50), (1, 49)], ["50", "49"]),
    ("bigger wiggle holds more", {"wiggle": 5, "min_change_interval_s": 60},
     [(0, 50), (30, 45), (59, 45), (60, 45)], ["50", "50", "50", "45"]),
]


@pytest.mark.parametrize(("display", "steps", "expected"), [case[1:] for case in WIGGLE],
                         ids=[case[0] for case in WIGGLE])
def test_wiggle(display: dict[str, Any], steps: list[tuple[float, int]],
                expected: list[str]) -> None:
    sign = _sign(_line("p-main"), **display)
    shown = _run(sign, [(seconds, {"p-main": free}) for seconds, free in steps])
    assert [line.text for line in shown] == expected


def test_state_keeps_the_time_of_the_last_change() -> None:
    sign = _sign(_line("p-main"))
    state: SignState | None = None
    for seconds, free in [(0, 50), (10, 49), (20, 50)]:
        now = NOW + timedelta(seconds=seconds)
        _, state = render(sign, CITY, _observations(now, {"p-main": free}), now,
                          previous=state)
    assert state is not None
    assert state.lines[0].since == NOW
    assert state.lines[0].count == 50
    assert state.lines[0].level == "open"


# --------------------------------------------------------------------------------------------
# Alternative routing
# --------------------------------------------------------------------------------------------

ALT = LineContent("Parkhaus Roßmarkt", "straight", "20")  # the lot's name, the line's arrow
OWN_FULL = LineContent("Altmarkt", "straight", "besetzt")

# (case id, line settings, now, frees, expected line)
ROUTING: list[tuple[str, dict[str, Any], datetime, dict[str, int], LineContent]] = [
    ("alternative with space is shown", {"lots": ["p-main"], "alternative": "p-alt"},
     NOW, {"p-main": 0, "p-alt": 20}, ALT),
    ("configured alternative label and arrow",
     {"lots": ["p-main"], "alternative": "p-alt", "alternative_label": "Roßmarkt",
      "alternative_arrow": "left"},
     NOW, {"p-main": 0, "p-alt": 20}, LineContent("Roßmarkt", "left", "20")),
    ("alternative also full", {"lots": ["p-main"], "alternative": "p-alt"},
     NOW, {"p-main": 0, "p-alt": 0}, OWN_FULL),
    ("alternative within the margin is not switched to",
     {"lots": ["p-main"], "alternative": "p-alt"}, NOW, {"p-main": 0, "p-alt": 2}, OWN_FULL),
    ("alternative just beyond the margin, almost full",
     {"lots": ["p-main"], "alternative": "p-alt", "alternative_label": "Roßmarkt"},
     NOW, {"p-main": 0, "p-alt": 3}, LineContent("Roßmarkt", "straight", "fast voll")),
    ("a lot name that does not fit is cut", {"lots": ["p-main"], "alternative": "p-alt"},
     NOW, {"p-main": 0, "p-alt": 3}, LineContent("Parkhaus.", "straight", "fast voll")),
    ("alternative stale", {"lots": ["p-main"], "alternative": "p-alt"},
     NOW, {"p-main": 0, "p-alt": STALE}, OWN_FULL),
    ("alternative without data", {"lots": ["p-main"], "alternative": "p-alt"},
     NOW, {"p-main": 0, "p-alt": NONE}, OWN_FULL),
    ("alternative closed", {"lots": ["p-main"], "alternative": "p-day"},
     SATURDAY, {"p-main": 0, "p-day": 20}, OWN_FULL),
    ("own lot closed routes to the alternative", {"lots": ["p-day"], "alternative": "p-alt"},
     SATURDAY, {"p-day": 20, "p-alt": 20}, ALT),
    ("own lot not full: no routing", {"lots": ["p-main"], "alternative": "p-alt"},
     NOW, {"p-main": 5, "p-alt": 20}, LineContent("Altmarkt", "straight", "fast voll")),
    ("own lot stale: no routing, nobody knows it is full",
     {"lots": ["p-main"], "alternative": "p-alt"}, NOW, {"p-main": STALE, "p-alt": 20},
     LineContent("Altmarkt", "straight", "--")),
    ("no alternative configured", {"lots": ["p-main"]}, NOW, {"p-main": 0, "p-alt": 20},
     OWN_FULL),
    ("a full group routes too", {"lots": ["p-main", "p-g1"], "alternative": "p-alt"},
     NOW, {"p-main": 0, "p-g1": 0, "p-alt": 20}, ALT),
]


@pytest.mark.parametrize(("line", "now", "frees", "expected"), [case[1:] for case in ROUTING],
                         ids=[case[0] for case in ROUTING])
def test_alternative_routing(line: dict[str, Any], now: datetime, frees: dict[str, int],
                             expected: LineContent) -> None:
    sign = _sign({"label": "Altmarkt", "arrow": "straight", **line})
    content, _ = render(sign, CITY, _observations(now, frees), now)
    assert content.lines[0] == expected


def test_a_lot_the_sign_already_shows_is_not_routed_to_twice() -> None:
    # Line 2 names the alternative itself; lines 1 and 3 are full and would both route to it.
    sign = _sign(_line("p-main", alternative="p-alt"),
                 {"lots": ["p-alt"], "label": "Roßmarkt", "arrow": "right"},
                 _line("p-main", alternative="p-alt", alternative_label="Ausweich",
                       alternative_arrow="left"))
    content, _ = render(sign, CITY, _observations(NOW, {"p-main": 0, "p-alt": 20}), NOW)
    assert content.lines == (LineContent("Altmarkt", "straight", "besetzt"),
                             LineContent("Roßmarkt", "right", "20"),
                             LineContent("Altmarkt", "straight", "besetzt"))
    # Without a line of its own, the first full line routes to it and the second does not.
    sign = _sign(_line("p-main", alternative="p-alt", alternative_label="Roßmarkt"),
                 _line("p-main", alternative="p-alt", alternative_label="Ausweich"))
    content, _ = render(sign, CITY, _observations(NOW, {"p-main": 0, "p-alt": 20}), NOW)
    assert content.lines == (LineContent("Roßmarkt", "straight", "20"),
                             LineContent("Altmarkt", "straight", "besetzt"))


def _alt(text: str) -> LineContent:
    return LineContent("Roßmarkt", "straight", text)


def _own(text: str) -> LineContent:
    return LineContent("Altmarkt", "straight", text)


# (case id, (seconds, main free, alternative free) steps, expected lines)
ROUTING_STEPS: list[tuple[str, list[tuple[float, int, int]], list[LineContent]]] = [
    ("stays on the alternative while it is not full, no flap at its edge",
     [(0, 0, 20), (60, 0, 1), (120, 0, 0), (180, 0, 2), (240, 0, 3)],
     [_alt("20"), _alt("fast voll"), _own("besetzt"), _own("besetzt"), _alt("fast voll")]),
    ("back to its own lot once that leaves full (with its margin)",
     [(0, 0, 20), (60, 2, 20), (120, 3, 20)],
     [_alt("20"), _alt("20"), _own("fast voll")]),
    ("switching back is immediate even for a count within the wiggle",
     [(0, 0, 20), (5, 19, 20)], [_alt("20"), _own("19")]),
    ("the alternative's count wiggles like any count",
     [(0, 0, 20), (5, 0, 19), (35, 0, 19)], [_alt("20"), _alt("20"), _alt("19")]),
]


@pytest.mark.parametrize(("steps", "expected"), [case[1:] for case in ROUTING_STEPS],
                         ids=[case[0] for case in ROUTING_STEPS])
def test_alternative_routing_over_time(steps: list[tuple[float, int, int]],
                                       expected: list[LineContent]) -> None:
    sign = _sign(_line("p-main", alternative="p-alt", alternative_label="Roßmarkt"))
    shown = _run(sign, [(seconds, {"p-main": main, "p-alt": other})
                        for seconds, main, other in steps])
    assert shown == expected


# --------------------------------------------------------------------------------------------
# Forecast text
# --------------------------------------------------------------------------------------------


def _rows(*rows: tuple[float, float | None]) -> list[ForecastPoint]:
    return [ForecastPoint(NOW + timedelta(minutes=minutes), p_space) for minutes, p_space in rows]


FORECAST_ON: dict[str, Any] = {"show_forecast": True}

# (case id, display settings, free, rows of p-main's forecast, expected text)
FORECASTS: list[tuple[str, dict[str, Any], int, list[ForecastPoint], str]] = [
    ("off by default", {}, 50, _rows((20, 0.05)), "50"),
    ("confident: full in 20 min", FORECAST_ON, 50, _rows((20, 0.1)), "voll in ~20 min"),
    ("exactly at the confidence", FORECAST_ON, 50, _rows((20, 0.2)), "voll in ~20 min"),
    ("not confident enough", FORECAST_ON, 50, _rows((20, 0.3)), "50"),
    ("rows without p_space never count", FORECAST_ON, 50, _rows((20, None)), "50"),
    ("NaN p_space never counts", FORECAST_ON, 50, _rows((20, math.nan)), "50"),
    ("beyond the horizon", FORECAST_ON, 50, _rows((75, 0.01)), "50"),
    ("rows for the past are ignored", FORECAST_ON, 50, _rows((-5, 0.01), (0, 0.01)), "50"),
    ("no rows", FORECAST_ON, 50, [], "50"),
    ("the earliest confident row", FORECAST_ON, 50,
     _rows((30, 0.05), (10, 0.5), (20, 0.1)), "voll in ~20 min"),
    ("minutes rounded to 5: 17 -> 15", FORECAST_ON, 50, _rows((17, 0.1)), "voll in ~15 min"),
    ("minutes rounded to 5: 18 -> 20", FORECAST_ON, 50, _rows((18, 0.1)), "voll in ~20 min"),
    ("at least 5 minutes", FORECAST_ON, 50, _rows((1, 0.1)), "voll in ~5 min"),
    ("replaces the almost-full text", FORECAST_ON, 8, _rows((20, 0.1)), "voll in ~20 min"),
    ("a full lot stays besetzt", FORECAST_ON, 0, _rows((20, 0.1)), "besetzt"),
    ("longer horizon", {**FORECAST_ON, "forecast_horizon_min": 120}, 50, _rows((75, 0.01)),
     "voll in ~75 min"),
    ("stricter confidence", {**FORECAST_ON, "forecast_confidence": 0.9}, 50, _rows((20, 0.15)),
     "50"),
    ("own text", {**FORECAST_ON, "forecast_text": "voll ~{minutes}'"}, 50, _rows((20, 0.05)),
     "voll ~20'"),
]


@pytest.mark.parametrize(("display", "free", "rows", "expected"),
                         [case[1:] for case in FORECASTS], ids=[case[0] for case in FORECASTS])
def test_forecast_text(display: dict[str, Any], free: int, rows: list[ForecastPoint],
                       expected: str) -> None:
    content, _ = render(_sign(_line("p-main"), **display), CITY,
                        _observations(NOW, {"p-main": free}), NOW,
                        forecasts={"p-main": rows})
    assert content.lines[0].text == expected


def test_forecast_of_another_lot_is_not_used() -> None:
    content, _ = render(_sign(_line("p-main"), **FORECAST_ON), CITY,
                        _observations(NOW, {"p-main": 50}), NOW,
                        forecasts={"p-alt": _rows((20, 0.01))})
    assert content.lines[0].text == "50"


def test_group_lines_get_no_forecast() -> None:
    rows = {"p-main": _rows((20, 0.01)), "p-g1": _rows((20, 0.01))}
    content, _ = render(_sign(_line("p-main", "p-g1"), **FORECAST_ON), CITY,
                        _observations(NOW, {"p-main": 50, "p-g1": 50}), NOW, forecasts=rows)
    assert content.lines[0].text == "100"


def test_alternative_shows_its_own_forecast() -> None:
    rows = {"p-alt": _rows((10, 0.05))}
    content, _ = render(_sign(_line("p-main", alternative="p-alt",
                                    alternative_label="Roßmarkt"), line_width=24,
                                **FORECAST_ON), CITY,
                        _observations(NOW, {"p-main": 0, "p-alt": 20}), NOW, forecasts=rows)
    assert content.lines[0] == _alt("voll in ~10 min")


# --------------------------------------------------------------------------------------------
# Line width: the text is never cut, the label is
# --------------------------------------------------------------------------------------------

# (case id, label, line width, now, free of p-big, expected label, text)
WIDTH: list[tuple[str, str, int, datetime, int, str, str]] = [
    ("fits", "Altmarkt", 20, NOW, 123, "Altmarkt", "123"),
    ("cut with a full stop", "Schloss Moritzburg", 20, NOW, 123, "Schloss Moritzb.", "123"),
    ("exactly fits", "Schloss Moritzb", 20, NOW, 123, "Schloss Moritzb", "123"),
    ("a long text leaves less label", "Schloss Moritzburg", 20, NOW, 0, "Schloss Mor.",
     "besetzt"),
    ("no trailing space before the full stop", "Zentrum Nord", 13, NOW, 123, "Zentrum.", "123"),
    ("a blank safe state leaves the whole width", "Schloss Moritzburg", 20, NOW, STALE,
     "Schloss Moritzburg", ""),
    ("narrow sign", "Badstubenvorstadt", 12, NOW, 0, "Bad.", "besetzt"),
]


@pytest.mark.parametrize(("label", "width", "now", "free", "expected_label", "text"),
                         [case[1:] for case in WIDTH], ids=[case[0] for case in WIDTH])
def test_line_width(label: str, width: int, now: datetime, free: int, expected_label: str,
                    text: str) -> None:
    sign = _sign(_line("p-big", label=label), line_width=width, safe_state="")
    content, _ = render(sign, CITY, _observations(now, {"p-big": free}), now)
    line = content.lines[0]
    assert (line.label, line.text) == (expected_label, text)
    assert len(line.label) + len(" ") + len(line.text) <= width


# --------------------------------------------------------------------------------------------
# The function itself: every line, state handling, purity
# --------------------------------------------------------------------------------------------


def test_every_line_in_order() -> None:
    sign = _sign(_line("p-main"), _line("p-alt", label="Roßmarkt"),
                 _line("p-main", "p-alt", label="Zentrum"))
    content, state = render(sign, CITY, _observations(NOW, {"p-main": 40, "p-alt": 0}), NOW)
    assert content == SignContent("s1", (
        LineContent("Altmarkt", "straight", "40"),
        LineContent("Roßmarkt", "straight", "besetzt"),
        LineContent("Zentrum", "straight", "40"),
    ))
    assert state.sign_id == "s1"
    assert tuple(line.shown for line in state.lines) == content.lines


def test_same_input_same_output() -> None:
    sign = _sign(_line("p-main", alternative="p-alt"))
    seen = _observations(NOW, {"p-main": 0, "p-alt": 20})
    assert render(sign, CITY, seen, NOW) == render(sign, CITY, seen, NOW)


@pytest.mark.parametrize("other", ["another sign", "lines reconfigured"])
def test_state_of_another_sign_is_ignored(other: str) -> None:
    first = _sign(_line("p-main"), sign_id="s0" if other == "another sign" else "s1")
    _, state = render(first, CITY, _observations(NOW, {"p-main": 50}), NOW)
    second = (_sign(_line("p-main")) if other == "another sign"
              else _sign(_line("p-main"), _line("p-alt")))
    later = NOW + timedelta(seconds=5)
    content, _ = render(second, CITY, _observations(later, {"p-main": 49, "p-alt": 9}), later,
                        previous=state)
    assert content.lines[0].text == "49"  # not held: the old state was not this sign's


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render(_sign(_line("p-main")), CITY, {}, datetime(2024, 7, 3, 12, 0))


# --------------------------------------------------------------------------------------------
# Config: the display knobs from TOML
# --------------------------------------------------------------------------------------------

TOML = """
[city]
id = "t"
name = "Teststadt"

[[lots]]
id = "t-a"
name = "Parkhaus A"
kind = "garage"
counting = "counter"
capacity = 100
latitude = 51.05
longitude = 12.13

[[lots]]
id = "t-b"
name = "Parkhaus B"
kind = "garage"
counting = "counter"
capacity = 50
latitude = 51.05
longitude = 12.13

[[signs]]
id = "s1"
name = "Einfahrt"
driver = "http"
address = "http://127.0.0.1:1/sign"
latitude = 51.05
longitude = 12.13

[signs.display]
line_width = 24
safe_state = ""
full_text = "BESETZT"
wiggle = 1
show_forecast = true

[[signs.lines]]
lots = ["t-a"]
label = "Zentrum"
alternative = "t-b"
alternative_label = "Parkhaus B"
alternative_arrow = "left"
"""


def test_display_settings_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(TOML, encoding="utf-8")
    sign = load_city(str(path)).signs[0]
    assert (sign.display.line_width, sign.display.safe_state, sign.display.full_text,
            sign.display.wiggle, sign.display.show_forecast) == (24, "", "BESETZT", 1, True)
    assert sign.display.almost_full_text == "fast voll"  # the rest keep their defaults
    assert (sign.lines[0].alternative_label, sign.lines[0].alternative_arrow) == (
        "Parkhaus B", "left")


def test_zeitz_signs_render() -> None:
    """Every sign of the default city renders, all lines in the safe state without data."""
    zeitz = load_city("zeitz")
    for sign in zeitz.signs:
        content, _ = render(sign, zeitz, {}, datetime(2024, 7, 3, 10, 0, tzinfo=UTC))
        assert len(content.lines) == len(sign.lines)
        assert {line.text for line in content.lines} <= {"--", "geschlossen"}


# -- charging lines ("E-Laden n frei") -----------------------------------------------------------

CHARGING_CITY = City.model_validate({
    "city": {"id": "t", "name": "Teststadt", "timezone": "Europe/Berlin"},
    "lots": [_lot("p-main", "Parkhaus Altmarkt", 100), _lot("p-alt", "Parkhaus Roßmarkt", 50)],
    "chargers": [{
        "id": f"t-cp-{lot}", "lot": lot, "name": "Ladestation", "operator": "city",
        "protocol": "ocpp", "evses": [{
            "evse_id": f"DE*TST*E000{n}*1", "number": 1, "connectors": [{
                "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
                "max_power_kw": 22.0}]}]} for n, lot in enumerate(("p-main", "p-alt"), 1)],
})


def test_a_charging_line_shows_its_lots_free_charging_points() -> None:
    sign = _sign(_line("p-main", label="Altmarkt"),
                 _line("p-main", "p-alt", label="E-Laden", kind="charging", arrow="left"))
    observations = _observations(WEDNESDAY, {"p-main": 40})
    content, state = render(sign, CHARGING_CITY, observations, WEDNESDAY,
                            charging={"p-main": 1, "p-alt": 2})
    assert [(line.label, line.text, line.arrow) for line in content.lines] == [
        ("Altmarkt", "40", "straight"), ("E-Laden", "3 frei", "left")]
    # None free: "0 frei", a count like any other; a lot whose points never reported: the
    # safe state (unknown is not free), the parking line untouched.
    content, state = render(sign, CHARGING_CITY, observations, WEDNESDAY + timedelta(seconds=5),
                            previous=state, charging={"p-main": 0, "p-alt": 0})
    assert content.lines[1].text == "0 frei"
    content, _ = render(sign, CHARGING_CITY, observations, WEDNESDAY + timedelta(seconds=10),
                        previous=state, charging={"p-main": 1})
    assert (content.lines[0].text, content.lines[1].text) == ("40", "--")
    assert render(sign, CHARGING_CITY, observations, WEDNESDAY)[0].lines[1].text == "--"


def test_a_charging_lines_text_and_width() -> None:
    sign = _sign(_line("p-alt", label="Ladepunkte Roßmarkt", kind="charging"),
                 line_width=16, charging_text="E {free}")
    content, _ = render(sign, CHARGING_CITY, {}, WEDNESDAY, charging={"p-alt": 2})
    assert content.lines[0].text == "E 2"
    assert content.lines[0].label.endswith(".") and len(content.lines[0].label) + 4 <= 16
