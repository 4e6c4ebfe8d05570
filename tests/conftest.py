import itertools
import os
import sys
import threading
import traceback

import pytest

pytest_plugins = ["tests.orthanc_fixture"]
EXIT_GRACE_S = float(os.environ.get("CARAVAN_TEST_EXIT_GRACE_S", "60"))
_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """A thread left stuck by a failed test (say an event loop that never finished its shutdown)
    is joined at interpreter exit and would hold the run open until CI's own limit. After a
    grace period, print every thread's stack and exit: with pytest's status if it failed, else 3."""

    def watchdog():
        threading.Event().wait(EXIT_GRACE_S)
        frames = sys._current_frames()
        report = [f"\ntests: still not exited {EXIT_GRACE_S:g} s after the session; threads:\n"]
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and thread.ident in frames:
                report.append(f"--- {thread.name} (daemon={thread.daemon})\n")
                report.extend(traceback.format_stack(frames[thread.ident]))
        sys.stderr.write("".join(report))
        sys.stderr.flush()
        os._exit(_exit_status or 3)

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


@pytest.fixture(autouse=True)
def _fast_password_hashing(request, monkeypatch, settings):
    # PBKDF2's deliberate slowness is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if request.node.get_closest_marker("browser"):
        # A daphne subprocess checks the passwords a browser types: it knows only the
        # production hashers. And Playwright's sync API runs an asyncio loop in this thread,
        # so Django refuses ORM calls from it (factories, flushes) unless told it is deliberate.
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session", autouse=True)
def _celery_tasks_run_in_the_test_process():
    # Tasks run eagerly inside the test so their effects can be asserted; with REDIS_URL set
    # the channel layer, cache and health check still use the real Redis, and
    # tests/core/test_health.py checks the broker connection itself.
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture(scope="session")
def _audit_files_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit")


_audit_checkpoint_files = itertools.count(1)


@pytest.fixture(autouse=True)
def _audit_key_and_checkpoints_outside_var(settings, _audit_files_dir):
    # The audit chain's HMAC key (one per run, created on first use as in development) and a
    # checkpoint file per test: the database is rolled back between tests, a checkpoint of an
    # earlier test's chain would read as entries removed. Never the machine's var/.
    settings.AUDIT_HMAC_KEY_FILE = _audit_files_dir / "audit-hmac.key"
    settings.AUDIT_HMAC_KEY_GENERATE = True
    settings.AUDIT_CHECKPOINT_FILE = _audit_files_dir / f"checkpoints-{next(_audit_checkpoint_files)}.jsonl"


@pytest.fixture(autouse=True)
def _empty_cache():
    # With REDIS_URL the cache is Redis, which outlives test runs and databases: keys such as
    # "user 3 opened study 7" from an earlier run would match this run's fresh ids.
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    # Each test drives the ASGI app from its own event loop (async_to_sync); a channel layer
    # instance kept from an earlier test carries that loop's Redis connections and receive
    # state, which can block the next test's receive. Production runs one loop per process.
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.clear()
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        # Groups and queues left in Redis by earlier tests' sockets (ids repeat across tests).
        async_to_sync(layer.flush)()
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session", autouse=True)
def _no_stray_sessions_when_the_test_database_is_dropped(django_db_setup, django_db_blocker):
    """End other sessions on the test database before pytest-django drops it.

    Playwright's sync API runs page callbacks in greenlets, where asgiref's context-local
    connection handling sees a new context and opens a second connection that nothing closes;
    PostgreSQL then refuses to drop ``test_caravan`` ("being accessed by other users") and the
    next run starts by recreating it. Servers the tests start are stopped (and waited for) by
    ``tests.browser_support.stop_subprocess``.
    """
    yield
    from django.db import connection
    from django.db.backends.base.creation import TEST_DATABASE_PREFIX

    with django_db_blocker.unblock():
        # No test in the session used the database: none was created, nothing will be dropped,
        # and DATABASE_URL's own database may not even exist.
        if connection.vendor == "postgresql" and connection.settings_dict["NAME"].startswith(
            TEST_DATABASE_PREFIX
        ):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
