"""A simulated OCPI 2.2.1 platform of another operator (a CPO): the city's stations with
``protocol = "ocpi"`` served as Locations on ``GET {prefix}/locations`` (the sender interface:
``offset``/``limit`` pages with ``Link``, ``X-Total-Count`` and ``X-Limit``, the response
envelope, ``Authorization: Token <base64>``), over real HTTP (uvicorn).

Each point's status follows a small session model (``step``): an available point starts a
session now and then, a session ends after a while, a rare fault takes a point out of order
for a time. ``mode`` makes the platform fail as real ones do: ``down`` (HTTP 503), ``garbage``
(HTML with status 200) or ``envelope`` (JSON without the envelope).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from core.charging import EvseStatus
from core.city import ChargingStation, City, OcpiPeer
from core.clock import Clock
from core.ocpi import CLIENT_ERROR, envelope, token_matches
from core.status import rfc3339

__all__ = ["PREFIX", "OcpiSimulator", "ServerThread", "serve_ocpi"]

logger = logging.getLogger(__name__)

PREFIX = "/ocpi/cpo/2.2.1"
Mode = Literal["ok", "down", "garbage", "envelope"]


@dataclass(slots=True)
class _Point:
    status: EvseStatus
    last_updated: datetime
    until: datetime | None = None  # when a session or a fault ends


class OcpiSimulator:
    """The Locations of one peer (``peer``: its operator's OCPI stations of ``city``),
    their statuses and the HTTP app serving them with ``token``."""

    def __init__(self, city: City, peer: OcpiPeer, token: str, *, start: datetime,
                 max_limit: int = 50, seed: int = 1,
                 clock: Clock | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.city, self.peer, self.token = city, peer, token
        self.max_limit = max_limit
        self.mode: Mode = "ok"
        self.requests = 0  # answered requests of locations (any outcome)
        self.clock = (clock or Clock()).now
        self._rng = random.Random(seed)
        self.stations: list[ChargingStation] = [station for station, _ in city.peer_evses(peer)]
        self.stations = list(dict.fromkeys(self.stations))
        self.points = {evse.evse_id: _Point(EvseStatus.AVAILABLE, start)
                       for _, evse in city.peer_evses(peer)}
        self.app = self._build_app()

    # -- the session model ----------------------------------------------------------------

    def set_status(self, evse_id: str, status: EvseStatus, at: datetime) -> None:
        """Put a point in ``status`` as of ``at`` (a test's or a fault's doing)."""
        self.points[evse_id] = _Point(status, at)

    def step(self, now: datetime, *, seconds: float = 60.0) -> None:
        """Advance every point's session model by ``seconds`` ending at ``now``."""
        rng = self._rng
        for point in self.points.values():
            if point.until is not None and now >= point.until:
                point.status, point.last_updated, point.until = EvseStatus.AVAILABLE, now, None
            elif point.status is EvseStatus.AVAILABLE:
                if rng.random() < seconds / 3600 * 0.8:  # about 0.8 sessions an hour
                    minutes = rng.uniform(20, 120)
                    point.status, point.last_updated = EvseStatus.CHARGING, now
                    point.until = now + timedelta(minutes=minutes)
                elif rng.random() < seconds / 86_400 * 0.2:  # a fault about every 5 days
                    point.status, point.last_updated = EvseStatus.OUTOFORDER, now
                    point.until = now + timedelta(minutes=rng.uniform(30, 240))

    # -- OCPI -----------------------------------------------------------------------------

    def location(self, station: ChargingStation) -> dict[str, Any]:
        """A station as an OCPI 2.2.1 Location with its EVSEs' current status."""
        latitude, longitude = self.city.station_position(station)
        evses = []
        for evse in station.evses:
            point = self.points[evse.evse_id]
            evses.append({
                "uid": evse.evse_id, "evse_id": evse.evse_id, "status": point.status.value,
                "connectors": [{
                    "id": str(index), "standard": connector.standard,
                    "format": connector.format, "power_type": connector.power_type,
                    "max_voltage": 400 if connector.power_type != "DC" else 920,
                    "max_amperage": 32 if connector.power_type != "DC" else 200,
                    "max_electric_power": int(connector.max_power_kw * 1000),
                    "last_updated": rfc3339(point.last_updated.astimezone(UTC)),
                } for index, connector in enumerate(evse.connectors, start=1)],
                "last_updated": rfc3339(point.last_updated.astimezone(UTC)),
            })
        newest = max(self.points[evse.evse_id].last_updated for evse in station.evses)
        return {
            "country_code": self.peer.country_code, "party_id": self.peer.party_id,
            "id": station.id, "publish": True, "name": station.name,
            "address": station.name, "city": self.city.city.name, "country": "DEU",
            "coordinates": {"latitude": f"{latitude:.6f}", "longitude": f"{longitude:.6f}"},
            "time_zone": self.city.city.timezone,
            "operator": {"name": station.operator},
            "evses": evses, "last_updated": rfc3339(newest.astimezone(UTC)),
        }

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Simulated OCPI 2.2.1 CPO", openapi_url=None, docs_url=None,
                      redoc_url=None)

        @app.get(PREFIX + "/locations")
        def locations(request: Request, offset: int = Query(0, ge=0),
                      limit: int | None = Query(None, ge=1)) -> Response:
            self.requests += 1
            now = self.clock()
            if not token_matches(request.headers.get("authorization"), self.token):
                return JSONResponse(envelope(None, now, CLIENT_ERROR, "Unknown token"),
                                    status_code=401)
            if self.mode == "down":
                return PlainTextResponse("Service Unavailable", status_code=503)
            if self.mode == "garbage":
                return PlainTextResponse("<html><body>Wartungsarbeiten</body></html>",
                                         media_type="text/html")
            if self.mode == "envelope":
                return JSONResponse([self.location(s) for s in self.stations])
            size = min(limit or self.max_limit, self.max_limit)
            page = self.stations[offset:offset + size]
            headers = {"X-Total-Count": str(len(self.stations)), "X-Limit": str(size)}
            if offset + size < len(self.stations):
                following = request.url.include_query_params(offset=offset + size, limit=size)
                headers["Link"] = f'<{following}>; rel="next"'
            return JSONResponse(envelope([self.location(s) for s in page], now),
                                headers=headers)

        return app


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the caller owns the signals
        pass


