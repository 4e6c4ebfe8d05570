"""Celery tasks of the DICOM domain: thin, idempotent, take ids, retry with backoff."""

from __future__ import annotations

from celery import shared_task

from dicom.orthanc_client import OrthancError


@shared_task(
    bind=True,
    autoretry_for=(OrthancError,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
    acks_late=True,
)
def ingest_study_task(
    self, orthanc_id: str, stable_seq: int | None = None, stable_at: float | None = None
) -> int | None:
    from dicom.services.ingest import study_ingest

    outcome = study_ingest(orthanc_id=orthanc_id, stable_seq=stable_seq, stable_at=stable_at, source="nudge")
    return outcome.study.pk if outcome.study else None


@shared_task(bind=True, autoretry_for=(OrthancError,), retry_backoff=2, retry_backoff_max=60, max_retries=8)
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
        "locked": result.skipped_locked,
    }
