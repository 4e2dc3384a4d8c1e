"""Ingest: MQTT sensor messages into the database, exactly once, with lot status out."""

from ._alarms import AlarmChange, AlarmWebhook, Thresholds, evaluate_alarms
from ._decode import (
    BayReading,
    CounterReading,
    DecodeError,
    Decoder,
    HealthReading,
    Reading,
)
from ._service import SHARE_GROUP, IngestService
from ._state import CounterState, apply_counter, counter_delta
from ._writer import BatchResult, Message, Writer, prepare_connection

__all__ = [
    "SHARE_GROUP",
    "AlarmChange",
    "AlarmWebhook",
    "BatchResult",
    "BayReading",
    "CounterReading",
    "CounterState",
    "DecodeError",
    "Decoder",
    "HealthReading",
    "IngestService",
    "Message",
    "Reading",
    "Thresholds",
    "Writer",
    "apply_counter",
    "counter_delta",
    "evaluate_alarms",
    "prepare_connection",
]
