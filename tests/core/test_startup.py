"""A bad configuration stops every entry point with one clear line (exit 2), not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"REDIS_URL": "http://cache:6379/0"}, "REDIS_URL must be a URL with scheme redis"),
        ({"CARAVAN_ENV": "production"}, "SECRET_KEY (or SECRET_KEY_FILE) must be set"),
        # Per-container generated keys would chain web and worker entries with different keys.
        (
            {"CARAVAN_ENV": "production", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "caravan.example.org"},
            "AUDIT_HMAC_KEY_FILE must be set when CARAVAN_ENV=production",
        ),
    ],
)
@pytest.mark.parametrize("entry", ["manage", "asgi"])
def test_a_bad_setting_stops_start_up_with_one_line(entry, env, named):
    args = ["manage.py", "check"] if entry == "manage" else ["-c", "import config.asgi"]
    result = _run(args, **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr  # one line
    assert result.stderr.startswith("Caravan cannot start: ") and named in result.stderr


def test_good_settings_start():
    result = _run(["manage.py", "check"])
    assert result.returncode == 0, result.stderr
