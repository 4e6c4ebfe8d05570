"""Caravan's Orthanc Python plugin: nudge the platform when a study becomes stable, and serve
the DICOM Modality Worklist from the platform's orders.

Runs inside Orthanc on the system Python (orthanc-python 4.0), so standard library only.
Settings come from the "Caravan" section of Orthanc's configuration, rendered by launcher.py:
NudgeUrl, PluginSecret, NudgeTimeout, WorklistUrl, WorklistTimeout.

The nudge is an optimisation, not the source of truth: a failed or lost nudge is logged and
dropped, and the platform's reconciler over ``/changes`` picks the study up later. Orthanc ids
only ever reach the log, never tags, so no patient data leaks into it.

The worklist: a scanner's C-FIND (MWL) reaches ``on_worklist``, which asks the platform for
the calling AE title's orders on the requested day(s), turns each into a DICOM dataset and lets
Orthanc match it against the query. Whatever goes wrong, the scanner gets no answers and the
log gets the AE title, the dates and the reason, never a tag value.
"""

from __future__ import annotations

import datetime
import json
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import orthanc

SECRET_HEADER = "X-Caravan-Plugin-Secret"
QUEUE_SIZE = 10_000
ATTEMPTS = 3
CHANGES_PAGE = 500
# When the start-up cursor is missing, how far back /changes is searched for a change's Seq.
LOOKBACK = 1_000

_STOP = object()

NUDGE_PATH = "/api/dicom/orthanc/nudge/"
WORKLIST_PATH = "/api/dicom/orthanc/worklist/"
WORKLIST_TIMEOUT = 5.0
# The widest range the platform serves (dicom.selectors.WORKLIST_MAX_DAYS); open-ended ranges
# ("from today on") are closed at this many days.
WORKLIST_MAX_DAYS = 31
# Items are built in UTF-8; Orthanc re-encodes its answers in its DefaultEncoding.
WORKLIST_CHARSET = "ISO_IR 192"
_DA = re.compile(r"^\d{8}$")
_DA_RANGE = re.compile(r"^(\d{8})?-(\d{8})?$")


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
                    self._nudge(*item)
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

    def _nudge(self, orthanc_id: str, stable_at: float) -> None:
        seq = self._find_seq(orthanc_id)
        body = json.dumps(
            {"change": "StableStudy", "orthanc_id": orthanc_id, "seq": seq, "stable_at": stable_at}
        ).encode()
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


class WorklistError(Exception):
    """The worklist could not be served; the message holds no patient data."""


def query_dates(query: dict) -> str | None:
    """The DA or DA range to ask the platform for, from a HUMAN-format MWL query; None: today.

    Only Scheduled Procedure Step Start Date is read; every other key is left to Orthanc's
    matcher. An open-ended range is closed at WORKLIST_MAX_DAYS.
    """
    steps = query.get("ScheduledProcedureStepSequence")
    value = ""
    if isinstance(steps, list) and steps and isinstance(steps[0], dict):
        value = steps[0].get("ScheduledProcedureStepStartDate") or ""
    if not isinstance(value, str):
        raise WorklistError("ScheduledProcedureStepStartDate is not a single value")
    value = value.strip()
    if not value or value == "-":
        return None
    if _DA.match(value):
        return value
    # The value itself is never logged: whatever a scanner put there stays out of the log.
    unsupported = "unsupported ScheduledProcedureStepStartDate (not a DA or a DA range)"
    match = _DA_RANGE.match(value)
    if not match:
        raise WorklistError(unsupported)
    start, end = match.groups()
    span = datetime.timedelta(days=WORKLIST_MAX_DAYS - 1)
    try:
        if start is None:
            start = (datetime.datetime.strptime(end, "%Y%m%d") - span).strftime("%Y%m%d")
        elif end is None:
            end = (datetime.datetime.strptime(start, "%Y%m%d") + span).strftime("%Y%m%d")
    except ValueError:
        raise WorklistError(unsupported) from None
    return f"{start}-{end}"


