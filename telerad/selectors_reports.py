"""Reading reports: who may see a task's report, the report itself (audited), turnaround times.

The access functions raise ``NotFound`` for what the user may not see (an id reveals nothing)
and write an audit entry for each report read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest

from core.choices import OrganisationKind, Role
from core.exceptions import NotFound
from core.models import User
from core.services import audit_record
from dicom.study_access import study_visible_to
from telerad.choices import ReportStatus
from telerad.models import Addendum, PeerReview, PeerReviewStatus, ReadingTask, Report


def report_audit(
    actor: User, action: str, report: Report, request: HttpRequest | None, **details: Any
) -> None:
    audit_record(
        actor=actor,
        action=action,
        obj=report,
        patient_data=True,
        patient_id=report.study.patient_id,
        details={"task": report.task_id, "version": report.version, "status": report.status, **details},
        request=request,
    )


def is_task_reader(user: User, task: ReadingTask) -> bool:
    """Eligible for the task (routing), assigned to it, or holding/having held its claim."""
    if not user.has_role(Role.RADIOLOGIST):
        return False
    if task.claimed_by_id == user.pk:
        return True
    if task.assigned_to is not None and task.assigned_to.user_id == user.pk:
        return True
    return task.eligible.filter(user=user).exists()


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds())


def report_turnaround(report: Report) -> dict[str, Any]:
    """The report's milestones and the intervals between them (seconds; None when unknown).

    acquired = the study reached the platform (``Study.ingested_at``), routed = put on the
    worklist, claimed = the (last) claim, signed = final.
    """
    task, study = report.task, report.study
    acquired, routed, claimed, signed = study.ingested_at, task.routed_at, task.claimed_at, report.signed_at
    return {
        "acquired": acquired,
        "routed": routed,
        "claimed": claimed,
        "signed": signed,
        "deadline": task.deadline,
        "within_sla": (signed <= task.deadline) if signed and task.deadline else None,
        "intervals": {
            "acquired_to_routed": _seconds(acquired, routed),
            "routed_to_claimed": _seconds(routed, claimed),
            "claimed_to_signed": _seconds(claimed, signed),
            "routed_to_signed": _seconds(routed, signed),
            "acquired_to_signed": _seconds(acquired, signed),
        },
    }


def user_may_read_task(user: User, task: ReadingTask) -> bool:
    """Who may see a task's report: whoever may see its study (``dicom.study_access``): its
    readers (claimant, eligible, assigned), the study's hospital users (once preliminary or
    final, checked by the callers) and cross-organisation staff."""
    return study_visible_to(user, task.study)


def _is_hospital_user(user: User) -> bool:
    org = user.organisation
    return org is not None and org.kind == OrganisationKind.HOSPITAL


def _blinded_reviewer(user: User, report: Report) -> bool:
    """A peer reviewer must not see who wrote the report until they have scored it."""
    return PeerReview.objects.filter(
        report=report, reviewer_id=user.pk, status=PeerReviewStatus.ASSIGNED
    ).exists()


def user_reviews_task_blind(user: User, task: ReadingTask) -> bool:
    """``user`` has an open peer review of this task's report (so the task's pages are closed)."""
    return PeerReview.objects.filter(
        report__task=task, reviewer_id=user.pk, status=PeerReviewStatus.ASSIGNED
    ).exists()


def _reports():
    return Report.objects.select_related(
        "study", "study__hospital", "study__order", "task", "task__pool", "author"
    ).prefetch_related("addenda__author")


def report_get_for_user(
    user: User, report_id: int, *, request: HttpRequest | None = None, action: str = "report.view"
) -> Report:
    """The report if ``user`` may read it (else ``NotFound``: ids reveal nothing), audited.

    Hospital users see a report once it is preliminary or final, never a draft.
    """
    report = _reports().filter(pk=report_id).first()
    if report is None or not user_may_read_task(user, report.task) or _blinded_reviewer(user, report):
        raise NotFound("No report matches the given id")
    if _is_hospital_user(user) and report.status == ReportStatus.DRAFT:
        raise NotFound("No report matches the given id")
    report_audit(user, action, report, request)
    return report


def report_get_for_write(user: User, report_id: int) -> Report:
    """The report if ``user`` may see its task (else ``NotFound``), for a service to act on
    (addenda); not audited here: the service's entry records the access."""
    report = Report.objects.select_related("task__study").filter(pk=report_id).first()
    if (
        report is None
        or not user_may_read_task(user, report.task)
        or user_reviews_task_blind(user, report.task)
    ):
        raise NotFound("No report matches the given id")
    return report


def addendum_get_for_write(user: User, addendum_id: int) -> Addendum:
    """The addendum if ``user`` may see its report's task (else ``NotFound``), for signing."""
    addendum = Addendum.objects.select_related("report__task__study").filter(pk=addendum_id).first()
    if addendum is None or not user_may_read_task(user, addendum.report.task):
        raise NotFound("No addendum matches the given id")
    return addendum


def report_of_authorised_task(task: ReadingTask) -> Report | None:
    """The report of a task the caller already got through ``task_get_for_report`` (not audited:
    for the editor's own writes, which the services audit)."""
    return Report.objects.filter(task=task).select_related("study", "task", "author").first()


def task_get_for_report(user: User, task_id: int) -> ReadingTask:
    """The task if ``user`` may see it (else ``NotFound``), for the report services to act on.

    Not audited: the service's entry (or ``report_for_task_get``) records the access.
    """
    task = ReadingTask.objects.select_related("study", "study__hospital", "pool").filter(pk=task_id).first()
    if task is None or not user_may_read_task(user, task) or user_reviews_task_blind(user, task):
        raise NotFound("No reading task matches the given id")
    return task


def report_for_task_get(
    user: User, task: ReadingTask, *, request: HttpRequest | None = None
) -> Report | None:
    """The task's report (audited) for a user already allowed the task; None if none is written."""
    report = _reports().filter(task=task).first()
    if report is None or _blinded_reviewer(user, report):
        return None
    if _is_hospital_user(user) and report.status == ReportStatus.DRAFT:
        return None
    report_audit(user, "report.view", report, request)
    return report
