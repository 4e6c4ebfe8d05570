"""The DICOMweb proxy's side towards Orthanc: requests with the platform's credentials.

``forward`` opens a streamed request to Orthanc's DICOMweb plugin (or, ``rest=True``, its REST
API) and maps failures to ``ProxyError``: 502 for Orthanc down, too slow, failing, or refusing
the platform's own credentials; Orthanc's other 4xx as the same status. ``streaming_response``
passes a body on chunk by chunk; ``read_json`` reads a small JSON answer whole. The view is
dicom/web/dicomweb_proxy.py; docs/viewer.md describes both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from dicom.orthanc.orthanc_config import DICOMWEB_ROOT

logger = logging.getLogger(__name__)
# httpx logs every request line at INFO, query string included, and QIDO queries carry
# PatientID: no patient data in application logs (BRIEF §6). An explicit level wins.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

CHUNK_SIZE = 64 * 1024
DICOM_JSON = "application/dicom+json"
CONNECT_TIMEOUT = 3.0
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


def upstream_headers(request: HttpRequest, accept: str | None = None) -> dict[str, str]:
    headers = {name: request.headers[name] for name in _FORWARD_REQUEST_HEADERS if name in request.headers}
    if accept is not None:
        headers["accept"] = accept
    # Raw bytes pass through untouched (Content-Length stays true), so no compression.
    headers["Accept-Encoding"] = "identity"
    # The plugin writes absolute BulkDataURIs from this (RFC 7239): they then point at this
    # proxy on the user's origin, never at Orthanc. Unquoted: orthanc-dicomweb 1.7 copies a
    # quoted value quotes and all. get_host() is validated against ALLOWED_HOSTS.
    headers["Forwarded"] = f"host={request.get_host()};proto={request.scheme}"
    return headers


def orthanc_http() -> httpx.AsyncClient:
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


async def forward(
    request: HttpRequest,
    orthanc_path: str,
    params: list[tuple[str, str]],
    *,
    accept: str | None = None,
    rest: bool = False,
    method: str = "GET",
    payload: Any = None,
) -> tuple[httpx.Response, AsyncExitStack]:
    # ``rest``: Orthanc's own REST API (by Orthanc id), for the granted study's scope.
    root = "/" if rest else DICOMWEB_ROOT
    url = f"{settings.ORTHANC_URL.rstrip('/')}{root}{orthanc_path}"
    stack = AsyncExitStack()
    try:
        client = await stack.enter_async_context(orthanc_http())
        upstream = await stack.enter_async_context(
            client.stream(
                method,
                url,
                params=tuple(params),
                headers={"Accept": "application/json"} if rest else upstream_headers(request, accept),
                json=payload,
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


def streaming_response(
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


async def read_json(request: HttpRequest, path: str, params=(), **kwargs: Any) -> Any:
    """A whole (small) JSON answer of Orthanc: QIDO, metadata or a REST call."""
    upstream, stack = await forward(request, path, list(params), **kwargs)
    try:
        body = await upstream.aread()
    except httpx.HTTPError:
        raise ProxyError(
            502, "The image archive (Orthanc) is not reachable; try again shortly.", "orthanc_unavailable"
        ) from None
    finally:
        await stack.aclose()
    try:
        return json.loads(body) if body.strip() else []
    except ValueError:
        raise ProxyError(
            502, "The image archive (Orthanc) answered malformed JSON.", "orthanc_error"
        ) from None


def rest_getter(request: HttpRequest):
    async def get(path: str) -> Any:
        return await read_json(request, path, rest=True)

    return get
