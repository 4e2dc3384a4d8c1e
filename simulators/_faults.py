"""What can go wrong in the city simulator: the faults, their dice and the delivery faults.

``FaultConfig`` says which faults are on and how often; ``FaultDice`` gives every fault its own
seeded random stream; ``Delivery`` holds the messages on their way to the broker and applies
the faults of delivery (malformed, dropped, late, duplicated). The device faults (stuck,
flapping, dead batteries, counters, gateway outages) are played by the devices themselves.
Faults never touch the ground truth.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ._formats import SimMessage, dumps, moment

__all__ = ["DEFAULT_RATES", "FAULT_NAMES", "CitySimError", "Delivery", "FaultConfig",
           "FaultDice", "corrupt"]

FAULT_NAMES = ("drop", "duplicate", "late", "stuck", "flapping", "dead_battery",
               "counter_drift", "counter_reset", "counter_restart", "gateway_offline",
               "malformed")
# The rate each fault gets when switched on without one. Units differ by fault; see FaultConfig.
DEFAULT_RATES: dict[str, float] = {
    "drop": 0.01, "duplicate": 0.01, "late": 0.01, "stuck": 0.02, "flapping": 0.01,
    "dead_battery": 0.02, "counter_drift": 0.02, "counter_reset": 0.1, "counter_restart": 0.05,
    "gateway_offline": 1.0, "malformed": 0.005,
}
_SHARES = ("drop", "duplicate", "late", "dead_battery", "counter_drift", "malformed")
_DAY_MS = 86_400_000


class CitySimError(ValueError):
    """The city cannot be simulated as asked (one-line reason)."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Which faults to inject and how often. A rate of 0 switches a fault off (the default).

    Shares (0..1): ``drop``, ``duplicate``, ``late``, ``malformed`` of the messages;
    ``counter_drift`` of the entries a counter misses; ``dead_battery`` of the bay sensors
    whose battery runs flat (at least one when on). Per day of simulated time: ``stuck`` and
    ``flapping`` episodes per bay sensor, ``counter_reset`` (the device restarts from zero)
    and ``counter_restart`` (it restarts from another value, as a swapped or reconfigured
    controller does: entries and exits each anywhere below the modulus) per counter,
    ``gateway_offline`` outages per gateway (the first one within 1/rate days of the start).
    """

    drop: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    stuck: float = 0.0
    flapping: float = 0.0
    dead_battery: float = 0.0
    counter_drift: float = 0.0
    counter_reset: float = 0.0
    counter_restart: float = 0.0
    gateway_offline: float = 0.0
    malformed: float = 0.0
    late_s: tuple[float, float] = (30.0, 300.0)  # delay of a late message
    duplicate_s: tuple[float, float] = (0.05, 2.0)  # a duplicate follows its original by
    stuck_h: tuple[float, float] = (2.0, 8.0)  # a stuck sensor stays frozen for
    flapping_min: tuple[float, float] = (2.0, 10.0)  # a flapping sensor flaps for
    flapping_every_s: tuple[float, float] = (2.0, 8.0)  # toggling every
    dead_battery_h: float | None = None  # 3.6 V to 2.4 V in; None: 80 % of the run (or 24 h)
    gateway_offline_min: float = 60.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            rate = getattr(self, name)
            if not (isinstance(rate, int | float) and math.isfinite(rate) and rate >= 0):
                raise CitySimError(f"fault rate {name}={rate!r} must be a number >= 0")
            if name in _SHARES and rate > 1:
                raise CitySimError(f"fault rate {name}={rate} is a share and must be <= 1")
        for name in ("late_s", "duplicate_s", "stuck_h", "flapping_min", "flapping_every_s"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise CitySimError(f"fault setting {name}={(low, high)} must be 0 < low <= high")
        if self.dead_battery_h is not None and not self.dead_battery_h > 0:
            raise CitySimError("fault setting dead_battery_h must be > 0")
        if not self.gateway_offline_min > 0:
            raise CitySimError("fault setting gateway_offline_min must be > 0")

    @classmethod
    def parse(cls, names: str = "none", rates: Mapping[str, float] | None = None) -> FaultConfig:
        """``"drop,late"``, ``"all"`` or ``"none"`` at their default rates, then ``rates``
        (which also switch their faults on; a rate of 0 switches one off)."""
        chosen: dict[str, float] = {}
        text = names.strip().lower()
        if text == "all":
            chosen = dict(DEFAULT_RATES)
        elif text not in ("", "none"):
            for name in (part.strip() for part in text.split(",")):
                if name not in DEFAULT_RATES:
                    raise CitySimError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
                chosen[name] = DEFAULT_RATES[name]
        for name, rate in (rates or {}).items():
            if name not in DEFAULT_RATES:
                raise CitySimError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
            chosen[name] = rate
        get = chosen.get
        return cls(drop=get("drop", 0.0), duplicate=get("duplicate", 0.0),
                   late=get("late", 0.0), stuck=get("stuck", 0.0),
                   flapping=get("flapping", 0.0), dead_battery=get("dead_battery", 0.0),
                   counter_drift=get("counter_drift", 0.0),
                   counter_reset=get("counter_reset", 0.0),
                   counter_restart=get("counter_restart", 0.0),
                   gateway_offline=get("gateway_offline", 0.0),
                   malformed=get("malformed", 0.0))

    def enabled(self) -> list[str]:
        """The names of the faults that are on."""
        return [name for name in FAULT_NAMES if getattr(self, name) > 0]


class FaultDice:
    """One random stream per fault, seeded: switching one fault on does not reshuffle the
    others' choices."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self._rngs = {fault: random.Random(f"parkleit-city:{seed}:{fault}")
                      for fault in FAULT_NAMES}

    def rng(self, name: str) -> random.Random:
        """The random stream of the fault ``name``."""
        return self._rngs[name]

    def happens(self, name: str) -> bool:
        """Whether a fault that is a share strikes now (no draw when it is off)."""
        rate: float = getattr(self.config, name)
        return bool(rate) and self._rngs[name].random() < rate

    def gap(self, name: str) -> int:
        """Milliseconds to the next episode of a fault that happens its rate times a day."""
        per_day: float = getattr(self.config, name)
        return max(1, round(self._rngs[name].expovariate(per_day) * _DAY_MS))


