"""Caravan's Orthanc Python plugin: nudge the platform when a study becomes stable.

Runs inside Orthanc on the system Python (orthanc-python 4.0), so standard library only.
Settings come from the "Caravan" section of Orthanc's configuration, rendered by launcher.py:
NudgeUrl, PluginSecret, NudgeTimeout.

The nudge is an optimisation, not the source of truth: a failed or lost nudge is logged and
dropped, and the platform's reconciler over ``/changes`` picks the study up later. Orthanc ids
only ever reach the log, never tags, so no patient data leaks into it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request

import orthanc

SECRET_HEADER = "X-Caravan-Plugin-Secret"
QUEUE_SIZE = 10_000
ATTEMPTS = 3
CHANGES_PAGE = 500
# When the start-up cursor is missing, how far back /changes is searched for a change's Seq.
LOOKBACK = 1_000

_STOP = object()


def _log(level, message: str) -> None:
    level("caravan plugin: " + message)


class Nudger(threading.Thread):
    """Posts queued StableStudy nudges one by one, off Orthanc's change-callback thread."""

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        super().__init__(name="caravan-nudger", daemon=True)
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self.cursor: int | None = None
        # The platform is reached directly: an http_proxy in Orthanc's environment must not
        # intercept a request that carries the shared secret.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def submit(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            _log(orthanc.LogWarning, f"nudge queue full, dropped {item!r} (the reconciler will catch up)")

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            try:
                if item == "start":
                    self.cursor = self._last_seq()
                else:
                    self._nudge(item)
            except Exception as exc:  # one bad item must not kill the thread
                _log(orthanc.LogError, f"{type(exc).__name__} while handling {item!r}: {exc}")

    def _changes(self, since: int, limit: int) -> dict:
        return json.loads(orthanc.RestApiGet(f"/changes?since={since}&limit={limit}"))

    def _last_seq(self) -> int:
        return int(json.loads(orthanc.RestApiGet("/changes?last")).get("Last", 0))

    def _find_seq(self, orthanc_id: str) -> int | None:
        """The /changes sequence number of this study's StableStudy change.

        Callbacks arrive in change order, so the cursor only moves forward to a change that
        was found; a later study's change is then always after it.
        """
        since = self.cursor if self.cursor is not None else max(0, self._last_seq() - LOOKBACK)
        while True:
            page = self._changes(since, CHANGES_PAGE)
            for change in page.get("Changes", []):
                if change.get("ChangeType") == "StableStudy" and change.get("ID") == orthanc_id:
                    self.cursor = int(change["Seq"])
                    return self.cursor
            if page.get("Done", True) or not page.get("Changes"):
                return None
            since = int(page["Last"])

    def _nudge(self, orthanc_id: str) -> None:
        seq = self._find_seq(orthanc_id)
        body = json.dumps({"change": "StableStudy", "orthanc_id": orthanc_id, "seq": seq}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "caravan-orthanc-plugin",
                SECRET_HEADER: self.secret,
            },
        )
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.opener.open(request, timeout=self.timeout) as response:
                    _log(
                        orthanc.LogWarning,
                        f"StableStudy {orthanc_id} seq {seq} nudged (HTTP {response.status})",
                    )
                    return
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500:
                    # The platform refused the request itself (secret, body): retrying won't help.
                    _log(orthanc.LogError, f"StableStudy {orthanc_id} seq {seq} refused (HTTP {exc.code})")
                    return
                reason = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt < ATTEMPTS:
                time.sleep(0.25 * attempt)
        _log(
            orthanc.LogWarning,
            f"StableStudy {orthanc_id} seq {seq} not nudged after {ATTEMPTS} tries ({reason})",
        )


def _settings() -> dict:
    try:
        return json.loads(orthanc.GetConfiguration()).get("Caravan", {})
    except ValueError:
        return {}


_nudger: Nudger | None = None


def on_change(change_type, level, resource_id) -> None:
    # Orthanc runs change callbacks on one thread: anything slow here delays every other
    # plugin's events, hence the queue.
    if _nudger is None:
        return
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        _nudger.submit(resource_id)
    elif change_type == orthanc.ChangeType.ORTHANC_STARTED:
        _nudger.submit("start")
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
        _nudger.submit(_STOP)
        # Let an in-flight nudge finish before the interpreter is torn down.
        _nudger.join(timeout=_nudger.timeout + 1)


def _install() -> None:
    global _nudger
    settings = _settings()
    url = settings.get("NudgeUrl")
    secret = settings.get("PluginSecret")
    if not url or not secret:
        _log(orthanc.LogError, "Caravan.NudgeUrl or Caravan.PluginSecret missing: nudges disabled")
        return
    _nudger = Nudger(url, secret, float(settings.get("NudgeTimeout", 3.0)))
    _nudger.start()
    orthanc.RegisterOnChangeCallback(on_change)
    _log(orthanc.LogWarning, f"StableStudy nudges go to {url}")


_install()
