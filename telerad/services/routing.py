"""Routing: a routable study becomes one reading task in one pool, for its eligible readers.

The pool is an active reading contract serving the study's hospital (listed by name, or the
hospital's region covered by one of the pool's regions) for the study's modality. Eligible
readers are the pool's members licensed for the hospital's region whose subspecialties include
the study's (or, when none do, every licensed member: the event says so). Shift does not
decide eligibility, it is checked when a reader claims; but when no eligible reader is on shift
at routing, the task is escalated to the pool lead at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
from dicom.choices import Priority
from dicom.models import Study
from telerad.choices import EventKind, TaskStatus
from telerad.models import Radiologist, ReadingPool, ReadingTask
from telerad.selectors import tasks_assignable_by
from telerad.services.escalation import task_escalate_to_lead
from telerad.services.events import event_emit

logger = logging.getLogger(__name__)

# Body Part Examined -> the subspecialty that reads it (one place; extend here).
SUBSPECIALTY_BY_BODY_PART: dict[str, str] = {
    "HEAD": "neuro",
    "NECK": "neuro",
    "CHEST": "chest",
    "ABDOMEN": "body",
    "PELVIS": "body",
    "SPINE": "msk",
    "CSPINE": "msk",
    "LSPINE": "msk",
    "EXTREMITY": "msk",
    "KNEE": "msk",
    "HAND": "msk",
}

PRIORITY_RANK: dict[str, int] = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}

# Modalities that ride along in a study but are never what it is read for.
_NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "DOC", "OT"}


def region_covers(code: str, region: str) -> bool:
    """``code`` covers ``region`` when equal or a parent in the hierarchy ("CN-HB" covers "CN-HB-YC")."""
    code, region = code.strip().upper(), region.strip().upper()
    return bool(code) and (region == code or region.startswith(code + "-"))


def regions_cover(codes: list[str], region: str) -> bool:
    return any(region_covers(code, region) for code in codes)


def subspecialty_for(body_part: str) -> str:
    return SUBSPECIALTY_BY_BODY_PART.get(body_part.strip().upper(), "")


def sla_minutes(pool: ReadingPool, priority: str) -> int:
    if priority == Priority.STAT:
        return pool.sla_stat_minutes
    if priority == Priority.URGENT:
        return pool.sla_urgent_minutes
    return pool.sla_routine_minutes


def study_modality(study: Study) -> str:
    """What the study is read as: the booked modality, else the first imaging modality stored."""
    if study.order_id and study.order is not None:
        return study.order.modality
    for modality in study.modalities.split("\\"):
        if modality and modality not in _NON_IMAGE_MODALITIES:
            return modality
    return ""


def pool_for(*, hospital: Organisation, modality: str) -> ReadingPool | None:
    """The active pool serving ``hospital`` for ``modality``.

    A pool naming the hospital wins over one covering its region; among region matches the most
    specific region wins; ties go to the pool's name, so the choice is stable.
    """
    best: tuple[int, int, str] | None = None
    chosen = None
    pools = ReadingPool.objects.filter(is_active=True).prefetch_related("hospitals")
    for pool in pools:
        if modality not in pool.modalities:
            continue
        if any(h.pk == hospital.pk for h in pool.hospitals.all()):
            rank = (0, 0, pool.name)
        else:
            covering = [len(c) for c in pool.regions if region_covers(c, hospital.region_code)]
            if not covering:
                continue
            rank = (1, -max(covering), pool.name)
        if best is None or rank < best:
            best, chosen = rank, pool
    return chosen


def eligible_readers(
    *, pool: ReadingPool, hospital: Organisation, subspecialty: str
) -> tuple[list[Radiologist], bool]:
    """Members licensed for the hospital's region with the subspecialty; second value: fallback used.

    When no licensed member has the subspecialty (or the body part maps to none), every
    licensed member is eligible and the fallback flag is true.
    """
    members = pool.readers.filter(user__is_active=True).select_related("user").order_by("pk")
    licensed = [r for r in members if regions_cover(r.licensed_regions, hospital.region_code)]
    matching = [r for r in licensed if subspecialty and subspecialty in r.subspecialties]
    if matching:
        return matching, False
    return licensed, True


def person(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user.get_full_name() or user.username}


def task_event_payload(task: ReadingTask) -> dict[str, Any]:
    """What every task event carries (no patient identifiers: events go to the whole pool)."""
    assigned = task.assigned_to
    return {
        "study": task.study_id,
        "pool": task.pool_id,
        "hospital": task.hospital_id,
        "modality": task.modality,
        "body_part": task.body_part,
        "subspecialty": task.subspecialty,
        "priority": task.priority,
        "priority_rank": task.priority_rank,
        "status": task.status,
        "deadline": task.deadline.isoformat(),
        "held_by": person(task.claimed_by) if task.status == TaskStatus.CLAIMED else None,
        "claim_expires_at": task.claim_expires_at.isoformat() if task.claim_expires_at else None,
        "assigned_to": (
            {"radiologist": assigned.pk, **(person(assigned.user) or {})} if assigned is not None else None
        ),
    }


@transaction.atomic
def study_route(*, study: Study, now: datetime | None = None) -> ReadingTask | None:
    """Create the study's reading task (idempotent: one task per study), or None if it cannot be routed.

    A study that is not routable yet is left alone. A routable study no pool serves stays
    routable and un-routed; ``route_pending_studies`` (run by the SLA sweep) tries it again.
    """
    # The row lock serialises concurrent routings of one study (nudge and reconciler both finishing).
    locked = Study.objects.select_for_update().filter(pk=study.pk).first()
    if locked is None or locked.routable_at is None:
        return None
    existing = ReadingTask.objects.filter(study_id=study.pk).first()
    if existing is not None:
        return existing
    study = Study.objects.select_related("order", "hospital").get(pk=study.pk)
    hospital = study.hospital
    modality = study_modality(study)
    if hospital is None or not modality:
        logger.warning("study %s is routable but has no hospital or modality; not routed", study.pk)
        return None
    pool = pool_for(hospital=hospital, modality=modality)
    if pool is None:
        logger.info(
            "no active reading pool serves hospital %s (region %s) for %s; study %s waits",
            hospital.pk,
            hospital.region_code,
            modality,
            study.pk,
        )
        return None

    now = now or timezone.now()
    order = study.order
    priority = order.priority if order is not None else Priority.ROUTINE
    body_part = (order.body_part if order is not None else "") or study.body_part
    subspecialty = subspecialty_for(body_part)
    readers, fallback = eligible_readers(pool=pool, hospital=hospital, subspecialty=subspecialty)
    on_shift = [r for r in readers if r.on_shift]
    task = ReadingTask.objects.create(
        study=study,
        pool=pool,
        hospital=hospital,
        modality=modality,
        body_part=body_part[:16],
        subspecialty=subspecialty,
        priority=priority,
        priority_rank=PRIORITY_RANK.get(priority, PRIORITY_RANK[Priority.ROUTINE]),
        routed_at=now,
        deadline=now + timedelta(minutes=sla_minutes(pool, priority)),
        escalated_at=None if on_shift else now,
    )
    task.eligible.set(readers)
    eligible_users = [r.user_id for r in readers]
    audit_record(
        actor=None,
        action="study.route",
        obj=study,
        details={
            "task": task.pk,
            "pool": pool.pk,
            "subspecialty": subspecialty,
            "subspecialty_fallback": fallback,
            "eligible": eligible_users,
            "on_shift": len(on_shift),
            "priority": priority,
            "deadline": task.deadline,
            "escalated": not on_shift,
        },
    )
    payload = {
        **task_event_payload(task),
        "accession": study.accession_number,
        "hospital_name": hospital.name,
        "eligible_users": eligible_users,
        "subspecialty_fallback": fallback,
        "escalated": not on_shift,
    }
    event_emit(kind=EventKind.STUDY_ADDED, payload=payload, task=task, pool=pool)
    if not on_shift:
        task_escalate_to_lead(task=task, reason=_no_reader_reason(len(readers)), payload=payload)
    return task


def _no_reader_reason(readers: int) -> str:
    return "no eligible reader" if readers == 0 else "no eligible reader on shift"


def route_pending_studies(*, now: datetime | None = None, limit: int = 200) -> int:
    """Route routable studies that have no task yet (missed hook, or no pool at the time)."""
    pending = list(
        Study.objects.filter(routable_at__isnull=False, reading_task__isnull=True)
        .order_by("routable_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    routed = 0
    for study_id in pending:
        if study_route(study=Study(pk=study_id), now=now) is not None:
            routed += 1
    if len(pending) > routed:
        logger.info("%d routable studies are still waiting for a reading pool", len(pending) - routed)
    return routed


def user_may_assign(user: User, task: ReadingTask) -> bool:
    """Pool leads their pools' tasks, administrators those in their tenancy, superusers all."""
    return tasks_assignable_by(user).filter(pk=task.pk).exists()


