"""Tasks: critical results. The beat runs the escalation sweep (settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

__all__: list[str] = ["escalate_critical_results"]


@shared_task(name="telerad.tasks.critical.escalate_critical_results", acks_late=True)
def escalate_critical_results() -> int:
    """Notify the next contact of every open critical result that is due; idempotent (CAS)."""
    from telerad.services.critical import critical_results_escalate

    return critical_results_escalate()
