"""manage.py serve: several daphne processes on one port, restarted when one dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def _status(port: int) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=5).status  # noqa: S310
    except urllib.error.HTTPError as exc:
        return exc.code  # 503 while Orthanc is not running: daphne and Django answered


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def _serve(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "serve", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_several_processes_without_a_shared_channel_layer_are_refused():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    run = _serve("--port", str(_free_port()), "--processes", "2", env=env)
    assert run.returncode == 1
    assert "set REDIS_URL" in run.stderr


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="several processes need REDIS_URL (CI sets it)")
def test_serve_runs_n_daphne_processes_restarts_a_dead_one_and_stops_them_all():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "serve",
            "--port",
            str(port),
            "--processes",
            "2",
            "--access-log",
            "/dev/null",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        children = _wait(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid))
        assert _wait(lambda: _status(port)) in (200, 503)
        # Both processes take connections (SO_REUSEPORT spreads them): each holds an
        # accepted socket to the port after enough concurrent connections.
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        try:
            owners = subprocess.run(
                ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                capture_output=True,
                text=True,
            ).stdout
            assert all(f"pid={child}," in owners for child in children), owners
        finally:
            for sock in held:
                sock.close()

        os.kill(children[0], signal.SIGKILL)
        replaced = _wait(lambda: (now := _children(proc.pid)) and len(now) == 2 and now != children and now)
        assert children[1] in replaced and children[0] not in replaced
        assert _wait(lambda: _status(port)) in (200, 503)

        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        assert proc.returncode == 0
        assert _children(proc.pid) == []
        for child in replaced:
            assert (
                not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
    assert "serve: 2 daphne process(es)" in output
    assert "exited with" in output and "restarting" in output
