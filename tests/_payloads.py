"""Real-format inbound messages for the test city: native, The Things Stack v3, ChirpStack v4.

The LoRaWAN bodies follow the network servers' documented JSON (notes/PROTOCOLS.md §4): every
field a real uplink carries is present, so decoders and fuzzers see what production sees.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from _citytoml import CHIRPSTACK_EUI, TTN_EUI


def iso(moment: datetime) -> str:
    """RFC 3339 with a ``Z``, as sensors send it."""
    return moment.isoformat().replace("+00:00", "Z")


def iso_ns(moment: datetime, nanos: int = 789) -> str:
    """RFC 3339 with nanoseconds, as The Things Stack and ChirpStack send it."""
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{moment.microsecond:06d}{nanos:03d}Z"


def b64(frame: bytes) -> str:
    return base64.b64encode(frame).decode()


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


# -- topics --------------------------------------------------------------------------------------

def bay_topic(city_id: str, bay: str = "st-001") -> str:
    return f"parkleit/v1/{city_id}/bays/{city_id}-{bay}"


def counter_topic(city_id: str, lot: str = "garage") -> str:
    return f"parkleit/v1/{city_id}/lots/{city_id}-{lot}/counter"


def ttn_topic(city_id: str, device_id: str = "pls-0001") -> str:
    return f"v3/{city_id}-app@ttn/devices/{device_id}/up"


def chirpstack_topic(city_id: str, event: str = "up", dev_eui: str = CHIRPSTACK_EUI) -> str:
    return f"application/{city_id}-cs/device/{dev_eui}/event/{event}"


# -- bodies --------------------------------------------------------------------------------------

def native_bay(moment: datetime, occupied: bool = True, **extra: Any) -> dict[str, Any]:
    return {"occupied": occupied, "ts": iso(moment), **extra}


def ttn_uplink(city_id: str, received_at: datetime, *, f_port: int | None = 1,
               f_cnt: int | None = 1234, frame: bytes | None = b"\x01",
               decoded: dict[str, Any] | None = None) -> dict[str, Any]:
    """A The Things Stack v3 ``up`` message of a Bosch PLS on the test city's TTN bay.

    ``None`` leaves a field out, as The Things Stack does for zero and empty values.
    """
    uplink: dict[str, Any] = {
        "session_key_id": "AYRbU3bwBnGhVrRFlJQ7Tw==",
        "f_port": f_port,
        "f_cnt": f_cnt,
        "frm_payload": None if frame is None else b64(frame),
        "decoded_payload": decoded,
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "zeitz-rathaus", "eui": "B827EBFFFE6A1C2D"},
                "time": iso_ns(received_at, 111),
                "timestamp": 2463457000,
                "rssi": -97,
                "channel_rssi": -97,
                "snr": 7.25,
                "location": {"latitude": 51.0486, "longitude": 12.1378, "altitude": 160,
                             "source": "SOURCE_REGISTRY"},
                "uplink_token": "ChsKGQoNemVpdHotcmF0aGF1cxIIuCfr//5qHC0QqKHj9QgaCwjVxqW6BhCw",
                "channel_index": 2,
                "received_at": iso_ns(received_at, 222),
            },
            {
                "gateway_ids": {"gateway_id": "zeitz-schloss", "eui": "A840411D2F9C4150"},
                "timestamp": 1102034517,
                "rssi": -112,
                "channel_rssi": -112,
                "snr": -3.5,
                "uplink_token": "ChsKGQoNemVpdHotc2NobG9zcxIIqEBBHS+cQVAQ1ZXA0gQaDAjVxqW6BhCIpA==",
                "channel_index": 2,
                "received_at": iso_ns(received_at, 333),
            },
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 9,
                                   "coding_rate": "4/5"}},
            "frequency": "868500000",
            "timestamp": 2463457000,
            "time": iso_ns(received_at, 111),
        },
        "received_at": iso_ns(received_at, 444),
        "consumed_airtime": "0.164864s",
        "version_ids": {"brand_id": "bosch", "model_id": "tps110", "hardware_version": "1.0",
                        "firmware_version": "0.36.0", "band_id": "EU_863_870"},
        "network_ids": {"net_id": "000013", "ns_id": "EC656E0000000181", "tenant_id": "ttn",
                        "cluster_id": "eu1", "cluster_address": "eu1.cloud.thethings.network"},
        "last_battery_percentage": {"f_cnt": 1200, "value": 87.4,
                                    "received_at": "2026-11-24T06:12:09.918273645Z"},
    }
    return {
        "end_device_ids": {
            "device_id": "pls-0001",
            "application_ids": {"application_id": f"{city_id}-app"},
            "dev_eui": TTN_EUI.upper(),
            "join_eui": "70B3D57ED0000000",
            "dev_addr": "260B4C1F",
        },
        "correlation_ids": [
            "as:up:01JDBQ4Z3W6X1V9K2P8N5M7R0T",
            "gs:conn:01JDBNZ8Y2H4C6E9F1G3J5K7L9",
            "gs:up:host:01JDBNZ8YAB4C6D8E0F2G4H6J8",
            "gs:uplink:01JDBQ4Z2K7M9N1P3Q5R7S9T1V",
            "ns:uplink:01JDBQ4Z2Q3R5S7T9V1W3X5Y7Z",
            "rpc:/ttn.lorawan.v3.GsNs/HandleUplink:01JDBQ4Z2QB8C0D2E4F6G8H0J2",
            "rpc:/ttn.lorawan.v3.NsAs/HandleUplink:01JDBQ4Z3V5W7X9Y1Z3A5B7C9D",
        ],
        "received_at": iso_ns(received_at),
        "uplink_message": {k: v for k, v in uplink.items() if v is not None},
    }


def chirpstack_device_info(dev_eui: str = CHIRPSTACK_EUI) -> dict[str, Any]:
    return {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "Stadtwerke",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "parking",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Nwave parking sensor",
        "deviceName": "nwave-0002",
        "devEui": dev_eui,
        "tags": {"lot": "sensorparkplatz", "installed": "2026-03"},
    }


def chirpstack_up(time: datetime, *, f_port: int | None = 1, f_cnt: int | None = 57,
                  frame: bytes | None = b"\x01", obj: dict[str, Any] | None = None,
                  dev_eui: str = CHIRPSTACK_EUI) -> dict[str, Any]:
    """A ChirpStack v4 ``up`` event (protobuf JSON mapping); ``None`` leaves a field out."""
    body: dict[str, Any] = {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": iso_ns(time, 242),
        "deviceInfo": chirpstack_device_info(dev_eui),
        "devAddr": "00189440",
        "adr": True,
        "dr": 5,
        "fCnt": f_cnt,
        "fPort": f_port,
        "confirmed": True,
        "data": None if frame is None else b64(frame),
        "object": obj,
        "rxInfo": [
            {
                "gatewayId": "0016c001f153a14c",
                "uplinkId": 4217106255,
                "rssi": -88,
                "snr": 9.5,
                "context": "E3OWOQ==",
                "metadata": {"region_name": "eu868", "region_common_name": "EU868"},
            },
            {
                "gatewayId": "0016c001f1500812",
                "uplinkId": 1182733921,
                "rssi": -104,
                "snr": 1.25,
                "context": "2kRQaw==",
                "metadata": {"region_name": "eu868", "region_common_name": "EU868"},
            },
        ],
        "txInfo": {
            "frequency": 867100000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7,
                                    "codeRate": "CR_4_5"}},
        },
    }
    return {k: v for k, v in body.items() if v is not None}


def chirpstack_status(time: datetime, battery: float | None = 75.5,
                      dev_eui: str = CHIRPSTACK_EUI) -> dict[str, Any]:
    """A ChirpStack v4 ``status`` event (DevStatusAns): margin and battery level."""
    body: dict[str, Any] = {
        "deduplicationId": "f1d2c3b4-a596-4788-99aa-bbccddeeff00",
        "time": iso_ns(time, 17),
        "deviceInfo": chirpstack_device_info(dev_eui),
        "margin": 6,
    }
    if battery is None:
        body["batteryLevelUnavailable"] = True
    else:
        body["batteryLevel"] = battery
    return body
