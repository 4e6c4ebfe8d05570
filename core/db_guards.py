"""Database-level guards (triggers) for migrations: one SQL script for PostgreSQL, statements for SQLite.

Used by migrations that make rows append-only or immutable once final (the audit log, reports).
Other vendors get no trigger: the ORM guards stay.
"""

from __future__ import annotations

from django.db import migrations


def vendor_sql(
    *, pg_up: str, pg_down: str, sqlite_up: list[str], sqlite_down: list[str]
) -> migrations.RunPython:
    """A RunPython operation that runs the SQL for the connection's vendor, forwards and back."""

    def run(schema_editor, pg: str, sqlite: list[str]) -> None:
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(pg, params=None)
        elif vendor == "sqlite":
            for statement in sqlite:
                schema_editor.execute(statement)

    return migrations.RunPython(
        lambda apps, schema_editor: run(schema_editor, pg_up, sqlite_up),
        lambda apps, schema_editor: run(schema_editor, pg_down, sqlite_down),
    )