@transaction.atomic
def task_assign(
    *,
    actor: User,
    task: ReadingTask,
    radiologist: Radiologist,
    now: datetime | None = None,
    request=None,
) -> ReadingTask:
    """The pool lead (or an admin) assigns the task to one eligible reader: only they may claim it."""
    now = now or timezone.now()
    current = (
        ReadingTask.objects.select_for_update(of=("self",))
        .select_related("pool", "claimed_by")
        .get(pk=task.pk)
    )
    if not user_may_assign(actor, current):
        raise AccessDenied("Only the pool's lead or an administrator assigns studies")
    if current.status not in (TaskStatus.UNCLAIMED, TaskStatus.CLAIMED):
        raise Conflict(f"This study is {current.get_status_display().lower()}; it cannot be assigned")
    if not current.eligible.filter(pk=radiologist.pk).exists():
        raise InvalidInput(f"{radiologist} is not eligible to read this study (pool, licence)")
    held_by_other = (
        current.status == TaskStatus.CLAIMED
        and current.claimed_by_id != radiologist.user_id
        and current.claim_expires_at is not None
        and current.claim_expires_at > now
    )
    if held_by_other:
        holder = current.claimed_by
        assert holder is not None and current.claim_expires_at is not None
        name = holder.get_full_name() or holder.username
        raise Conflict(
            f"Claimed by {name} until {timezone.localtime(current.claim_expires_at):%H:%M}; "
            "they must release it first",
            extra={"held_by": name, "expires_at": current.claim_expires_at.isoformat()},
        )
    previous = current.assigned_to_id
    current.assigned_to = radiologist
    fields = ["assigned_to"]
    if current.status == TaskStatus.CLAIMED and current.claimed_by_id != radiologist.user_id:
        # An expired claim by someone else: the assignment frees it for the assignee.
        current.status = TaskStatus.UNCLAIMED
        current.claimed_by = None
        current.claimed_at = current.claim_expires_at = None
        fields += ["status", "claimed_by", "claimed_at", "claim_expires_at"]
    current.save(update_fields=fields)
    audit_record(
        actor=actor,
        action="task.assign",
        obj=current,
        details={"radiologist": radiologist.pk, "user": radiologist.user_id, "previous": previous},
        request=request,
    )
    event_emit(
        kind=EventKind.STUDY_ADDED,
        payload={**task_event_payload(current), "assigned": True},
        task=current,
        pool=current.pool,
    )
    return current


