"""One sign's task: render on every change of its lots and on a tick, push when the content
differs from what the sign last acknowledged or the keep-alive is due, retry with a back-off.
One slow or dead sign only ever holds up its own task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from core.city import Sign
from core.runtime import backoff
from signage._audit import Health, content_json
from signage._content import SignContent, SignError
from signage._render import SignState, render

if TYPE_CHECKING:
    from signage._service import SignageService

__all__ = ["SignTask"]

logger = logging.getLogger("signage._service")

ERROR_MAX_CHARS = 500


class SignTask:
    """Renders and pushes one sign; nothing else ever waits for this sign."""

    def __init__(self, service: SignageService, sign: Sign, health: Health) -> None:
        self.service = service
        self.sign = sign
        self.health = health
        self.wake = asyncio.Event()
        self.heard_at: float | None = None  # when a lot change not yet pushed was heard
        self._state: SignState | None = None
        self._acked: SignContent | None = None  # what the sign confirmed at the last good push
        self._log_next_ok = True  # no good push yet in this process, or the last one failed
        self._failures = 0
        self._retry_at = 0.0
        self._keepalive_at = 0.0

    def push_now(self) -> None:
        """Push at once whatever the sign is thought to show (a new leader)."""
        self._acked, self._keepalive_at, self._retry_at = None, 0.0, 0.0
        self.wake.set()

    def lot_changed(self) -> None:
        if self.heard_at is None:
            self.heard_at = time.monotonic()
        self.wake.set()

    async def run(self) -> None:
        service, settings = self.service, self.service.settings
        while not service.stopping:
            self.wake.clear()  # before rendering: a change heard from now on wakes us again
            at = service.clock.now()
            content, self._state = render(self.sign, service.city, service.observations,
                                          at, previous=self._state,
                                          forecasts=service.forecasts,
                                          charging=service.charging)
            # An operator's override replaces what the rules render until it ends; the
            # rendering goes on underneath, so hysteresis and holds are right afterwards.
            content = service.override_for(self.sign.id, at) or content
            now = time.monotonic()
            due = content != self._acked or now >= self._keepalive_at
            if not due:
                self.heard_at = None  # the change did not change this sign
            elif now >= self._retry_at and service.leadership.leading():
                await self._push(content, service.leadership.term)
                continue
            wake_at = min(now + settings.SIGNAGE_TICK_S,
                          self._retry_at if due else self._keepalive_at)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake_at - now)):
                    await self.wake.wait()

    async def _push(self, content: SignContent, term: int | None) -> None:
        started, heard, self.heard_at = time.monotonic(), self.heard_at, None
        try:
            driver = self.service.drivers.driver_for(self.sign)
            ack = await driver.push(self.sign, content)
        except SignError as exc:
            reason = str(exc)
        except Exception as exc:  # a driver bug fails this sign's push, not the service
            logger.exception("sign %s: the driver failed", self.sign.id)
            reason = f"driver error: {type(exc).__name__}: {exc}"
        else:
            await self._succeeded(content, ack.detail, started, heard, term)
            return
        if heard is not None:
            self.heard_at = heard  # still not on the sign: the reaction time runs on
        await self._failed(content, reason, started, term)

    async def _succeeded(self, content: SignContent, detail: str, started: float,
                         heard: float | None, term: int | None) -> None:
        service, sign_id, metrics = self.service, self.sign.id, self.service.metrics
        done, at = time.monotonic(), service.clock.now()
        metrics.push_seconds.observe(done - started)
        metrics.pushes.labels(sign_id, "ok").inc()
        metrics.failing.labels(sign_id).set(0)
        if heard is not None:
            metrics.reaction.observe(done - heard)
        if self._log_next_ok or content != self._acked:
            document = content_json(content)
            self.health.content, self.health.shown_since = document, at
            metrics.changes.labels(sign_id).inc()
            logger.info("sign %s shows %s", sign_id,
                        " | ".join(f"{line.label} {line.text}".strip() for line in content.lines))
            await service.audit(at, sign_id, document, ack=detail or None, term=term)
        self._acked, self._log_next_ok = content, False
        self._failures, self._retry_at = 0, 0.0
        self._keepalive_at = done + service.settings.SIGNAGE_KEEPALIVE_S
        self.health.last_ack, self.health.consecutive_failures = at, 0
        service.record_health(sign_id, self.health, at)

    async def _failed(self, content: SignContent, reason: str, started: float,
                      term: int | None) -> None:
        service, sign_id, settings = self.service, self.sign.id, self.service.settings
        at = service.clock.now()
        reason = reason.replace("\x00", "?")[:ERROR_MAX_CHARS] or "unknown error"
        self._failures += 1
        self._log_next_ok = True
        delay = backoff(self._failures, settings.SIGNAGE_RETRY_MIN_S,
                        settings.SIGNAGE_RETRY_MAX_S)
        self._retry_at = time.monotonic() + delay
        service.metrics.push_seconds.observe(time.monotonic() - started)
        service.metrics.pushes.labels(sign_id, "failed").inc()
        service.metrics.failing.labels(sign_id).set(self._failures)
        logger.warning("sign %s: push failed (%d in a row), retrying in %.1f s: %s", sign_id,
                       self._failures, delay, reason)
        self.health.last_error, self.health.last_error_at = reason, at
        self.health.consecutive_failures += 1
        await service.audit(at, sign_id, content_json(content), error=reason, term=term)
        service.record_health(sign_id, self.health, at)
