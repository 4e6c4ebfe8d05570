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
