import pytest

pytest_plugins = ["tests.orthanc_fixture"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
