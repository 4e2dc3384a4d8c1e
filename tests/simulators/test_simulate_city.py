"""``parkleit simulate city``: real formats ingest accepts, seeded faults, ground truth, pacing,
and one run end to end over the real broker and database."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import secrets
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import city_head, daily_spans, toml_table
from _helpers import ServiceProcess, assert_bad_usage, base_env, service_env, utc_now, wait_for

from core.city import City, load_city
from core.settings import Settings
from ingest import Decoder
from ingest._decode import BayReading, CounterReading, DecodeError, HealthReading, Reading
from ingest._state import counter_change
from simulators.city import (
    FAULT_NAMES,
    TRUTH_HEADER,
    CityFeed,
    CitySimError,
    FaultConfig,
    Pacer,
    SimMessage,
    SimMinute,
    city_messages,
    run_city,
)

log = logging.getLogger(__name__)
ZEITZ = load_city("zeitz")
FRIDAY = datetime(2026, 3, 6, 6, 0, tzinfo=UTC)  # 07:00 local: the city wakes up
KINDS = {"native", "counter", "ttn", "chirpstack", "chirpstack_status", "charger"}


def run_feed(hours: float, faults: FaultConfig | None = None, *, seed: int = 1,
             city: City = ZEITZ, start: datetime = FRIDAY) -> tuple[CityFeed, list[SimMinute]]:
    feed = CityFeed(city, start, seed=seed, faults=faults, duration_s=hours * 3600)
    return feed, list(feed)


@cache
def clean_zeitz() -> tuple[CityFeed, list[SimMinute]]:
    return run_feed(6)


@cache
def market_city() -> City:
    """A small city whose bay lot is full for hours: bays are freed and taken in one minute."""
    return City.model_validate(tomllib.loads(sim_city_toml("mkt", FRIDAY + timedelta(hours=2))))


def messages_of(minutes: list[SimMinute], *, chargers: bool = False) -> list[SimMessage]:
    """The sensors' messages (and the charging points' with ``chargers``), in order."""
    return [message for minute in minutes for message in minute.messages
            if chargers or message.kind != "charger"]


def decode(decoder: Decoder, message: SimMessage) -> list[Reading]:
    """What ingest makes of a sensor's message received the moment it was published (a
    charging point's status: checked that ingest takes it, no sensor reading)."""
    if message.kind == "charger":
        assert decoder.charger_status(message.topic, message.payload, message.time) is not None
        return []
    return decoder.decode(message.topic, message.payload, message.time)


# -- determinism -------------------------------------------------------------------------------

def test_same_seed_same_messages_other_seed_other_messages() -> None:
    faults = FaultConfig.parse("all")

    def sequence(seed: int) -> list[tuple[datetime, str, bytes]]:
        return [(m.time, m.topic, m.payload) for m in city_messages(
            ZEITZ, FRIDAY, seed=seed, faults=faults, duration_s=3 * 3600)]

    first = sequence(5)
    assert first == sequence(5)
    assert len(first) > 2000
    other = sequence(6)
    assert other != first
    assert {topic for _, topic, _ in other} & {topic for _, topic, _ in first}


def test_faults_do_not_change_the_ground_truth() -> None:
    _, clean = run_feed(3)
    _, faulty = run_feed(3, FaultConfig.parse("all", {"stuck": 5, "counter_reset": 5}))
    assert [m.truth for m in clean] == [m.truth for m in faulty if m.truth]
    assert messages_of(clean) != messages_of(faulty)


# -- formats -----------------------------------------------------------------------------------

def test_every_clean_message_is_accepted_by_ingest_in_every_format() -> None:
    feed, minutes = clean_zeitz()
    decoder = Decoder(ZEITZ)
    subscribed = decoder.subscriptions()
    seen: dict[str, int] = defaultdict(int)
    for message in messages_of(minutes, chargers=True):
        assert message.faults == ()
        readings = decode(decoder, message)  # raises DecodeError on anything ingest refuses
        assert readings or message.kind == "charger"
        seen[message.kind] += 1
        assert any(_matches(f, message.topic) for f in subscribed), message.topic
        if message.kind in ("ttn", "chirpstack"):
            body = json.loads(message.payload)
            uplink = body.get("uplink_message", body)
            assert "decoded_payload" not in uplink and "object" not in uplink
            assert isinstance(readings[0], BayReading)
            gateway_ids = {g.id for g in feed.gateways} | {g.eui for g in feed.gateways}
            health = next(r for r in readings if isinstance(r, HealthReading))
            assert health.gateway_id in gateway_ids and health.rssi is not None
    assert set(seen) == KINDS, seen
    assert 2 <= len(feed.gateways) <= 3


