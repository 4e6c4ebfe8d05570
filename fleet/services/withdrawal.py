"""Unit withdrawal: a unit leaves the fleet for good only when its hospitals are covered.

``unit_withdraw`` computes which hospitals would miss their interval without the unit
(``fleet.selectors_coverage.withdrawal_uncovered``). Any: the attempt is refused, a what-if plan
without the unit is requested for the dispatcher to publish, and the refusal is recorded. None
(or an administrator overrides with a reason): the unit becomes ``withdrawn`` (terminal; no
transition leaves it), its remaining future visits are cancelled, their service requests go back
to dispatch as submitted, the exams booked on it move to another van visiting that day or are
cancelled (``withdrawal_orders``), and the hospitals are told. docs/coverage-exit.md.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict, DomainError, InvalidInput
from core.models import User
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import UnitStatus, VisitStatus
from fleet.models import (
    Plan,
    PlanKind,
    PlanStatus,
    ServiceRequest,
    ServiceRequestStatus,
    Unit,
    UnitStatusChange,
    UnitWithdrawal,
    Visit,
    WithdrawalOutcome,
)
from fleet.selectors import MODALITY_SHORT
from fleet.selectors_coverage import LOOKAHEAD_DAYS, MOVABLE_STATUSES, withdrawal_uncovered
from fleet.services import plans
from fleet.services.notices import HospitalNoticeKind, day_label, hospital_notify
from fleet.services.request_moves import MOVABLE_VISIT_STATUSES, service_request_unschedule
from fleet.services.withdrawal_orders import (
    OrdersOutcome,
    orders_notice,
    withdrawn_unit_order_days,
    withdrawn_unit_orders_settle,
)

logger = logging.getLogger(__name__)

# A unit on the road (or working) must come back before it can leave the fleet.
ON_THE_ROAD = (UnitStatus.EN_ROUTE, UnitStatus.ON_SITE, UnitStatus.SCANNING)
REASON_MAX = 2000
# Requests tied to a cancelled visit go back to dispatch from these.
RESETTABLE_REQUESTS = (ServiceRequestStatus.PLANNED, ServiceRequestStatus.SCHEDULED)


def _check_can_withdraw(actor: User, unit: Unit, reason: str) -> None:
    check_register_writer(actor, unit.operator_id)
    if reason and not (actor.is_superuser or actor.has_role(Role.ADMIN)):
        raise AccessDenied("Only the operator's administrators may override the coverage check")
    if len(reason) > REASON_MAX:
        raise InvalidInput(
            f"override_reason: at most {REASON_MAX} characters",
            code="invalid_field",
            extra={"field": "override_reason"},
        )


def _fresh(unit: Unit) -> Unit:
    fresh = Unit.objects.filter(pk=unit.pk).first()
    if fresh is None:
        raise Conflict(f"Unit {unit.name} no longer exists", code="unit_gone")
    if fresh.status == UnitStatus.WITHDRAWN:
        raise Conflict(f"Unit {unit.name} is already withdrawn", code="unit_already_withdrawn")
    if fresh.status in ON_THE_ROAD:
        raise Conflict(
            f"Unit {unit.name} is {UnitStatus(fresh.status).label.lower()}; "
            "it must come back before it is withdrawn",
            code="unit_on_the_road",
            extra={"from": fresh.status},
        )
    return fresh


def _reusable_whatif(unit: Unit) -> Plan | None:
    """Today's unpublished what-if without exactly this unit, not failed and not overtaken by a
    published plan: a second attempt points at it instead of running the planner again."""
    candidates = Plan.objects.filter(
        operator_id=unit.operator_id,
        kind=PlanKind.WHATIF,
        start_date=timezone.localdate(),
        published_at__isnull=True,
        status__in=(PlanStatus.QUEUED, PlanStatus.RUNNING, PlanStatus.DONE),
    ).order_by("-created_at", "-id")
    for plan in candidates[:20]:
        if plan.excluded_units != [unit.pk]:
            continue
        overtaken = Plan.objects.filter(
            operator_id=unit.operator_id, published_at__gt=plan.created_at
        ).exists()
        return None if overtaken else plan
    return None


def _whatif(actor: User, unit: Unit) -> Plan | None:
    """A what-if plan without the unit for the dispatcher to publish; None if it cannot be asked for.

    The refusal is recorded either way: a planner that cannot run must not hide the gap.
    """
    reusable = _reusable_whatif(unit)
    if reusable is not None:
        return reusable
    try:
        return plans.whatif_request(
            actor=actor, operator=unit.operator, excluded_units=[unit.pk], days=LOOKAHEAD_DAYS
        )
    except DomainError as error:
        logger.warning("what-if plan for withdrawing unit %s not requested: %r", unit.pk, error)
        return None


def withdrawal_refusal(withdrawal: UnitWithdrawal) -> Conflict:
    """The 409 for a refused withdrawal: names the hospitals; ``extra`` carries the details."""
    names = ", ".join(f"{row['hospital_name']} ({row['modality']})" for row in withdrawal.uncovered)
    plan = withdrawal.whatif_plan_id
    then = (
        f"publish what-if plan {plan} (or another plan covering them) first"
        if plan
        else "publish a plan covering them first"
    )
    return Conflict(
        f"Unit {withdrawal.unit.name} cannot be withdrawn: {len(withdrawal.uncovered)} hospital(s) "
        f"would miss their service interval: {names}. {then.capitalize()}, or ask an administrator "
        "to override with a reason.",
        code="withdrawal_refused",
        extra={"uncovered": withdrawal.uncovered, "whatif_plan": plan, "withdrawal": withdrawal.pk},
    )


def unit_withdraw(*, actor: User, unit: Unit, override_reason: str = "") -> UnitWithdrawal:
    """Take ``unit`` out of the fleet for good, if every hospital it serves stays covered.

    Refusal is *returned*, not raised: with uncovered hospitals and no override the service
    requests a what-if plan without the unit (``fleet.services.plans.whatif_request``, its own
    transaction) and commits a ``UnitWithdrawal(outcome=refused)``; the caller maps that record
    to a 409 with ``withdrawal_refusal``. Raising here would roll the record back inside a
    caller's transaction, and the refusal and its what-if plan must persist.

    Raised (nothing changes): ``AccessDenied`` (not the operator's dispatcher/administrator, or
    an override by a non-administrator), ``InvalidInput`` (reason too long), ``Conflict`` (unit
    already withdrawn, on the road, or changed concurrently).
    """
    reason = (override_reason or "").strip() if isinstance(override_reason, str) else ""
    _check_can_withdraw(actor, unit, reason)
    fresh = _fresh(unit)
    today = timezone.localdate()
    uncovered = withdrawal_uncovered(unit=fresh, on=today)
    if uncovered and not reason:
        plan = _whatif(actor, fresh)
        with transaction.atomic():
            withdrawal = UnitWithdrawal.objects.create(
                unit=fresh,
                actor=actor,
                outcome=WithdrawalOutcome.REFUSED,
                uncovered=uncovered,
                whatif_plan=plan,
            )
            audit_record(
                actor=actor,
                action="unit.withdraw_refused",
                obj=fresh,
                details={
                    "withdrawal": withdrawal.pk,
                    "uncovered": [row["hospital_id"] for row in uncovered],
                    "whatif_plan": plan.pk if plan else None,
                },
            )
        return withdrawal
    outcome = WithdrawalOutcome.OVERRIDDEN if uncovered else WithdrawalOutcome.WITHDRAWN
    return _withdraw(actor=actor, unit=fresh, uncovered=uncovered, outcome=outcome, reason=reason)


@transaction.atomic
def _withdraw(
    *, actor: User, unit: Unit, uncovered: list[dict[str, Any]], outcome: str, reason: str
) -> UnitWithdrawal:
    now = timezone.now()
    current = unit.status
    # Re-checked in the transaction that withdraws: a covering visit dropped since the first look
    # must not let the unit go (the next attempt is then refused with its what-if plan).
    if outcome == WithdrawalOutcome.WITHDRAWN and withdrawal_uncovered(unit=unit, on=timezone.localdate(now)):
        raise Conflict(
            f"The coverage of unit {unit.name}'s hospitals changed meanwhile; try again",
            code="coverage_changed_concurrently",
        )
    if not Unit.objects.filter(pk=unit.pk, status=current).update(
        status=UnitStatus.WITHDRAWN, status_changed_at=now
    ):
        raise Conflict(
            f"Unit {unit.name} changed status meanwhile; reload and try again",
            code="unit_changed_concurrently",
            extra={"from": current, "to": UnitStatus.WITHDRAWN},
        )
    label = "withdrawn (override)" if outcome == WithdrawalOutcome.OVERRIDDEN else "withdrawn"
    change = UnitStatusChange.objects.create(
        unit=unit,
        from_status=current,
        to_status=UnitStatus.WITHDRAWN,
        at=now,
        actor=actor,
        reason=(f"{label}: {reason}" if reason else label)[:500],
    )
    audit_record(
        actor=actor,
        action="unit.transition",
        obj=unit,
        details={"from": current, "to": UnitStatus.WITHDRAWN, "reason": reason, "change": change.pk},
    )
    cancelled, reset, orders = _cancel_visits(actor=actor, unit=unit, on=timezone.localdate(now))
    withdrawal = UnitWithdrawal.objects.create(
        unit=unit, actor=actor, outcome=outcome, uncovered=uncovered, reason=reason
    )
    audit_record(
        actor=actor,
        action="unit.withdraw",
        obj=unit,
        details={
            "withdrawal": withdrawal.pk,
            "outcome": outcome,
            "reason": reason,
            "uncovered": [row["hospital_id"] for row in uncovered],
            "visits_cancelled": cancelled,
            "requests_reset": reset,
            "orders_moved": sum(len(outcome.moved) for outcome in orders),
            "orders_cancelled": sum(len(outcome.cancelled) for outcome in orders),
        },
    )
    unit.status, unit.status_changed_at = UnitStatus.WITHDRAWN, now
    if reset:  # their requests are back with dispatch: plan them on the rest of the fleet
        plans.replan_request(operator=unit.operator, reason=f"unit {unit.name} withdrawn")
    return withdrawal


def _cancel_visits(*, actor: User, unit: Unit, on) -> tuple[list[int], list[int], list[OrdersOutcome]]:
    """Cancel the unit's remaining visits from ``on``; their requests go back to submitted.

    Requests scheduled on a planned visit go through ``service_request_unschedule`` (their booked
    exams are cancelled too; it may cancel the emptied visit itself); the rest (planned requests,
    an en-route visit of a unit that is back) are reset by compare-and-swap here. Exams booked
    straight on the unit move to another van's visit that day or are cancelled
    (``withdrawal_orders``). The hospital gets one notice per visit, saying what became of its
    exams, and one per day for exams on the unit that had no visit left to cancel.
    """
    cancelled: list[int] = []
    reset: list[int] = []
    outcomes: list[OrdersOutcome] = []
    why = f"unit {unit.name} is withdrawn from service"
    visits = Visit.objects.filter(unit=unit, status__in=MOVABLE_STATUSES, date__gte=on).select_related(
        "hospital"
    )
    for visit in visits.order_by("date", "sequence", "id"):
        reset.extend(_unschedule_requests(actor=actor, visit=visit, reason=why))
        if Visit.objects.filter(pk=visit.pk, status__in=MOVABLE_STATUSES).update(
            status=VisitStatus.CANCELLED, locked=False
        ):
            audit_record(actor=actor, action="visit.cancel", obj=visit, details={"reason": why})
        elif not Visit.objects.filter(pk=visit.pk, status=VisitStatus.CANCELLED).exists():
            continue  # moved on meanwhile (e.g. started): not ours to cancel any more
        cancelled.append(visit.pk)
        outcome = withdrawn_unit_orders_settle(
            actor=actor, unit=unit, hospital=visit.hospital, day=visit.date, reason=why
        )
        outcomes.append(outcome)
        modality = MODALITY_SHORT.get(unit.modality, unit.modality)
        hospital_notify(
            hospital=visit.hospital,
            kind=HospitalNoticeKind.VISIT_CANCELLED,
            message=(
                f"The {modality} visit on {day_label(visit.date)} by {unit.name} is cancelled: "
                "the unit is withdrawn from service. Requests booked on it are back with dispatch "
                f"to plan again. {outcome.sentence()}"
            ).strip(),
        )
    for hospital, day in withdrawn_unit_order_days(unit=unit, on=on):
        outcome = withdrawn_unit_orders_settle(actor=actor, unit=unit, hospital=hospital, day=day, reason=why)
        outcomes.append(outcome)
        if outcome.moved or outcome.cancelled:
            kind = HospitalNoticeKind.VISIT_CANCELLED if outcome.cancelled else HospitalNoticeKind.VISIT_MOVED
            hospital_notify(hospital=hospital, kind=kind, message=orders_notice(unit, outcome))
    return cancelled, reset, outcomes


def _unschedule_requests(*, actor: User, visit: Visit, reason: str) -> list[int]:
    """Requests planned or scheduled on ``visit`` back to submitted, without a visit."""
    reset = []
    rows = ServiceRequest.objects.filter(visit=visit, status__in=RESETTABLE_REQUESTS).select_related("visit")
    for service_request in rows.order_by("id"):
        previous = service_request.status
        if previous == ServiceRequestStatus.SCHEDULED and visit.status in MOVABLE_VISIT_STATUSES:
            service_request_unschedule(
                service_request=service_request, actor=actor, reason=reason, notify=False
            )
            reset.append(service_request.pk)
            continue
        if not ServiceRequest.objects.filter(pk=service_request.pk, status=previous, visit=visit).update(
            status=ServiceRequestStatus.SUBMITTED, visit=None, status_changed_at=timezone.now()
        ):
            continue
        reset.append(service_request.pk)
        audit_record(
            actor=actor,
            action="service_request.unschedule",
            obj=service_request,
            details={
                "from": previous,
                "to": ServiceRequestStatus.SUBMITTED,
                "visit": visit.pk,
                "reason": reason,
            },
        )
    return reset
