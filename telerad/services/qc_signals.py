"""A study already on the worklist fails QC later (a late series re-ran it): tell its readers.

Routing happens once QC passes (or warns). Images can keep arriving; QC re-runs over the whole
study, and a failing verdict then does not pull the reading task back (a reader may be in the
middle of it), but the pool and the claimant must know before they sign: one
``study.qc_failed`` event, audited.
"""

from __future__ import annotations

from typing import Any

from core.services import audit_record
from telerad.choices import EventKind, TaskStatus
from telerad.models import ReadingTask
from telerad.services.events import event_emit

OPEN = (TaskStatus.UNCLAIMED, TaskStatus.CLAIMED)


def reading_task_qc_failed(*, study_id: int, findings: list[dict[str, Any]]) -> ReadingTask | None:
    """Emit ``study.qc_failed`` for the study's open reading task; None when it has none."""
    task = (
        ReadingTask.objects.select_related("pool", "study", "claimed_by")
        .filter(study_id=study_id, status__in=OPEN)
        .first()
    )
    if task is None:
        return None
    failed = [f for f in findings if f.get("severity") == "fail"] or findings
    payload = {
        "task": task.pk,
        "study": task.study_id,
        "accession": task.study.accession_number,
        "findings": failed[:20],
    }
    # One event for the pool and the claimant (an assigned reader outside the pool included).
    event_emit(
        kind=EventKind.STUDY_QC_FAILED, payload=payload, task=task, pool=task.pool, user=task.claimed_by
    )
    audit_record(actor=None, action="task.qc_failed", obj=task, details={"findings": len(failed)})
    return task
