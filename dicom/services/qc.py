"""Run acquisition QC on a mirrored study, store the verdict, tell the van."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.on_commit import group_send_on_commit, on_commit
from core.services import audit_record
from dicom.choices import IngestStatus, MatchMethod, QCOutcome, QCSeverity
from dicom.events import unit_qc_group
from dicom.models import QCResult, Study
from dicom.orthanc_client import orthanc_client_from_settings
from dicom.qc.config import protocols_from_settings
from dicom.qc.engine import QCContext, run_rules
from dicom.qc.headers import load_study_headers

logger = logging.getLogger(__name__)

FALLBACK_FINDING = {
    "rule": "order_match",
    "severity": QCSeverity.WARN.value,
    "message": (
        "Matched to its order by patient ID, date and modality: the accession number was missing or wrong"
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
    if study.match_method == MatchMethod.FALLBACK:
        findings.insert(0, FALLBACK_FINDING)
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
        current.save(update_fields=["qc_outcome", "routable_at", "updated_at"])
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
