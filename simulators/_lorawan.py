"""The city's invented LoRaWAN network: gateways, radio links, outages and the uplink encoders.

``LoRaNetwork`` invents 2-3 gateways around the city's LoRaWAN lots, gives each LoRaWAN bay
sensor a ``LoRaDevice`` (heard by one or two gateways, a spreading factor from its signal, a
session), opens the gateways' outages (gateway_offline fault) and writes what the network
servers publish: The Things Stack v3 uplinks (``v3/{app}/devices/{device_id}/up``, Bosch-style
sensors) and ChirpStack v4 ``event/up`` and ``event/status`` (Nwave-style sensors), raw frames
only. It draws from the feed's device stream, in the feed's order, so the feed stays the same
for the same seed.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.city import Bay, City

from ._faults import CitySimError, FaultDice
from ._formats import MINUTE_MS, b64, dumps, iso_ns, moment

__all__ = ["Gateway", "Link", "LoRaDevice", "LoRaNetwork", "airtime_s"]

_EU868 = (868_100_000, 868_300_000, 868_500_000, 867_100_000, 867_300_000, 867_500_000,
          867_700_000, 867_900_000)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TTN_HOPS = ("as:up", "gs:conn", "gs:up:host", "gs:uplink", "ns:uplink",
             "rpc:/ttn.lorawan.v3.GsNs/HandleUplink", "rpc:/ttn.lorawan.v3.NsAs/HandleUplink")


@dataclass(frozen=True, slots=True)
class Gateway:
    """An invented LoRaWAN gateway of the city."""

    id: str
    eui: str
    latitude: float
    longitude: float
    altitude: int


@dataclass(slots=True)
class Link:
    """A gateway (index into the network's gateways) that hears a device, and how well."""

    gateway: int
    rssi: float
    snr: float


@dataclass(slots=True)
class LoRaDevice:
    """The radio side of a LoRaWAN bay sensor."""

    bay: Bay
    lot_id: str
    links: list[Link] = field(default_factory=list)
    spreading_factor: int = 7
    dev_addr: str = ""
    session_key: str = ""
    battery_report: dict[str, Any] | None = None  # TTN last_battery_percentage


def airtime_s(spreading_factor: int, payload_bytes: int) -> float:
    """LoRa time on air (125 kHz, CR 4/5, explicit header, 8 preamble symbols, CRC on)."""
    symbol = float(1 << spreading_factor) / 125_000
    low_rate = 1 if spreading_factor >= 11 else 0
    phy = 13 + payload_bytes  # MHDR + FHDR + FPort + MIC
    numerator = 8 * phy - 4 * spreading_factor + 28 + 16
    symbols = 8 + max(math.ceil(numerator / (4 * (spreading_factor - 2 * low_rate))) * 5, 0)
    return (8 + 4.25) * symbol + symbols * symbol


def _ulid(ms: int, rng: random.Random) -> str:
    """A ULID as The Things Stack puts in correlation ids (48-bit ms time + 80 random bits)."""
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class LoRaNetwork:
    """The gateways of ``city`` and what its network servers publish. ``outages`` lists the
    gateway outages opened so far (gateway index, start, end)."""

    def __init__(self, city: City, rng: random.Random, dice: FaultDice, start_ms: int,
                 stats: Counter[str]) -> None:
        self.city = city
        self.rng = rng
        self.dice = dice
        self.stats = stats
        self._ttn: tuple[str, str] | None = None  # application, tenant
        if city.lorawan.ttn_applications:
            app, _, tenant = city.lorawan.ttn_applications[0].partition("@")
            self._ttn = (app, tenant or "ttn")
        chirpstack = city.lorawan.chirpstack_applications
        self._chirpstack = chirpstack[0] if chirpstack else None
        name = f"parkleit-city:{city.id}"
        self._chirpstack_ids = (str(uuid.uuid5(uuid.NAMESPACE_URL, name + ":tenant")),
                                str(uuid.uuid5(uuid.NAMESPACE_URL, name + ":device-profile")))
        self.gateways = self._invent_gateways()
        self.outages: list[tuple[int, datetime, datetime]] = []
        self._next_outage = [self._first_outage(start_ms) for _ in self.gateways]
        self._open_outages: list[list[tuple[int, int]]] = [[] for _ in self.gateways]

    def check(self, bay: Bay) -> None:
        """CitySimError if the city config has no application for the bay's network."""
        if bay.network == "ttn" and self._ttn is None:
            raise CitySimError(f"bay {bay.id} is on TTN but the city config has no "
                               "lorawan.ttn_applications")
        if bay.network == "chirpstack" and self._chirpstack is None:
            raise CitySimError(f"bay {bay.id} is on ChirpStack but the city config has no "
                               "lorawan.chirpstack_applications")

    # -- the radio network ------------------------------------------------------------------

    def _invent_gateways(self) -> list[Gateway]:
        lora_lots = [lot for lot in self.city.lots
                     if any(bay.network != "native" for bay in lot.all_bays())]
        lots = lora_lots or list(self.city.lots)
        lat = sum(lot.latitude for lot in lots) / len(lots)
        lon = sum(lot.longitude for lot in lots) / len(lots)
        rng = self.rng
        count = rng.choice((2, 3))
        turn = rng.uniform(0, 2 * math.pi)
        gateways = []
        for n in range(count):
            angle = turn + 2 * math.pi * n / count
            distance = rng.uniform(250, 700)
            gateways.append(Gateway(
                id=f"{self.city.id}-gw-{n + 1}",
                eui=f"b827ebfffe{rng.getrandbits(24):06x}",
                latitude=round(lat + distance * math.cos(angle) / 110_540, 5),
                longitude=round(lon + distance * math.sin(angle)
                                / (111_320 * math.cos(math.radians(lat))), 5),
                altitude=rng.randrange(150, 200)))
        return gateways

    def device(self, bay: Bay, lot_id: str, latitude: float, longitude: float) -> LoRaDevice:
        """A sensor at (``latitude``, ``longitude``) joins: its links, data rate and session."""
        rng = self.rng
        device = LoRaDevice(bay, lot_id)
        ranked = sorted((self._distance(latitude, longitude, gw), n)
                        for n, gw in enumerate(self.gateways))
        heard = ranked[:2] if rng.random() < 0.5 else ranked[:1]
        for distance, n in heard:
            rssi = -35 - 27 * math.log10(max(distance, 20.0)) + rng.gauss(0, 3)
            rssi = min(max(rssi, -124.0), -60.0)
            snr = min(max((rssi + 118) / 2.5 + rng.gauss(0, 1.5), -18.0), 12.0)
            device.links.append(Link(n, rssi, snr))
        best = max(link.rssi for link in device.links)
        device.spreading_factor = 7 if best > -100 else 8 if best > -108 else (
            9 if best > -115 else 10)
        device.dev_addr = f"260b{rng.getrandbits(16):04x}".upper()
        device.session_key = b64(rng.getrandbits(128).to_bytes(16, "big"))
        return device

    @staticmethod
    def _distance(latitude: float, longitude: float, gateway: Gateway) -> float:
        lat = math.radians(gateway.latitude)
        dx = (longitude - gateway.longitude) * 111_320 * math.cos(lat)
        dy = (latitude - gateway.latitude) * 110_540
        return math.hypot(dx, dy)

    def _first_outage(self, start_ms: int) -> tuple[int, int] | None:
        rate = self.dice.config.gateway_offline
        if not rate:
            return None
        begin = start_ms + round(self.dice.rng("gateway_offline").uniform(0, 1 / rate)
                                 * 86_400_000)
        return begin, begin + round(self.dice.config.gateway_offline_min * MINUTE_MS)

    def plan_outages(self, until: int) -> None:
        """Open the gateway outages that begin before ``until``."""
        length = round(self.dice.config.gateway_offline_min * MINUTE_MS)
        for n, upcoming in enumerate(self._next_outage):
            while upcoming is not None and upcoming[0] < until:
                self._open_outages[n] = [*self._open_outages[n][-1:], upcoming]
                self.outages.append((n, moment(upcoming[0]), moment(upcoming[1])))
                self.stats["gateway_outages"] += 1
                begin = upcoming[1] + self.dice.gap("gateway_offline")
                upcoming = (begin, begin + length)
            self._next_outage[n] = upcoming

    def heard(self, device: LoRaDevice, ms: int) -> list[Link]:
        """The device's links whose gateway is up at ``ms``."""
        return [link for link in device.links if not any(
            begin <= ms < end for begin, end in self._open_outages[link.gateway])]

    # -- The Things Stack v3 ----------------------------------------------------------------

    def ttn_uplink(self, device: LoRaDevice, ms: int, f_cnt: int, port: int, frame: bytes,
                   heard: list[Link]) -> tuple[str, bytes]:
        """The topic and body of a TTN v3 uplink of ``frame`` heard by ``heard``."""
        assert self._ttn is not None and device.bay.dev_eui is not None
        rng = self.rng
        app, tenant = self._ttn
        eui = device.bay.dev_eui
        device_id = f"eui-{eui}"
        sf = device.spreading_factor
        channel = rng.randrange(len(_EU868))
        gateway_ms = ms - rng.randrange(60, 250)  # received by the gateways, then the servers
        rx = [self._ttn_rx(link, gateway_ms, channel) for link in heard]
        uplink: dict[str, Any] = {
            "session_key_id": device.session_key,
            "f_port": port,
            "f_cnt": f_cnt,
            "frm_payload": b64(frame),
            "rx_metadata": rx,
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": sf,
                                       "coding_rate": "4/5"}},
                "frequency": str(_EU868[channel]),
                "timestamp": rx[0]["timestamp"],
                "time": rx[0]["time"],
            },
            "received_at": iso_ns(ms - rng.randrange(5, 40), rng.randrange(10**6)),
            "consumed_airtime": f"{airtime_s(sf, len(frame)):.6f}s",
            "version_ids": {"brand_id": "bosch", "model_id": "parking-lot-sensor",
                            "hardware_version": "1.0", "firmware_version": "0.36.0",
                            "band_id": "EU_863_870"},
            "network_ids": {"net_id": "000013", "ns_id": "EC656E0000000181",
                            "tenant_id": tenant, "cluster_id": "eu1",
                            "cluster_address": "eu1.cloud.thethings.network"},
        }
        if device.battery_report is not None:
            uplink["last_battery_percentage"] = device.battery_report
        body = {
            "end_device_ids": {
                "device_id": device_id,
                "application_ids": {"application_id": app},
                "dev_eui": eui.upper(),
                "join_eui": "70B3D57ED0000000",
                "dev_addr": device.dev_addr,
            },
            "correlation_ids": [f"{prefix}:{_ulid(ms, rng)}" for prefix in _TTN_HOPS],
            "received_at": iso_ns(ms - 1, rng.randrange(10**6)),
            "uplink_message": uplink,
        }
        # The topic names the application as the config (and the MQTT username) does.
        topic = f"v3/{self.city.lorawan.ttn_applications[0]}/devices/{device_id}/up"
        return topic, dumps(body)

    def _ttn_rx(self, link: Link, gateway_ms: int, channel: int) -> dict[str, Any]:
        rng = self.rng
        gateway = self.gateways[link.gateway]
        rssi = round(link.rssi + rng.gauss(0, 2))
        return {
            "gateway_ids": {"gateway_id": gateway.id, "eui": gateway.eui.upper()},
            "time": iso_ns(gateway_ms, rng.randrange(10**6)),
            "timestamp": (gateway_ms * 1000 + link.gateway * 977_123_457) % 2**32,
            "rssi": rssi,
            "channel_rssi": rssi,
            "snr": round(link.snr + rng.gauss(0, 1.0) * 4) / 4,
            "location": {"latitude": gateway.latitude, "longitude": gateway.longitude,
                         "altitude": gateway.altitude, "source": "SOURCE_REGISTRY"},
            "uplink_token": b64(rng.getrandbits(352).to_bytes(44, "big")),
            "channel_index": channel,
            "received_at": iso_ns(gateway_ms + rng.randrange(5, 30), rng.randrange(10**6)),
        }

    # -- ChirpStack v4 ----------------------------------------------------------------------

    def _device_info(self, device: LoRaDevice) -> dict[str, Any]:
        assert self._chirpstack is not None and device.bay.dev_eui is not None
        return {
            "tenantId": self._chirpstack_ids[0],
            "tenantName": self.city.city.name,
            "applicationId": self._chirpstack,
            "applicationName": "parking",
            "deviceProfileId": self._chirpstack_ids[1],
            "deviceProfileName": "Nwave parking sensor",
            "deviceName": device.bay.id,
            "devEui": device.bay.dev_eui,
            "tags": {"lot": device.lot_id, "kind": device.bay.kind},
        }

    def _chirpstack_topic(self, device: LoRaDevice, event: str) -> str:
        return f"application/{self._chirpstack}/device/{device.bay.dev_eui}/event/{event}"

    def chirpstack_up(self, device: LoRaDevice, ms: int, f_cnt: int, port: int, frame: bytes,
                      heard: list[Link]) -> tuple[str, bytes]:
        """The topic and body of a ChirpStack v4 ``event/up`` of ``frame`` heard by ``heard``."""
        assert self._chirpstack is not None and device.bay.dev_eui is not None
        rng = self.rng
        sf = device.spreading_factor
        gateway_ms = ms - rng.randrange(40, 200)  # radio time; the event follows deduplication
        body: dict[str, Any] = {
            "deduplicationId": _uuid4(rng),
            "time": iso_ns(ms - 1, rng.randrange(10**6)),
            "deviceInfo": self._device_info(device),
            "devAddr": device.dev_addr.lower(),
            "adr": True,
            "dr": 12 - sf,
            "fCnt": f_cnt,
            "fPort": port,
        }
        if port == 1:
            body["confirmed"] = True  # Nwave sends status changes confirmed
        body["data"] = b64(frame)
        body["rxInfo"] = [{
            "gatewayId": self.gateways[link.gateway].eui,
            "uplinkId": rng.getrandbits(32),
            "nsTime": iso_ns(gateway_ms + rng.randrange(5, 30), rng.randrange(10**6)),
            "rssi": round(link.rssi + rng.gauss(0, 2)),
            "snr": round(link.snr + rng.gauss(0, 1.0), 1),
            "channel": rng.randrange(len(_EU868)),
            "location": {"latitude": self.gateways[link.gateway].latitude,
                         "longitude": self.gateways[link.gateway].longitude},
            "context": b64(rng.getrandbits(32).to_bytes(4, "big")),
            "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
            "crcStatus": "CRC_OK",
        } for link in heard]
        body["txInfo"] = {
            "frequency": _EU868[rng.randrange(len(_EU868))],
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": sf,
                                    "codeRate": "CR_4_5"}},
        }
        body["regionConfigId"] = "eu868"
        return self._chirpstack_topic(device, "up"), dumps(body)

    def chirpstack_status(self, device: LoRaDevice, ms: int,
                          battery_level: Callable[[], float]) -> tuple[str, bytes]:
        """The topic and body of a ChirpStack v4 ``event/status`` (margin, battery level).

        ``battery_level`` is asked last: it draws from the same random stream."""
        assert self._chirpstack is not None and device.bay.dev_eui is not None
        rng = self.rng
        body: dict[str, Any] = {
            "deduplicationId": _uuid4(rng),
            "time": iso_ns(ms - 1, rng.randrange(10**6)),
            "deviceInfo": self._device_info(device),
            "margin": rng.randrange(2, 20),
        }
        body["batteryLevel"] = battery_level()
        return self._chirpstack_topic(device, "status"), dumps(body)
