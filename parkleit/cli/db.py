"""``parkleit db``: the schema, the city registry and the services' database roles."""

from __future__ import annotations

import argparse

import psycopg

from core.db import apply_roles, migrate
from core.registry import sync_registry

from ._common import Commands, UsageError, cities, command, logger, require_database, settings


def register(commands: Commands) -> None:
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    command(db_commands, "migrate", _migrate, city="many",
            help="apply the schema and migrations; sync the city registry; with "
            "PARKLEIT_DB_ROLES=true the services' database roles and grants (idempotent)")


def _migrate(args: argparse.Namespace) -> int:
    config = settings()
    _, configs = cities(args, config)
    require_database(config.DATABASE_URL, create=True)
    passwords = {service: secret.get_secret_value() if secret else None for service, secret in (
        ("api", config.DB_API_PASSWORD), ("ingest", config.DB_INGEST_PASSWORD),
        ("signage", config.DB_SIGNAGE_PASSWORD), ("forecast", config.DB_FORECAST_PASSWORD),
        ("ocpp", config.DB_OCPP_PASSWORD), ("ocpi", config.DB_OCPI_PASSWORD))}
    with psycopg.connect(config.DATABASE_URL, autocommit=True) as conn:
        applied = migrate(conn)
        for city in configs:
            sync_registry(conn, city)
        if config.DB_ROLES:
            try:
                roles = apply_roles(conn, config.DB_ROLE_PREFIX, passwords)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise UsageError(f"cannot set up the services' database roles: {exc}") from None
            logger.info("the services' database roles have what core/sql/roles.sql grants "
                        "(%s)", ", ".join(roles) or "no role created, no password set")
    logger.info("schema up to date (%s); registry synced: %s", ", ".join(applied) or
                "nothing to apply", ", ".join(f"{city.id} {len(city.lots)} lots"
                                              for city in configs))
    return 0
