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
  see, else 404 (the same answer as for a UID that does not exist). Searches (``studies``,
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

import logging
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from core.exceptions import NotFound
from core.services.api_tokens import api_token_user
from core.services.audit import audit_record
from dicom.models import Study
from dicom.orthanc.orthanc_config import DICOMWEB_ROOT
from dicom.study_access import (
    studies_visible_to,
    study_audit_open,
    study_get_for_user,
    user_sees_all_studies,
)

logger = logging.getLogger(__name__)
# httpx logs every request line at INFO, query string included, and QIDO queries carry
# PatientID: no patient data in application logs (BRIEF §6). An explicit level wins.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

ALLOWED = "GET, HEAD, OPTIONS"
CHUNK_SIZE = 64 * 1024
CONNECT_TIMEOUT = 3.0
# A UID: up to 64 characters of digits and dots (PS3.5 §9.1).
_UID_RE = re.compile(r"^[0-9][0-9.]{0,63}$")
# One path segment below a study: UIDs, "metadata", "frames", "1,2,3", "rendered"...
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.,_-]{0,127}$")
_SEARCH_LEVELS = {"studies", "series", "instances"}
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
_FORWARD_REQUEST_HEADERS = ("accept", "range", "if-none-match", "if-modified-since")
_FORWARD_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
)


class ProxyError(Exception):
    """A refusal answered as JSON ``{"detail", "code"}`` with ``status``."""

    def __init__(self, status: int, detail: str, code: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse({"detail": self.detail, "code": self.code}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        response["Cache-Control"] = "no-store"
        return response


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
                level, params, opened=list(studies_visible_to(user).filter(study_instance_uid__in=uids))
            )
        return Authorised(level, params, search={"level": level, "keys": keys, "scope": "all"})
    visible = studies_visible_to(user)
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
    return Authorised(level, restricted, opened=studies if search is None else [], search=search)


def _authorise(user, request: HttpRequest, path: str) -> Authorised:
    parts = _segments(path)
    if len(parts) == 1 and parts[0] in _SEARCH_LEVELS:
        return _authorise_search(user, request, parts[0])
    if len(parts) >= 2 and parts[0] == "studies" and _UID_RE.match(parts[1]):
        try:
            study = study_get_for_user(user, parts[1])
        except NotFound as exc:
            raise ProxyError(404, exc.message, "not_found") from None
        params = [(k, v) for k, values in request.GET.lists() for v in values]
        return Authorised("/".join(parts), params, opened=[study])
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


def _upstream_headers(request: HttpRequest) -> dict[str, str]:
    headers = {name: request.headers[name] for name in _FORWARD_REQUEST_HEADERS if name in request.headers}
    # Raw bytes pass through untouched (Content-Length stays true), so no compression.
    headers["Accept-Encoding"] = "identity"
    # The plugin writes absolute BulkDataURIs from this (RFC 7239): they then point at this
    # proxy on the user's origin, never at Orthanc. Unquoted: orthanc-dicomweb 1.7 copies a
    # quoted value quotes and all. get_host() is validated against ALLOWED_HOSTS.
    headers["Forwarded"] = f"host={request.get_host()};proto={request.scheme}"
    return headers


def _client() -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=CONNECT_TIMEOUT,
        read=float(settings.ORTHANC_TIMEOUT),
        write=float(settings.ORTHANC_TIMEOUT),
        pool=5.0,
    )
    return httpx.AsyncClient(
        auth=(settings.ORTHANC_USERNAME, settings.ORTHANC_PASSWORD),
        timeout=timeout,
        # Orthanc is on a private address; a proxy from the environment would see it all.
        trust_env=False,
        follow_redirects=False,
    )


async def _body(upstream: httpx.Response, stack: AsyncExitStack) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw(CHUNK_SIZE):
            yield chunk
    except httpx.HTTPError as exc:
        # Headers are gone: the client sees a truncated body (and a short Content-Length).
        logger.warning("DICOMweb proxy: Orthanc stream broke off (%s)", type(exc).__name__)
    finally:
        await stack.aclose()


def _empty_search() -> HttpResponse:
    response = HttpResponse(b"[]", content_type="application/dicom+json")
    response["Cache-Control"] = "private, no-store"
    return response


async def _forward(
    request: HttpRequest, orthanc_path: str, params: list[tuple[str, str]]
) -> tuple[httpx.Response, AsyncExitStack]:
    url = f"{settings.ORTHANC_URL.rstrip('/')}{DICOMWEB_ROOT}{orthanc_path}"
    stack = AsyncExitStack()
    try:
        client = await stack.enter_async_context(_client())
        upstream = await stack.enter_async_context(
            client.stream(
                "GET",
                url,
                params=tuple(params),
                headers=_upstream_headers(request),
            )
        )
    except httpx.TimeoutException:
        await stack.aclose()
        raise ProxyError(
            502, "The image archive (Orthanc) did not answer in time; try again.", "orthanc_timeout"
        ) from None
    except httpx.HTTPError as exc:
        await stack.aclose()
        logger.warning("DICOMweb proxy: Orthanc unreachable (%s)", type(exc).__name__)
        raise ProxyError(
            502, "The image archive (Orthanc) is not reachable; try again shortly.", "orthanc_unavailable"
        ) from None
    if upstream.status_code >= 400:
        status = upstream.status_code
        await stack.aclose()
        if status in (401, 403) or status >= 500:
            # 401/403 means the platform's own credentials are wrong: never pass Orthanc's
            # WWW-Authenticate on to a browser.
            raise ProxyError(502, f"The image archive (Orthanc) answered HTTP {status}.", "orthanc_error")
        raise ProxyError(status, f"The image archive (Orthanc) answered HTTP {status}.", "upstream_error")
    return upstream, stack


def _streaming_response(
    request: HttpRequest, upstream: httpx.Response, stack: AsyncExitStack
) -> StreamingHttpResponse:
    body: Any = _body(upstream, stack) if request.method != "HEAD" else _nothing(stack)
    response = StreamingHttpResponse(body, status=upstream.status_code)
    for name in _FORWARD_RESPONSE_HEADERS:
        if name in upstream.headers:
            response[name] = upstream.headers[name]
    response["Cache-Control"] = "private, no-store"
    return response


async def _nothing(stack: AsyncExitStack) -> AsyncIterator[bytes]:
    # HEAD: the upstream GET is closed unread; an async generator that yields nothing.
    await stack.aclose()
    empty: tuple[bytes, ...] = ()
    for chunk in empty:
        yield chunk


def _release_database_connection() -> None:
    # A retrieve streams for as long as the viewer reads (seconds for a series) and needs the
    # database no more: its connection goes back to the pool (DB_POOL_SIZE per process) now,
    # not when the response ends. Runs in the request's thread (sync_to_async is thread-
    # sensitive), whose connection it is; never inside a transaction (a test's), which keeps it.
    if not connection.in_atomic_block:
        connection.close()


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
        upstream, stack = await _forward(request, authorised.orthanc_path, authorised.params)
        try:
            if request.method == "GET":
                await sync_to_async(_audit)(user, request, authorised)
            await sync_to_async(_release_database_connection)()
        except BaseException:
            await stack.aclose()
            raise
        return _streaming_response(request, upstream, stack)
    except ProxyError as exc:
        return exc.response()
