"""The hospital portal: the hospital's studies with their status, signed reports, critical results.

A hospital user sees their own hospital's studies only; any other hospital's id is "not found"
(never "forbidden", which would confirm it exists). Other roles get 403 on every page. Every
page that shows patient data writes one audit entry (the list: one per page view, naming the
studies shown; a report: one per report opened).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from core.choices import Role
from core.exceptions import DomainError, NotFound
from core.models import User
from core.services import audit_record
from core.workspaces import workspace_required
from dicom.choices import QCOutcome
from dicom.models import Study
from telerad.choices import ReportStatus, TaskStatus
from telerad.models import CriticalResult, Report
from telerad.selectors_portal import (
    portal_critical_result_get_for_user,
    portal_critical_result_open_list_for_user,
    portal_final_report_for_user,
    portal_report_critical_result_for_user,
    portal_study_get_for_user,
    portal_study_list_for_user,
)
from telerad.services.critical import critical_result_acknowledge

PAGE_SIZE = 25


@dataclass(frozen=True)
class PortalStatus:
    """Where a study is, in the hospital's words."""

    code: str
    label: str


RECEIVED = PortalStatus("received", "Received, QC running")
QC = PortalStatus("qc", "In quality control")
QC_FAILED = PortalStatus("qc_failed", "QC failed: rescan needed")
WAITING = PortalStatus("waiting", "Waiting for a reader")
CLAIMED = PortalStatus("claimed", "Being read")
REPORTED = PortalStatus("reported", "Reported")
CANCELLED = PortalStatus("cancelled", "Reading cancelled")


@dataclass(frozen=True)
class PortalRow:
    """One line of the studies table."""

    study: Study
    status: PortalStatus
    critical_results: list[CriticalResult]
    patient: str


def person_name(study: Study) -> str:
    """The patient's DICOM name (FAMILY^GIVEN) as people write it: "FAMILY, Given"."""
    raw = study.patient_name or (study.order.patient_name if study.order_id and study.order else "")
    parts = [part.strip() for part in raw.split("=")[0].split("^")]
    family, given = (parts[0] if parts else ""), " ".join(p for p in parts[1:3] if p)
    return f"{family}, {given.title()}" if family and given else family or given


def _related(obj: Any, name: str) -> Any:
    """A reverse one-to-one that may be absent (``study.report``), as None instead of raising."""
    try:
        return getattr(obj, name)
    except Exception:  # RelatedObjectDoesNotExist subclasses the related model's DoesNotExist
        return None


def study_portal_status(study: Study) -> PortalStatus:
    report = _related(study, "report")
    if report is not None and report.status == ReportStatus.FINAL:
        return REPORTED
    task = _related(study, "reading_task")
    if task is not None:
        return {
            TaskStatus.UNCLAIMED: WAITING,
            TaskStatus.CLAIMED: CLAIMED,
            TaskStatus.REPORTED: REPORTED,
            TaskStatus.CANCELLED: CANCELLED,
        }.get(task.status, WAITING)
    if study.routable_at is not None:
        return WAITING
    if study.qc_outcome == QCOutcome.FAIL:
        return QC_FAILED
    if study.qc_outcome == QCOutcome.PENDING:
        return RECEIVED
    return QC


def _study_for_user(request: HttpRequest, study_id: int) -> Study:
    try:
        return portal_study_get_for_user(request.user, study_id)
    except NotFound as exc:
        raise Http404(exc.message)


def _final_report(request: HttpRequest, study: Study) -> Report:
    try:
        return portal_final_report_for_user(request.user, study)
    except NotFound as exc:
        raise Http404(exc.message)


def _renderer() -> ModuleType | None:
    """The reports developer's renderer (``report_html`` / ``report_pdf``), if it is installed."""
    try:
        return importlib.import_module("telerad.reports_render")
    except ModuleNotFoundError as exc:
        if exc.name != "telerad.reports_render":
            raise  # the module exists but something it imports is missing: a real error
        return None


def _rendered_report(renderer: ModuleType | None, report: Report) -> tuple[str | None, str | None]:
    """The renderer's report as (fragment, standalone document); (None, None) without one.

    The fragment (``report_context`` through ``telerad/report_body.html``, the very content of
    ``report_html``) sits inside the portal page; failing that, the standalone document goes
    in a sandboxed frame. Without the renderer the page falls back to the stored fields.
    """
    if renderer is None:
        return None, None
    context = getattr(renderer, "report_context", None)
    if context is not None:
        try:
            return render_to_string("telerad/report_body.html", context(report)), None
        except TemplateDoesNotExist:
            pass
    return None, renderer.report_html(report)


