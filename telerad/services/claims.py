"""Claims with a lease: one reader holds a study at a time; the lease renews, expires, releases.

Every transition is a compare-and-swap on the task row (``filter(pk=..., <old state>).update``,
acting only when one row changed), so two readers racing for a study can never both win, and
writes its audit entry and its live event in the same transaction. The SLA sweep sends each
warning and breach once, the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, NotFound
from core.models import User
from core.services import audit_record
from telerad.choices import EventKind, TaskStatus
from telerad.models import Radiologist, ReadingPool, ReadingTask
from telerad.services.escalation import escalate_uncovered_tasks
from telerad.services.events import event_emit
from telerad.services.routing import person, route_pending_studies, task_event_payload

logger = logging.getLogger(__name__)

OPEN_STATUSES = (TaskStatus.UNCLAIMED, TaskStatus.CLAIMED)
SLA_WARNING_FRACTION = 0.8


def lease() -> timedelta:
    return timedelta(minutes=settings.READING_CLAIM_MINUTES)


def _name(user: User) -> str:
    return user.get_full_name() or user.username


def _held_conflict(task: ReadingTask) -> Conflict:
    """The 409 for a study someone else holds: says who, and until when."""
    holder = task.claimed_by
    expires = task.claim_expires_at
    name = _name(holder) if holder is not None else "another reader"
    until = f" until {timezone.localtime(expires):%H:%M}" if expires else ""
    return Conflict(
        f"Already claimed by {name}{until}",
        code="claimed",
        extra={"held_by": name, "expires_at": expires.isoformat() if expires else None},
    )


def _closed_conflict(task: ReadingTask) -> Conflict:
    return Conflict(f"This study is {task.get_status_display().lower()}", code="closed")


def _reload(task_id: int) -> ReadingTask:
    task = ReadingTask.objects.select_related("claimed_by", "pool", "assigned_to__user").filter(pk=task_id)
    found = task.first()
    if found is None:
        raise NotFound("No reading task matches the given id")
    return found


def _emit(kind: str, task: ReadingTask, **extra: Any) -> None:
    event_emit(kind=kind, payload={**task_event_payload(task), **extra}, task=task, pool=task.pool)


@transaction.atomic
def task_claim(*, actor: User, task: ReadingTask, now: datetime | None = None, request=None) -> ReadingTask:
    """Claim the study for ``actor`` for one lease.

    Refused with 403 when the actor may not read it (not an eligible reader, off shift, or it is
    assigned to someone else), with 409 when someone else holds it (naming who), when the actor
    already holds ``max_concurrent`` claims, or when it is closed. Claiming a study one already
    holds renews the lease.
    """
    now = now or timezone.now()
    # Locking the reader's profile serialises their own claims, so two tabs cannot both slip
    # under max_concurrent.
    reader = Radiologist.objects.select_for_update().filter(user_id=actor.pk).first()
    if reader is None or not actor.is_active:
        raise AccessDenied("Only radiologists claim studies")
    current = _reload(task.pk)
    if current.status not in OPEN_STATUSES:
        raise _closed_conflict(current)
    mine = current.status == TaskStatus.CLAIMED and current.claimed_by_id == actor.pk
    if mine and current.claim_expires_at and current.claim_expires_at > now:
        return task_renew(actor=actor, task=current, now=now, request=request)
    if current.assigned_to_id is not None:
        if current.assigned_to_id != reader.pk:
            assignee = current.assigned_to
            name = str(assignee) if assignee is not None else "another reader"
            raise AccessDenied(f"The pool lead assigned this study to {name}")
    else:
        if not current.eligible.filter(pk=reader.pk).exists():
            raise AccessDenied("You are not eligible to read this study (pool, licence or subspecialty)")
        if not reader.on_shift:
            raise AccessDenied("You are not on shift; claims open when your shift starts")
    held = (
        ReadingTask.objects.filter(claimed_by=actor, status=TaskStatus.CLAIMED, claim_expires_at__gt=now)
        .exclude(pk=current.pk)
        .count()
    )
    if held >= reader.max_concurrent:
        raise Conflict(
            f"You already hold {held} claims (your limit is {reader.max_concurrent}); "
            "release or report one first",
            code="too_many_claims",
            extra={"held": held, "max_concurrent": reader.max_concurrent},
        )
    previous_holder = current.claimed_by if current.status == TaskStatus.CLAIMED else None
    expires = now + lease()
    won = (
        ReadingTask.objects.filter(pk=current.pk)
        .filter(Q(status=TaskStatus.UNCLAIMED) | Q(status=TaskStatus.CLAIMED, claim_expires_at__lte=now))
        .update(status=TaskStatus.CLAIMED, claimed_by=actor, claimed_at=now, claim_expires_at=expires)
    )
    if not won:
        latest = _reload(current.pk)
        if latest.status not in OPEN_STATUSES:
            raise _closed_conflict(latest)
        if latest.status == TaskStatus.CLAIMED and latest.claimed_by_id != actor.pk:
            raise _held_conflict(latest)
        raise Conflict("The study changed while you claimed it; try again", code="changed")
    current.status, current.claimed_by, current.claimed_at, current.claim_expires_at = (
        TaskStatus.CLAIMED,
        actor,
        now,
        expires,
    )
    audit_record(
        actor=actor,
        action="task.claim",
        obj=current,
        details={
            "study": current.study_id,
            "expires_at": expires,
            "took_over_expired_from": previous_holder.pk if previous_holder else None,
        },
        request=request,
    )
    _emit(EventKind.STUDY_CLAIMED, current, renewed=False, previous_holder=person(previous_holder))
    return current


@transaction.atomic
def task_renew(*, actor: User, task: ReadingTask, now: datetime | None = None, request=None) -> ReadingTask:
    """Extend the holder's lease by one lease from now. An expired lease cannot be renewed."""
    now = now or timezone.now()
    expires = now + lease()
    renewed = ReadingTask.objects.filter(
        pk=task.pk, status=TaskStatus.CLAIMED, claimed_by=actor, claim_expires_at__gt=now
    ).update(claim_expires_at=expires)
    current = _reload(task.pk)
    if not renewed:
        if current.status not in OPEN_STATUSES:
            raise _closed_conflict(current)
        if current.status == TaskStatus.CLAIMED and current.claimed_by_id != actor.pk:
            raise _held_conflict(current)
        raise Conflict("Your claim has expired; claim the study again", code="claim_expired")
    audit_record(
        actor=actor,
        action="task.renew",
        obj=current,
        details={"study": current.study_id, "expires_at": expires},
        request=request,
    )
    _emit(EventKind.STUDY_CLAIMED, current, renewed=True, previous_holder=None)
    return current


