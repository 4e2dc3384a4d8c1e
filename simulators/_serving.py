"""What the sign simulators share: their timers, and serving until asked to stop.

A sign's fallbacks (end of duration, loss of communication) must happen on time even when
nobody asks it anything: ``tick_every`` runs its timers often enough. ``serving`` starts a set
of simulators and, however the block ends, cancels their helper tasks and stops every one;
``until_stopped`` waits for the stop event or for a task that must not end (its error is
raised).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

__all__ = ["serving", "tick_every", "until_stopped"]


class _Ticking(Protocol):
    def tick(self) -> None: ...


class _Serving(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def tick_every(minute_s: float, models: Sequence[_Ticking]) -> None:
    """Run the models' timers every 1/20 of a sign minute (at most every second), for ever."""
    interval = min(1.0, minute_s / 20)
    while True:
        for model in models:
            model.tick()
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def serving(simulators: Sequence[_Serving], *,
                  workers: Sequence[asyncio.Task[None]] = ()) -> AsyncIterator[None]:
    """Start ``simulators`` one by one; however the block ends (or a start fails), cancel
    ``workers``, then stop every simulator (stopping one that never started does nothing)."""
    try:
        for simulator in simulators:
            await simulator.start()
        yield
    finally:
        for task in workers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for simulator in simulators:
            await simulator.stop()


async def until_stopped(stop: asyncio.Event, tasks: Iterable[asyncio.Task[None]]) -> None:
    """Wait until ``stop`` is set or one of ``tasks`` ends; a task's error is raised (a part
    that died takes the simulator down with it). The tasks are left running."""
    waiting = asyncio.create_task(stop.wait(), name="signs-stop")
    try:
        done, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    for task in done - {waiting}:
        task.result()