class WorklistSource:
    """Fetches a unit's worklist items from the platform (one short GET per C-FIND)."""

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout
        # As for nudges: no proxy from the environment may see the secret.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch(self, aet: str, dates: str | None) -> list:
        params = {"aet": aet}
        if dates:
            params["date"] = dates
        request = urllib.request.Request(
            self.url + "?" + urllib.parse.urlencode(params),
            method="GET",
            headers={
                "Accept": "application/json",
                "User-Agent": "caravan-orthanc-plugin",
                SECRET_HEADER: self.secret,
            },
        )
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise WorklistError(f"the platform answered HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            # OSError covers URLError and timeouts; their text is about the connection only.
            # A ValueError is a body that is not JSON: its text is not logged.
            detail = str(exc) if isinstance(exc, OSError) else "invalid JSON"
            raise WorklistError(f"{type(exc).__name__}: {detail}") from None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise WorklistError("the platform's answer has no list of items")
        return items


def worklist_answers(query, items: list) -> list:
    """DICOM datasets of the items that match the query (Orthanc's matcher decides)."""
    matching = []
    for item in items:
        tags = dict(item)
        tags["SpecificCharacterSet"] = WORKLIST_CHARSET
        try:
            dicom = orthanc.CreateDicom(json.dumps(tags), None, orthanc.CreateDicomFlags.NONE)
        except Exception as exc:
            raise WorklistError(f"an item could not be encoded ({type(exc).__name__})") from None
        if query.WorklistIsMatch(dicom):
            matching.append(dicom)
    return matching


def _worklist_url(settings: dict) -> str | None:
    url = settings.get("WorklistUrl")
    if url:
        return url
    # Configurations rendered without it (manage.py orthanc) reach the same platform.
    nudge_url = settings.get("NudgeUrl") or ""
    if nudge_url.endswith(NUDGE_PATH):
        return nudge_url[: -len(NUDGE_PATH)] + WORKLIST_PATH
    return None


def _settings() -> dict:
    try:
        return json.loads(orthanc.GetConfiguration()).get("Caravan", {})
    except ValueError:
        return {}


_nudger: Nudger | None = None
_worklist: WorklistSource | None = None


def on_change(change_type, level, resource_id) -> None:
    # Orthanc runs change callbacks on one thread: anything slow here delays every other
    # plugin's events, hence the queue.
    if _nudger is None:
        return
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        # The moment Orthanc declared the study stable: the platform measures its ingest
        # latency (STABLE -> routable) from here, not from when the nudge arrived.
        _nudger.submit((resource_id, time.time()))
    elif change_type == orthanc.ChangeType.ORTHANC_STARTED:
        _nudger.submit("start")
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
        _nudger.submit(_STOP)
        # Let an in-flight nudge finish before the interpreter is torn down.
        _nudger.join(timeout=_nudger.timeout + 1)


def on_worklist(answers, query, issuer_aet, called_aet) -> None:
    # Runs on the DICOM thread of the scanner's association, which waits for the answers.
    if _worklist is None:
        return
    dates = None
    try:
        parsed = json.loads(
            orthanc.DicomBufferToJson(
                query.WorklistGetDicomQuery(),
                orthanc.DicomToJsonFormat.HUMAN,
                orthanc.DicomToJsonFlags.NONE,
                0,
            )
        )
        dates = query_dates(parsed)
        items = _worklist.fetch(issuer_aet, dates)
        matching = worklist_answers(query, items)
        # Added only once every item is built, so an error answers nothing rather than a part.
        for dicom in matching:
            answers.WorklistAddAnswer(query, dicom)
    except WorklistError as exc:
        _log(orthanc.LogError, f"worklist for {issuer_aet} ({dates or 'today'}) not served: {exc}")
        return
    except Exception as exc:  # never let a scanner's query crash the plugin
        _log(
            orthanc.LogError,
            f"worklist for {issuer_aet} ({dates or 'today'}) not served: {type(exc).__name__}",
        )
        return
    _log(
        orthanc.LogWarning,
        f"worklist for {issuer_aet} ({dates or 'today'}): {len(matching)} of {len(items)} items match",
    )


def _install() -> None:
    global _nudger, _worklist
    settings = _settings()
    url = settings.get("NudgeUrl")
    secret = settings.get("PluginSecret")
    if not url or not secret:
        _log(
            orthanc.LogError, "Caravan.NudgeUrl or Caravan.PluginSecret missing: nudges and worklist disabled"
        )
        return
    _nudger = Nudger(url, secret, float(settings.get("NudgeTimeout", 3.0)))
    _nudger.start()
    orthanc.RegisterOnChangeCallback(on_change)
    _log(orthanc.LogWarning, f"StableStudy nudges go to {url}")

    worklist_url = _worklist_url(settings)
    if not worklist_url:
        _log(orthanc.LogError, "Caravan.WorklistUrl missing: the Modality Worklist is disabled")
        return
    _worklist = WorklistSource(worklist_url, secret, float(settings.get("WorklistTimeout", WORKLIST_TIMEOUT)))
    orthanc.RegisterWorklistCallback(on_worklist)
    _log(orthanc.LogWarning, f"Modality Worklist items come from {worklist_url}")


_install()