def _matches(topic_filter: str, topic: str) -> bool:
    parts, levels = topic_filter.split("/"), topic.split("/")
    return len(parts) == len(levels) and all(p in ("+", level) for p, level in
                                             zip(parts, levels, strict=True))


Counted = tuple[int, int, int]  # a counter lot's occupied, entries, exits


def _counted(previous: Counted | None, reading: CounterReading, modulus: int) -> Counted:
    """A counter lot after ``reading``: its first reading's entries minus exits, then the
    counters' increases modulo ``modulus`` added up (no reset handling)."""
    assert reading.entries is not None and reading.exits is not None
    if previous is None:
        return reading.entries - reading.exits, reading.entries, reading.exits
    occupied, entries, exits = previous
    occupied += (reading.entries - entries) % modulus - (reading.exits - exits) % modulus
    return occupied, reading.entries, reading.exits


@pytest.mark.parametrize("name", ["zeitz", "market"])
def test_without_faults_what_sensors_report_is_the_truth(name: str) -> None:
    """Replaying the readings as ingest keeps them gives the true count of every lot at every
    minute; heartbeats come from every bay sensor and counters at least each 5 minutes."""
    city = ZEITZ if name == "zeitz" else market_city()
    feed, minutes = clean_zeitz() if name == "zeitz" else run_feed(6, city=city, seed=4)
    decoder = Decoder(city)
    bays: dict[str, tuple[datetime, bool]] = {}
    counters: dict[str, Counted] = {}
    lot_of = {bay.id: lot.id for lot, bay in city.bays()}
    modulus = {lot.id: lot.counter_modulus for lot in city.lots}
    last_counter: dict[str, datetime] = {}
    heartbeat_battery: dict[str, list[float]] = defaultdict(list)
    for minute in minutes:
        for message in minute.messages:
            for reading in decode(decoder, message):
                if isinstance(reading, BayReading):
                    if reading.bay_id not in bays or bays[reading.bay_id][0] < reading.time:
                        bays[reading.bay_id] = (reading.time, reading.occupied)
                elif isinstance(reading, CounterReading):
                    lot = reading.lot_id
                    if lot in last_counter:
                        assert reading.time - last_counter[lot] <= timedelta(minutes=5)
                    counters[lot] = _counted(counters.get(lot), reading, modulus[lot])
                    last_counter[lot] = reading.time
                elif reading.battery_v is not None:
                    heartbeat_battery[reading.sensor_id].append(reading.battery_v)
        if minute.time - feed.start < timedelta(minutes=11):
            continue  # until every sensor has sent its first heartbeat
        assert set(bays) == set(lot_of)
        counts: dict[str, int] = defaultdict(int)
        for bay_id, (_, occupied) in bays.items():
            counts[lot_of[bay_id]] += occupied
        for row in minute.truth:
            seen = counters[row.lot_id][0] if row.lot_id in counters else counts[row.lot_id]
            assert seen == row.occupied, (minute.end, row)
    assert {bay: state for bay, (_, state) in bays.items()} == feed.true_bays()
    # Native sensors send their battery voltage with each heartbeat (every 10 minutes).
    native = [bay.id for _, bay in city.bays() if bay.network == "native"]
    assert all(30 <= len(heartbeat_battery[bay]) <= 40 for bay in native)
    assert all(3.4 <= v <= 3.7 for bay in native for v in heartbeat_battery[bay])
    if name == "market":  # it was full, and cars still came and went
        assert sum(row.free == 0 for m in minutes for row in m.truth) > 30
        assert feed.stats["generated_native"] > 300


