"""Every named query of every .sql file says in a comment right under its name what it does."""

from __future__ import annotations

from pathlib import Path

from _helpers import ROOT

from core.db import parse_named_queries, query_descriptions

SKIP = {".venv", "node_modules", ".git"}


def named_query_files() -> list[Path]:
    """The .sql files of the tree holding named queries (``-- name:`` lines)."""
    return sorted(path for path in ROOT.rglob("*.sql")
                  if not SKIP & set(path.relative_to(ROOT).parts)
                  and "-- name:" in path.read_text(encoding="utf-8"))


def test_every_named_query_has_a_description() -> None:
    files = named_query_files()
    assert {path.relative_to(ROOT).as_posix() for path in files} >= {
        "core/sql/queries.sql", "ingest/queries.sql", "api/queries.sql", "api/history.sql"}
    missing = []
    for path in files:
        package = path.relative_to(ROOT).parts[0]
        described = query_descriptions(package, path.stem)
        assert described, path
        missing += [f"{path.relative_to(ROOT)}: {name}"
                    for name, about in described.items() if not about]
    assert not missing, "named queries without a description:\n" + "\n".join(missing)


def test_a_comment_above_the_name_is_no_description() -> None:
    """The check fails for a query whose comment is elsewhere or missing."""
    script = """-- Named queries of a test.

-- name: described
-- The answer, and why it is 42
-- (a sentence may wrap).
SELECT 42;

-- A comment above the name line belongs to the query before.
-- name: undescribed
SELECT 1;

-- name: last
SELECT 2;
-- a comment after the statement
"""
    assert {name: about for name, (about, _) in parse_named_queries(script).items()} == {
        "described": "The answer, and why it is 42 (a sentence may wrap).",
        "undescribed": "", "last": ""}
