"""The numbered migrations give the canonical schema (``tests/canonical_schema.txt``),
and applying them again changes nothing.

The canonical schema is a description of the catalog (tables, columns, constraints,
indexes, triggers) read from Postgres itself, so it does not depend on ``pg_dump``.
After a deliberate change to the migrations, regenerate it with
``SWITCHBOARD_UPDATE_SCHEMA=1 make test`` (this test only) and review the diff.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from switchboard.migrate import apply_migrations

CANONICAL = Path(__file__).parent / "canonical_schema.txt"
OWN_TABLES = "c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE '\\_yoyo%' AND c.relname NOT LIKE 'yoyo%'"


def describe_schema(url: str) -> str:
    """Every table, column, constraint, index and trigger of the public schema, sorted, one per line."""
    queries = [
        f"""SELECT 'table ' || c.relname FROM pg_class c WHERE c.relkind = 'r' AND {OWN_TABLES}""",
        f"""SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                   || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                   || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relkind = 'r' AND {OWN_TABLES} AND a.attnum > 0 AND NOT a.attisdropped""",
        f"""SELECT 'constraint ' || c.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid WHERE {OWN_TABLES}""",
        f"""SELECT 'index ' || pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE {OWN_TABLES}""",
        f"""SELECT 'trigger ' || c.relname || ' ' || pg_get_triggerdef(t.oid)
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND {OWN_TABLES}""",
        """SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
            FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace""",
    ]
    lines: list[str] = []
    with psycopg.connect(url) as conn:
        for query in queries:
            lines.extend(row[0] for row in conn.execute(query).fetchall())  # type: ignore[arg-type]
    return "\n".join(sorted(lines)) + "\n"


@pytest.fixture
def empty_database(server_database_url: str) -> Iterator[str]:
    """A database with nothing in it, dropped after the test."""
    name = f"sbschema_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = server_database_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def test_the_migrations_give_the_canonical_schema_and_a_second_run_changes_nothing(empty_database: str) -> None:
    applied = apply_migrations(empty_database)
    assert applied == sorted(applied) and len(applied) == len(list(Path("switchboard/migrations").glob("*.sql")))
    schema = describe_schema(empty_database)
    if os.environ.get("SWITCHBOARD_UPDATE_SCHEMA") == "1":
        CANONICAL.write_text(schema)
    assert schema == CANONICAL.read_text(), "the migrations and tests/canonical_schema.txt disagree (see the docstring)"
    assert apply_migrations(empty_database) == []
    assert describe_schema(empty_database) == schema
