"""A real Orthanc for tests, started once per session on free loopback ports.

``orthanc_server`` (session): Orthanc from the Debian packages, configured by
dicom/orthanc/launcher.py exactly as in production (auth on, AE whitelist, Python and
DICOMweb plugins), with a short StableAge. Its plugin's nudges and worklist requests go to
``.nudges``, a stdlib HTTP recorder that can also forward them to a live Django server
(``nudges.forward_to``).

``orthanc`` (function): the same server with Django settings pointed at it and every stored
patient deleted first, so each test starts from an empty Orthanc.

Registered from tests/conftest.py with ``pytest_plugins = ["tests.orthanc_fixture"]``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dicom.orthanc import launcher
from dicom.orthanc.orthanc_config import worklist_url_for
from dicom.orthanc_client import OrthancClient

STABLE_AGE = 2
ORTHANC_AET = "CARAVAN_TEST"
# Whitelisted peers: VAN01 calls from 127.0.0.1; VAN02 is registered at 127.0.0.2 so a test
# can show that DicomCheckModalityHost refuses the right AE title from the wrong host.
SCU_AET = "VAN01"
SCU_AET_OTHER_HOST = "VAN02"
OTHER_HOST = "127.0.0.2"
# A second van calling from loopback, for tests that need two units' worklists side by side.
SCU_AET_SECOND = "VAN_MR1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on loopback (held together so none repeats)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass
class Nudge:
    path: str
    headers: dict[str, str]
    body: bytes
    forwarded_status: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class NudgeRecorder:
    """Stands in for the platform at the plugin's nudge and worklist URLs: records, optionally
    forwards. POSTs (nudges) land in ``nudges``, GETs (worklist queries) in ``worklist_requests``."""

    def __init__(self, port: int) -> None:
        self.nudges: list[Nudge] = []
        self.worklist_requests: list[Nudge] = []
        self.forward_to: str | None = None
        # Answer every request with this status instead (to test how the plugin copes).
        self.fail_with: int | None = None
        # What a worklist GET gets when it is neither failed nor forwarded.
        self.worklist_reply: bytes = b'{"items": []}'
        self._cond = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                nudge = Nudge(self.path, dict(self.headers.items()), body)
                status, reply = 202, b'{"status": "recorded"}'
                if recorder.fail_with:
                    status, reply = recorder.fail_with, b'{"detail": "failing on purpose"}'
                elif recorder.forward_to:
                    status, reply = recorder._forward(nudge)
                    nudge.forwarded_status = status
                with recorder._cond:
                    recorder.nudges.append(nudge)
                    recorder._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:
                request = Nudge(self.path, dict(self.headers.items()), b"")
                status, reply = 200, recorder.worklist_reply
                if recorder.fail_with:
                    status, reply = recorder.fail_with, b'{"detail": "failing on purpose"}'
                elif recorder.forward_to:
                    status, reply = recorder._forward(request, method="GET")
                    request.forwarded_status = status
                with recorder._cond:
                    recorder.worklist_requests.append(request)
                    recorder._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="nudge-recorder", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def _forward(self, nudge: Nudge, method: str = "POST") -> tuple[int, bytes]:
        headers = {
            k: v
            for k, v in nudge.headers.items()
            if k.lower() in {"content-type", "accept", "x-caravan-plugin-secret"}
        }
        request = urllib.request.Request(
            self.forward_to.rstrip("/") + nudge.path,
            data=nudge.body if method == "POST" else None,
            headers=headers,
            method=method,
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def clear(self) -> None:
        with self._cond:
            self.nudges.clear()
            self.worklist_requests.clear()
        self.forward_to = None
        self.fail_with = None
        self.worklist_reply = b'{"items": []}'

    def wait_for(self, predicate: Callable[[Nudge], bool], timeout: float) -> Nudge:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for nudge in self.nudges:
                    if predicate(nudge):
                        return nudge
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching nudge within {timeout} s; received {self.nudges!r}")
                self._cond.wait(remaining)

    def wait_for_study(self, orthanc_id: str, timeout: float) -> Nudge:
        return self.wait_for(lambda n: _nudge_study(n) == orthanc_id, timeout)

    def for_study(self, orthanc_id: str) -> list[Nudge]:
        with self._cond:
            return [n for n in self.nudges if _nudge_study(n) == orthanc_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _nudge_study(nudge: Nudge) -> str | None:
    try:
        return nudge.json.get("orthanc_id")
    except (ValueError, AttributeError):
        return None


@dataclass
class OrthancServer:
    url: str
    http_port: int
    dicom_port: int
    aet: str
    username: str
    password: str
    plugin_secret: str
    stable_age: int
    run_dir: Path
    log_path: Path
    config_path: Path
    pid: int
    client: OrthancClient
    nudges: NudgeRecorder
    scu_aet: str = SCU_AET
    scu_aet_other_host: str = SCU_AET_OTHER_HOST
    scu_aet_second: str = SCU_AET_SECOND
    other_host: str = OTHER_HOST
    modalities: tuple[launcher.Modality, ...] = field(default_factory=tuple)
    config: launcher.OrthancConfig | None = None

    def kill(self) -> None:
        """SIGKILL Orthanc (a crash: no shutdown, nothing flushed by Orthanc) and wait until gone."""
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while launcher.read_pid(self.run_dir) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"Orthanc pid {self.pid} still alive 10 s after SIGKILL")
            time.sleep(0.02)

    def restart(self) -> None:
        """Start Orthanc again from the same configuration, storage and index (same ports)."""
        assert self.config is not None
        self.pid = launcher.start(self.config, timeout=30)

    def reset(self) -> None:
        """Delete every stored patient (so studies, series, instances) and forget nudges."""
        for patient in self.client.patients():
            self.client.delete(f"patients/{patient}")
        self.nudges.clear()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    missing = [
        path
        for path in (
            launcher.ORTHANC_BINARY,
            os.path.join(launcher.PLUGINS_DIR, launcher.PYTHON_PLUGIN_NAME),
            os.path.join(launcher.PLUGINS_DIR, launcher.DICOMWEB_PLUGIN_NAME),
        )
        if not os.path.exists(path)
    ]
    if missing:
        pytest.fail(
            "Orthanc is required for these tests but is not installed (missing "
            + ", ".join(missing)
            + "). Install it with `make system-deps` or "
            "`apt-get install orthanc orthanc-python orthanc-dicomweb`.",
            pytrace=False,
        )
    http_port, dicom_port, recorder_port = free_ports(3)
    recorder = NudgeRecorder(recorder_port)
    run_dir = tmp_path_factory.mktemp("orthanc")
    modalities = (
        launcher.Modality(SCU_AET, "127.0.0.1", 11112),
        launcher.Modality(SCU_AET_OTHER_HOST, OTHER_HOST, 11112),
        launcher.Modality(SCU_AET_SECOND, "127.0.0.1", 11113),
    )
    config = launcher.OrthancConfig(
        run_dir=run_dir,
        username="caravan-test",
        password=secrets.token_urlsafe(18),
        plugin_secret=secrets.token_urlsafe(24),
        nudge_url=launcher.nudge_url_for(recorder.url),
        worklist_url=worklist_url_for(recorder.url),
        http_port=http_port,
        dicom_port=dicom_port,
        aet=ORTHANC_AET,
        modalities=modalities,
        stable_age=STABLE_AGE,
        name="caravan-test",
        nudge_timeout=10.0,
    )
    try:
        pid = launcher.start(config, timeout=30)
    except launcher.LauncherError as exc:
        recorder.stop()
        pytest.fail(f"Orthanc did not start: {exc}", pytrace=False)
    client = OrthancClient(config.url, config.username, config.password, timeout=10, retries=2)
    server = OrthancServer(
        url=config.url,
        http_port=http_port,
        dicom_port=dicom_port,
        aet=config.aet,
        username=config.username,
        password=config.password,
        plugin_secret=config.plugin_secret,
        stable_age=STABLE_AGE,
        run_dir=config.run_dir,
        log_path=config.log_path,
        config_path=config.config_path,
        pid=pid,
        client=client,
        nudges=recorder,
        modalities=modalities,
        config=config,
    )
    try:
        yield server
    finally:
        client.close()
        launcher.stop(config.run_dir, timeout=15)
        recorder.stop()


@pytest.fixture
def orthanc(orthanc_server: OrthancServer, settings: Any) -> OrthancServer:
    settings.ORTHANC_URL = orthanc_server.url
    settings.ORTHANC_USERNAME = orthanc_server.username
    settings.ORTHANC_PASSWORD = orthanc_server.password
    settings.ORTHANC_DICOM_PORT = orthanc_server.dicom_port
    settings.ORTHANC_AET = orthanc_server.aet
    settings.ORTHANC_PLUGIN_SECRET = orthanc_server.plugin_secret
    settings.ORTHANC_STABLE_AGE = orthanc_server.stable_age
    settings.ORTHANC_ALLOWED_MODALITIES = [f"{m.aet}@{m.host}:{m.port}" for m in orthanc_server.modalities]
    orthanc_server.reset()
    return orthanc_server
