"""Reviewing and publishing a plan.

While a done plan is under review the dispatcher locks the visits they want kept
(``plan_lock_set``); a re-run with that plan as its base keeps them. Publishing
(``plan_publish``) makes the plan real, request by request, over the requests the planner saw:

- placed and already on a live visit of the same unit and day: unchanged (sequence and lock kept);
- placed elsewhere than its planned visit: moved, its booked exams with it, hospital told the
  new date (``service_request_move``);
- placed and not yet scheduled: a visit is found or created for its unit, hospital and day and
  the request scheduled on it (exams booked as orders, hospital told);
- not placed but on a planned visit: dropped back to submitted, exams cancelled, hospital told
  (``service_request_unschedule``); visits under way or locked are never dropped.

It runs in one transaction under a lock on the operator's row, so two publishes never interleave;
a plan computed before another plan of the operator was published is stale and refused (409), as
is a plan whose first day has passed: the data it was computed on has changed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.exceptions import Conflict, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
from dicom.services.order_moves import orders_attach_visit
from fleet.access import check_register_writer
from fleet.choices import VisitStatus
from fleet.models import Plan, PlanStatus, ServiceRequest, ServiceRequestStatus, Unit, Visit
from fleet.services.request_moves import service_request_move, service_request_unschedule
from fleet.services.request_schedule import service_request_schedule

S = ServiceRequestStatus
LIVE = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE)


def _locked_plan(plan: Plan) -> Plan:
    return Plan.objects.select_for_update().get(pk=plan.pk)


def _check_reviewable(plan: Plan, what: str) -> None:
    if plan.status != PlanStatus.DONE:
        raise Conflict(
            f"Plan {plan.pk} is {PlanStatus(plan.status).label.lower()}; only a done plan can be {what}",
            code="plan_not_done",
        )
    if plan.published_at is not None:
        raise Conflict(f"Plan {plan.pk} is already published", code="plan_already_published")


@transaction.atomic
def plan_lock_set(*, actor: User, plan: Plan, request_id: str, locked: bool) -> Plan:
    """Lock (or unlock) the plan's visit for ``request_id`` while the plan is under review."""
    check_register_writer(actor, plan.operator_id)
    plan = _locked_plan(plan)
    _check_reviewable(plan, "changed")
    entries = [entry for entry in plan.visits if str(entry["request_id"]) == str(request_id)]
    if not entries:
        raise InvalidInput(
            f"request_id: plan {plan.pk} places no request {request_id}",
            code="invalid_request_id",
            extra={"field": "request_id"},
        )
    for entry in entries:
        entry["locked"] = bool(locked)
    plan.save(update_fields=["visits"])
    audit_record(
        actor=actor,
        action="plan.lock" if locked else "plan.unlock",
        obj=plan,
        details={"request": request_id},
    )
    return plan


def _check_fresh(plan: Plan) -> None:
    if plan.start_date < timezone.localdate():
        raise Conflict(
            f"Plan {plan.pk} starts on {plan.start_date.isoformat()}, in the past; run a new plan",
            code="plan_stale",
        )
    computed_from = plan.started_at or plan.created_at
    newer = (
        Plan.objects.filter(operator_id=plan.operator_id, published_at__gt=computed_from)
        .exclude(pk=plan.pk)
        .order_by("-published_at")
        .first()
    )
    if newer is not None:
        raise Conflict(
            f"Plan {newer.pk} was published after plan {plan.pk} was computed; run a new plan",
            code="plan_stale",
            extra={"published_plan": newer.pk},
        )


