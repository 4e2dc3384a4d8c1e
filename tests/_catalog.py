"""A database's schema as the server prints it back, and the differences of two of them."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["CATALOG", "catalog", "differences"]

# What makes two databases the same to the services: every object of the schema public with
# its definition as the server prints it back, and who may use it. Column positions are
# ranks (a dropped column leaves a gap in attnum); a view's columns count as columns.
_PUBLIC = "relnamespace = 'public'::regnamespace"
CATALOG = {
    "relations": f"SELECT relname, relkind FROM pg_class WHERE {_PUBLIC} AND relkind <> 'i'",
    "columns": f"""
        SELECT c.relname, a.attname,
               rank() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
               format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
               pg_get_expr(d.adbin, d.adrelid) AS default
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.{_PUBLIC} AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0
          AND NOT a.attisdropped""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "views": """SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'
                UNION ALL
                SELECT matviewname, definition FROM pg_matviews WHERE schemaname = 'public'""",
    "functions": """SELECT proname, pg_get_function_identity_arguments(oid), pg_get_functiondef(oid)
                    FROM pg_proc
                    WHERE pronamespace = 'public'::regnamespace AND prokind IN ('f', 'p')""",
    "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid)
                   FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
                   WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal""",
    "sequences": """SELECT sequencename, data_type, start_value, increment_by, cycle
                    FROM pg_sequences WHERE schemaname = 'public'""",
    "grants": f"""
        SELECT c.relname, NULL AS column, g.grantee::regrole::text, g.privilege_type
        FROM pg_class AS c CROSS JOIN aclexplode(c.relacl) AS g WHERE c.{_PUBLIC}
        UNION ALL
        SELECT c.relname, a.attname, g.grantee::regrole::text, g.privilege_type
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        CROSS JOIN aclexplode(a.attacl) AS g WHERE c.{_PUBLIC}
        UNION ALL
        SELECT p.oid::regprocedure::text, NULL, g.grantee::regrole::text, g.privilege_type
        FROM pg_proc AS p CROSS JOIN aclexplode(p.proacl) AS g
        WHERE p.pronamespace = 'public'::regnamespace""",
    "migrations": "SELECT version, name FROM schema_migrations",
}


def catalog(conn: psycopg.Connection[Any]) -> dict[str, set[tuple[Any, ...]]]:
    return {part: set(conn.execute(query).fetchall()) for part, query in CATALOG.items()}


def differences(fresh: dict[str, set[tuple[Any, ...]]],
                migrated: dict[str, set[tuple[Any, ...]]]) -> list[str]:
    """One line per catalog row that only one of the two databases has."""
    lines = []
    for part in CATALOG:
        for side, rows in (("schema.sql", fresh[part] - migrated[part]),
                           ("migrations", migrated[part] - fresh[part])):
            lines += [f"{part} only by {side}: " + " | ".join(map(str, row))
                      for row in sorted(rows, key=repr)]
    return lines
