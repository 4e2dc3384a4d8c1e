"""The OCPI pull: one task per peer with a ``locations_url`` (``PeerPull``), each polling on
its interval while this instance leads (``core.leader.Leadership``: two instances never both
pull), storing the EVSEs' statuses with ``core.charging.store_readings_async`` (source
``ocpi``, ``last_updated`` as the time) and publishing the changed states retained after the
commit. A failed pull (down, HTTP error, not JSON, not the envelope) is logged and retried
with the runtime's back-off; when nothing good came for the peer's ``stale_after_s`` its
points are stored as UNKNOWN, once, until it answers again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg_pool import AsyncConnectionPool

from core.channels import charger_state_topic
from core.charging import (
    EvseReading,
    EvseState,
    EvseStatus,
    effective_of_async,
    store_readings_async,
)
from core.city import City, OcpiPeer
from core.db import open_async_pool, queries
from core.leader import Leadership, leader_gauge
from core.mqtt import ServiceStatus, mqtt_client
from core.ocpi import OcpiError, authorization, location_updates, unwrap
from core.runtime import AsyncLifecycle, Backoff, serve_metrics
from core.settings import Settings

__all__ = ["OcpiService", "PeerPull", "PullError"]

logger = logging.getLogger(__name__)

MAX_PAGES = 1000  # a peer whose Link never ends is answering garbage
REQUEST_TIMEOUT_S = 10.0
PAYLOAD_LOG = 200


class PullError(Exception):
    """A pull that brought nothing usable; the message says why (logged, retried)."""


class _Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.pulls = Counter("parkleit_ocpi_pulls", "Pull rounds of a peer's locations, by "
                             "result (ok, failed)", ["peer", "result"], registry=r)
        self.last_ok = Gauge("parkleit_ocpi_last_success_timestamp_seconds",
                             "When a peer last answered a pull usably (Unix time)", ["peer"],
                             registry=r)
        self.silent = Gauge("parkleit_ocpi_peer_silent",
                            "1 while a peer's points are UNKNOWN (nothing usable from it for "
                            "its stale_after_s)", ["peer"], registry=r)
        self.rejected = Counter("parkleit_ocpi_rejected",
                                "Locations or EVSEs of a peer refused (kept in dead_letters)",
                                ["peer"], registry=r)
        self.leader = leader_gauge(r)


class PeerPull:
    """The pull of one peer's ``locations``: ``poll(now)`` is one round."""

    def __init__(self, service: OcpiService, peer: OcpiPeer, token: str, started: datetime,
                 ) -> None:
        if peer.locations_url is None:
            raise ValueError(f"OCPI peer {peer.id} has no locations_url")
        self.service, self.peer, self.token = service, peer, token
        self.url = peer.locations_url
        self.evses = frozenset(evse.evse_id for _, evse in service.city.peer_evses(peer))
        self.last_ok = started  # the last good answer (the start: a full limit to answer)
        self.unknown_at: datetime | None = None  # when its points were stored as UNKNOWN
        # Retry sooner than the interval at first, then back off up to 5 minutes.
        self.retry = Backoff(min(5.0, peer.pull_interval_s), max(300.0, peer.pull_interval_s))
        self.pulls = self.failures = 0

    async def poll(self, now: datetime) -> float:
        """Pull and store once at ``now``; the seconds to wait before the next round."""
        try:
            locations = await self.fetch()
        except PullError as exc:
            self.failures += 1
            self.service.metrics.pulls.labels(self.peer.id, "failed").inc()
            logger.warning("OCPI peer %s: pull failed: %s", self.peer.id, exc)
            await self.mark_stale(now, str(exc))
            return self.retry.next()
        await self.store(locations, now)
        self.pulls += 1
        self.service.metrics.pulls.labels(self.peer.id, "ok").inc()
        self.retry.reset()
        return self.peer.pull_interval_s

    async def fetch(self) -> list[Any]:
        """Every Location of the peer, page by page (``offset``/``limit``, ``Link: next``)."""
        client = self.service.http
        url: str | None = self.url
        params: dict[str, int] | None = {"offset": 0, "limit": self.peer.page_limit}
        origin = urlsplit(self.url)[:2]
        headers = {"Authorization": authorization(self.token), "Accept": "application/json"}
        locations: list[Any] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return locations
            try:
                response = await client.get(url, params=params, headers=headers,
                                            timeout=REQUEST_TIMEOUT_S)
            except httpx.HTTPError as exc:
                raise PullError(f"cannot reach {self.url}: {type(exc).__name__} {exc}"
                                ) from None
            if response.status_code in (401, 403):
                raise PullError(f"HTTP {response.status_code}: our token was refused")
            if response.status_code != 200:
                raise PullError(f"HTTP {response.status_code}: {response.text[:PAYLOAD_LOG]!r}")
            try:
                data = unwrap(response.json())
            except ValueError as exc:  # OcpiError is one, as is a body that is not JSON
                raise PullError(f"garbage: {exc} ({response.text[:PAYLOAD_LOG]!r})") from None
            if not isinstance(data, list):
                raise PullError("garbage: the envelope's data is not a list of Locations")
            locations.extend(data)
            following = response.links.get("next", {}).get("url")
            if following is not None and urlsplit(following)[:2] != origin:
                # Our token goes nowhere but to the configured host.
                raise PullError(f"garbage: Link next points elsewhere ({following[:100]!r})")
            url, params = following, None
        raise PullError(f"garbage: more than {MAX_PAGES} pages")

    async def store(self, locations: list[Any], now: datetime) -> list[EvseState]:
        """Store the statuses of our points among ``locations``; the states that changed."""
        readings: list[EvseReading] = []
        rejects: list[tuple[Any, str]] = []
        for location in locations:
            try:
                updates = location_updates(location)
            except OcpiError as exc:
                rejects.append((location, str(exc)))
                continue
            for update in updates:
                if update.evse_id not in self.evses:
                    rejects.append((update.evse_id, f"unknown EVSE {update.evse_id[:48]!r} "
                                    f"(not a charging point of {self.peer.operator!r})"))
                    continue
                assert update.status is not None  # a full EVSE object has one
                ts = min(update.last_updated, now)  # a peer's clock ahead is not the future
                if self.unknown_at is not None and ts <= self.unknown_at:
                    ts = now  # they answer again: what they say holds now, after our UNKNOWN
                readings.append(EvseReading(update.evse_id, update.status, ts, "ocpi"))
        changed = await self.service.store(readings, now, rejects, self.peer)
        if self.unknown_at is not None:
            logger.info("OCPI peer %s answers again", self.peer.id)
        self.last_ok, self.unknown_at = now, None
        self.service.metrics.last_ok.labels(self.peer.id).set(now.timestamp())
        self.service.metrics.silent.labels(self.peer.id).set(0)
        return changed

    async def mark_stale(self, now: datetime, reason: str) -> list[EvseState]:
        """Past the staleness limit since the last good answer: every point UNKNOWN (once)."""
        if self.unknown_at is not None or \
                now - self.last_ok < timedelta(seconds=self.peer.stale_after_s):
            return []
        readings = [EvseReading(evse_id, EvseStatus.UNKNOWN, now, "ocpi")
                    for evse_id in sorted(self.evses)]
        changed = await self.service.store(readings, now, [], self.peer)
        self.unknown_at = now
        self.service.metrics.silent.labels(self.peer.id).set(1)
        logger.error("OCPI peer %s silent since %s (%s): its %d charging points are UNKNOWN",
                     self.peer.id, self.last_ok.isoformat(), reason, len(readings))
        return changed

    async def run(self) -> None:
        """Poll until the service stops, while this instance leads."""
        service = self.service
        while not service.stopping:
            if not service.leadership.leading():
                await service.sleep(service.settings.LEADER_CHECK_S)
                continue
            await service.sleep(await self.poll(service.clock.now()))


