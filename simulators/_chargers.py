"""The city simulator's charging points: sessions driven by the cars on the bays they serve
(the points whose status a gateway publishes over MQTT, ``protocol = "mqtt"``).

A car that arrives on a bay a charging point serves is, with ``combustion_share``, a
combustion car that never charges (it blocks the point); otherwise an electric car that plugs
in after ``plug_in_s`` and charges for ``charge_min`` (or until it leaves). Each point sends
its OCPI status (``AVAILABLE``, ``CHARGING``) on ``parkleit/v1/{city}/chargers/{evse_id}/status``
as gateways do, on each change and again every ``repeat_min`` (so a lost message is not lost
for long), through the same delivery faults as the sensors. The truth: per point whether a
car stands there and whether it charges, and since when a car has stood there without
charging (``idle_since``): a car parked without charging for the city's limit is what the
blocked rule (rules.sql evse_effective) should find.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from core.channels import charger_status_topic
from core.city import City

from ._faults import Delivery
from ._formats import MINUTE_MS, dumps, iso_ms

__all__ = ["CHARGER_TRUTH_HEADER", "Chargers", "PointTruth"]

CHARGER_TRUTH_HEADER = "time,evse_id,car,charging"
COMBUSTION_SHARE = 0.2  # of the cars on a charging point's bay: never charge, block it


@dataclass(slots=True)
class PointTruth:
    """What really is at a charging point: a car, whether it charges, since when a car has
    stood there without charging (ms; None: no such car), and the session it belongs to."""

    evse_id: str
    car: bool = False
    charging: bool = False
    idle_since: int | None = None
    session: int = 0


_PLUG, _DONE, _REPEAT = range(3)


class Chargers:
    """The charging points of ``city`` that serve bays; ``arrived``/``left`` move a car."""

    def __init__(self, city: City, start_ms: int, delivery: Delivery, *, seed: int = 1,
                 combustion_share: float = COMBUSTION_SHARE,
                 plug_in_s: tuple[float, float] = (20, 120),
                 charge_min: tuple[float, float] = (20, 240),
                 repeat_min: float = 10.0) -> None:
        self.city = city
        self.combustion_share = combustion_share
        self.plug_in_s = plug_in_s
        self.charge_min = charge_min
        self._delivery = delivery
        self._rng = random.Random(f"parkleit-city:{seed}:chargers")
        # The points whose status comes over MQTT (a gateway's): the OCPP and OCPI ones have
        # simulators of their own (``parkleit simulate chargers``).
        served = [evse for station, evse in city.evses()
                  if evse.bays and station.protocol == "mqtt"]
        self.points = {evse.evse_id: PointTruth(evse.evse_id) for evse in served}
        self._point_of = {bay: evse.evse_id for evse in served for bay in evse.bays}
        self._agenda: list[tuple[int, int, int, str, int]] = []  # ms, order, kind, evse, session
        self._order = 0
        self._changes: list[str] = []  # truth lines (CHARGER_TRUTH_HEADER) not drained yet
        self._repeat_ms = round(repeat_min * MINUTE_MS)
        for evse_id in self.points:
            self._changed(start_ms, self.points[evse_id])  # the truth starts with every point
            self._send(start_ms, evse_id, "AVAILABLE")
            self._schedule(start_ms + self._rng.randrange(1, self._repeat_ms), _REPEAT,
                           self.points[evse_id], session=-1)

    def drain(self) -> list[str]:
        """The truth's changes since the last call, as CSV lines under CHARGER_TRUTH_HEADER."""
        changes, self._changes = self._changes, []
        return changes

    def _changed(self, ms: int, point: PointTruth) -> None:
        self._changes.append(f"{iso_ms(ms)},{point.evse_id},{str(point.car).lower()},"
                             f"{str(point.charging).lower()}")

    def serves(self, bay_id: str) -> bool:
        return bay_id in self._point_of

    def bay_changed(self, ms: int, bay_id: str, occupied: bool) -> None:
        """A car really arrived on (or left) bay ``bay_id`` at ``ms``."""
        point = self.points[self._point_of[bay_id]]
        if occupied == point.car:
            return
        point.session += 1
        point.car = occupied
        if not occupied:
            point.idle_since = None
            if point.charging:
                point.charging = False
                self._send(ms, point.evse_id, "AVAILABLE")
            self._changed(ms, point)
            return
        self._changed(ms, point)
        point.idle_since = ms
        if self._rng.random() >= self.combustion_share:
            plug = ms + round(self._rng.uniform(*self.plug_in_s) * 1000)
            self._schedule(plug, _PLUG, point)

    def until(self, ms: int) -> None:
        """Play the sessions' events before ``ms``."""
        while self._agenda and self._agenda[0][0] < ms:
            at, _, kind, evse_id, session = heapq.heappop(self._agenda)
            point = self.points[evse_id]
            if kind == _REPEAT:
                self._send(at, evse_id, "CHARGING" if point.charging else "AVAILABLE")
                self._schedule(at + self._repeat_ms, _REPEAT, point, session=-1)
                continue
            if session != point.session:
                continue  # that car has gone
            if kind == _PLUG:
                point.charging, point.idle_since = True, None
                self._changed(at, point)
                self._send(at, evse_id, "CHARGING")
                done = at + round(self._rng.uniform(*self.charge_min) * MINUTE_MS)
                self._schedule(done, _DONE, point)
            else:  # charged: the car may stay without charging
                point.charging, point.idle_since = False, at
                self._changed(at, point)
                self._send(at, evse_id, "AVAILABLE")

    def blocked(self, ms: int, limit_ms: int) -> set[str]:
        """The points a car has stood on without charging for ``limit_ms`` at ``ms``."""
        return {evse_id for evse_id, point in self.points.items()
                if point.idle_since is not None and ms - point.idle_since >= limit_ms}

    def _schedule(self, ms: int, kind: int, point: PointTruth, *,
                  session: int | None = None) -> None:
        self._order += 1
        heapq.heappush(self._agenda, (ms, self._order, kind, point.evse_id,
                                      point.session if session is None else session))

    def _send(self, ms: int, evse_id: str, status: str) -> None:
        self._delivery.emit(ms, charger_status_topic(self.city.id, evse_id),
                            dumps({"status": status, "ts": iso_ms(ms)}), "charger")
