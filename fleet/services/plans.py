"""Planner runs: a dispatcher asks for a plan; a Celery task computes it and records progress.

``plan_request`` validates and stores a queued ``Plan`` and starts the task after commit.
``plan_compute`` (the task's body) moves it queued → running by compare-and-swap (a second
worker picking up the same plan does nothing), builds the input from the database
(``fleet.planning.inputs``), runs OR-Tools within the plan's time limit, checks every hard
constraint (``plan_violations``: a plan that breaks one is stored as failed, never as done),
and stores visits, unserved requests with reasons, and stats. Publishing a plan to visits is
the next step (not built yet).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from core.exceptions import InvalidInput
from core.models import Organisation, User
from core.on_commit import on_commit
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.models import Plan, PlanStatus

logger = logging.getLogger(__name__)

MAX_DAYS = 31
TIME_LIMIT_RANGE = (1.0, 120.0)


@transaction.atomic
def plan_request(
    *, actor: User, operator: Organisation, start_date: dt.date, days: int, time_limit_s: float = 5.0
) -> Plan:
    check_register_writer(actor, operator.pk)
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
        operator=operator, created_by=actor, start_date=start_date, days=days, time_limit_s=time_limit_s
    )
    audit_record(actor=actor, action="plan.request", obj=plan, details={"start": start_date, "days": days})

    def start() -> None:
        from fleet.tasks import plan_compute_task

        plan_compute_task.delay(plan.pk)

    on_commit(start)
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
        inp = plan_input_build(operator_id=plan.operator_id, start=plan.start_date, days=plan.days)
        _progress(
            plan_id,
            20,
            f"solving: {len(inp.requests)} requests, {len(inp.units)} units, up to {plan.time_limit_s:g} s",
            inputs={"units": len(inp.units), "requests": len(inp.requests), "locked": len(inp.locked)},
        )
        travel = GeodesicTravel()
        result = plan_ortools(inp, travel, time_limit_s=plan.time_limit_s)
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
    _progress(
        plan_id,
        100,
        "done" if done else f"refused: {len(violations)} constraint violations, e.g. {violations[0]}"[:300],
        status=PlanStatus.DONE if done else PlanStatus.FAILED,
        visits=[dataclasses.asdict(v) for v in result.visits],
        unserved=dict(result.unserved),
        stats={**stats, "violations": violations[:20]},
        finished_at=timezone.now(),
    )
    audit_record(
        actor=None, action="plan.compute", obj=plan, details={"served": len(result.visits), "ok": done}
    )
    return Plan.objects.get(pk=plan_id)


# --- review, publish, re-plan, what-if (being written by the lead; signatures are fixed) ---------


def plan_lock_set(*, actor: User, plan: Plan, request_id: str, locked: bool) -> Plan:
    """Lock (or unlock) the plan's visit for ``request_id`` while the plan is under review."""
    raise NotImplementedError


def plan_publish(*, actor: User | None, plan: Plan) -> Plan:
    """Turn a done plan into visits; hospitals are notified of new, moved and dropped visits."""
    raise NotImplementedError


def replan_request(*, operator: Organisation, reason: str, actor: User | None = None) -> Plan | None:
    """Re-plan the operator's remaining horizon (auto-published when done)."""
    raise NotImplementedError


def whatif_request(*, actor: User, operator: Organisation, excluded_units: list[int], days: int = 14) -> Plan:
    """A plan without ``excluded_units`` (never published on its own) for a withdrawal check."""
    raise NotImplementedError
