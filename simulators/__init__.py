"""Simulated sensors, counters, gateways and signs, and the city's demand and history."""

from simulators._mqtt import mqtt_client

__all__ = ["mqtt_client"]
