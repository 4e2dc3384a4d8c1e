"""``parkleit simulate signs``: every sign of a city, of all three kinds, on its own address.

ntcip1203 signs answer SNMP (``signs_ntcip.py``), http signs HTTP (``signs_http.py``, one
server per host and port) and mqtt signs MQTT on the configured broker (``signs_mqtt.py``).
Each http and mqtt sign expects its configured lines and fits ``display.line_width``
characters per line, as the city config describes it.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from core.city import City
from core.settings import Settings
from simulators._json_sign import JsonSignModel
from simulators._serving import serving, tick_every, until_stopped
from simulators.signs_http import HttpSignSimulator
from simulators.signs_mqtt import MqttSignSimulator
from simulators.signs_ntcip import run_ntcip_signs

__all__ = ["run_signs"]

logger = logging.getLogger(__name__)


async def run_signs(city: City, stop: asyncio.Event, *, settings: Settings,
                    minute_s: float = 60.0) -> None:
    """Serve every sign of ``city`` until ``stop`` is set; ValueError for an address it can't."""
    servers: dict[tuple[str, int], HttpSignSimulator] = {}
    mqtt_signs: list[MqttSignSimulator] = []
    models: list[JsonSignModel] = []
    for sign in city.signs:
        if sign.driver == "ntcip1203":
            continue
        model = JsonSignModel(sign.id, line_count=len(sign.lines),
                              chars_per_line=sign.display.line_width, minute_s=minute_s)
        models.append(model)
        if sign.driver == "mqtt":
            mqtt_signs.append(MqttSignSimulator(model, sign.address, settings))
            continue
        address = urlsplit(sign.address)
        if address.scheme != "http" or not address.hostname:
            raise ValueError(f"sign {sign.id}: the simulator serves http://host:port/path "
                             f"addresses, not {sign.address!r}")
        where = (address.hostname, address.port or 80)
        server = servers.setdefault(where, HttpSignSimulator(*where))
        server.add(address.path or "/", model)
    simulators: list[HttpSignSimulator | MqttSignSimulator] = [*servers.values(), *mqtt_signs]
    workers = [asyncio.create_task(run_ntcip_signs(city, stop, minute_s=minute_s),
                                   name="ntcip-signs"),
               asyncio.create_task(tick_every(minute_s, models), name="sign-timers")]
    async with serving(simulators, workers=workers):
        logger.info("%d signs of %s running", len(city.signs), city.id)
        await until_stopped(stop, workers)