async def serve_ocpi(simulator: OcpiSimulator, host: str, port: int, stop: asyncio.Event, *,
                     step_s: float = 60.0) -> None:
    """Serve ``simulator`` on ``host:port`` and step its sessions every ``step_s`` until
    ``stop`` is set."""
    server = _Server(uvicorn.Config(simulator.app, host=host, port=port, log_level="warning",
                                    access_log=False, lifespan="off"))

    async def sessions() -> None:
        while True:
            await asyncio.sleep(step_s)
            simulator.step(simulator.clock(), seconds=step_s)

    serving = asyncio.create_task(server.serve(), name="ocpi-server")
    stepping = asyncio.create_task(sessions(), name="ocpi-sessions")
    try:
        waiting = asyncio.create_task(stop.wait(), name="ocpi-stop")
        done, _ = await asyncio.wait([waiting, serving], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if serving in done:
            serving.result()
            raise OSError(f"the OCPI server on {host}:{port} ended")
    finally:
        stepping.cancel()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        with contextlib.suppress(asyncio.CancelledError):
            await stepping


class ServerThread:
    """``simulator`` served on 127.0.0.1 on a free port in a thread (tests, the demo):
    ``url`` is its ``locations`` endpoint."""

    def __init__(self, simulator: OcpiSimulator) -> None:
        self.simulator = simulator
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{PREFIX}/locations"
        self._server = _Server(uvicorn.Config(simulator.app, host="127.0.0.1", port=self.port,
                                              log_level="warning", access_log=False,
                                              lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="ocpi-simulator",
                                        daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        for _ in range(200):
            if self._server.started:
                return self
            threading.Event().wait(0.025)
        raise OSError("the OCPI simulator did not start")

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