@transaction.atomic
def task_release(*, actor: User, task: ReadingTask, now: datetime | None = None, request=None) -> ReadingTask:
    """The holder gives the study back to the worklist (also after their lease lapsed)."""
    released = ReadingTask.objects.filter(pk=task.pk, status=TaskStatus.CLAIMED, claimed_by=actor).update(
        status=TaskStatus.UNCLAIMED, claimed_by=None, claimed_at=None, claim_expires_at=None
    )
    current = _reload(task.pk)
    if not released:
        if current.status == TaskStatus.CLAIMED:
            holder = current.claimed_by
            raise AccessDenied(
                f"Only the holder ({_name(holder) if holder else 'another reader'}) can release this study",
                extra={"held_by": _name(holder) if holder else None},
            )
        if current.status not in OPEN_STATUSES:
            raise _closed_conflict(current)
        raise Conflict("You do not hold this study", code="not_claimed")
    audit_record(
        actor=actor, action="task.release", obj=current, details={"study": current.study_id}, request=request
    )
    _emit(EventKind.STUDY_RELEASED, current, reason="released", released_by=person(actor))
    return current


def expire_claims(*, now: datetime | None = None) -> int:
    """Give every claim whose lease has lapsed back to the worklist; returns how many."""
    now = now or timezone.now()
    lapsed = list(
        ReadingTask.objects.filter(status=TaskStatus.CLAIMED, claim_expires_at__lte=now).values_list(
            "pk", "claimed_by_id"
        )
    )
    expired = 0
    for task_id, holder_id in lapsed:
        expired += _expire_one(task_id, holder_id, now)
    return expired


