"""The suite cannot hang CI at exit: a thread stuck after the tests ends the run after a grace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STUCK = """
import threading

def test_leaves_a_stuck_thread_behind():
    threading.Thread(target=threading.Event().wait, name="stuck-forever").start()
"""


def test_a_thread_stuck_after_the_session_ends_the_run_with_a_failure(tmp_path):
    (tmp_path / "test_stuck.py").write_text(STUCK)
    env = {**os.environ, "CARAVAN_TEST_EXIT_GRACE_S": "1", "DJANGO_SETTINGS_MODULE": "config.settings"}
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_stuck.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 60
    assert "1 passed" in run.stdout
    assert run.returncode == 3, run.stdout + run.stderr
    assert "--- stuck-forever (daemon=False)" in run.stderr
