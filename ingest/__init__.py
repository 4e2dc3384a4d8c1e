"""Ingest: MQTT sensor messages into the database, exactly once, with lot status out."""

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
    "Writer",
    "apply_counter",
    "counter_delta",
    "prepare_connection",
]
