"""Escalation to a pool's lead when nobody eligible is on shift to read a study.

At routing (telerad/services/routing.py) a task with no eligible reader on shift is escalated at
once. Shifts change afterwards: when a reader goes off shift, or on the SLA sweep, every open,
unclaimed, unassigned task whose eligible readers are now all off shift is escalated, once
(``escalated_at`` is set by compare-and-swap). The lead gets a ``study.escalated`` event asking
them to assign the study; it is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.services import audit_record
from telerad.choices import EventKind, TaskStatus
from telerad.models import Radiologist, ReadingTask
from telerad.services.events import event_emit

logger = logging.getLogger(__name__)


def task_escalate_to_lead(*, task: ReadingTask, reason: str, payload: dict[str, Any] | None = None) -> bool:
    """Tell the pool's lead that ``task`` needs assigning; False when the pool has no lead."""
    pool = task.pool
    if pool.lead_id is None:
        logger.warning("task %s: %s and pool %s has no lead to escalate to", task.pk, reason, pool.pk)
        return False
    event_emit(
        kind=EventKind.STUDY_ESCALATED,
        payload={**(payload or {"task": task.pk}), "escalation": {"reason": reason, "action": "assign"}},
        task=task,
        user=pool.lead,
    )
    details = {"reason": reason, "lead": pool.lead_id}
    audit_record(actor=None, action="task.escalate", obj=task, details=details)
    return True


def uncovered_tasks(*, pool_ids: Iterable[int] | None = None):
    """Open, unclaimed, unassigned, not yet escalated tasks with no eligible reader on shift."""
    on_shift = Radiologist.objects.filter(eligible_tasks=OuterRef("pk"), on_shift=True)
    tasks = ReadingTask.objects.filter(
        status=TaskStatus.UNCLAIMED, assigned_to__isnull=True, escalated_at__isnull=True
    ).filter(~Exists(on_shift))
    if pool_ids is not None:
        tasks = tasks.filter(pool_id__in=list(pool_ids))
    return tasks


def escalate_uncovered_tasks(*, pool_ids: Iterable[int] | None = None, now: datetime | None = None) -> int:
    """Escalate each uncovered task once (see the module docstring); returns how many."""
    from telerad.services.routing import task_event_payload  # routing imports this module

    now = now or timezone.now()
    escalated = 0
    for task_id in uncovered_tasks(pool_ids=pool_ids).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            # Compare-and-swap: two sweeps (or a sweep and a shift change) escalate a task once.
            if not ReadingTask.objects.filter(pk=task_id, escalated_at__isnull=True).update(escalated_at=now):
                continue
            task = ReadingTask.objects.select_related("pool", "study", "hospital").get(pk=task_id)
            payload = {**task_event_payload(task), "accession": task.study.accession_number}
            task_escalate_to_lead(task=task, reason="no eligible reader on shift", payload=payload)
            escalated += 1
    return escalated
