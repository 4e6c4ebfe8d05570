"""Writing reports: draft -> preliminary -> final, then signed addenda (reads: selectors_reports).

Only the reader holding an unexpired claim on the task writes its report (anyone else: 403;
their own claim expired or gone: 409). Every saved state is appended as a ``ReportVersion``.
A final report never changes again: the ORM and the database both refuse (see
``telerad.models.reports`` and ``telerad/migrations/0003_report_guards.py``); corrections
come as addenda, which are themselves signed and then immutable.

Addendum authors: the radiologist who signed the report, or a radiologist eligible for (or
assigned to) the task: a colleague routing found qualified for the study need not wait for the
original reader. They are exactly the radiologists ``dicom.study_access`` lets see the study.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import User
from telerad.choices import EventKind, ReportStatus, TaskStatus
from telerad.models import Addendum, ReadingTask, Report, ReportVersion
from telerad.models.reports import ReportImmutable
from telerad.report_templates import MAX_TEXT_LENGTH, template_for, template_get, validate_fields
from telerad.selectors_reports import is_task_reader, report_audit
from telerad.services.critical import critical_result_open
from telerad.services.events import event_emit
from telerad.services.peer_review import peer_review_after_sign

logger = logging.getLogger(__name__)

MAX_CRITICAL_SUMMARY = 300  # CriticalResult.summary


# --- checks ------------------------------------------------------------------------------------


def _lock_task(task: ReadingTask) -> ReadingTask:
    # Fresh and locked: a claim released or expired a moment ago must be seen here.
    return ReadingTask.objects.select_for_update().select_related("study", "pool", "hospital").get(pk=task.pk)


def _require_claim(actor: User, task: ReadingTask) -> None:
    """The actor holds an unexpired claim on the task, else 403 (someone else's) or 409 (stale)."""
    if task.status == TaskStatus.REPORTED:
        raise Conflict("This study has already been reported", code="already_reported")
    if task.status == TaskStatus.CANCELLED:
        raise Conflict("This reading task was cancelled", code="task_cancelled")
    if task.claimed_by_id is None or task.status != TaskStatus.CLAIMED:
        raise Conflict("This study is not claimed; claim it before reporting", code="claim_missing")
    if task.claimed_by_id != actor.pk:
        raise AccessDenied("Only the reader who claimed this study may report it", code="not_claimant")
    if task.claim_expires_at is None or task.claim_expires_at <= timezone.now():
        raise Conflict("Your claim on this study has expired; claim it again", code="claim_expired")


def _clean_free_text(free_text: str) -> str:
    if not isinstance(free_text, str):
        raise InvalidInput("free_text must be text", code="invalid_field", extra={"field": "free_text"})
    free_text = free_text.strip()
    if len(free_text) > MAX_TEXT_LENGTH:
        raise InvalidInput(
            f"free_text: at most {MAX_TEXT_LENGTH} characters",
            code="invalid_field",
            extra={"field": "free_text"},
        )
    return free_text


def _locked_report(task: ReadingTask) -> Report | None:
    return Report.objects.select_for_update().filter(task=task).first()


def _append_version(report: Report, actor: User) -> ReportVersion:
    return ReportVersion.objects.create(
        report=report,
        version=report.version,
        status=report.status,
        fields=report.fields,
        free_text=report.free_text,
        critical=report.critical,
        saved_by=actor,
    )


def _write(
    *,
    actor: User,
    task: ReadingTask,
    status: str,
    fields: dict[str, Any] | None,
    free_text: str | None,
    require_complete: bool,
    request: HttpRequest | None,
) -> Report:
    """Save the report of a claimed task in ``status`` (draft or preliminary), as a new version."""
    task = _lock_task(task)
    _require_claim(actor, task)
    report = _locked_report(task)
    if report is not None and report.status == ReportStatus.FINAL:
        raise ReportImmutable("This report is final; add an addendum")
    template = template_get(report.template) if report else template_for(task.modality, task.body_part)
    new_fields = report.fields if (fields is None and report) else (fields or {})
    cleaned = validate_fields(template, new_fields, require_complete=require_complete)
    cleaned_text = (
        _clean_free_text(free_text) if free_text is not None else (report.free_text if report else "")
    )
    if report is None:
        report = Report(task=task, study=task.study, author=actor, template=template.key, version=0)
    elif (report.fields, report.free_text, report.status, report.author_id) == (
        cleaned,
        cleaned_text,
        status,
        actor.pk,
    ):
        return report  # an unchanged autosave is not a new version
    report.author = actor
    report.fields = cleaned
    report.free_text = cleaned_text
    report.status = status
    report.version += 1
    report.save()
    _append_version(report, actor)
    report_audit(actor, f"report.{status}", report, request, template=template.key)
    return report


# --- writes ------------------------------------------------------------------------------------


@transaction.atomic
def report_save_draft(
    *,
    actor: User,
    task: ReadingTask,
    fields: dict[str, Any],
    free_text: str,
    request: HttpRequest | None = None,
) -> Report:
    """Create or update the task's report as a draft (it may be incomplete). Claimant only.

    Saving a preliminary report again returns it to draft until it is marked preliminary again.
    """
    return _write(
        actor=actor,
        task=task,
        status=ReportStatus.DRAFT,
        fields=fields,
        free_text=free_text,
        require_complete=False,
        request=request,
    )


@transaction.atomic
def report_mark_preliminary(
    *,
    actor: User,
    task: ReadingTask,
    fields: dict[str, Any] | None = None,
    free_text: str | None = None,
    request: HttpRequest | None = None,
) -> Report:
    """Mark the report preliminary (the hospital may see it), optionally with new content.

    All required fields must be present. Without ``fields``/``free_text`` the saved ones count.
    """
    task_now = _lock_task(task)
    if fields is None and free_text is None and _locked_report(task_now) is None:
        raise InvalidInput("Write the report before marking it preliminary", code="no_report")
    return _write(
        actor=actor,
        task=task_now,
        status=ReportStatus.PRELIMINARY,
        fields=fields,
        free_text=free_text,
        require_complete=True,
        request=request,
    )


@transaction.atomic
def report_sign(
    *,
    actor: User,
    task: ReadingTask,
    critical: bool = False,
    critical_summary: str = "",
    request: HttpRequest | None = None,
) -> Report:
    """Sign the task's report: final, immutable, the task reported; the pool and hospital are told.

    Only the claimant with an unexpired claim signs (else 403/409); all required fields must be
    present. ``critical=True`` opens a critical result (``critical_summary`` required) through
    ``telerad.services.critical.critical_result_open`` in the same transaction.
    """
    task = _lock_task(task)
    _require_claim(actor, task)
    report = _locked_report(task)
    if report is None:
        raise InvalidInput("Write the report before signing it", code="no_report")
    if report.status == ReportStatus.FINAL:
        raise ReportImmutable("This report is already signed")
    validate_fields(template_get(report.template), report.fields, require_complete=True)
    summary = (critical_summary or "").strip()
    if critical:
        if not summary:
            raise InvalidInput(
                "critical_summary: describe the critical finding for the hospital",
                code="invalid_field",
                extra={"field": "critical_summary"},
            )
        if len(summary) > MAX_CRITICAL_SUMMARY:
            raise InvalidInput(
                f"critical_summary: at most {MAX_CRITICAL_SUMMARY} characters",
                code="invalid_field",
                extra={"field": "critical_summary"},
            )

    now = timezone.now()
    # Compare-and-swap on the claim: act only if it is still ours and live at this instant.
    swapped = ReadingTask.objects.filter(
        pk=task.pk, status=TaskStatus.CLAIMED, claimed_by=actor, claim_expires_at__gt=now
    ).update(status=TaskStatus.REPORTED, reported_at=now)
    if swapped != 1:
        raise Conflict("Your claim on this study changed while signing; claim it again", code="claim_lost")
    task.status, task.reported_at = TaskStatus.REPORTED, now

    report.status = ReportStatus.FINAL
    report.signed_at = now
    report.critical = bool(critical)
    report.author = actor
    report.version += 1
    report.save()
    _append_version(report, actor)
    report_audit(actor, "report.sign", report, request, critical=bool(critical))

    study = report.study
    event_emit(
        kind=EventKind.STUDY_REPORTED,
        payload={
            "study": study.pk,
            "report": report.pk,
            "accession": study.accession_number,
            "critical": bool(critical),
            "signed_at": now.isoformat(),
        },
        task=task,
        pool=task.pool,
        hospital=study.hospital or task.hospital,
    )
    if critical:
        critical_result_open(report=report, summary=summary, actor=actor)
    _store_pdf_after_commit(report)
    # In a savepoint of this transaction; a failure is logged and never undoes the signature.
    peer_review_after_sign(report)
    return report


def _may_author_addendum(actor: User, report: Report) -> bool:
    if not actor.has_role(Role.RADIOLOGIST):
        return False
    return report.author_id == actor.pk or is_task_reader(actor, report.task)


@transaction.atomic
def addendum_add(*, actor: User, report: Report, text: str, request: HttpRequest | None = None) -> Addendum:
    """Add an (unsigned) addendum to a final report. Its signer or a radiologist of the pool."""
    report = Report.objects.select_for_update().select_related("task", "study").get(pk=report.pk)
    if report.status != ReportStatus.FINAL:
        raise Conflict("Addenda are added to final reports; edit the report itself", code="report_not_final")
    if not _may_author_addendum(actor, report):
        raise AccessDenied(
            "Only the report's signer or a radiologist of its reading pool may add an addendum",
            code="not_addendum_author",
        )
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text: the addendum is empty", code="invalid_field", extra={"field": "text"})
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(
            f"text: at most {MAX_TEXT_LENGTH} characters", code="invalid_field", extra={"field": "text"}
        )
    addendum = Addendum.objects.create(report=report, author=actor, text=text.strip())
    report_audit(actor, "report.addendum_add", report, request, addendum=addendum.pk)
    return addendum


@transaction.atomic
def addendum_sign(*, actor: User, addendum: Addendum, request: HttpRequest | None = None) -> Addendum:
    """Sign an addendum (its author only); from then on it is immutable like the report."""
    addendum = (
        Addendum.objects.select_for_update()
        .select_related("report__study", "report__task")
        .get(pk=addendum.pk)
    )
    if addendum.signed_at is not None:
        raise ReportImmutable("This addendum is already signed")
    if addendum.author_id != actor.pk:
        raise AccessDenied("Only the addendum's author may sign it", code="not_addendum_author")
    now = timezone.now()
    # Compare-and-swap so two concurrent signs cannot both succeed.
    if Addendum.objects.filter(pk=addendum.pk, signed_at__isnull=True).update(signed_at=now) != 1:
        raise ReportImmutable("This addendum is already signed")
    addendum.signed_at = now
    report = addendum.report
    report_audit(actor, "report.addendum_sign", report, request, addendum=addendum.pk)
    event_emit(
        kind=EventKind.REPORT_ADDENDUM,
        payload={
            "study": report.study_id,
            "report": report.pk,
            "addendum": addendum.pk,
            "accession": report.study.accession_number,
            "signed_at": now.isoformat(),
        },
        task=report.task,
        pool=report.task.pool,
        hospital=report.study.hospital or report.task.hospital,
    )
    _store_pdf_after_commit(report)
    return addendum


def _store_pdf_after_commit(report: Report) -> None:
    # Imported here: the renderer imports this module (report_turnaround).
    from telerad.reports_render import report_store_in_orthanc_on_commit

    report_store_in_orthanc_on_commit(report)
