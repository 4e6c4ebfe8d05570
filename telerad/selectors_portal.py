"""Reads for the hospital portal: the hospital's studies, open critical results and signed reports.

The portal shows the caller's own hospital (``organisation_id``) and, within it, what
``core.access`` lets the caller see; who may open the portal at all (hospital users) is the
views' ``workspace_required``. Anything outside is ``NotFound`` (the views answer 404, never
403, so ids of other hospitals' studies reveal nothing). Queries only: the views audit.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.access import get_for_user, scope_for_user
from core.exceptions import NotFound
from core.models import User
from dicom.models import Study
from telerad.choices import CriticalStatus, ReportStatus
from telerad.models import CriticalResult, Report


def portal_hospital_id(user: User | Any) -> int:
    """The caller's hospital; an account with none has nothing to see in the portal."""
    if user.organisation_id is None:
        raise NotFound("Your account belongs to no hospital")
    return int(user.organisation_id)


def portal_study_list_for_user(user: User | Any) -> QuerySet[Study]:
    """The hospital's studies, newest first, joined for the studies table (no per-row queries)."""
    studies = Study.objects.filter(hospital_id=portal_hospital_id(user))
    return (
        scope_for_user(user, studies)
        .select_related("order", "reading_task", "report", "report__author")
        .prefetch_related("critical_results__acknowledged_by")
        .order_by("-ingested_at", "-id")
    )


def portal_study_get_for_user(user: User | Any, study_id: int) -> Study:
    """One of the hospital's studies (with its order and unit), else ``NotFound``."""
    studies = Study.objects.select_related("order", "unit").filter(hospital_id=portal_hospital_id(user))
    return get_for_user(user, studies, pk=study_id)


def portal_critical_result_open_list_for_user(user: User | Any) -> QuerySet[CriticalResult]:
    """The hospital's critical results still waiting for acknowledgement, oldest first."""
    results = CriticalResult.objects.filter(hospital_id=portal_hospital_id(user), status=CriticalStatus.OPEN)
    return (
        scope_for_user(user, results)
        .select_related("study", "study__order", "flagged_by")
        .order_by("flagged_at", "id")
    )


def portal_critical_result_get_for_user(user: User | Any, result_id: int) -> CriticalResult:
    """One of the hospital's critical results (to acknowledge), else ``NotFound``."""
    results = CriticalResult.objects.filter(hospital_id=portal_hospital_id(user))
    return get_for_user(user, results, pk=result_id)


def portal_final_report_for_user(user: User | Any, study: Study) -> Report:
    """The signed (final) report of a study the caller reached, else ``NotFound``."""
    reports = Report.objects.select_related("author").filter(study=study, status=ReportStatus.FINAL)
    report = scope_for_user(user, reports).first()
    if report is None:
        raise NotFound("This study has no signed report yet")
    return report


def portal_report_critical_result_for_user(user: User | Any, report: Report) -> CriticalResult | None:
    """The critical result flagged on ``report`` (who acknowledged it joined), or None."""
    results = CriticalResult.objects.filter(report=report).select_related("acknowledged_by")
    return scope_for_user(user, results).first()
