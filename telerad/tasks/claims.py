"""Tasks: routing a routable study, the claim-expiry sweep and the SLA sweep (thin, idempotent)."""

from __future__ import annotations

from celery import shared_task

from core.transient import TRANSIENT_ERRORS

__all__ = ["expire_claims", "route_study_task", "sla_sweep"]


@shared_task(
    bind=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def route_study_task(self, study_id: int) -> int | None:
    """Route one study (scheduled by QC after commit); a second run finds the task already there."""
    from dicom.models import Study
    from telerad.services.routing import study_route

    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return None
    task = study_route(study=study)
    return task.pk if task else None


@shared_task
def expire_claims() -> int:
    from telerad.services import claims

    return claims.expire_claims()


@shared_task
def sla_sweep() -> dict:
    from telerad.services import claims

    return claims.sla_sweep()
