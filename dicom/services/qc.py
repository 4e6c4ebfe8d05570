"""Run acquisition QC on a mirrored study, store the verdict, tell the van."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.access import user_in_operator
from core.choices import Role
from core.exceptions import AccessDenied, Conflict, InvalidInput, NotFound
from core.models import User
from core.on_commit import group_send_on_commit, on_commit
from core.services import audit_record
from dicom.choices import IngestStatus, MatchMethod, QCOutcome, QCSeverity
from dicom.events import unit_qc_group
from dicom.models import QCResult, Study
from dicom.orthanc_client import orthanc_client_from_settings
from dicom.qc.config import protocols_from_settings
from dicom.qc.engine import QCContext, run_rules
from dicom.qc.headers import load_study_headers
from dicom.study_access import study_visible_to
from fleet.models import Unit

logger = logging.getLogger(__name__)

FALLBACK_FINDING = {
    "rule": "order_match",
    "severity": QCSeverity.WARN.value,
    "message": (
        "Matched to its order by patient ID, date and modality: the accession number was missing or wrong"
    ),
    "series": None,
}


MANUAL_ACCESSION_FINDING = {
    "rule": "order_match",
    "severity": QCSeverity.WARN.value,
    "message": (
        "Linked to its order by a QC officer: the accession number in the images differs from the "
        "order's, which the platform uses"
    ),
    "series": None,
}


def _route_after_commit(study_id: int) -> None:
    from telerad.tasks.claims import route_study_task

    route_study_task.delay(study_id)


def study_qc_run(*, study_id: int) -> QCResult:
    study = Study.objects.select_related("order", "unit").get(pk=study_id)
    client = orthanc_client_from_settings()
    headers = load_study_headers(client, study.orthanc_id, per_series=settings.QC_HEADERS_PER_SERIES)
    context = QCContext(
        headers=headers,
        order=study.order,
        protocols=protocols_from_settings(),
        fetch_instance=client.instance_file,
    )
    report = run_rules(context)
    findings = list(report.findings)
    outcome = report.outcome
    accession_differs = (
        study.order is not None
        and bool(study.source_accession_number)
        and study.source_accession_number != study.order.accession_number
    )
    extra = None
    if study.match_method == MatchMethod.FALLBACK:
        extra = FALLBACK_FINDING
    elif study.match_method == MatchMethod.MANUAL and accession_differs:
        extra = MANUAL_ACCESSION_FINDING
    if extra is not None:
        findings.insert(0, extra)
        if outcome == QCOutcome.PASS:
            outcome = QCOutcome.WARN
    return _store(
        study,
        outcome=outcome,
        findings=findings,
        rules_run=report.rules_run,
        instances=headers.number_of_instances,
    )


@transaction.atomic
def _store(study: Study, *, outcome: str, findings: list[dict], rules_run: list, instances: int) -> QCResult:
    result = QCResult.objects.create(
        study=study, outcome=outcome, findings=findings, rules_run=rules_run, number_of_instances=instances
    )
    current = Study.objects.select_for_update().get(pk=study.pk)
    if current.number_of_instances == instances:
        # Only a verdict over the study as it now is counts; a late series re-runs QC anyway.
        current.qc_outcome = outcome
        readable = current.ingest_status == IngestStatus.MATCHED and outcome in (
            QCOutcome.PASS,
            QCOutcome.WARN,
        )
        current.routable_at = timezone.now() if readable else None
        # A release answered the previous verdict; a new one is judged afresh.
        current.qc_released_at, current.qc_released_by, current.qc_release_reason = None, None, ""
        current.save(
            update_fields=[
                "qc_outcome",
                "routable_at",
                "qc_released_at",
                "qc_released_by",
                "qc_release_reason",
                "updated_at",
            ]
        )
        if readable:
            # Routing is idempotent (one reading task per study), so a re-run QC that passes
            # again schedules it harmlessly. A re-run that makes an already routed study not
            # routable leaves its reading task alone (a reader may hold it already) but tells
            # its readers, below.
            on_commit(lambda: _route_after_commit(study.pk))
        elif outcome == QCOutcome.FAIL:
            from telerad.services.qc_signals import reading_task_qc_failed  # telerad builds on dicom

            reading_task_qc_failed(study_id=study.pk, findings=findings)
    audit_record(
        actor=None,
        action="study.qc",
        obj=study,
        patient_data=True,
        patient_id=study.patient_id,
        details={"outcome": outcome, "findings": len(findings), "instances": instances},
    )
    if study.unit_id:
        group_send_on_commit(
            unit_qc_group(study.unit_id),
            {
                "type": "qc.result",
                "study": study.pk,
                "accession": study.accession_number,
                "outcome": outcome,
                "findings": findings,
                "at": result.created_at.isoformat(),
            },
        )
    return result


@transaction.atomic
def study_qc_release(*, actor: User, study: Study, reason: str, request: HttpRequest | None = None) -> Study:
    """A QC officer (or admin) of the operator whose van acquired the study lets a study that
    failed QC be read anyway, for a stated reason (audited): it becomes routable.

    The QC verdict stays ``fail`` (the findings are true); the release is recorded beside it and
    lasts until the next QC verdict (a late series is judged afresh).
    """
    if not study_visible_to(actor, study):
        raise NotFound("No study with this id")
    operator_id = (
        Unit.objects.filter(pk=study.unit_id).values_list("operator_id", flat=True).first()
        if study.unit_id is not None
        else None
    )
    qc_staff = actor.has_role(Role.QC_OFFICER, Role.ADMIN) or actor.is_superuser
    if not qc_staff or not user_in_operator(actor, operator_id):
        raise AccessDenied("Only QC officers and admins of the operator whose van acquired it release it")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the study may be read despite its QC failure", code="reason_required")
    now = timezone.now()
    released = Study.objects.filter(
        pk=study.pk,
        ingest_status=IngestStatus.MATCHED,
        qc_outcome=QCOutcome.FAIL,
        routable_at__isnull=True,
    ).update(
        routable_at=now,
        qc_released_at=now,
        qc_released_by=actor,
        qc_release_reason=reason,
        updated_at=now,
    )
    if not released:
        raise Conflict("Only a matched study held by a failed QC verdict can be released", code="not_qc_held")
    study.refresh_from_db()
    latest = study.qc_results.order_by("-created_at", "-pk").first()
    audit_record(
        actor=actor,
        action="study.qc_release",
        obj=study,
        patient_data=True,
        patient_id=study.patient_id,
        details={"reason": reason, "qc_result": latest.pk if latest else None},
        request=request,
    )
    on_commit(lambda: _route_after_commit(study.pk))
    return study