class Delivery:
    """The messages on their way, in publishing order, after the delivery faults: a message
    may be corrupted, dropped, held back (late) or sent twice. ``stats`` counts each."""

    def __init__(self, dice: FaultDice, stats: Counter[str]) -> None:
        self.dice = dice
        self.stats = stats
        self._outbox: list[tuple[int, int, SimMessage]] = []  # send ms, order, message
        self._order = 0

    def emit(self, ms: int, topic: str, payload: bytes, kind: str) -> None:
        """A device sends ``payload`` at ``ms``."""
        dice, config = self.dice, self.dice.config
        self.stats[f"generated_{kind}"] += 1
        marks: tuple[str, ...] = ()
        if dice.happens("malformed"):
            payload = corrupt(payload, kind, dice.rng("malformed"))
            marks = ("malformed",)
            self.stats["malformed"] += 1
        if dice.happens("drop"):
            self.stats["dropped"] += 1
            return
        send = ms
        if dice.happens("late"):
            send += round(dice.rng("late").uniform(*config.late_s) * 1000)
            marks = (*marks, "late")
            self.stats["late"] += 1
        self._post(send, SimMessage(moment(send), topic, payload, kind, marks))
        if dice.happens("duplicate"):
            again = send + round(dice.rng("duplicate").uniform(*config.duplicate_s) * 1000)
            self._post(again, SimMessage(moment(again), topic, payload, kind,
                                         (*marks, "duplicate")))
            self.stats["duplicated"] += 1

    def _post(self, ms: int, message: SimMessage) -> None:
        self._order += 1
        heapq.heappush(self._outbox, (ms, self._order, message))

    def drain(self, until: int | None) -> Iterator[SimMessage]:
        """The messages due by ``until`` (None: all of them), in publishing order."""
        while self._outbox and (until is None or self._outbox[0][0] <= until):
            yield heapq.heappop(self._outbox)[2]


_WRONG_TYPES: dict[str, tuple[tuple[str, ...], ...]] = {
    # Paths to a field and what to put there instead; every one is refused by ingest.
    "native": (("occupied",), ("ts",), ("seq",)),
    "counter": (("entries",), ("exits",), ("ts",)),
    "ttn": (("uplink_message", "f_port"), ("uplink_message", "frm_payload"),
            ("end_device_ids", "dev_eui"), ("received_at",)),
    "chirpstack": (("fPort",), ("data",), ("time",), ("deviceInfo", "devEui")),
    "chirpstack_status": (("time",), ("batteryLevel",), ("deviceInfo",)),
    "charger": (("status",), ("ts",)),
}


def corrupt(payload: bytes, kind: str, rng: random.Random) -> bytes:
    """A broken copy of ``payload``: truncated JSON, a field of the wrong type, or garbage."""
    how = rng.choice(("truncated", "wrong_type", "garbage"))
    if how == "truncated":
        return payload[:rng.randrange(1, len(payload))]
    if how == "garbage":
        # A raw frame or line noise where JSON belongs: never valid UTF-8 from the first byte.
        return bytes([rng.randrange(0x80, 0xC0), rng.randrange(1, 256)]) + bytes(
            rng.randrange(256) for _ in range(rng.randrange(0, 24)))
    body = json.loads(payload)
    path = rng.choice(_WRONG_TYPES[kind])
    node = body
    for key in path[:-1]:
        node = node[key]
    value = node[path[-1]]
    node[path[-1]] = (str(value) if isinstance(value, bool | int | float) else
                      "%%%" if path[-1] in ("frm_payload", "data") else
                      [value] if isinstance(value, dict) else rng.randrange(10**9))
    return dumps(body)
