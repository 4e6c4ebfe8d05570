"""The authorised DICOMweb proxy: ``/dicom-web/...`` to Orthanc's DICOMweb plugin.

Users never reach Orthanc (BRIEF §6 "Least privilege"): the viewer talks to this view on the
platform's own origin, which checks every request against ``dicom.study_access`` and forwards
it with the platform's Orthanc credentials. docs/viewer.md describes the policy.

- Methods: GET is forwarded; HEAD is forwarded as a GET whose body is dropped (Orthanc's
  DICOMweb plugin does not answer HEAD); OPTIONS is answered here; anything else is 405.
- Authentication: the session (the viewer is same-origin) or ``Authorization: Token <key>``
  (an API token: core/services/api_tokens.py); anonymous callers and expired or revoked
  tokens get 401.
- Authorisation: a path naming a study (``studies/{uid}/...``) must name a study the user may
  see, else 404 (the same answer as for a UID that does not exist). A user is granted one
  Orthanc study (``Study.orthanc_id`` of the row that is not a ``uid_conflict`` copy), never a
  UID: Orthanc may hold two studies under one UID (two PatientIDs), so series and instance
  UIDs in the path must be of the granted Orthanc study, and the JSON answers (QIDO, metadata)
  are filtered to it (``dicomweb_scope``); ``studies/{uid}/metadata``, which Orthanc refuses
  for a UID held twice, is then built from the granted study's series. Searches (``studies``,
  ``series``, ``instances``) by users who do not see every study are rewritten so Orthanc only
  ever matches among the user's own studies: UIDs they may not see are dropped from
  ``StudyInstanceUID``; a search by other keys (OHIF's prior-studies lookup by PatientID) gets
  ``StudyInstanceUID=<the user's studies>``, narrowed first in our database by PatientID /
  AccessionNumber; more than ``MAX_SEARCH_STUDIES`` candidates is a 400 asking to narrow it.
  A search left with no candidate is answered ``[]`` without asking Orthanc.
- Audit: ``study.open`` once per user and study per viewing session (see
  ``study_access.study_audit_open``) for a GET Orthanc served (2xx); a search not by UID is
  one ``study.search`` entry per request. Refused requests write nothing.
- Streaming: an async view; the body is an async iterator over ``httpx``'s raw stream, so a
  whole-study WADO-RS retrieve passes through chunk by chunk. Under ASGI (daphne) Django sends
  each chunk as it comes; a *sync* iterator would be consumed whole first.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from core.services.api_tokens import api_token_user
from core.services.audit import audit_record
from dicom.models import Study
from dicom.study_access import (
    studies_visible_to,
    study_audit_open,
    user_sees_all_studies,
)
from dicom.web.dicomweb_scope import STUDY_UID, StudyScope, item_value, scope_load, scope_with
from dicom.web.dicomweb_upstream import (
    DICOM_JSON,
    ProxyError,
    forward,
    read_json,
    rest_getter,
    streaming_response,
)

ALLOWED = "GET, HEAD, OPTIONS"
# A UID: up to 64 characters of digits and dots (PS3.5 §9.1).
_UID_RE = re.compile(r"^[0-9][0-9.]{0,63}$")
# One path segment below a study: UIDs, "metadata", "frames", "1,2,3", "rendered"...
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.,_-]{0,127}$")
_SEARCH_LEVELS = {"studies", "series", "instances"}
# Routes under studies/{uid}/ answered in DICOM JSON: QIDO of series/instances, metadata.
_JSON_ROUTES = {"series", "instances", "metadata"}
_UID_KEYS = {"StudyInstanceUID", "0020000D"}
_PAGING_KEYS = {"limit", "offset", "includefield", "fuzzymatching"}
# Query keys (keyword and tag) whose exact values narrow a search in our own Study table.
_MIRRORED_KEYS = {
    "PatientID": "patient_id",
    "00100020": "patient_id",
    "AccessionNumber": "accession_number",
    "00080050": "accession_number",
}
# A search not by UID is sent to Orthanc as a list of the user's matching studies; beyond
# this many the user is asked to narrow it (the URL would grow past what servers accept).
MAX_SEARCH_STUDIES = 200


# --- authentication ---------------------------------------------------------------------------


def _token_user(key: str):
    user = api_token_user(key)
    if user is not None:
        user.organisation  # noqa: B018  (loaded here: the access checks read it from a worker thread)
    return user


async def _authenticate(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        # A wrong token is refused outright, never silently replaced by the session.
        if scheme.lower() != "token" or not key.strip():
            raise ProxyError(401, "Unsupported Authorization header; use 'Token <key>'.", "not_authenticated")
        user = await sync_to_async(_token_user)(key.strip())
        if user is None:
            raise ProxyError(
                401, "Invalid, expired or revoked token.", "not_authenticated", {"WWW-Authenticate": "Token"}
            )
        return user
    user = await request.auser()
    if not user.is_authenticated or not user.is_active:
        raise ProxyError(
            401,
            "Authentication credentials were not provided.",
            "not_authenticated",
            {"WWW-Authenticate": "Token"},
        )
    # Load the organisation now: the access checks read it from a worker thread.
    await sync_to_async(lambda: user.organisation)()
    return user


# --- authorisation ----------------------------------------------------------------------------


def _segments(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    for part in parts:
        # Rejects "..", "%2e%2e" (already decoded by Django) and anything Orthanc could read
        # as another route.
        if not _SEGMENT_RE.match(part):
            raise ProxyError(404, "Not a DICOMweb resource.", "not_found")
    return parts


def _search_uids(request: HttpRequest) -> list[str]:
    uids: list[str] = []
    for value in [v for key in sorted(_UID_KEYS) for v in request.GET.getlist(key)]:
        for uid in re.split(r"[,\\]", value):
            uid = uid.strip()
            if not uid:
                continue
            if not _UID_RE.match(uid):
                raise ProxyError(400, "StudyInstanceUID must be a list of UIDs (digits and dots).", "invalid")
            uids.append(uid)
    return uids


@dataclass
class Authorised:
    """What a request may do: studies it opens, the query to send (None: answer ``[]``)."""

    orthanc_path: str
    params: list[tuple[str, str]] | None
    opened: list[Study] = field(default_factory=list)
    # A search not by Study Instance UID: audited per request as ``study.search``.
    search: dict[str, Any] | None = None
    # A search (``studies``, ``series``, ``instances``): its JSON answer is filtered.
    is_search: bool = False
    # A path under ``studies/{uid}/``: the granted study, the series/instance UIDs it names,
    # and whether its answer is DICOM JSON to filter (QIDO of series/instances, metadata).
    study: Study | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    json_answer: bool = False


def _granted(user) -> QuerySet[Study]:
    """Studies whose Orthanc copy ``user`` may be served: visible, never a ``uid_conflict`` copy."""
    return studies_visible_to(user).filter(uid_conflict_with__isnull=True)


def _granted_orthanc_ids(user, uids: set[str]) -> dict[str, str]:
    return dict(
        _granted(user).filter(study_instance_uid__in=uids).values_list("study_instance_uid", "orthanc_id")
    )


def _narrowing(request: HttpRequest) -> dict[str, str]:
    """ORM filters for the query keys we mirror, when matched exactly (no wildcards)."""
    lookups: dict[str, str] = {}
    for key, field_name in _MIRRORED_KEYS.items():
        value = request.GET.get(key, "")
        if value and not any(c in value for c in "*?\\,"):
            lookups[field_name] = value
    return lookups


def _authorise_search(user, request: HttpRequest, level: str) -> Authorised:
    uids = _search_uids(request)
    params = [(k, v) for k, values in request.GET.lists() for v in values]
    keys = sorted({k for k, _ in params} - _PAGING_KEYS)
    if user_sees_all_studies(user):
        if uids:
            return Authorised(
                level, params, opened=list(_granted(user).filter(study_instance_uid__in=uids)), is_search=True
            )
        return Authorised(
            level, params, search={"level": level, "keys": keys, "scope": "all"}, is_search=True
        )
    visible = _granted(user)
    if uids:
        studies = list(visible.filter(study_instance_uid__in=uids))
        search = None
    else:
        # Not named by UID (OHIF looks for the patient's prior studies by PatientID): search
        # among the user's own studies only, narrowed first by what we mirror.
        candidates = visible.filter(**_narrowing(request)).order_by("-study_date", "-pk")
        studies = list(candidates[: MAX_SEARCH_STUDIES + 1])
        if len(studies) > MAX_SEARCH_STUDIES:
            raise ProxyError(
                400,
                f"The search matches more than {MAX_SEARCH_STUDIES} of your studies; narrow it with "
                "StudyInstanceUID, PatientID or AccessionNumber.",
                "search_too_broad",
            )
        search = {"level": level, "keys": keys, "scope": "own", "candidates": len(studies)}
    if not studies:
        return Authorised(level, None, search=search)
    others = [(k, v) for k, v in params if k not in _UID_KEYS]
    restricted = [*others, ("StudyInstanceUID", ",".join(s.study_instance_uid for s in studies))]
    return Authorised(
        level, restricted, opened=studies if search is None else [], search=search, is_search=True
    )


def _authorise(user, request: HttpRequest, path: str) -> Authorised:
    parts = _segments(path)
    if len(parts) == 1 and parts[0] in _SEARCH_LEVELS:
        return _authorise_search(user, request, parts[0])
    if len(parts) >= 2 and parts[0] == "studies" and _UID_RE.match(parts[1]):
        # Never by UID alone: the copy granted is the visible one that is not a uid_conflict.
        study = _granted(user).filter(study_instance_uid=parts[1]).first()
        if study is None:
            raise ProxyError(404, "No study matches the given Study Instance UID", "not_found")
        series_uid = parts[3] if len(parts) >= 4 and parts[2] == "series" else None
        sop_uid = parts[5] if series_uid and len(parts) >= 6 and parts[4] == "instances" else None
        for uid in (series_uid, sop_uid):
            if uid is not None and not _UID_RE.match(uid):
                raise ProxyError(404, "Not a DICOMweb resource.", "not_found")
        params = [(k, v) for k, values in request.GET.lists() for v in values]
        return Authorised(
            "/".join(parts),
            params,
            opened=[study],
            study=study,
            series_uid=series_uid,
            sop_uid=sop_uid,
            json_answer=parts[-1] in _JSON_ROUTES and len(parts) > 2,
        )
    raise ProxyError(404, "Not a DICOMweb resource.", "not_found")


def _audit(user, request: HttpRequest, authorised: Authorised) -> None:
    for study in authorised.opened:
        study_audit_open(user=user, study=study, request=request, via="dicomweb")
    if authorised.search is not None:
        audit_record(
            actor=user,
            action="study.search",
            object_type="dicom.study",
            patient_data=True,
            patient_id=request.GET.get("PatientID", "") or request.GET.get("00100020", ""),
            details=authorised.search,
            request=request,
        )


# --- forwarding ---------------------------------------------------------------------------------


def _empty_search() -> HttpResponse:
    response = HttpResponse(b"[]", content_type="application/dicom+json")
    response["Cache-Control"] = "private, no-store"
    return response


def _release_database_connection() -> None:
    # A retrieve streams for as long as the viewer reads (seconds for a series) and needs the
    # database no more: its connection goes back to the pool (DB_POOL_SIZE per process) now,
    # not when the response ends. Runs in the request's thread (sync_to_async is thread-
    # sensitive), whose connection it is; never inside a transaction (a test's), which keeps it.
    if not connection.in_atomic_block:
        connection.close()


async def _path_scope(request: HttpRequest, authorised: Authorised) -> StudyScope:
    """The granted Orthanc study's scope; 404 for a series/instance UID not of it."""
    assert authorised.study is not None
    get = rest_getter(request)
    if authorised.series_uid is None:
        return await scope_load(get, authorised.study.orthanc_id)
    scope = await scope_with(get, authorised.study.orthanc_id, authorised.series_uid, authorised.sop_uid)
    if not scope.has(authorised.series_uid, authorised.sop_uid):
        raise ProxyError(404, "No such series or instance in this study.", "not_found")
    return scope