def _live_since(user: User) -> int:
    """The newest live event this page already reflects, so reading-live.js resumes after it."""
    try:
        selectors = importlib.import_module("telerad.selectors_events")
    except ModuleNotFoundError as exc:
        if exc.name != "telerad.selectors_events":
            raise
        return 0
    return int(selectors.reading_events_latest_seq(selectors.reading_audience_for_user(user)))


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _portal_context(request: HttpRequest) -> dict[str, Any]:
    try:
        studies = portal_study_list_for_user(request.user)
        open_results = list(portal_critical_result_open_list_for_user(request.user))
    except NotFound as exc:
        raise Http404(exc.message)
    page = Paginator(studies, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        PortalRow(study, study_portal_status(study), list(study.critical_results.all()), person_name(study))
        for study in page
    ]
    study_ids = sorted({row.study.pk for row in rows} | {r.study_id for r in open_results})
    if study_ids:
        audit_record(
            actor=cast(User, request.user),
            action="portal.studies_view",
            object_type=Study._meta.label_lower,
            patient_data=True,
            details={
                "studies": study_ids,
                "critical_results": [r.pk for r in open_results],
                "page": page.number,
            },
            request=request,
        )
    return {
        "page": page,
        "rows": rows,
        "open_results": [(result, person_name(result.study)) for result in open_results],
    }


@workspace_required(Role.HOSPITAL_USER)
@require_GET
def hospital_studies(request: HttpRequest) -> HttpResponse:
    context = _portal_context(request)
    if _is_htmx(request):
        return render(request, "telerad/portal_live.html", context)
    context["live_since"] = _live_since(cast(User, request.user))
    return render(request, "telerad/portal_studies.html", context)


@workspace_required(Role.HOSPITAL_USER)
@require_POST
def critical_acknowledge(request: HttpRequest, result_id: int) -> HttpResponse:
    user = cast(User, request.user)
    try:
        result = portal_critical_result_get_for_user(user, result_id)
        ack = critical_result_acknowledge(actor=user, result=result, request=request)
    except NotFound as exc:
        raise Http404(exc.message)
    except DomainError as exc:
        notice, level = exc.message, messages.ERROR
    else:
        notice, level = ack.message, messages.SUCCESS if ack.acknowledged_now else messages.INFO
    if _is_htmx(request):
        context = _portal_context(request)
        context["notice"] = notice
        return render(request, "telerad/portal_live.html", context)
    messages.add_message(request, level, notice)
    return redirect(reverse("hospital-studies"))


@workspace_required(Role.HOSPITAL_USER)
@require_GET
def study_report(request: HttpRequest, study_id: int) -> HttpResponse:
    study = _study_for_user(request, study_id)
    report = _final_report(request, study)
    renderer = _renderer()
    fragment, document = _rendered_report(renderer, report)
    audit_record(
        actor=cast(User, request.user),
        action="report.view",
        obj=report,
        patient_data=True,
        patient_id=study.patient_id,
        details={"study": study.pk, "format": "html"},
        request=request,
    )
    critical = portal_report_critical_result_for_user(request.user, report)
    addenda = list(report.addenda.filter(signed_at__isnull=False).select_related("author"))
    return render(
        request,
        "telerad/portal_report.html",
        {
            "study": study,
            "patient": person_name(study),
            "report": report,
            "fragment": fragment,
            "document": document,
            "fields": list(report.fields.items()) if isinstance(report.fields, dict) else [],
            "addenda": addenda,
            "critical": critical,
            "pdf_available": renderer is not None,
        },
    )


@workspace_required(Role.HOSPITAL_USER)
@require_GET
def study_report_pdf(request: HttpRequest, study_id: int) -> HttpResponse:
    study = _study_for_user(request, study_id)
    report = _final_report(request, study)
    renderer = _renderer()
    if renderer is None:
        return HttpResponse(
            "PDF reports are not available on this server yet; open the HTML report instead.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    pdf = renderer.report_pdf(report)
    audit_record(
        actor=cast(User, request.user),
        action="report.download",
        obj=report,
        patient_data=True,
        patient_id=study.patient_id,
        details={"study": study.pk, "format": "pdf"},
        request=request,
    )
    name = slugify(study.accession_number or f"study-{study.pk}") or f"study-{study.pk}"
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="report-{name}.pdf"'
    response["Cache-Control"] = "no-store"
    return response
