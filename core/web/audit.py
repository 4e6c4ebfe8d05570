"""Audit trail review (docs/audit.md): search the log, who has seen a patient, export a range.

Operator QC officers and administrators only, each within their operator's tenancy
(``core.selectors_audit.audit_in_tenancy``: their own staff's entries and the entries about their
objects); superusers read the whole trail. Every search, viewer lookup and export goes through
the same scoped selectors and is itself recorded in the log.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.access import user_is_platform_wide, user_organisation_kind
from core.choices import OrganisationKind, Role
from core.models import AuditCheck, User
from core.selectors_audit import audit_search, patient_viewers
from core.services.audit_export import atna_document, syslog_lines
from core.services.audit_review import audit_review_record

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
FILTERS = ("actor", "patient_id", "object_type", "object_id", "action", "start", "end")
EXPORTS = {
    "atna": ("application/xml; charset=utf-8", "xml"),
    "syslog": ("text/plain; charset=utf-8", "log"),
}


class AuditSearchForm(forms.Form):
    """The search filters; every one optional, dates inclusive."""

    actor = forms.CharField(required=False, max_length=150, label="User (name or id)")
    patient_id = forms.CharField(required=False, max_length=64, label="Patient ID")
    object_type = forms.CharField(required=False, max_length=64, label="Object type")
    object_id = forms.CharField(required=False, max_length=128, label="Object id")
    action = forms.CharField(required=False, max_length=64, label="Action (prefix)")
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("'From' must not be after 'To'.")
        return data


class ViewersForm(forms.Form):
    """The 'who has seen this patient' panel."""

    viewers_of = forms.CharField(max_length=64, label="Patient ID")
    viewers_start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    viewers_end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _check_access(user) -> None:
    # Superusers, and an operator's QC officers and administrators (who then see their own
    # tenancy only); hospitals and reading groups have no review page.
    if user_is_platform_wide(user):
        return
    if not (
        user.has_role(Role.QC_OFFICER, Role.ADMIN)
        and user_organisation_kind(user) == OrganisationKind.OPERATOR
    ):
        raise PermissionDenied("The audit trail is for the operator's QC officers and administrators.")


def _tenancy(user: User) -> str:
    """The reviewer's organisation, named on the page ("" for a superuser: the whole trail)."""
    if user_is_platform_wide(user) or user.organisation is None:
        return ""
    return user.organisation.name


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # login_required: never anonymous here


def _stream(chunks: Iterator[str]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk.encode()


def _export(request: HttpRequest, fmt: str, filters: dict[str, Any]) -> StreamingHttpResponse:
    content_type, extension = EXPORTS[fmt]
    with transaction.atomic():
        audit_review_record(
            actor=_user(request),
            action="audit.export",
            filters=filters,
            request=request,
            extra={"format": fmt},
        )
    # Oldest first, as a log is read; chunked so memory stays flat over a long range.
    entries = audit_search(user=_user(request), **filters).order_by("id").iterator(chunk_size=EXPORT_CHUNK)
    if fmt == "atna":
        body = atna_document(entries)
    else:
        body = (line + "\n" for line in syslog_lines(entries, hostname=socket.gethostname()))
    response = StreamingHttpResponse(_stream(body), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="caravan-audit-{stamp}.{extension}"'
    return response


@login_required
@require_GET
def audit_review(request: HttpRequest) -> HttpResponseBase:
    _check_access(request.user)
    form = AuditSearchForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_bound and form.is_valid():
        filters = {name: form.cleaned_data[name] for name in FILTERS if form.cleaned_data[name]}
    search_ok = not form.is_bound or form.is_valid()
    export = request.GET.get("export", "")
    if export in EXPORTS and search_ok:
        return _export(request, export, filters)

    page = None
    if search_ok:
        with transaction.atomic():
            audit_review_record(actor=_user(request), action="audit.search", filters=filters, request=request)
        page = Paginator(audit_search(user=_user(request), **filters), PAGE_SIZE).get_page(
            request.GET.get("page")
        )

    viewers_form = ViewersForm(request.GET) if request.GET.get("viewers_of") else ViewersForm()
    viewers = None
    if viewers_form.is_bound and viewers_form.is_valid():
        data = viewers_form.cleaned_data
        lookup = {
            "patient_id": data["viewers_of"],
            "start": data["viewers_start"],
            "end": data["viewers_end"],
        }
        with transaction.atomic():
            audit_review_record(
                actor=_user(request), action="audit.patient_viewers", filters=lookup, request=request
            )
        viewers = list(
            patient_viewers(
                data["viewers_of"], data["viewers_start"], data["viewers_end"], user=_user(request)
            )
        )

    query = {key: value for key, value in request.GET.items() if key in FILTERS and value}
    context = {
        "form": form,
        "page": page,
        "viewers_form": viewers_form,
        "viewers": viewers,
        "viewers_patient": viewers_form.cleaned_data.get("viewers_of") if viewers is not None else "",
        "query": urlencode(query),
        "latest_check": AuditCheck.objects.first(),
        "tenancy": _tenancy(_user(request)),
    }
    return render(request, "core/audit.html", context)