class OcpiService(AsyncLifecycle):
    """Pulls every OCPI peer of a city; ``run()`` blocks until ``stop()``."""

    def __init__(self, settings: Settings, city: City) -> None:
        super().__init__()
        self.settings, self.city, self.clock = settings, city, settings.clock
        self.peers = [peer for peer in city.ocpi_peers if peer.locations_url is not None]
        self.metrics = _Metrics()
        self.leadership = Leadership(settings, "ocpi", city.id,
                                     f"{socket.gethostname()}-{os.getpid()}",
                                     on_change=self._led)
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.pool: AsyncConnectionPool[Any] | None = None
        self.publisher: Any = None  # the paho client publishing the states
        self.pulls: dict[str, PeerPull] = {}

    def _led(self, leading: bool) -> None:
        self.metrics.leader.labels("ocpi", self.city.id).set(int(leading))

    def tokens(self) -> dict[str, str]:
        """Each pulled peer's token from its ``token_env``; ValueError naming a missing one."""
        found: dict[str, str] = {}
        for peer in self.peers:
            assert peer.token_env is not None  # the config requires it with locations_url
            token = self.settings.secret(peer.token_env)
            if token is None:
                raise ValueError(f"OCPI peer {peer.id}: environment variable {peer.token_env} "
                                 "(its token) is not set")
            found[peer.id] = token
        return found

    def run(self) -> int:
        """Pull until stopped; the exit code."""
        try:
            tokens = self.tokens()
        except ValueError as exc:
            self.fatal(str(exc))
            return self.exit_code
        asyncio.run(self._main(tokens))
        logger.info("stopped")
        return self.exit_code

    async def open(self) -> None:
        """The database pool and the MQTT publisher (``run`` does it; tests call it)."""
        self.enter_loop()
        self.pool = await open_async_pool(
            self.settings.DATABASE_URL, max_size=2, name="ocpi")
        target = self.settings.mqtt
        self.publisher = mqtt_client(self.settings, f"parkleit-ocpi-{self.city.id}-"
                                     f"{socket.gethostname()}-{os.getpid()}")
        self.publisher.connect_async(target.host, target.port, keepalive=30)
        self.publisher.loop_start()

    async def close(self) -> None:
        if self.publisher is not None:
            self.publisher.disconnect()
            self.publisher.loop_stop()
            self.publisher = None
        if self.pool is not None:
            await self.pool.close(timeout=2)
        await self.http.aclose()

    async def _main(self, tokens: dict[str, str]) -> None:
        if not self.enter_loop():
            return
        await self.open()
        status: ServiceStatus | None = None
        stop_metrics = serve_metrics(0, self.metrics.registry)  # none yet
        try:
            stop_metrics = serve_metrics(self.settings.OCPI_METRICS_PORT, self.metrics.registry)
            status = ServiceStatus(self.settings, self.city.id, "ocpi",
                                   client_id=f"parkleit-ocpi-status-{os.getpid()}",
                                   on_fatal=self.fatal).start()
            started = self.clock.now()
            self.pulls = {peer.id: PeerPull(self, peer, tokens[peer.id], started)
                          for peer in self.peers}
            tasks = [asyncio.create_task(self.leadership.run(self._stop_event),
                                         name="ocpi-leadership")]
            tasks += [asyncio.create_task(pull.run(), name=f"ocpi-{peer_id}")
                      for peer_id, pull in self.pulls.items()]
            logger.info("pulling %d OCPI peers of %s", len(self.pulls), self.city.id)
            await self.supervise(tasks)
        finally:
            stop_metrics()
            if status is not None:
                status.close()
            await self.close()

    async def store(self, readings: list[EvseReading], now: datetime,
                    rejects: list[tuple[Any, str]], peer: OcpiPeer) -> list[EvseState]:
        """Store ``readings`` and dead-letter ``rejects`` in one transaction, then publish
        the changed states retained; the states that changed. A database that fails is the
        pull's failure (retried; the peer's answer counts as heard)."""
        assert self.pool is not None
        q = queries("ocpi")
        try:
            async with self.pool.connection(timeout=10) as conn, conn.transaction():
                changed = await store_readings_async(conn, self.city.id, readings)
                # Published as every output shows a point: read with its bays (rules.sql).
                changed = await effective_of_async(conn, self.city, now, changed)
                for what, reason in rejects:
                    payload = json.dumps(what, default=str).encode()[:4096]
                    logger.warning("OCPI peer %s: %s", peer.id, reason)
                    await conn.execute(q["insert_dead_letter"], {
                        "received": now, "topic": f"ocpi/{peer.id}/locations",
                        "payload": payload, "payload_size": len(payload),
                        "digest": hashlib.sha256(payload + reason.encode()).digest(),
                        "reason": reason})
        except (psycopg.Error, TimeoutError) as exc:
            logger.error("OCPI peer %s: cannot store its readings: %s", peer.id, exc)
            return []
        self.metrics.rejected.labels(peer.id).inc(len(rejects))
        self.publish(changed)
        return changed

    def publish(self, states: list[EvseState]) -> None:
        """The changed states on their retained topics (after the commit)."""
        if self.publisher is None:
            return
        for state in states:
            self.publisher.publish(charger_state_topic(self.city.id, state.evse_id),
                                   state.to_json(), qos=1, retain=True)