def _visit_for(*, plan: Plan, unit: Unit, hospital_id: int, day: dt.date, entry: dict) -> Visit:
    """The planned visit of ``unit`` at the hospital that day, created when there is none."""
    locked = bool(entry.get("locked"))
    visit = (
        Visit.objects.filter(unit=unit, hospital_id=hospital_id, date=day, status=VisitStatus.PLANNED)
        .order_by("pk")
        .first()
    )
    if visit is None:
        visit = Visit.objects.create(
            unit=unit, hospital_id=hospital_id, date=day, sequence=entry["sequence"], plan=plan, locked=locked
        )
        audit_record(actor=None, action="visit.create", obj=visit, details={"plan": plan.pk})
        orders_attach_visit(visit=visit)  # exams the hospital booked for that day before the plan
        return visit
    Visit.objects.filter(pk=visit.pk).update(
        sequence=entry["sequence"], plan=plan, locked=visit.locked or locked
    )
    visit.refresh_from_db()
    return visit


@transaction.atomic
def plan_publish(*, actor: User | None, plan: Plan) -> Plan:
    """Turn a done plan into visits; hospitals are notified of new, moved and dropped visits."""
    if actor is not None:
        check_register_writer(actor, plan.operator_id)
    Organisation.objects.select_for_update().filter(pk=plan.operator_id).first()  # one publish at a time
    plan = _locked_plan(plan)
    _check_reviewable(plan, "published")
    _check_fresh(plan)
    units = {unit.pk: unit for unit in Unit.objects.filter(operator_id=plan.operator_id)}
    entries = {str(entry["request_id"]): entry for entry in plan.visits}
    request_ids = [int(pk) for pk in plan.inputs.get("request_ids", [])]
    reason = plan.reason or f"plan {plan.pk}"
    summary: Counter[str] = Counter()
    hospitals: set[int] = set()
    requests = (
        ServiceRequest.objects.select_for_update(of=("self",))
        .filter(Q(pk__in=request_ids), operator_id=plan.operator_id)
        .select_related("visit", "visit__unit", "hospital")
        .order_by("pk")
    )
    for sr in requests:
        if sr.status in (S.FULFILLED, S.DECLINED):
            summary["skipped"] += 1  # closed since the plan was computed
            continue
        visit = sr.visit
        live = visit if sr.status == S.SCHEDULED and visit is not None and visit.status in LIVE else None
        entry = entries.get(str(sr.pk))
        if entry is None:
            if live is not None and live.status == VisitStatus.PLANNED and not live.locked:
                service_request_unschedule(
                    service_request=sr, actor=actor, reason=f"no room for it in the new plan ({reason})"
                )
                summary["unscheduled"] += 1
                hospitals.add(sr.hospital_id)
            else:
                summary["unplaced" if live is None else "kept"] += 1
            continue
        unit = units[int(entry["unit_id"])]
        day = plan.start_date + dt.timedelta(days=int(entry["day"]))
        if live is not None and live.unit_id == unit.pk and live.date == day:
            Visit.objects.filter(pk=live.pk).update(
                sequence=entry["sequence"], locked=live.locked or bool(entry.get("locked"))
            )
            summary["unchanged"] += 1
            continue
        if live is not None and live.status != VisitStatus.PLANNED:
            summary["kept"] += 1  # under way: it happens where it is
            continue
        target = _visit_for(plan=plan, unit=unit, hospital_id=sr.hospital_id, day=day, entry=entry)
        if live is not None:
            service_request_move(service_request=sr, visit=target, actor=actor, reason=reason)
            summary["moved"] += 1
        else:
            service_request_schedule(service_request=sr, visit=target, actor=actor)
            summary["created"] += 1
        hospitals.add(sr.hospital_id)
    summary["hospitals_notified"] = len(hospitals)
    plan.published_at = timezone.now()
    plan.published_by = actor
    plan.publish_summary = {
        key: summary.get(key, 0)
        for key in (
            "created",
            "moved",
            "unchanged",
            "unscheduled",
            "kept",
            "unplaced",
            "skipped",
            "hospitals_notified",
        )
    }
    plan.save(update_fields=["published_at", "published_by", "publish_summary"])
    audit_record(actor=actor, action="plan.publish", obj=plan, details=plan.publish_summary)
    return plan
