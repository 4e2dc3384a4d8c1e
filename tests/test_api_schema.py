"""The open-data API against its own OpenAPI description: requests generated from the schema
(valid and invalid) never get a 5xx, and every answer is what the schema says it is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from _helpers import utc_now
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from simulators.history import backfill_history

# The operations of the open-data core; the other routers' operations have their own tests.
OPERATIONS = ("listLots", "getLot", "getLotHistory", "getLotForecast", "listSigns",
              "exportHistoryCsv", "getHealth", "getMetrics")
MAX_EXAMPLES = 50  # per operation: a budget that keeps the run well under a minute


@pytest.fixture
def api_schema(settings: Settings, conn: psycopg.Connection[tuple[Any, ...]],
               city: City) -> Iterator[Any]:
    """The app's OpenAPI schema, served in-process (ASGI) on a day of history."""
    now = utc_now()
    sync_registry(conn, city)
    backfill_history(conn, city, end=now, weeks=1 / 7)
    conn.execute("UPDATE lot_state SET free = 50, occupied = 50, updated = %s, quality = 1 "
                 "WHERE lot_id = %s", (now, city.lots[0].id))
    unlimited = settings.model_copy(update={"API_RATE_PER_IP": 0.0})  # a burst of requests
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(unlimited, city))
    yield schema.include(operation_id=list(OPERATIONS))
    # schemathesis runs the app's lifespan itself; close the pool before the database goes.
    shutdown_lifespans()


def test_api_conforms_to_its_openapi(api_schema: Any, city: City) -> None:
    # One Hypothesis run per operation through as_strategy(): schemathesis' own pytest
    # integration (from_fixture) does not work with pytest 9 (it sets Item._nodeid).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert sorted(operation.definition.raw["operationId"] for operation in operations) == sorted(
        OPERATIONS)
    for operation in operations:
        strategies = [operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE)]
        if "{lot_id}" in operation.path:
            # Random ids only ever find no lot; real ones reach the queries.
            strategies += [operation.as_strategy(path_parameters={"lot_id": lot.id})
                           for lot in city.lots[:2]]

        @given(case=st.one_of(strategies))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                           content_type_conformance,
                                           response_schema_conformance])

        conforms()
