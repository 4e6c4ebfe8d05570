"""Planner runs: a dispatcher asks for a plan; a Celery task computes it and records progress.

``plan_request`` validates and stores a queued ``Plan`` and starts the task after commit.
``plan_compute`` (the task's body) moves it queued → running by compare-and-swap (a second
worker picking up the same plan does nothing), builds the input from the database
(``fleet.planning.inputs``), runs OR-Tools within the plan's time limit, checks every hard
constraint (``plan_violations``: a plan that breaks one is stored as failed, never as done),
and stores visits, unserved requests with reasons, and stats. Review and publishing are in
``fleet.services.plan_publish`` (re-exported here).

Re-plans (``replan_request``: a breakdown, a cancelled request, an incident) cover the remaining
horizon, from today to the end of the last published plan or the last planned visit, keep what
is under way or locked, pay for every published visit they move, and publish themselves when
done. What-ifs (``whatif_request``) plan without some units, for a withdrawal; they publish only
when a dispatcher says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.exceptions import InvalidInput
from core.models import Organisation, User
from core.on_commit import on_commit
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import VisitStatus
from fleet.models import Plan, PlanKind, PlanStatus, Unit, Visit
from fleet.services.plan_publish import plan_lock_set, plan_publish

__all__ = [
    "plan_compute",
    "plan_lock_set",
    "plan_publish",
    "plan_request",
    "replan_request",
    "whatif_request",
]

logger = logging.getLogger(__name__)

MAX_DAYS = 31
TIME_LIMIT_RANGE = (1.0, 120.0)


@transaction.atomic
def plan_request(
    *,
    actor: User,
    operator: Organisation,
    start_date: dt.date,
    days: int,
    time_limit_s: float = 5.0,
    base_plan: Plan | None = None,
) -> Plan:
    """Queue a planner run; ``base_plan`` (a plan of the same operator) lends its locked visits."""
    check_register_writer(actor, operator.pk)
    if base_plan is not None and base_plan.operator_id != operator.pk:
        raise InvalidInput(
            "base_plan: not a plan of your operator", code="invalid_field", extra={"field": "base_plan"}
        )
    if start_date < timezone.localdate():
        raise InvalidInput(
            "start_date: a plan cannot start in the past", code="invalid_field", extra={"field": "start_date"}
        )
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days: 1 to {MAX_DAYS}", code="invalid_field", extra={"field": "days"})
    low, high = TIME_LIMIT_RANGE
    if not low <= time_limit_s <= high:
        raise InvalidInput(
            f"time_limit_s: {low:g} to {high:g} seconds",
            code="invalid_field",
            extra={"field": "time_limit_s"},
        )
    plan = Plan.objects.create(
        operator=operator,
        created_by=actor,
        start_date=start_date,
        days=days,
        time_limit_s=time_limit_s,
        base_plan=base_plan,
    )
    audit_record(
        actor=actor,
        action="plan.request",
        obj=plan,
        details={"start": start_date, "days": days, "base_plan": base_plan.pk if base_plan else None},
    )
    _start_after_commit(plan.pk)
    return plan


def _start_after_commit(plan_id: int) -> None:
    def start() -> None:
        from fleet.tasks import plan_compute_task

        plan_compute_task.delay(plan_id)

    on_commit(start)


REPLAN_MIN_DAYS = 7


def _remaining_horizon(operator_id: int, today: dt.date) -> int:
    """Days from today to the end of the last published plan or the last planned visit (at least a week)."""
    ends = [today + dt.timedelta(days=REPLAN_MIN_DAYS - 1)]
    last_plan = (
        Plan.objects.filter(operator_id=operator_id, published_at__isnull=False)
        .order_by("-published_at")
        .first()
    )
    if last_plan is not None:
        ends.append(last_plan.start_date + dt.timedelta(days=last_plan.days - 1))
    last_visit = (
        Visit.objects.filter(unit__operator_id=operator_id, status=VisitStatus.PLANNED, date__gte=today)
        .order_by("-date")
        .values_list("date", flat=True)
        .first()
    )
    if last_visit is not None:
        ends.append(last_visit)
    return min(MAX_DAYS, (max(ends) - today).days + 1)


@transaction.atomic
def replan_request(*, operator: Organisation, reason: str, actor: User | None = None) -> Plan | None:
    """Re-plan the operator's remaining horizon from today; it publishes itself when done.

    A re-plan already queued for the operator absorbs this one (its reason is extended), so a
    burst of breakdowns and cancellations runs the planner once.
    """
    if actor is not None:
        check_register_writer(actor, operator.pk)
    reason = (reason or "re-plan").strip()[:200]
    queued = (
        Plan.objects.select_for_update()
        .filter(operator=operator, kind=PlanKind.REPLAN, status=PlanStatus.QUEUED)
        .order_by("pk")
        .first()
    )
    if queued is not None:
        if reason not in queued.reason:
            queued.reason = f"{queued.reason}; {reason}"[:300]
            queued.save(update_fields=["reason"])
        return queued
    today = timezone.localdate()
    plan = Plan.objects.create(
        operator=operator,
        created_by=actor,
        start_date=today,
        days=_remaining_horizon(operator.pk, today),
        kind=PlanKind.REPLAN,
        reason=reason,
        auto_publish=True,
        time_limit_s=settings.PLANNER_REPLAN_TIME_LIMIT_S,
    )
    audit_record(actor=actor, action="plan.replan", obj=plan, details={"reason": reason, "days": plan.days})
    _start_after_commit(plan.pk)
    return plan


@transaction.atomic
def whatif_request(*, actor: User, operator: Organisation, excluded_units: list[int], days: int = 14) -> Plan:
    """A plan without ``excluded_units`` (never published on its own) for a withdrawal check."""
    check_register_writer(actor, operator.pk)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days: 1 to {MAX_DAYS}", code="invalid_field", extra={"field": "days"})
    units = list(Unit.objects.filter(operator=operator, pk__in=excluded_units).order_by("pk"))
    if len(units) != len(set(excluded_units)):
        raise InvalidInput(
            "excluded_units: not all are units of your operator",
            code="invalid_field",
            extra={"field": "excluded_units"},
        )
    plan = Plan.objects.create(
        operator=operator,
        created_by=actor,
        start_date=timezone.localdate(),
        days=days,
        kind=PlanKind.WHATIF,
        excluded_units=[unit.pk for unit in units],
        reason=f"what-if without {', '.join(unit.name for unit in units)}"[:300],
    )
    audit_record(actor=actor, action="plan.whatif", obj=plan, details={"excluded_units": plan.excluded_units})
    _start_after_commit(plan.pk)
    return plan


def _progress(plan_id: int, progress: int, message: str, **fields) -> None:
    Plan.objects.filter(pk=plan_id).update(progress=progress, message=message, **fields)


def plan_compute(*, plan_id: int) -> Plan:
    """Compute a queued plan (idempotent: a plan not queued is returned as it is)."""
    from fleet.planning.check import plan_violations
    from fleet.planning.inputs import plan_input_build
    from fleet.planning.ortools_solver import plan_ortools
    from fleet.planning.travel import GeodesicTravel

    now = timezone.now()
    if not Plan.objects.filter(pk=plan_id, status=PlanStatus.QUEUED).update(
        status=PlanStatus.RUNNING, started_at=now, progress=5, message="reading units and requests"
    ):
        return Plan.objects.get(pk=plan_id)
    plan = Plan.objects.get(pk=plan_id)
    try:
        inp = plan_input_build(
            operator_id=plan.operator_id,
            start=plan.start_date,
            days=plan.days,
            excluded_units=frozenset(int(pk) for pk in plan.excluded_units),
            base_plan=plan.base_plan,
        )
        _progress(
            plan_id,
            20,
            f"solving: {len(inp.requests)} requests, {len(inp.units)} units, up to {plan.time_limit_s:g} s",
            inputs={
                "units": len(inp.units),
                "requests": len(inp.requests),
                "locked": len(inp.locked),
                "previous": len(inp.previous),
                "request_ids": [r.id for r in inp.requests],
                "unit_days": {u.id: sorted(u.available_days) for u in inp.units},
            },
        )
        travel = GeodesicTravel()
        limit = plan.time_limit_s

        def progress(elapsed: float) -> None:
            done_share = min(elapsed / limit, 1.0)
            _progress(plan_id, 20 + int(65 * done_share), f"solving: {elapsed:.1f} of {limit:g} s")

        result = plan_ortools(inp, travel, time_limit_s=limit, on_progress=progress)
        _progress(plan_id, 90, "checking the plan")
        violations = plan_violations(inp, result, travel)
    except Exception as exc:
        logger.exception("plan %s failed", plan_id)
        _progress(plan_id, 100, f"failed: {exc}"[:300], status=PlanStatus.FAILED, finished_at=timezone.now())
        audit_record(actor=None, action="plan.fail", obj=plan, details={"error": str(exc)[:300]})
        return Plan.objects.get(pk=plan_id)
    stats = {
        "weighted_served": result.weighted_served,
        "km": result.km,
        "changes": result.changes,
        "wall_seconds": result.wall_seconds,
        "solver": result.solver,
        "status": result.status,
        "served": len(result.visits),
        "requests": len(inp.requests),
    }
    done = not violations
    locked_keys = {(lock.request_id, lock.unit_id, lock.day) for lock in inp.locked}
    _progress(
        plan_id,
        100,
        "done" if done else f"refused: {len(violations)} constraint violations, e.g. {violations[0]}"[:300],
        status=PlanStatus.DONE if done else PlanStatus.FAILED,
        visits=[
            {**dataclasses.asdict(v), "locked": (v.request_id, v.unit_id, v.day) in locked_keys}
            for v in result.visits
        ],
        unserved=dict(result.unserved),
        stats={**stats, "violations": violations[:20]},
        finished_at=timezone.now(),
    )
    audit_record(
        actor=None, action="plan.compute", obj=plan, details={"served": len(result.visits), "ok": done}
    )
    plan = Plan.objects.get(pk=plan_id)
    if done and plan.auto_publish:
        _auto_publish(plan)
    return Plan.objects.get(pk=plan_id)


def _auto_publish(plan: Plan) -> None:
    """Publish a re-plan as soon as it is done; if the world moved on, say so on the plan."""
    from core.exceptions import DomainError

    try:
        plan_publish(actor=None, plan=plan)
    except DomainError as exc:
        logger.warning("re-plan %s not published: %s", plan.pk, exc.message)
        Plan.objects.filter(pk=plan.pk).update(message=f"done; not published: {exc.message}"[:300])
        audit_record(
            actor=None, action="plan.publish_refused", obj=plan, details={"error": exc.message[:300]}
        )
