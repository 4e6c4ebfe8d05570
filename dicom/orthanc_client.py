"""A small typed client for Orthanc's REST API.

Built on ``requests`` rather than pyorthanc: pyorthanc is not a dependency (it is on PyPI but
not installed here), it generates hundreds of methods from Orthanc's OpenAPI document while we
need a dozen, and it does not give us what we do need on every call: one place for timeouts,
urllib3 retries limited to idempotent methods, basic auth, and a single error type that
carries the HTTP status. ``requests`` and ``urllib3`` are already pinned runtime dependencies.

Errors never include Orthanc's "Details" field, which can quote DICOM tag values; messages
carry the method, path, status and Orthanc's generic message only.
"""

from __future__ import annotations

import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Orthanc identifiers are SHA-1 digests written as five groups of eight hex digits. Checking
# them keeps a caller-supplied id from walking to another REST route ("../tools/...").
ORTHANC_ID_RE = re.compile(r"^[0-9a-f]{8}(?:-[0-9a-f]{8}){4}$")
_RESOURCE_PATH = re.compile(r"^(patients|studies|series|instances)/[0-9a-f]{8}(?:-[0-9a-f]{8}){4}$")
_RETRY_STATUSES = (500, 502, 503, 504)


class OrthancError(Exception):
    """A failed Orthanc call: ``status_code`` is the HTTP status, or None if none came back."""

    def __init__(self, message: str, *, status_code: int | None = None, method: str = "", path: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.path = path


def check_orthanc_id(value: str) -> str:
    if not isinstance(value, str) or not ORTHANC_ID_RE.match(value):
        raise OrthancError(f"{value!r} is not an Orthanc identifier")
    return value


class OrthancClient:
    """Orthanc over HTTP with basic auth, per-request timeouts and retries on idempotent calls."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 10, retries: int = 3):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = (username, password)
        # The platform talks to Orthanc on a private address: a proxy from the environment
        # would see the credentials and the images.
        self.session.trust_env = False
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            # urllib3's default set: GET, HEAD, PUT, DELETE, OPTIONS, TRACE. A POST is retried
            # only when the connection could not be made, so it was never sent.
            allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=0.2,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # --- transport -------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request; raise OrthancError on a transport failure or a non-2xx status."""
        path = path.lstrip("/")
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, f"{self.url}/{path}", **kwargs)
        except requests.RequestException as exc:
            raise OrthancError(
                f"Orthanc {method} /{path} failed: {type(exc).__name__}", method=method, path=path
            ) from exc
        if response.status_code >= 400:
            raise OrthancError(
                f"Orthanc {method} /{path} returned HTTP {response.status_code}{_orthanc_message(response)}",
                status_code=response.status_code,
                method=method,
                path=path,
            )
        return response

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return _json(self.request("GET", path, params=params), "GET", path)

    def post_json(self, path: str, payload: Any) -> Any:
        return _json(self.request("POST", path, json=payload), "POST", path)

    # --- system ----------------------------------------------------------------------------------

    def system(self) -> dict[str, Any]:
        return self.get_json("system")

    def statistics(self) -> dict[str, Any]:
        return self.get_json("statistics")

    def plugins(self) -> list[str]:
        return self.get_json("plugins")

    # --- resources -------------------------------------------------------------------------------

    def upload_instance(self, data: bytes) -> dict[str, Any]:
        """Store one DICOM Part 10 file; Orthanc answers with ids and Status (Success/AlreadyStored)."""
        response = self.request("POST", "instances", data=data, headers={"Content-Type": "application/dicom"})
        return _json(response, "POST", "instances")

    def instance_file(self, orthanc_id: str) -> bytes:
        return self.request("GET", f"instances/{check_orthanc_id(orthanc_id)}/file").content

    def instance_tags(self, orthanc_id: str, simplify: bool = True) -> dict[str, Any]:
        suffix = "simplified-tags" if simplify else "tags"
        return self.get_json(f"instances/{check_orthanc_id(orthanc_id)}/{suffix}")

    def patients(self) -> list[str]:
        return self.get_json("patients")

    def studies(self) -> list[str]:
        return self.get_json("studies")

    def study(self, orthanc_id: str) -> dict[str, Any]:
        return self.get_json(f"studies/{check_orthanc_id(orthanc_id)}")

    def study_instances(self, orthanc_id: str) -> list[dict[str, Any]]:
        return self.get_json(f"studies/{check_orthanc_id(orthanc_id)}/instances")

    def study_series(self, orthanc_id: str) -> list[dict[str, Any]]:
        """Every series of the study, expanded (MainDicomTags, Instances, LastUpdate...)."""
        return self.get_json(f"studies/{check_orthanc_id(orthanc_id)}/series")

    def metadata(self, level: str, orthanc_id: str, name: str) -> str | None:
        """One metadata item (e.g. an instance's RemoteAET), or None when Orthanc has none."""
        if level not in {"patients", "studies", "series", "instances"}:
            raise OrthancError(f"{level!r} is not a resource level")
        if not re.fullmatch(r"[A-Za-z0-9]+", name):
            raise OrthancError(f"{name!r} is not a metadata name")
        try:
            return self.request("GET", f"{level}/{check_orthanc_id(orthanc_id)}/metadata/{name}").text
        except OrthancError as exc:
            if exc.status_code == 404:
                return None
            raise

    def instances_tags(self, level: str, orthanc_id: str, simplify: bool = True) -> dict[str, dict[str, Any]]:
        """Tags of every instance under a patient/study/series in one call, keyed by instance id.

        Orthanc (since 2014; verified on 1.10.1) answers ``{instance id: tags}``, sequences nested in
        full; values longer than Orthanc's 256-character limit and binary values come back null.
        """
        if level not in {"patients", "studies", "series"}:
            raise OrthancError(f"instances_tags: level {level!r} is not patients, studies or series")
        path = f"{level}/{check_orthanc_id(orthanc_id)}/instances-tags"
        answer = self.get_json(path, params={"simplify": ""} if simplify else None)
        if not isinstance(answer, dict):
            raise OrthancError(
                f"Orthanc GET /{path} answered {type(answer).__name__}, not an object",
                method="GET",
                path=path,
            )
        return answer

    def lookup(self, uid: str) -> list[dict[str, Any]]:
        """Resources whose DICOM UID (or patient ID / accession) equals ``uid``."""
        response = self.request(
            "POST", "tools/lookup", data=uid.encode(), headers={"Content-Type": "text/plain"}
        )
        return _json(response, "POST", "tools/lookup")

    def changes(self, since: int, limit: int) -> dict[str, Any]:
        """One page of the change log after ``since``: {"Changes": [...], "Done": bool, "Last": int}."""
        if since < 0 or not 1 <= limit <= 10_000:
            raise OrthancError(f"changes(since={since}, limit={limit}): since >= 0, 1 <= limit <= 10000")
        return self.get_json("changes", params={"since": since, "limit": limit})

    def delete(self, resource: str) -> None:
        """Delete ``patients|studies|series|instances/<id>``."""
        resource = resource.strip("/")
        if not _RESOURCE_PATH.match(resource):
            raise OrthancError(f"{resource!r} is not a resource path like 'studies/<orthanc id>'")
        self.request("DELETE", resource)


def _orthanc_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("Message") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) and message else ""


def _json(response: requests.Response, method: str, path: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise OrthancError(
            f"Orthanc {method} /{path} answered non-JSON",
            status_code=response.status_code,
            method=method,
            path=path,
        ) from exc


def orthanc_client_from_settings(
    *, timeout: float | None = None, retries: int | None = None
) -> OrthancClient:
    """A client for the configured Orthanc (ORTHANC_URL, ORTHANC_USERNAME, ORTHANC_PASSWORD)."""
    from django.conf import settings

    return OrthancClient(
        settings.ORTHANC_URL,
        settings.ORTHANC_USERNAME,
        settings.ORTHANC_PASSWORD,
        timeout=settings.ORTHANC_TIMEOUT if timeout is None else timeout,
        retries=3 if retries is None else retries,
    )
