"""Celery tasks of the fleet domain: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task


@shared_task
def telemetry_thin_task() -> dict:
    from fleet.services.telemetry_config import telemetry_setting
    from fleet.services.telemetry_retention import telemetry_thin

    result = telemetry_thin(
        older_than_days=int(telemetry_setting("TELEMETRY_THIN_AFTER_DAYS")),
        keep_every_s=int(telemetry_setting("TELEMETRY_THIN_KEEP_EVERY_S")),
        max_age_days=int(telemetry_setting("TELEMETRY_RETENTION_DAYS")),
        window_days=int(telemetry_setting("TELEMETRY_THIN_WINDOW_DAYS")),
    )
    return {"expired": result.expired, "thinned": result.thinned}


@shared_task(acks_late=True)
def plan_compute_task(plan_id: int) -> str:
    from fleet.services.plans import plan_compute

    return plan_compute(plan_id=plan_id).status