async def _study_json(request: HttpRequest, authorised: Authorised, scope: StudyScope) -> list[Any]:
    """A DICOM JSON answer under ``studies/{uid}/``, only the granted Orthanc study's items."""
    path = authorised.orthanc_path
    try:
        items = await read_json(request, path, authorised.params or [], accept=DICOM_JSON)
    except ProxyError as exc:
        # Orthanc refuses studies/{uid}/metadata when two studies share the UID: build it from
        # the granted study's series, each of which Orthanc locates by series UID.
        if exc.status != 404 or path != f"studies/{scope.study_uid}/metadata" or not scope.series:
            raise
        items = []
        for series_uid in sorted(scope.series):
            items += await read_json(
                request, f"{path.removesuffix('/metadata')}/series/{series_uid}/metadata", accept=DICOM_JSON
            )
    return [item for item in items if scope.keeps(item)]


async def _search_json(user, request: HttpRequest, authorised: Authorised) -> list[Any]:
    """A QIDO answer without the items of Orthanc studies the user was not granted."""
    items = await read_json(request, authorised.orthanc_path, authorised.params or [], accept=DICOM_JSON)
    if not isinstance(items, list):
        raise ProxyError(502, "The image archive (Orthanc) answered malformed JSON.", "orthanc_error")
    uids = {uid for uid in (item_value(item, STUDY_UID) for item in items) if uid}
    granted = await sync_to_async(_granted_orthanc_ids)(user, uids) if uids else {}
    items = [item for item in items if item_value(item, STUDY_UID) in granted]
    if not granted:
        return items
    # Which Orthanc studies hold those UIDs: a UID held by more than the granted one is
    # filtered by the granted study's scope.
    query = {"Level": "Study", "Expand": True, "Query": {"StudyInstanceUID": "\\".join(sorted(granted))}}
    found = await read_json(request, "tools/find", rest=True, method="POST", payload=query)
    copies: dict[str, set[str]] = defaultdict(set)
    for study in found:
        copies[study.get("MainDicomTags", {}).get("StudyInstanceUID", "")].add(study.get("ID", ""))
    for uid, orthanc_id in granted.items():
        if copies.get(uid, set()) == {orthanc_id}:
            continue
        try:
            scope: StudyScope | None = await scope_load(rest_getter(request), orthanc_id)
        except ProxyError as exc:
            if exc.status != 404:
                raise
            scope = None  # the granted study is gone from Orthanc: nothing of that UID
        items = [
            i for i in items if item_value(i, STUDY_UID) != uid or (scope is not None and scope.keeps(i))
        ]
    return items


