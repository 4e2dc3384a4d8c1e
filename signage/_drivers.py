"""The driver registry: the one place that knows which code drives which type of sign."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.city import Sign
from signage._content import SignDriver, SignError
from signage._http_driver import HttpDriver
from signage._mqtt_driver import MqttDriver
from signage._ntcip_driver import NtcipDriver

__all__ = ["DRIVER_FACTORIES", "DriverFactory", "Drivers"]

DriverFactory = Callable[[], SignDriver]

DRIVER_FACTORIES: Mapping[str, DriverFactory] = {
    "ntcip1203": NtcipDriver,
    "http": HttpDriver,
    "mqtt": MqttDriver,  # the broker of the process's settings
}


class Drivers:
    """One driver per sign type, made on first use and shared by every sign of that type."""

    def __init__(self, factories: Mapping[str, DriverFactory] = DRIVER_FACTORIES) -> None:
        self._factories = factories
        self._drivers: dict[str, SignDriver] = {}

    def driver_for(self, sign: Sign) -> SignDriver:
        """The driver for ``sign``'s type; SignError if there is none yet."""
        driver = self._drivers.get(sign.driver)
        if driver is None:
            factory = self._factories.get(sign.driver)
            if factory is None:
                raise SignError(f"sign {sign.id}: no driver for {sign.driver!r} signs")
            driver = self._drivers[sign.driver] = factory()
        return driver

    async def close(self) -> None:
        """Close every driver made so far; idempotent."""
        drivers, self._drivers = list(self._drivers.values()), {}
        for driver in drivers:
            await driver.close()
