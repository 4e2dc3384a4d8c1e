"""The asyncio services' lifecycle (``core.runtime.AsyncLifecycle``): a stop from another
thread reaches the loop, a task that ends first is a bug (exit code 1), a stop before the
start starts nothing; the services' metrics port."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
from prometheus_client import CollectorRegistry, Counter

from core.runtime import AsyncLifecycle, serve_metrics


class _Service(AsyncLifecycle):
    def run(self) -> int:
        asyncio.run(self.main())
        return self.exit_code

    async def main(self) -> None:
        if not self.enter_loop():
            return
        self.began = True
        await self.supervise([asyncio.create_task(self.work(), name="work")])

    async def work(self) -> None:
        while not self.stopping:
            await self.sleep(30)


def test_a_stop_from_another_thread_ends_it_with_exit_code_0() -> None:
    service = _Service()
    threading.Timer(0.2, service.stop).start()
    assert service.run() == 0 and service.stopping


def test_a_task_that_ends_first_stops_it_with_exit_code_1() -> None:
    class Dying(_Service):
        async def work(self) -> None:
            raise RuntimeError("a bug")

    assert Dying().run() == 1


def test_stopped_before_it_began_it_does_nothing() -> None:
    service = _Service()
    service.stop()
    assert service.run() == 0 and not hasattr(service, "began")


def test_metrics_are_served_until_stopped_and_the_port_is_free_again() -> None:
    registry = CollectorRegistry()
    Counter("parkleit_test_things", "Things", registry=registry).inc(3)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = serve_metrics(port, registry)
    try:
        assert "parkleit_test_things_total 3.0" in httpx.get(
            f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop()
    with socket.socket() as again:  # closed, not only shut down (a closed connection may wait)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("0.0.0.0", port))
