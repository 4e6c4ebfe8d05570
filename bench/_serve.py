"""``manage.py serve`` for benchmarks: N daphne processes on one port, as deployed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serve(
    port: int, processes: int, log_path: Path, *, env: dict[str, str] | None = None, probe: str = "/login/"
) -> Iterator[subprocess.Popen]:
    """Start the server, wait until ``probe`` answers (any HTTP status counts), stop it after."""
    environment = dict(os.environ, LOG_LEVEL="WARNING", **(env or {}))
    environment.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    command = [sys.executable, "manage.py", "serve", "--port", str(port), "--processes", str(processes)]
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [*command, "--access-log", "/dev/null"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2)  # noqa: S310
                    break
                except urllib.error.HTTPError:
                    break  # it answers (the health check says 503 without Orthanc: still up)
                except Exception:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the server did not start; see {log_path}") from None
                    time.sleep(0.2)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