@transaction.atomic
def reading_pool_create(
    *,
    actor: User | None,
    reading_group: Organisation,
    name: str,
    regions: list[str],
    modalities: list[str],
    lead: User | None = None,
    hospitals: list[Organisation] | None = None,
    readers: list[Radiologist] | None = None,
    sla_minutes: tuple[int, int, int] = (60, 240, 1440),
) -> ReadingPool:
    """Register a reading contract: which group reads which hospitals/regions and modalities, how fast."""
    if not name.strip():
        raise InvalidInput("name: a reading pool needs a name")
    if not modalities:
        raise InvalidInput("modalities: a reading pool reads at least one modality")
    if min(sla_minutes) < 1:
        raise InvalidInput("sla_minutes: every SLA window is at least one minute")
    if ReadingPool.objects.filter(name=name).exists():
        raise Conflict(f"A reading pool named {name!r} already exists")
    stat, urgent, routine = sla_minutes
    pool = ReadingPool.objects.create(
        reading_group=reading_group,
        name=name,
        regions=sorted({r.strip().upper() for r in regions if r.strip()}),
        modalities=sorted(set(modalities)),
        lead=lead,
        sla_stat_minutes=stat,
        sla_urgent_minutes=urgent,
        sla_routine_minutes=routine,
    )
    if hospitals:
        pool.hospitals.add(*hospitals)
    if readers:
        pool.readers.add(*readers)
    audit_record(
        actor=actor,
        action="reading_pool.create",
        obj=pool,
        details={
            "regions": pool.regions,
            "modalities": pool.modalities,
            "lead": lead.pk if lead else None,
            "hospitals": [h.pk for h in hospitals or []],
            "readers": [r.pk for r in readers or []],
            "sla_minutes": list(sla_minutes),
        },
    )
    return pool
