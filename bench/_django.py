"""Start Django against a throw-away benchmark database (PostgreSQL if DATABASE_URL says so)."""

from __future__ import annotations

import os
import tempfile


def setup_bench_django(name: str = "caravan_bench") -> str:
    """Point settings at a fresh database (PostgreSQL: ``name``, dropped and created on the
    server of DATABASE_URL; never the database DATABASE_URL names), migrate it, and return a
    label for the table."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        base, _, _name = url.rpartition("/")
        os.environ["DATABASE_URL"] = f"{base}/{name}"
        _recreate_postgres_db(base, name)
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


def close_bench_connections() -> None:
    """Close this process's connections to the benchmark database, its pool's idle ones too."""
    from django.db import connections

    connections.close_all()
    for conn in connections.all(initialized_only=True):
        if getattr(conn, "pool", None):  # PostgreSQL with DB_POOL_SIZE (the default)
            conn.close_pool()


def drop_bench_postgres_db() -> None:
    """Drop the benchmark database set up above (PostgreSQL only; SQLite's is a temp file)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return
    close_bench_connections()
    base, _, name = url.rpartition("/")
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
