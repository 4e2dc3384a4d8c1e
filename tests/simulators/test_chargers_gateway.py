"""The charger simulator's MQTT gateway (``parkleit simulate chargers`` for the stations with
protocol "mqtt"): what it publishes is what ingest reads, each point once at the start and
then on every change only."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from _citytoml import evse_id, write_city

from core.charging import EvseStatus
from core.city import load_city
from core.clock import Clock
from ingest import Decoder
from simulators.chargers import ChargerReport, MqttGateway
from simulators.demand import LotDemand

NOON = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)  # midday in Berlin: EVs arrive


def _gateway(tmp_path: Path, speed: float,
             moment: datetime = NOON) -> tuple[MqttGateway, list[tuple[str, bytes]]]:
    city = load_city(str(write_city(tmp_path, "tgw", chargers=True)))
    # The gateway's points are the MQTT points that serve no bay (the city simulator drives
    # those that do, by the cars on their bays): the test city's, without their bays.
    city = city.model_copy(update={"chargers": [
        station.model_copy(update={"evses": [evse.model_copy(update={"bays": []})
                                             for evse in station.evses]})
        for station in city.chargers]})
    published: list[tuple[str, bytes]] = []
    gateway = MqttGateway(city, lambda topic, payload: published.append((topic, payload)),
                          demand=LotDemand(city), rng=random.Random(1),
                          clock=Clock.starting_at(moment), speed=speed, faults=False,
                          report=ChargerReport())
    return gateway, published


def test_the_gateway_publishes_what_ingest_reads(tmp_path: Path) -> None:
    # Ten simulated hours a tick: every free point gets an EV, every session has ended by
    # the next tick.
    gateway, published = _gateway(tmp_path, speed=36_000.0)
    decoder = Decoder(gateway.city)
    points = [evse_id("tgw", 1, 1), evse_id("tgw", 1, 2)]  # cp-1 is the city's MQTT station
    seen: list[list[EvseStatus]] = []
    for _ in range(3):
        published.clear()
        gateway.step()
        readings = [decoder.charger_status(topic, payload, NOON)
                    for topic, payload in published]
        assert all(reading is not None and reading.source == "mqtt" for reading in readings)
        assert sorted(reading.evse_id for reading in readings if reading) == points
        seen.append([reading.status for reading in readings if reading])
    assert seen == [[EvseStatus.CHARGING] * 2, [EvseStatus.AVAILABLE] * 2,
                    [EvseStatus.CHARGING] * 2]


def test_each_point_once_then_changes_only(tmp_path: Path) -> None:
    gateway, published = _gateway(tmp_path, speed=1e-6)  # no EV ever arrives
    gateway.step()
    assert [payload.startswith(b'{"status": "AVAILABLE"') for _, payload in published] == [
        True, True]
    gateway.step()
    gateway.step()
    assert len(published) == 2


def test_evs_arrive_as_the_demand_model_has_cars_arrive(tmp_path: Path) -> None:
    """Sessions start at the rate the demand model gives the station's lot (a shopping
    street: busy on a weekday at noon, quiet on a Sunday night; public holidays count as
    Sundays), times the EV share."""
    gateway, _ = _gateway(tmp_path, speed=1.0)
    demand, lot = LotDemand(gateway.city), gateway.city.chargers[0].lot
    christmas, sunday = (datetime(2026, 12, day, 11, 0, tzinfo=UTC) for day in (25, 27))
    assert demand.per_space_hour(lot, christmas) == demand.per_space_hour(lot, sunday) < (
        demand.per_space_hour(lot, datetime(2026, 12, 23, 11, 0, tzinfo=UTC)))

    def sessions(moment: datetime) -> int:
        gateway, published = _gateway(tmp_path, speed=600.0, moment=moment)  # 10 min a tick
        for _ in range(200):
            gateway.step()
        return sum(b'"CHARGING"' in payload for _, payload in published)

    assert sessions(NOON) >= 5
    assert sessions(datetime(2026, 6, 7, 1, 0, tzinfo=UTC)) <= 1  # Sunday, 3 am in Berlin
