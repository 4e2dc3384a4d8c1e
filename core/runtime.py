"""The one lifecycle of every long-running parkleit process.

A service is an object with ``run() -> int`` (work until stopped, drain, return the exit code)
and ``stop()`` (ask for a graceful stop; safe from a signal handler and more than once).
``serve`` is the one place that owns signals: SIGTERM and SIGINT call ``stop``, the handlers
found before are restored afterwards, and the exit code is the service's (``Lifecycle``: 0, or
2 after ``fatal``). Waiting between
retries follows one rule, ``backoff``; ``serve_metrics`` puts a service's Prometheus metrics on
its port. docs/architecture.md describes the lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["STOP_SIGNALS", "AsyncLifecycle", "Backoff", "Lifecycle", "Service", "backoff",
           "on_stop_signals", "serve", "serve_metrics", "stop_event"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Service(Protocol):
    """What ``serve`` runs."""

    def run(self) -> int: ...

    def stop(self) -> None: ...


class Lifecycle:
    """The exit code a service's ``run`` returns, and the one way to end on a fatal error."""

    exit_code = 0

    def stop(self) -> None:
        raise NotImplementedError

    def fatal(self, reason: str) -> None:
        """Stop with exit code 2: something no retry mends (a refused login, a bad config)."""
        logger.error("stopping: %s", reason)
        self.exit_code = 2
        self.stop()


class AsyncLifecycle(Lifecycle):
    """A service that runs in one asyncio loop. ``stop()``, from any thread or a signal
    handler, wakes it there (``_wake``: the stop event; a service may wake more);
    ``supervise`` waits for the stop or for one of the service's named tasks to end;
    ``sleep`` sleeps no longer than until the stop."""

    def __init__(self) -> None:
        self.stopping = False  # stop() was called, or a task died
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event = asyncio.Event()

    def stop(self) -> None:
        """Ask the service to finish; safe more than once and from any thread."""
        if self.stopping:
            return
        self.stopping = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._stop_event.set()

    def enter_loop(self) -> bool:
        """First thing in the service's coroutine: stops reach this loop from now on; False
        if the service was stopped before it began."""
        self._loop = asyncio.get_running_loop()
        return not self.stopping

    async def sleep(self, seconds: float) -> None:
        """Sleep, but no longer than until ``stop()``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()

    async def supervise(self, tasks: list[asyncio.Task[None]], *, cancel: bool = True) -> None:
        """Wait for ``stop()`` or for one of ``tasks`` to end: one that ends first (returns
        or fails) is a bug, and stops the service with exit code 1. Then the tasks are
        cancelled and awaited; with ``cancel=False`` they are left to the caller's drain."""
        stopping = asyncio.create_task(self._stop_event.wait(), name="stop")
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for task in done - {stopping}:
            error = None if task.cancelled() else task.exception()
            if error is None and self.stopping:
                continue  # it saw the stop before this wait did
            logger.error("task %s ended unexpectedly: %s", task.get_name(),
                         repr(error) if error else "returned", exc_info=error)
            self.exit_code = 1
        self.stopping = True
        self._wake()
        for task in tasks if cancel else ():
            task.cancel()
        await asyncio.gather(stopping, *(tasks if cancel else ()), return_exceptions=True)


@contextlib.contextmanager
def on_stop_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``stop`` inside the block; the earlier handlers come back after."""
    previous = {signum: signal.signal(signum, lambda *_: stop()) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(service: Service) -> int:
    """Run ``service`` until it ends or a stop signal has it drain; its exit code."""
    with on_stop_signals(service.stop):
        return service.run()


def stop_event() -> asyncio.Event:
    """In a running event loop: an event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    return stop


def backoff(failures: int, low: float, high: float, *, jitter: float = 0.2,
            rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` failures in a row (1 or more): ``low`` doubled per
    failure up to ``high``, then +-``jitter`` of it at random, so that many clients that
    failed together do not retry in step."""
    delay = min(high, low * 2.0 ** min(max(0, failures - 1), 30))
    return delay * (1 + (rng or random).uniform(-jitter, jitter))


class Backoff:
    """The waits of one retry loop: ``next()`` after each failure, ``reset()`` after a success."""

    def __init__(self, low: float, high: float, *, jitter: float = 0.2) -> None:
        self.low, self.high, self.jitter = low, high, jitter
        self.failures = 0

    def next(self) -> float:
        """Seconds to wait now: one more failure in a row."""
        self.failures += 1
        return backoff(self.failures, self.low, self.high, jitter=self.jitter)

    def reset(self) -> None:
        self.failures = 0


def serve_metrics(port: int, registry: CollectorRegistry) -> Callable[[], None]:
    """Serve ``registry`` for Prometheus on ``port`` (0: not at all), in a thread; the function
    that stops it and frees the port."""
    if not port:
        return lambda: None
    server, thread = start_http_server(port, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