@transaction.atomic
def _expire_one(task_id: int, holder_id: int, now: datetime) -> int:
    # The CAS names the holder and the lapsed lease: a renewal or a new claim in between wins.
    freed = ReadingTask.objects.filter(
        pk=task_id, status=TaskStatus.CLAIMED, claimed_by_id=holder_id, claim_expires_at__lte=now
    ).update(status=TaskStatus.UNCLAIMED, claimed_by=None, claimed_at=None, claim_expires_at=None)
    if not freed:
        return 0
    task = _reload(task_id)
    holder = User.objects.filter(pk=holder_id).first()
    audit_record(
        actor=None, action="task.expire", obj=task, details={"study": task.study_id, "holder": holder_id}
    )
    _emit(EventKind.STUDY_RELEASED, task, reason="expired", released_by=None, previous_holder=person(holder))
    return 1


def sla_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Send each open task's SLA warning (at 80 % of its window) and breach (past the deadline) once.

    Also retries routing of routable studies that have no task yet.
    """
    now = now or timezone.now()
    routed = route_pending_studies(now=now)
    escalated = escalate_uncovered_tasks(now=now)  # shifts that ended since the task was routed
    open_tasks = ReadingTask.objects.filter(status__in=OPEN_STATUSES, reported_at__isnull=True)

    breached = 0
    for task_id in open_tasks.filter(sla_breached_at__isnull=True, deadline__lte=now).values_list(
        "pk", flat=True
    ):
        breached += _mark_sla(task_id, now, breach=True)

    # The 80 % point is routed_at + 0.8 x window; the window differs per task, so narrow by the
    # longest window any pool has (a task whose deadline is further off cannot be due) and decide
    # each candidate exactly.
    windows = ReadingPool.objects.aggregate(
        stat=Max("sla_stat_minutes"), urgent=Max("sla_urgent_minutes"), routine=Max("sla_routine_minutes")
    )
    longest = max((v for v in windows.values() if v), default=0)
    horizon = now + timedelta(minutes=longest * (1 - SLA_WARNING_FRACTION) + 1)
    candidates = open_tasks.filter(
        sla_warned_at__isnull=True, sla_breached_at__isnull=True, deadline__gt=now, deadline__lte=horizon
    ).values_list("pk", "routed_at", "deadline")
    warned = 0
    for task_id, routed_at, deadline in candidates:
        if now >= routed_at + (deadline - routed_at) * SLA_WARNING_FRACTION:
            warned += _mark_sla(task_id, now, breach=False)
    return {"routed": routed, "escalated": escalated, "warned": warned, "breached": breached}


@transaction.atomic
def _mark_sla(task_id: int, now: datetime, *, breach: bool) -> int:
    field = "sla_breached_at" if breach else "sla_warned_at"
    marked = ReadingTask.objects.filter(
        pk=task_id, status__in=OPEN_STATUSES, reported_at__isnull=True, **{f"{field}__isnull": True}
    ).update(**{field: now})
    if not marked:
        return 0
    task = _reload(task_id)
    minutes = round((task.deadline - now).total_seconds() / 60)
    audit_record(
        actor=None,
        action="task.sla_breach" if breach else "task.sla_warning",
        obj=task,
        details={"study": task.study_id, "deadline": task.deadline, "priority": task.priority},
    )
    if breach:
        _emit(EventKind.SLA_BREACH, task, overdue_minutes=-minutes)
    else:
        _emit(EventKind.SLA_WARNING, task, minutes_left=minutes)
    return 1