def test_truth_rows_are_within_capacity_and_the_csv_is_right(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    published: list[SimMessage] = []
    report = run_city(Settings(), ZEITZ, start=FRIDAY, speed=0, duration_s=2 * 3600, seed=1,
                      faults=FaultConfig(), truth_path=path, publish=published.append)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == TRUTH_HEADER
    rows = list(csv.DictReader(lines))
    assert len(rows) == report.truth_rows == len(ZEITZ.lots) * (2 * 60 + 1)
    capacity = {lot.id: lot.capacity for lot in ZEITZ.lots}
    times = sorted({row["time"] for row in rows})
    assert times[0] == "2026-03-06T06:00:00Z" and times[-1] == "2026-03-06T08:00:00Z"
    assert len(times) == 121
    for row in rows:
        assert datetime.fromisoformat(row["time"]).tzinfo is not None
        occupied, free = int(row["occupied"]), int(row["free"])
        assert int(row["capacity"]) == capacity[row["lot_id"]]
        assert 0 <= occupied <= capacity[row["lot_id"]] and occupied + free == int(
            row["capacity"])
    assert any(int(row["occupied"]) for row in rows if row["time"] == times[-1])
    assert report.published == len(published) and set(report.by_kind) == KINDS
    assert [(m.topic, m.payload) for m in published] == [
        (m.topic, m.payload) for m in city_messages(ZEITZ, FRIDAY, seed=1, duration_s=7200)]
    # The charging points' truth beside it: every point on a bay at the start, then each
    # change, in time order; their status is published for those points only.
    chargers = (tmp_path / "truth-chargers.csv").read_text(encoding="utf-8").splitlines()
    assert chargers[0] == "time,evse_id,car,charging"
    changes = list(csv.DictReader(chargers))
    on_bays = {evse.evse_id for station, evse in ZEITZ.evses()
               if evse.bays and station.protocol == "mqtt"}
    assert {row["evse_id"] for row in changes if row["time"] == "2026-03-06T06:00:00.000Z"} == (
        on_bays)
    assert [row["time"] for row in changes] == sorted(row["time"] for row in changes)
    said = {(m.topic.split("/")[4], json.loads(m.payload)["status"]) for m in published
            if m.kind == "charger"}
    assert {evse for evse, _ in said} == on_bays
    assert {status for _, status in said} <= {"AVAILABLE", "CHARGING"}


# -- faults ------------------------------------------------------------------------------------

def test_fault_config_parses_names_and_rates() -> None:
    assert FaultConfig.parse("none").enabled() == []
    assert FaultConfig.parse("all").enabled() == list(FAULT_NAMES)
    config = FaultConfig.parse("drop,late", {"drop": 0.2, "malformed": 0.5})
    assert (config.drop, config.late, config.malformed) == (0.2, 0.01, 0.5)
    assert config.enabled() == ["drop", "late", "malformed"]
    assert FaultConfig.parse("all", {"stuck": 0}).stuck == 0
    with pytest.raises(CitySimError, match="unknown fault 'rain'"):
        FaultConfig.parse("drop,rain")
    with pytest.raises(CitySimError, match="share"):
        FaultConfig(drop=1.5)


def test_malformed_messages_are_refused_and_the_rest_accepted() -> None:
    _, minutes = run_feed(2, FaultConfig(malformed=0.2))
    decoder = Decoder(ZEITZ)
    refused: dict[str, int] = defaultdict(int)
    for message in messages_of(minutes, chargers=True):
        if "malformed" in message.faults:
            with pytest.raises(DecodeError):
                decode(decoder, message)
            refused[message.kind] += 1
        else:
            decode(decoder, message)
    assert set(refused) == KINDS - {"chirpstack_status"} or set(refused) == KINDS
    assert sum(refused.values()) > 300


def test_duplicates_are_byte_identical_repeats_and_drops_go_missing() -> None:
    feed, minutes = run_feed(2, FaultConfig(duplicate=0.05, drop=0.05))
    messages = messages_of(minutes, chargers=True)
    seen: set[tuple[str, bytes]] = set()
    duplicates = 0
    for message in messages:
        if "duplicate" in message.faults:
            assert (message.topic, message.payload) in seen
            duplicates += 1
        seen.add((message.topic, message.payload))
    assert duplicates == feed.stats["duplicated"] > 50
    generated = sum(n for key, n in feed.stats.items() if key.startswith("generated_"))
    assert len(messages) == generated - feed.stats["dropped"] + duplicates
    assert feed.stats["dropped"] > 50


def test_late_messages_arrive_30_to_300_s_late_and_out_of_order() -> None:
    feed, minutes = run_feed(2, FaultConfig(late=0.05))
    decoder = Decoder(ZEITZ)
    newest: dict[str, datetime] = {}
    overtaken = 0
    times = [m.time for m in messages_of(minutes)]
    assert times == sorted(times)  # published in order of their (delayed) time
    for message in messages_of(minutes):
        moment = decode(decoder, message)[0].time
        delay = (message.time - moment).total_seconds()
        if "late" in message.faults:
            assert 29.5 <= delay <= 300.5
            overtaken += newest.get(message.topic, moment) > moment
        else:
            assert 0 <= delay < 1
        newest[message.topic] = max(newest.get(message.topic, moment), moment)
    assert feed.stats["late"] > 50
    assert overtaken > 10


def test_dead_batteries_decline_then_go_silent() -> None:
    feed, minutes = run_feed(4, FaultConfig(dead_battery=0.05, dead_battery_h=3))
    decoder = Decoder(ZEITZ)
    voltages: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    last_heard: dict[str, datetime] = {}
    for message in messages_of(minutes):
        for reading in decode(decoder, message):
            sensor = reading.bay_id if isinstance(reading, BayReading) else (
                reading.sensor_id if isinstance(reading, HealthReading) else None)
            if sensor is not None:
                last_heard[sensor] = reading.time
            if isinstance(reading, HealthReading) and reading.battery_v is not None:
                voltages[reading.sensor_id].append((reading.time, reading.battery_v))
    dying = feed.dead_battery_bays
    native = [bay for bay in dying if voltages[bay]]
    assert len(dying) >= 3 and native
    for bay in native:
        series = [v for _, v in voltages[bay]]
        assert series[0] >= 3.45 and series[-1] <= 2.75, series  # 3.6 V at the start
        assert all(b <= a + 0.01 for a, b in itertools.pairwise(series))
    for bay in dying:  # silent for the last hour at least (flat within 2.25-3 h)
        assert feed.end is not None and feed.end - last_heard[bay] > timedelta(minutes=55)
    healthy = set(voltages) - set(dying)
    assert all(min(v for _, v in voltages[bay]) > 3.4 for bay in healthy)
    assert feed.stats["dead_battery_silenced"] > 0


def _longest_mismatch(feed: CityFeed) -> dict[str, int]:
    """Per bay, the longest run of minutes in which the sensor's last word was not the truth."""
    decoder = Decoder(feed.city)
    said: dict[str, tuple[datetime, bool]] = {}
    run: dict[str, int] = defaultdict(int)
    longest: dict[str, int] = defaultdict(int)
    for minute in feed:
        for message in minute.messages:
            for reading in decode(decoder, message):
                if isinstance(reading, BayReading) and (
                        reading.bay_id not in said or said[reading.bay_id][0] < reading.time):
                    said[reading.bay_id] = (reading.time, reading.occupied)
        if not minute.truth:
            continue
        for bay, truth in feed.true_bays().items():
            wrong = bay in said and said[bay][1] != truth
            run[bay] = run[bay] + 1 if wrong else 0
            longest[bay] = max(longest[bay], run[bay])
    return longest


def test_stuck_sensors_freeze_for_hours_and_clean_ones_never_do() -> None:
    clean = CityFeed(ZEITZ, FRIDAY, seed=3, duration_s=6 * 3600)
    assert max(_longest_mismatch(clean).values()) == 0
    stuck = CityFeed(ZEITZ, FRIDAY, seed=3, duration_s=6 * 3600,
                     faults=FaultConfig(stuck=4.0))
    longest = _longest_mismatch(stuck)
    assert stuck.stats["stuck_episodes"] > 20
    assert sum(minutes >= 60 for minutes in longest.values()) >= 3


def test_flapping_sensors_toggle_every_few_seconds() -> None:
    feed, minutes = run_feed(3, FaultConfig(flapping=4.0))
    decoder = Decoder(ZEITZ)
    states: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    for message in messages_of(minutes):
        for reading in decode(decoder, message):
            if isinstance(reading, BayReading):
                states[reading.bay_id].append((reading.time, reading.occupied))
    flapping = 0
    for series in states.values():
        for i in range(len(series) - 10):
            window = series[i:i + 10]
            if (window[-1][0] - window[0][0] < timedelta(seconds=80)
                    and all(a[1] != b[1] for a, b in itertools.pairwise(window))):
                flapping += 1
                break
    assert feed.stats["flapping_episodes"] > 10 and flapping >= 5


def _counter_view(minutes: list[SimMinute]) -> tuple[dict[str, int], dict[str, list[tuple[
        int, int]]]]:
    """The occupancy each counter lot's messages add up to (no reset handling), and the raw
    readings."""
    decoder = Decoder(ZEITZ)
    modulus = {lot.id: lot.counter_modulus for lot in ZEITZ.lots}
    state: dict[str, Counted] = {}
    raw: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for message in messages_of(minutes):
        if message.kind != "counter":
            continue
        (reading,) = decode(decoder, message)
        assert isinstance(reading, CounterReading)
        assert reading.entries is not None and reading.exits is not None
        lot = reading.lot_id
        raw[lot].append((reading.entries, reading.exits))
        state[lot] = _counted(state.get(lot), reading, modulus[lot])
    return {lot: value[0] for lot, value in state.items()}, raw


def test_counter_drift_misses_entries_and_exactly_those() -> None:
    feed, minutes = run_feed(6, FaultConfig(counter_drift=0.1))
    counted, _ = _counter_view(minutes)
    truth = {row.lot_id: row.occupied for row in minutes[-1].truth}
    missed = sum(truth[lot] - counted[lot] for lot in counted)
    assert missed == feed.stats["counter_missed_entries"] > 20
    assert all(counted[lot] <= truth[lot] for lot in counted)


def test_counter_resets_set_both_counters_back_to_zero() -> None:
    feed, minutes = run_feed(3, FaultConfig(counter_reset=6.0))
    _, raw = _counter_view(minutes)
    resets = sum(1 for readings in raw.values() for (e0, x0), (e1, x1) in
                 itertools.pairwise(readings)
                 if e1 < e0 and x1 < x0 and e1 < 100 and x1 < 100)
    assert feed.stats["counter_resets"] >= 5 and resets >= 5


def _counter_steps(minutes: list[SimMinute]) -> list[tuple[str, tuple[int, int],
                                                           tuple[int, int], timedelta]]:
    """Each counter's consecutive readings: lot, (entries, exits) before and after, time
    between."""
    decoder = Decoder(ZEITZ)
    last: dict[str, CounterReading] = {}
    steps = []
    for message in messages_of(minutes):
        if message.kind == "counter":
            (reading,) = decode(decoder, message)
            assert isinstance(reading, CounterReading)
            assert reading.entries is not None and reading.exits is not None
            if (before := last.get(reading.lot_id)) is not None:
                assert before.entries is not None and before.exits is not None
                steps.append((reading.lot_id, (before.entries, before.exits),
                              (reading.entries, reading.exits), reading.time - before.time))
            last[reading.lot_id] = reading
    return steps


@pytest.mark.parametrize("fault", ["none", "counter_reset", "counter_restart"])
def test_counter_restarts_are_what_ingest_judges_them(fault: str) -> None:
    """A reset is the device restarting from zero: ingest counts on from there, never a jump.
    A restart starts entries and exits from other values: ingest sees each one as a jump
    (``counter_change``), and nothing else is one."""
    faults = FaultConfig.parse(fault, {} if fault == "none" else {fault: 6.0})
    feed, minutes = run_feed(3, faults)
    steps = _counter_steps(minutes)
    judged = [(after[0] < before[0] and after[1] < before[1],
               counter_change(ZEITZ.lot(lot), before, after, elapsed))
              for lot, before, after, elapsed in steps]
    jumps = sum(change is None for _, change in judged)
    from_zero = sum(down and change is not None for down, change in judged)
    assert len(steps) > 300
    assert jumps == feed.stats["counter_restarts"]
    # (a second reset before the counter has counted past its first one shows no fall)
    assert from_zero <= feed.stats["counter_resets"]
    if fault == "none":
        assert not jumps and not from_zero
    else:
        assert feed.stats[f"{fault}s"] >= 5 and jumps + from_zero >= 5


def test_gateway_outages_silence_bays_heard_by_that_gateway_only() -> None:
    feed, minutes = run_feed(4, FaultConfig(gateway_offline=12.0))
    assert feed.outages and feed.stats["gateway_offline_lost"] > 0
    decoder = Decoder(ZEITZ)
    uplinks: dict[str, list[tuple[datetime, set[str]]]] = defaultdict(list)
    for message in messages_of(minutes):
        if message.kind not in ("ttn", "chirpstack"):
            continue
        body = json.loads(message.payload)
        if message.kind == "ttn":
            heard = {rx["gateway_ids"]["gateway_id"]
                     for rx in body["uplink_message"]["rx_metadata"]}
        else:
            heard = {rx["gatewayId"] for rx in body["rxInfo"]}
        (reading, *_) = decode(decoder, message)
        assert isinstance(reading, BayReading)
        uplinks[reading.bay_id].append((reading.time, heard))
    for index, begin, end in feed.outages:
        gateway = feed.gateways[index]
        assert end - begin == timedelta(hours=1)
        for series in uplinks.values():
            assert not any(begin <= t < end and ({gateway.id, gateway.eui} & heard)
                           for t, heard in series)
    gaps = [max((b[0] - a[0] for a, b in itertools.pairwise(series)),
                default=timedelta(0)) for series in uplinks.values()]
    assert any(gap > timedelta(minutes=50) for gap in gaps)  # silent while the gateway was off


# -- pacing ------------------------------------------------------------------------------------

class FakeClock:
    """Wall clock that moves only when the simulator sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.now += seconds
        return False


def test_replay_runs_at_speed_then_real_time_never_ahead_of_the_clock() -> None:
    clock = FakeClock(utc_now().timestamp())
    began = clock.now
    start = datetime.fromtimestamp(began, UTC) - timedelta(hours=2)
    published: list[tuple[float, SimMessage]] = []
    caught_up: list[float] = []
    decoder = Decoder(ZEITZ)

    def publish(message: SimMessage) -> None:
        published.append((clock.now, message))
        if not caught_up and message.time.timestamp() >= began:
            caught_up.append(clock.now)

    report = run_city(Settings(), ZEITZ, start=start, speed=60, duration_s=3 * 3600, seed=2,
                      faults=FaultConfig(late=0.02, duplicate=0.02), truth_path=None,
                      pacer=Pacer(60, clock=clock.time, sleep=clock.sleep), publish=publish)
    assert report.published == len(published) > 1000
    for now, message in published:
        assert message.time.timestamp() <= now + 0.001
        for reading in decode(decoder, message):
            assert reading.time.timestamp() <= now + 0.001  # never a reading from the future
    # Two hours replayed in about two minutes, then real time for the last hour.
    assert caught_up and 100 <= caught_up[0] - began <= 130
    assert clock.now - began == pytest.approx(3600, abs=120)


# -- command line and end to end ---------------------------------------------------------------

@pytest.mark.parametrize(("args", "reason"), [
    (["--faults", "drop,rain"], "unknown fault 'rain'"),
    (["--fault-rate", "drop=lots"], "not NAME=RATE"),
    (["--fault-rate", "drop=2"], "must be <= 1"),
    (["--start", "yesterday"], "not an RFC 3339 time"),
    (["--start", "2999-01-01T00:00:00Z"], "start is in the future"),
    (["--heartbeat-min", "0"], "--heartbeat-min must be > 0"),
])
def test_bad_usage_exits_2(args: list[str], reason: str, mqtt_url: str) -> None:
    assert_bad_usage(["simulate", "city", *args], reason, PARKLEIT_MQTT_URL=mqtt_url)


def test_sigterm_stops_cleanly(tmp_path: Path, mqtt_url: str, city_path: Path) -> None:
    log = tmp_path / "sim.log"
    truth = tmp_path / "truth.csv"
    env = base_env()
    env.update(PARKLEIT_MQTT_URL=mqtt_url, PARKLEIT_CITY=str(city_path))
    process = ServiceProcess(["simulate", "city", "--start", "now-1h", "--speed", "600",
                              "--truth", str(truth)], env, log).start()
    try:
        process.wait_log("simulating")
        wait_for(lambda: truth.exists() and len(truth.read_text().splitlines()) > 4 * 3)
        assert process.terminate(timeout=10) == 0
    finally:
        process.close()
    assert "stopped:" in log.read_text()
    assert truth.read_text().splitlines()[0] == TRUTH_HEADER


def sim_city_toml(city_id: str, now: datetime, *, garage: str = "capacity = 80\n"
                  "counter_modulus = 500") -> str:
    """A small city with every kind of sensor and a market filling it right now; ``garage``:
    the counter-counted garage's capacity and further settings."""
    tz = load_city("zeitz").tz
    begin = (now - timedelta(hours=2, minutes=15)).astimezone(tz)
    finish = (now + timedelta(minutes=40)).astimezone(tz)
    events = "".join(
        toml_table("events", name=f"Wochenmarkt {n}", kind="market",
                   lots=[f"{city_id}-garage", f"{city_id}-street"],
                   weekly="Mo,Tu,We,Th,Fr,Sa,Su", start=a, end=b, cars=240)
        for n, (a, b) in enumerate(daily_spans(begin, finish)) if b > a)
    lora = [{"id": f"{city_id}-{net}-{n}", "network": net, "dev_eui": f"{eui}{n:02x}"}
            for net, eui in (("ttn", "70b3d57ed0ff00"), ("chirpstack", "a84041000aff00"))
            for n in range(1, 4)]
    return "".join([
        city_head(city_id, "Simstadt"),
        toml_table("lots", id=f"{city_id}-garage", name="Parkhaus Markt", kind="garage",
                   counting="counter", latitude=51.05, longitude=12.14) + garage + "\n",
        toml_table("lots", id=f"{city_id}-street", name="Marktstraße", kind="on_street",
                   counting="bays", capacity=16, latitude=51.051, longitude=12.141, bays=lora,
                   bay_groups=[{"prefix": f"{city_id}-st", "count": 10}]),
        events])


@pytest.fixture
def city_path(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """This module's city: every sensor kind, and a market so that cars move at any hour. A
    test may set the garage's settings (``sim_city_toml``) by indirect parametrization."""
    city_id = f"s{secrets.token_hex(4)}"
    path = tmp_path / f"{city_id}.toml"
    garage = {"garage": request.param} if hasattr(request, "param") else {}
    path.write_text(sim_city_toml(city_id, utc_now(), **garage), encoding="utf-8")
    return path


def test_end_to_end_ingest_ends_where_the_truth_ends(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City, db_url: str,
        tmp_path: Path) -> None:
    ingest = spawn(["ingest"], service_env(settings), name="ingest")
    ingest.wait_log("connected to MQTT")
    truth_path = tmp_path / "truth.csv"
    report = run_city(settings, city, start=utc_now() - timedelta(hours=2),
                      speed=3600, duration_s=2 * 3600, seed=11, faults=FaultConfig(),
                      truth_path=truth_path)
    assert report.unacknowledged == 0 and not report.stopped
    assert set(report.by_kind) == KINDS - {"charger"}, report.by_kind  # a city without chargers
    with truth_path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    last = max(row["time"] for row in rows)
    truth = {row["lot_id"]: int(row["free"]) for row in rows if row["time"] == last}
    assert last == report.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert any(free < next(lot.capacity for lot in city.lots if lot.id == lot_id)
               for lot_id, free in truth.items())  # the market is on: not a trivial count

    def state() -> dict[str, Any]:
        with psycopg.connect(db_url) as conn:
            return dict(conn.execute("SELECT lot_id, free FROM lot_state").fetchall())

    wait_for(lambda: state() == truth, timeout=30)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
        sources: dict[str, int] = dict(conn.execute(
            "SELECT source, count(*) FROM bay_events GROUP BY 1").fetchall())
    assert set(sources) == {"native", "ttn", "chirpstack"}
    assert ingest.terminate() == 0


def _garage_counts(city: City, start: datetime, seed: int,
                   duration_s: float) -> list[tuple[datetime, int, int]]:
    """The garage counter's readings of a run (time, entries, exits), in publishing order."""
    decoder = Decoder(city)
    counts = []
    for message in city_messages(city, start, seed=seed, duration_s=duration_s):
        if message.topic.endswith(f"/{city.id}-garage/counter"):
            (reading,) = decode(decoder, message)
            assert isinstance(reading, CounterReading)
            assert reading.entries is not None and reading.exits is not None
            counts.append((reading.time, reading.entries, reading.exits))
    return counts


# A garage that is never full nor empty at any hour (an event venue with the market on it),
# its counter 16 bits wide.
BIG_GARAGE = 'capacity = 400\ncounter_modulus = 65536\nprofile = "event"'


@pytest.mark.parametrize("city_path", [BIG_GARAGE], indirect=True, ids=["big-garage"])
def test_simulating_the_city_twice_moves_no_counter_lot_at_once(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City,
        db_url: str) -> None:
    """``make demo`` twice in a row: the city simulator started again with another seed,
    overlapping the first run by ten minutes, into the same database. The second run's
    counters start from other values; ingest re-baselines them, so the garage's stored
    occupancy never moves by more than 10 % of its capacity from one row to the next, and
    the jump is flagged on the lot, on its counter and in dead_letters."""
    garage = city.lot(f"{city.id}-garage")
    now = utc_now().replace(second=0, microsecond=0)
    runs = [(11, now - timedelta(minutes=90), 60 * 60), (12, now - timedelta(minutes=40),
                                                         40 * 60)]
    first, second = (_garage_counts(city, start, seed, duration)
                     for seed, start, duration in runs)
    # Seeds 11 and 12: the second run's counters start far below the first's, which ingest
    # took for a restart from zero (the count jumped by the second run's whole occupancy).
    assert second[0][1] < first[-1][1] and second[0][2] < first[-1][2]
    ingest = spawn(["ingest"], service_env(settings), name="ingest")
    ingest.wait_log("connected to MQTT")
    for seed, start, duration in runs:
        report = run_city(settings, city, start=start, speed=3600, duration_s=duration,
                          seed=seed, faults=FaultConfig(), truth_path=None)
        assert report.unacknowledged == 0 and not report.stopped

    def newest() -> Any:
        with psycopg.connect(db_url) as conn:
            return conn.execute("SELECT counter_time FROM lot_state WHERE lot_id = %s",
                                (garage.id,)).fetchone()

    wait_for(lambda: newest() == (second[-1][0],), timeout=30)
    with psycopg.connect(db_url) as conn:
        stored = [occupied for (occupied,) in conn.execute(
            "SELECT occupied FROM lot_occupancy WHERE lot_id = %s ORDER BY time", (garage.id,))]
        flagged = conn.execute(
            "SELECT s.flags, c.counter_jump, (SELECT count(*) FROM dead_letters"
            "  WHERE topic = %(topic)s AND reason LIKE 'counter_jump:%%')"
            " FROM lot_state AS s JOIN sensor_status(%(now)s) AS c ON c.lot_id = s.lot_id"
            " WHERE s.lot_id = %(lot)s AND c.network = 'counter'",
            {"lot": garage.id, "topic": f"parkleit/v1/{city.id}/lots/{garage.id}/counter",
             "now": utc_now()},
        ).fetchone()
    moves = [abs(after - before) for before, after in itertools.pairwise(stored)]
    log.info("garage: %d rows, occupied %d-%d, largest move between consecutive rows %d",
             len(stored), min(stored), max(stored), max(moves))
    assert len(stored) > 60 and 0 < min(stored) <= max(stored) < garage.capacity
    assert max(moves) <= garage.capacity / 10, (
        f"largest move between consecutive rows: {max(moves)} of {garage.capacity}")
    assert flagged is not None
    flags, shown, letters = flagged
    assert "counter_jump" in flags and shown and letters >= 1
    assert ingest.terminate() == 0


class _Gate(Pacer):
    """No pacing; before the ``hold_at``-th message (or minute end) it runs ``on_hold``."""

    def __init__(self, hold_at: int, on_hold: Callable[[], None]) -> None:
        super().__init__(0)
        self.calls, self.hold_at, self.on_hold = 0, hold_at, on_hold

    def wait_until(self, moment: datetime) -> bool:
        self.calls += 1
        if self.calls == self.hold_at:
            self.on_hold()
        return True


def test_messages_that_reach_no_subscriber_are_published_again(
        settings: Settings, city: City) -> None:
    """Until ingest has subscribed (again: Mosquitto 2.0 forgets shared subscriptions in a
    restart), a message reaches no one and its PUBACK says so (0x10); the simulator publishes
    it again, so that the late subscriber still gets every message."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    start = utc_now() - timedelta(minutes=40)
    expected = {(m.topic, m.payload) for m in city_messages(city, start, seed=3,
                                                              duration_s=20 * 60)}
    received: set[tuple[str, bytes]] = set()
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            received.add((msg.topic, bytes(msg.payload)))

    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"late-{city.id}",
                             protocol=mqtt.MQTTv5)
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.connect(settings.mqtt.host, settings.mqtt.port)
    subscriber.loop_start()

    def subscribe() -> None:
        time.sleep(0.5)  # the broker has routed (to no one) what was published so far
        subscriber.subscribe([(f"{prefix}/#", 1) for prefix in (
            f"parkleit/v1/{city.id}", f"v3/{city.id}-app@ttn", f"application/{city.id}-cs")])
        assert subscribed.wait(10)

    try:
        report = run_city(settings, city, start=start, speed=0, duration_s=20 * 60, seed=3,
                          faults=FaultConfig(), truth_path=None, pacer=_Gate(30, subscribe))
        assert (report.unacknowledged, report.unrouted) == (0, 0)
        assert report.republished >= 20, report  # those before the subscription, at least
        wait_for(lambda: received >= expected, timeout=10)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
    assert report.published == len(expected)
