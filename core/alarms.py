"""The alarms' vocabulary every part shares: what kinds ingest's evaluator raises
(``ingest/alarms.sql``), with which severity, and the words the API, its metric and the
console use for them. The table ``alarms`` holds them (one row per occurrence)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ALARM_KINDS", "SEVERITIES", "AlarmKind", "Severity"]

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

# What is wrong, and the target it names: a bay sensor (sensor_silent, bay_stuck,
# battery_low), a LoRaWAN gateway (gateway_silent), a lot (lot_no_data, forecast_error), a
# garage counter ``{lot_id}/counter`` (counter_jump), a sign (sign_no_ack, sign_local_mode),
# a service by the name of its retained status topic (service_offline), a charging point whose
# OCPI source fell silent past its staleness limit (charger_source_silent).
AlarmKind = Literal["sensor_silent", "gateway_silent", "bay_stuck", "battery_low",
                    "lot_no_data", "counter_jump", "sign_no_ack", "sign_local_mode",
                    "forecast_error", "service_offline", "charger_source_silent"]
ALARM_KINDS: tuple[AlarmKind, ...] = get_args(AlarmKind)
