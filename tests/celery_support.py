"""A real Celery worker (optionally with an embedded beat) on the test database, for tests that
need the background path as deployed: Redis as the broker, the worker as a subprocess.

Each caller names a Redis database of its own (``broker_db``) so that no other suite's tasks
reach its worker; it is flushed before and after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.browser_support import LOGS, server_env, stop_subprocess


def broker_url(broker_db: int) -> str:
    """REDIS_URL's server with database ``broker_db``, or "" without Redis."""
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        return ""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{broker_db}", parts.query, parts.fragment))


@dataclass(frozen=True)
class WorkerProcess:
    log: Path
    pid: int

    def nice(self) -> int:
        """The worker process's nice value, as the kernel reports it (Linux /proc)."""
        from dicom.orthanc.launcher import proc_stat_fields

        return int(proc_stat_fields(self.pid)[16])


@contextmanager
def running_celery_worker(
    log_name: str, broker: str, *, beat: bool = False, **env_overrides: str
) -> Iterator[WorkerProcess]:
    """A solo-pool Celery worker on the test database and ``broker`` (with ``beat``, the beat
    schedule embedded: ``worker -B``), stopped afterwards; yields its log's path and pid."""
    import redis

    redis.Redis.from_url(broker).flushdb()  # tasks left over from an interrupted run
    env = server_env(CELERY_BROKER_URL=broker, **env_overrides)
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / log_name
    schedule = log_path.with_suffix(".beat-schedule")
    extra = ["-B", f"--schedule={schedule}"] if beat else []
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("celery")), "-A", "config", "worker", "--pool=solo",
             "--loglevel=info", "--without-heartbeat", "--without-gossip", "--without-mingle", *extra],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while b"ready." not in log_path.read_bytes():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Celery worker did not start; see {log_path}", pytrace=False)
                time.sleep(0.2)
            yield WorkerProcess(log_path, process.pid)
        finally:
            stop_subprocess(process, timeout=15)
            redis.Redis.from_url(broker).flushdb()
            for path in schedule.parent.glob(schedule.name + "*"):
                path.unlink()
