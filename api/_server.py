"""The HTTP server of ``parkleit api``: uvicorn, ending the live streams when it drains."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer"]


class ApiServer(uvicorn.Server):
    """uvicorn's server for ``app``, which ends every event stream as it starts shutting down.

    On SIGTERM uvicorn stops accepting connections, waits up to ``timeout_graceful_shutdown``
    for the open ones to finish and only then runs the lifespan shutdown. An event stream
    never finishes by itself, so one open ``/v1/stream`` would hold every stop for the whole
    timeout; ending the streams first lets them finish like any other response (the clients
    reconnect after their ``retry`` hint, to another process or to the restarted one).
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the streams, then drain as uvicorn does."""
        hub = getattr(self.app.state, "hub", None)  # None if the lifespan never started
        if hub is not None:
            hub.end_streams()
        await super().shutdown(sockets)
