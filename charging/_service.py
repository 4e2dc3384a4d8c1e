"""``parkleit ocpp``: the central system (charge point management endpoint) of the city's own
chargers, OCPP 1.6J and 2.0.1 over WebSocket.

A station connects to ``ws[s]://HOST:PORT/ocpp/{charge_point_id}`` offering ``ocpp1.6`` or
``ocpp2.0.1``. The handshake is refused with 404 for an id that is no OCPP station of a loaded
city, with 401 without the station's HTTP Basic credentials, with 400 without a subprotocol
we speak. A station that connects again replaces its older connection (OCPP: the newest wins).

Each StatusNotification is one transaction: ``core.charging.store_readings_async`` (source
``ocpp``) stores it and NOTIFYs, and after the commit the changed states go out retained on
``parkleit/v1/{city}/chargers/{evse_id}/state``, then the station gets its answer. The service
reports ``online``/``offline`` per city like the others. On SIGTERM it stops accepting,
closes every connection (1001, going away: the stations reconnect to another instance or
later) after the calls under way are answered, and ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import psycopg
from ocpp.exceptions import OCPPError
from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from charging._central import SUBPROTOCOLS, StationLink, central_for
from charging._credentials import Credentials, parse_basic
from core.channels import charger_state_topic
from core.charging import (
    EvseReading,
    EvseState,
    EvseStatus,
    effective_of_async,
    store_readings_async,
)
from core.city import ChargingStation, City
from core.db import open_async_pool, queries
from core.mqtt import ServiceStatus, mqtt_client
from core.registry import sync_registry
from core.runtime import AsyncLifecycle, serve_metrics
from core.settings import Settings

__all__ = ["OcppService", "ocpp_problem"]

logger = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"
MAX_MESSAGE_BYTES = 65_536  # OCPP calls are small; a larger frame closes that link (1009)


def ocpp_problem(settings: Settings) -> str | None:
    """Why the OCPP settings cannot work (one line), or None."""
    path = settings.OCPP_CREDENTIALS_FILE
    if path is None:
        return ("no charge point credentials: set PARKLEIT_OCPP_CREDENTIALS_FILE "
                "(`parkleit ocpp add-station ID` writes it)")
    if not path.is_file():
        return f"PARKLEIT_OCPP_CREDENTIALS_FILE: no such file {path}"
    for name in ("OCPP_TLS_CERT_FILE", "OCPP_TLS_KEY_FILE"):
        tls_file = getattr(settings, name)
        if tls_file is not None and not tls_file.is_file():
            return f"PARKLEIT_{name}: no such file {tls_file}"
    return None


class _Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.connected = Gauge("parkleit_ocpp_stations_connected",
                               "OCPP stations with a link now", registry=r)
        self.refused = Counter("parkleit_ocpp_connections_refused",
                               "Handshakes refused: no such station (unknown) or wrong or no "
                               "credentials (credentials)", ["reason"], registry=r)
        self.statuses = Counter("parkleit_ocpp_statuses_stored",
                                "Charging point statuses stored (from the stations, and UNKNOWN "
                                "for stations without a link)", registry=r)
        self.dead = Counter("parkleit_ocpp_dead_letters",
                            "Station messages refused (CallError) and kept in dead_letters",
                            registry=r)
        self.unlinked = Gauge("parkleit_ocpp_stations_unknown",
                              "Stations without a link past OCPP_STALE_AFTER_S: their points "
                              "are UNKNOWN", registry=r)


class OcppService(AsyncLifecycle):
    """The central system for the OCPP stations of ``cities``; ``run()`` blocks until
    ``stop()``. ``port`` 0 picks a free one (``bound_port`` tells it once listening)."""

    def __init__(self, settings: Settings, cities: list[City], *,
                 credentials: Credentials | None = None, port: int | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.clock = settings.clock
        self.cities = cities
        self.heartbeat_s = settings.OCPP_HEARTBEAT_S
        self.port = settings.OCPP_PORT if port is None else port
        self.bound_port: int | None = None
        if credentials is None:
            path = settings.OCPP_CREDENTIALS_FILE
            assert path is not None, "ocpp_problem() says why not"
            credentials = Credentials(path)
        self.credentials = credentials
        self.stations: dict[str, tuple[City, ChargingStation]] = {
            station.id: (city, station) for city in cities for station in city.chargers
            if station.protocol == "ocpp"}
        self.links: dict[str, ServerConnection] = {}  # station id -> its newest connection
        # Since when each station without a link has had none (monotonic, and the clock's
        # time: its points are UNKNOWN from then, once OCPP_STALE_AFTER_S has passed), and
        # the stations whose points are UNKNOWN already.
        self._unlinked: dict[str, tuple[float, datetime]] = {}
        self._marked_unknown: set[str] = set()
        self.listening = asyncio.Event()
        self._q = queries("charging")
        self._pool: AsyncConnectionPool[Any] | None = None
        self._mqtt: mqtt.Client | None = None
        self._published: dict[str, bytes] = {}  # state topic -> payload, sent again on connect
        self.metrics = _Metrics()

    # -- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Serve the stations until stopped; the exit code."""
        with psycopg.connect(self.settings.DATABASE_URL, autocommit=True,
                             connect_timeout=5) as conn:
            for city in self.cities:
                sync_registry(conn, city)  # evse_state refers to the registry's points
        asyncio.run(self.serve())
        logger.info("stopped")
        return self.exit_code

    async def serve(self) -> None:
        """Listen until ``stop()``, then drain."""
        if not self.enter_loop():
            return
        settings = self.settings
        pool = await open_async_pool(
            settings.DATABASE_URL, max_size=4, name="ocpp")
        self._pool = pool
        identity = f"{socket.gethostname()}-{os.getpid()}"
        statuses = [ServiceStatus(settings, city.id, "ocpp",
                                  client_id=f"parkleit-ocpp-{city.id}-{identity}",
                                  on_fatal=self.fatal).start() for city in self.cities]
        client = self._mqtt = mqtt_client(settings, f"parkleit-ocpp-states-{identity}")
        client.on_connect = self._on_mqtt_connect
        client.connect_async(settings.mqtt.host, settings.mqtt.port, keepalive=30)
        client.loop_start()
        stop_metrics = serve_metrics(0, self.metrics.registry)  # none yet
        try:
            stop_metrics = serve_metrics(settings.OCPP_METRICS_PORT, self.metrics.registry)
            async with serve(self._connection, settings.OCPP_HOST, self.port,
                             subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
                             process_request=self._handshake, ssl=self._tls(),
                             max_size=MAX_MESSAGE_BYTES, server_header=None) as server:
                self.bound_port = _port_of(server)
                scheme = "wss" if settings.OCPP_TLS_CERT_FILE else "ws"
                logger.info("listening on %s://%s:%d/ocpp/{charge_point_id} for %d OCPP "
                            "stations of %s", scheme, settings.OCPP_HOST, self.bound_port,
                            len(self.stations), ", ".join(city.id for city in self.cities))
                self.listening.set()
                started = (asyncio.get_running_loop().time(), self.clock.now())
                self._unlinked = dict.fromkeys(self.stations, started)  # none linked yet
                await self.supervise([asyncio.create_task(self._stale_loop(),
                                                          name="ocpp-stale")])
                # Going away: the calls under way are answered first, each handler ends
                # after its current message.
                server.close(close_connections=True)
                try:
                    await asyncio.wait_for(server.wait_closed(), settings.SHUTDOWN_TIMEOUT_S)
                except TimeoutError:
                    logger.warning("connections still open after %.0f s; leaving them",
                                   settings.SHUTDOWN_TIMEOUT_S)
        finally:
            stop_metrics()
            client.disconnect()
            client.loop_stop()
            for status in statuses:
                status.close()
            await pool.close(timeout=2)

    def _tls(self) -> ssl.SSLContext | None:
        cert, key = self.settings.OCPP_TLS_CERT_FILE, self.settings.OCPP_TLS_KEY_FILE
        if cert is None or key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP security profile 2
        context.load_cert_chain(cert, key)
        return context

    # -- the handshake ----------------------------------------------------------------------

    async def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse an unknown station (404) or one without its credentials (401)."""
        station_id = _station_id(request.path)
        if station_id is None or station_id not in self.stations:
            logger.info("refused %s: no OCPP station %r", _peer(connection), station_id)
            self.metrics.refused.labels("unknown").inc()
            return connection.respond(HTTPStatus.NOT_FOUND, "no such charge point\n")
        login = parse_basic(request.headers.get("Authorization"))
        # HTTP Basic's user is the charge point id (OCPP security profiles 1 and 2).
        ok = login is not None and login[0] == station_id and await asyncio.to_thread(
            self.credentials.verify, station_id, login[1])
        if not ok:
            logger.warning("refused %s: wrong or no credentials for %s", _peer(connection),
                           station_id)
            self.metrics.refused.labels("credentials").inc()
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "credentials needed\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="parkleit ocpp"'
            return response
        return None

    async def _connection(self, connection: ServerConnection) -> None:
        """One station's link, from the accepted handshake to its close."""
        assert connection.request is not None
        station_id = _station_id(connection.request.path)
        assert station_id is not None
        city, station = self.stations[station_id]
        older = self.links.get(station_id)
        self.links[station_id] = connection
        self._unlinked.pop(station_id, None)
        self._marked_unknown.discard(station_id)
        self._count_links()
        if older is not None:
            logger.info("%s connected again; closing its older connection", station_id)
            await older.close(1000, "replaced by a newer connection")
        central = central_for(connection.subprotocol)(
            station_id, connection, self, StationLink(city, station))
        central.logger = _QUIET  # the package logs every frame at INFO
        logger.info("%s connected (%s, %s)", station_id, connection.subprotocol,
                    _peer(connection))
        try:
            await central.start()
        except ConnectionClosed as closed:
            logger.info("%s disconnected (%s)", station_id, closed.rcvd or "no close frame")
        finally:
            if self.links.get(station_id) is connection:
                del self.links[station_id]
                self._unlinked[station_id] = (asyncio.get_running_loop().time(),
                                              self.clock.now())
                self._count_links()

    def _count_links(self) -> None:
        self.metrics.connected.set(len(self.links))
        self.metrics.unlinked.set(len(self._marked_unknown))

    # -- stale stations -----------------------------------------------------------------------

    async def _stale_loop(self) -> None:
        """Every few seconds: the points of each station without a link for
        ``OCPP_STALE_AFTER_S`` become UNKNOWN, once (a database error: tried again).

        The reading's time is when the link was lost (or this service started): unknown from
        then, and older than what the station sends once it is back, even with a clock that
        runs somewhat behind."""
        limit = self.settings.OCPP_STALE_AFTER_S
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(30.0, limit / 4))
            now = loop.time()
            stale = [(station_id, at) for station_id, (since, at) in self._unlinked.items()
                     if now - since >= limit and station_id not in self._marked_unknown]
            for station_id, at in stale:
                city, station = self.stations[station_id]
                try:
                    await self.store(city, [EvseReading(evse.evse_id, EvseStatus.UNKNOWN, at,
                                                        "ocpp") for evse in station.evses])
                except (psycopg.Error, PoolTimeout) as exc:
                    logger.warning("cannot mark %s's points unknown (%s)", station_id,
                                   type(exc).__name__)
                    continue
                if station_id in self._unlinked:  # not reconnected meanwhile
                    self._marked_unknown.add(station_id)
                    self._count_links()
                    logger.warning("%s has had no link for %.0f s: its points are unknown",
                                   station_id, now - self._unlinked[station_id][0])

    # -- what the stations' connections use (charging._central.Hub) ---------------------------

    def now(self) -> datetime:
        return self.clock.now()

    async def store(self, city: City, readings: list[EvseReading]) -> None:
        """Store the readings (one transaction), then publish the changed states."""
        assert self._pool is not None
        async with self._pool.connection(timeout=10) as conn, conn.transaction():
            changed = await store_readings_async(conn, city.id, readings)
            # Published as every output shows a point: read with its bays (rules.sql).
            changed = await effective_of_async(conn, city, self.clock.now(), changed)
        self.metrics.statuses.inc(len(readings))
        self._publish(city.id, changed)

    async def dead_letter(self, station_id: str, raw: str | bytes, reason: str) -> None:
        """A refused message into ``dead_letters`` (a repeat counts its occurrences); a
        database that is down loses the letter, never the station's link."""
        payload = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
        assert self._pool is not None
        try:
            async with self._pool.connection(timeout=5) as conn:
                await conn.execute(self._q["insert_dead_letter"], {
                    "received": self.clock.now(), "topic": f"ocpp/{station_id}",
                    "payload": payload[:self.settings.DEAD_LETTER_MAX_BYTES],
                    "payload_size": len(payload), "digest": hashlib.sha256(payload).digest(),
                    "reason": reason[:500]})
            self.metrics.dead.inc()
        except (psycopg.Error, PoolTimeout) as exc:
            logger.warning("cannot store a dead letter of %s (%s): %s", station_id,
                           type(exc).__name__, reason)

    # -- MQTT out -----------------------------------------------------------------------------

    def _publish(self, city_id: str, states: list[EvseState]) -> None:
        client = self._mqtt
        for state in states:
            topic, payload = charger_state_topic(city_id, state.evse_id), state.to_json()
            self._published[topic] = payload.encode() if isinstance(payload, str) else payload
            if client is not None:
                client.publish(topic, payload, qos=1, retain=True)

    def _on_mqtt_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                         _props: Any) -> None:
        if reason.is_failure:
            logger.error("MQTT broker refused the connection: %s", reason)
            return
        # What changed while the broker was away: the newest state of each point again.
        for topic, payload in list(self._published.items()):
            client.publish(topic, payload, qos=1, retain=True)


def _station_id(path: str) -> str | None:
    """The charge point id of ``/ocpp/{id}`` (percent-decoded), or None."""
    route = urlsplit(path).path
    if not route.startswith(PATH_PREFIX):
        return None
    station_id = unquote(route.removeprefix(PATH_PREFIX))
    return station_id if station_id and "/" not in station_id else None


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


def _port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


class _NoRefusals(logging.Filter):
    """Drops the package's tracebacks of the CallErrors we raise on purpose (logged once, in
    a line, where they are raised); other errors of a handler keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, OCPPError)


# The package logs every frame at INFO; here only warnings and errors, without refusals.
_QUIET = logging.getLogger("charging.frames")
_QUIET.setLevel(logging.WARNING)
_QUIET.addFilter(_NoRefusals())
