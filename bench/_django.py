"""Start Django against a throw-away benchmark database (PostgreSQL if DATABASE_URL says so)."""

from __future__ import annotations

import os
import tempfile


def setup_bench_django() -> str:
    """Point settings at a fresh database, migrate it, and return a label for the table."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        base, _, _name = url.rpartition("/")
        os.environ["DATABASE_URL"] = f"{base}/caravan_bench"
        _recreate_postgres_db(base, "caravan_bench")
        label = "postgresql"
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="caravan-bench-"), "bench.sqlite3")
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        label = "sqlite"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return label


def _recreate_postgres_db(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
