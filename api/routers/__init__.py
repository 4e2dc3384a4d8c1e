"""The API's routers, one a module, in ``ROUTERS``: ``create_app`` mounts them in this order,
which is the order of the paths in the OpenAPI."""

from fastapi import APIRouter

from api.routers import (
    admin,
    charging,
    console,
    dashboard,
    datex2,
    docs,
    export,
    health,
    lots,
    ocpi,
    pages,
    parkapi,
    signs,
    stream,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    admin.router, charging.router, console.router, datex2.router, docs.router, export.router,
    health.router, lots.router, dashboard.router, ocpi.router, pages.router, parkapi.router,
    signs.router, stream.router)
