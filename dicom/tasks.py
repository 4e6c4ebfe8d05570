"""Celery tasks of the DICOM domain: thin, idempotent, take ids, retry with backoff."""

from __future__ import annotations

import logging

from celery import shared_task

from core.exceptions import DomainError
from core.transient import TRANSIENT_ERRORS
from dicom.orthanc_client import OrthancError

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    autoretry_for=(OrthancError, *TRANSIENT_ERRORS),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
    acks_late=True,
)
def ingest_study_task(
    self, orthanc_id: str, stable_seq: int | None = None, stable_at: float | None = None
) -> int | None:
    from dicom.services.ingest import study_ingest

    outcome = study_ingest(orthanc_id=orthanc_id, stable_seq=stable_seq, stable_at=stable_at, source="nudge")
    return outcome.study.pk if outcome.study else None


# A database or broker error (connections exhausted, a failover) is retried like Orthanc's; past
# the retries the stalled-study sweep below queues the study again.
@shared_task(
    bind=True,
    autoretry_for=(OrthancError, *TRANSIENT_ERRORS),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def study_qc_task(self, study_id: int) -> str:
    from dicom.services.qc import study_qc_run

    return study_qc_run(study_id=study_id).outcome


@shared_task(autoretry_for=(OrthancError,), retry_backoff=5, max_retries=3)
def reconcile_orthanc_changes() -> dict:
    from dicom.services.reconcile import reconcile_changes

    result = reconcile_changes()
    return {
        "start": result.start_seq,
        "end": result.end_seq,
        "stable": result.stable_seen,
        "ingested": result.ingested,
        "recovered": result.recovered,
        "scan_found": result.scan_found,
        "locked": result.skipped_locked,
    }


@shared_task(bind=True, autoretry_for=(OrthancError,), retry_backoff=5, retry_backoff_max=300, max_retries=3)
def deidentify_study_task(self, study_id: int, project: str, user_id: int) -> int | None:
    """Make the de-identified copy of a study for a project, on behalf of the user who asked.

    A refusal or failure is a ``DomainError``: the service has recorded it (a failed export row
    with the reason, which the requester sees in the export list; an audit entry), and the same
    call would fail the same way, so it is logged and not retried. The export id, or None when
    nothing was made.
    """
    from core.models import User
    from dicom.models import Study
    from dicom.services.deid import study_deidentify

    actor = User.objects.filter(pk=user_id, is_active=True).first()
    study = Study.objects.filter(pk=study_id).first()
    if actor is None or study is None:
        logger.warning("deid: study %s or active user %s not found; nothing exported", study_id, user_id)
        return None
    try:
        export = study_deidentify(actor=actor, study=study, project=project, record_refusal=True)
    except DomainError as exc:
        # The message names no patient: the service keeps tag values out of its errors.
        logger.warning("deid: study %s for project %s refused or failed: %s", study_id, project, exc.message)
        return None
    logger.info(
        "deid: study %s for project %s is %s (export %s)", study_id, project, export.status, export.pk
    )
    return export.pk


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, retry_jitter=True, max_retries=3)
def sweep_stalled_studies() -> dict:
    """Queue QC or routing again for studies stuck past ``STALLED_STUDY_MINUTES``; alert after
    ``STALLED_STUDY_ALERT_TRIES`` sweeps (beat, every ``STALLED_SWEEP_INTERVAL`` seconds)."""
    from dicom.services.stalled import stalled_studies_sweep

    return stalled_studies_sweep()
