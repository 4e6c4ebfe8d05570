"""Browser-test support: Debian's Chromium settings, and daphne in a subprocess on the test database.

pytest-django's ``live_server`` is a threaded WSGI server: no websockets, and Django would
buffer the DICOMweb proxy's async stream. Browser tests that need either run daphne instead; a
``transaction=True`` test commits its data, so the subprocess sees it. Everything that talks
to one daphne (both browsers, the event fan-out) shares its in-memory channel layer unless
REDIS_URL is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.orthanc_fixture import free_ports

LOGS = Path(settings.BASE_DIR) / "test-artifacts" / "logs"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Background services off: the browser makes no request of its own, so tests can assert that
# pages fetch nothing off-site.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db.get("USER") else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a test, despite the name


def server_env(**overrides: str) -> dict[str, str]:
    """The environment of a server subprocess (daphne, a Celery worker) on the test database and
    the test's Orthanc settings."""
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "ORTHANC_URL": settings.ORTHANC_URL,
        "ORTHANC_USERNAME": settings.ORTHANC_USERNAME,
        "ORTHANC_PASSWORD": settings.ORTHANC_PASSWORD,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **overrides,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@contextmanager
def running_daphne(log_name: str, **env_overrides: str) -> Iterator[str]:
    """Start daphne on a free port against the test database and Orthanc settings; yield its URL."""
    (port,) = free_ports(1)
    env = server_env(**env_overrides)
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port),
             "config.asgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            while True:
                try:
                    opener.open(f"{url}/login/", timeout=2)
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    # TimeoutError: a first page that takes over 2 s on a loaded machine.
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"daphne did not start; see {log_path}", pytrace=False)
                    time.sleep(0.2)
            yield url
        finally:
            stop_subprocess(process, timeout=10)


def stop_subprocess(process: subprocess.Popen, *, timeout: float) -> None:
    """Stop a server started on the test database and wait until its database sessions are gone.

    PostgreSQL ends a backend shortly after its client dies, not at once: dropping the test
    database right after the last browser test would otherwise race it ("is being accessed by
    other users") and leave ``test_caravan`` behind.
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + 5
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


@dataclass
class PageWatch:
    """What a page did: every URL it requested, responses >= 400, uncaught script errors."""

    requested: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def watched_page(browser, *, width: int = 1280, height: int = 1000, **context_options):
    """A new page in its own context, with its requests, failures and script errors recorded."""
    context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
    watch = PageWatch()
    context.on("request", lambda request: watch.requested.append(request.url))
    context.on("response", lambda r: r.status < 400 or watch.failed.append(f"{r.status} {r.url}"))
    page = context.new_page()
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    return page, watch


def sign_in(page, base: str, username: str, password: str) -> None:
    """Through the login form, as a person would; lands on the home page."""
    from playwright.sync_api import expect

    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/")
