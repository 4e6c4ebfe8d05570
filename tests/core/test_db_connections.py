"""Bounded PostgreSQL connections (docs/security.md, "Database connections").

Two real web processes (daphne, as ``manage.py serve`` runs them) on the test database take a
burst of 200 concurrent authenticated requests. Each process's pool holds at most
``DB_POOL_SIZE`` connections (default 10), so the sessions on the test database stay at or under
2 x 10 above what this test process itself holds, however many requests are in flight; with the
old ``DB_CONN_MAX_AGE=60`` the same burst reached max_connections (docs/benchmarks.md,
"Database connections"). No timing is asserted: the machine may be loaded.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.browser_support import running_daphne, server_env, test_database_url
from tests.core.factories import UserFactory

pytestmark = [pytest.mark.postgres]

PROCESSES = 2
DEFAULT_POOL_SIZE = 10  # config/settings.py, DB_POOL_SIZE
BURST = 200
# The variables that choose the connection handling are emptied (= unset) in the servers' environment,
# so they run the shipped defaults whatever the developer's shell says. DB_POOL_MAX_IDLE=1 only
# speeds up the pool's shrinking (one idle connection closed per period) so the test can watch
# the connections fall back after the burst.
DEFAULTS = ("DB_POOL_SIZE", "DB_CONN_MAX_AGE", "DB_POOL_TIMEOUT")


class SessionCounter:
    """Counts the sessions on the test database from a connection to another database (so it
    does not count itself), every 20 ms while it runs; ``peak`` is the highest count seen."""

    def __init__(self) -> None:
        import psycopg

        base, _, self.database = test_database_url().rpartition("/")
        self.conn = psycopg.connect(f"{base}/postgres", autocommit=True)
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            self.samples += 1
            self._stop.wait(0.02)

    def __enter__(self) -> SessionCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def close(self) -> None:
        self.conn.close()


def _burst(bases: list[str], cookie: str, n: int) -> list[int | str]:
    """``n`` GET /api/me/, all released at once by a barrier, spread over the servers."""
    barrier = threading.Barrier(n)
    results: list[int | str] = [0] * n

    def one(i: int) -> None:
        session = requests.Session()
        session.trust_env = False  # no proxy for loopback
        try:
            barrier.wait(timeout=120)
            response = session.get(
                f"{bases[i % len(bases)]}/api/me/", cookies={"sessionid": cookie}, timeout=180
            )
            ok = response.status_code == 200 and response.json()["username"] == "dbconn-reader"
            results[i] = 200 if ok else response.status_code
        except Exception as exc:  # recorded and asserted below, with the others
            results[i] = f"{type(exc).__name__}: {exc}"
        finally:
            session.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_web_processes_hold_at_most_their_pools_under_a_burst_and_fall_back_after():
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL sessions: set DATABASE_URL=postgres://... (CI does)")
    user = UserFactory(username="dbconn-reader")
    client = Client()
    client.force_login(user)  # a session row, committed (transaction=True): the servers see it
    cookie = client.cookies["sessionid"].value
    counter = SessionCounter()
    try:
        own = counter.count()  # this test process's own sessions; they do not change below
        bound = own + PROCESSES * DEFAULT_POOL_SIZE
        env = dict.fromkeys(DEFAULTS, "")
        env["DB_POOL_MAX_IDLE"] = "1"
        with (
            running_daphne("dbconn-1.log", **env) as first,
            running_daphne("dbconn-2.log", **env) as second,
        ):
            with counter:
                results = _burst([first, second], cookie, BURST)
            failures = [r for r in results if r != 200]
            assert failures == [], f"{len(failures)} of {BURST} failed: {sorted(map(str, failures))[:5]}"
            assert counter.samples > 0
            # At most DB_POOL_SIZE per process, whatever the concurrency.
            assert own < counter.peak <= bound, (own, counter.peak, bound)

            # After the burst the pools shrink back towards one idle connection per process.
            deadline = time.monotonic() + 120
            while (after := counter.count()) > own + PROCESSES and time.monotonic() < deadline:
                time.sleep(0.5)
            assert after <= own + PROCESSES, (own, after)
            print(f"sessions: own {own}, peak {counter.peak} (bound {bound}), after the burst {after}")
    finally:
        counter.close()


def test_celery_processes_drop_the_pool_and_the_web_keeps_it():
    if connection.vendor != "postgresql":
        pytest.skip("the pool is PostgreSQL's: set DATABASE_URL=postgres://... (CI does)")
    # A Celery process runs one task at a time; config/celery.py removes the pool at worker
    # and beat start, so a worker holds one connection per task and never a pool's worth.
    code = (
        "import django; django.setup(); from django.db import connection;"
        "print(connection.settings_dict['OPTIONS'].get('pool'));"
        "from celery.signals import worker_init; import config.celery; worker_init.send(sender=None);"
        "print(connection.settings_dict['OPTIONS'].get('pool'), connection.pool)"
    )
    env = server_env(**dict.fromkeys(DEFAULTS, ""), WORKER_NICE="0")
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    web, worker = run.stdout.strip().splitlines()[-2:]
    assert web == "{'min_size': 1, 'max_size': 10, 'timeout': 30.0, 'max_idle': 60.0}"
    assert worker == "None None"