def _json_response(request: HttpRequest, items: list[Any]) -> HttpResponse:
    body = json.dumps(items).encode() if request.method != "HEAD" else b""
    response = HttpResponse(body, content_type=DICOM_JSON)
    response["Cache-Control"] = "private, no-store"
    return response


@csrf_exempt  # GET/HEAD only: nothing here changes state
async def dicomweb_proxy(request: HttpRequest, path: str = "") -> HttpResponseBase:
    if request.method == "OPTIONS":
        response = HttpResponse(status=200)
        response["Allow"] = ALLOWED
        return response
    try:
        if request.method not in ("GET", "HEAD"):
            raise ProxyError(
                405,
                f"Method {request.method} not allowed: the DICOMweb proxy is read-only.",
                "method_not_allowed",
                {"Allow": ALLOWED},
            )
        user = await _authenticate(request)
        authorised = await sync_to_async(_authorise)(user, request, path)
        if authorised.params is None:
            if request.method == "GET":
                await sync_to_async(_audit)(user, request, authorised)
            return _empty_search()
        if authorised.study is not None or authorised.is_search:
            items: list[Any] | None = None
            if authorised.study is not None:
                # Study-level retrieves (studies/{uid}, rendered...) need no scope: Orthanc
                # locates the study by UID and refuses one held twice.
                if authorised.series_uid is not None or authorised.json_answer:
                    scope = await _path_scope(request, authorised)
                    if authorised.json_answer:
                        items = await _study_json(request, authorised, scope)
            else:
                items = await _search_json(user, request, authorised)
            if items is not None:
                if request.method == "GET":
                    await sync_to_async(_audit)(user, request, authorised)
                return _json_response(request, items)
        upstream, stack = await forward(request, authorised.orthanc_path, authorised.params)
        try:
            if request.method == "GET":
                await sync_to_async(_audit)(user, request, authorised)
            await sync_to_async(_release_database_connection)()
        except BaseException:
            await stack.aclose()
            raise
        return streaming_response(request, upstream, stack)
    except ProxyError as exc:
        return exc.response()
