"""The unit status state machine.

available -> en_route -> on_site -> scanning -> returning -> available is the working day;
maintenance is entered from available; out_of_service (a breakdown) from any state; a unit
returns to available from the workshop (maintenance / out_of_service) or from returning.
Dispatch (-> en_route) needs a dispatchable unit (licences, no maintenance window); scanning
needs a passing daily QC. Every transition is a compare-and-swap on the status read, and
writes a ``UnitStatusChange`` and an audit entry in the same transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, InvalidInput
from core.models import User
from core.services import audit_record
from fleet.access import check_register_writer
from fleet.choices import UnitStatus, VisitStatus
from fleet.models import Unit, UnitStatusChange, Visit
from fleet.selectors import unit_dispatch_blockers, unit_qc_hold_reason

S = UnitStatus
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.AVAILABLE: (S.EN_ROUTE, S.MAINTENANCE, S.OUT_OF_SERVICE),
    S.EN_ROUTE: (S.ON_SITE, S.OUT_OF_SERVICE),
    # on_site -> returning: a van may leave without scanning (visit cancelled on site).
    S.ON_SITE: (S.SCANNING, S.RETURNING, S.OUT_OF_SERVICE),
    S.SCANNING: (S.RETURNING, S.OUT_OF_SERVICE),
    S.RETURNING: (S.AVAILABLE, S.OUT_OF_SERVICE),
    S.MAINTENANCE: (S.AVAILABLE, S.OUT_OF_SERVICE),
    S.OUT_OF_SERVICE: (S.AVAILABLE,),
    # Only fleet.services.withdrawal enters it (after the coverage check); nothing leaves it.
    S.WITHDRAWN: (),
}
# Taking a unit off the road must say why.
REASON_REQUIRED = (S.MAINTENANCE, S.OUT_OF_SERVICE)
REASON_MAX = 500


def _label(status: str) -> str:
    return UnitStatus(status).label.lower()


@transaction.atomic
def unit_transition(*, unit: Unit, to_status: str, actor: User | None, reason: str = "") -> Unit:
    """Move ``unit`` to ``to_status``; ``actor`` None is the system (e.g. a geofence event).

    Illegal transitions, dispatch of a non-dispatchable unit, scanning on QC hold and a
    concurrent change are refused with ``Conflict`` (409), changing nothing.
    """
    if actor is not None:
        check_register_writer(actor, unit.operator_id)
    if to_status not in UnitStatus.values:
        raise InvalidInput(
            f"Unknown unit status {to_status!r}; valid: {', '.join(UnitStatus.values)}", code="invalid_status"
        )
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"reason is at most {REASON_MAX} characters", code="reason_too_long")
    if to_status in REASON_REQUIRED and not reason:
        raise InvalidInput(f"A reason is required to put a unit {_label(to_status)}", code="reason_required")

    # Fresh from the database: the caller's copy (and anything it prefetched) may be stale.
    fresh = Unit.objects.filter(pk=unit.pk).first()
    if fresh is None:
        raise Conflict(f"Unit {unit.name} no longer exists", code="unit_gone")
    current = fresh.status
    allowed = TRANSITIONS[current]
    if to_status not in allowed:
        raise Conflict(
            f"Unit {unit.name} cannot go from {_label(current)} to {_label(to_status)}; "
            f"from {_label(current)} it can go to: {', '.join(_label(s) for s in allowed)}",
            code="unit_transition_refused",
            extra={"from": current, "to": to_status, "allowed": list(allowed)},
        )
    now = timezone.now()
    if to_status == S.EN_ROUTE:
        blockers = unit_dispatch_blockers(fresh, at=now)
        if blockers:
            raise Conflict(
                f"Unit {unit.name} cannot be dispatched: {'; '.join(blockers)}",
                code="unit_not_dispatchable",
                extra={"from": current, "to": to_status, "reasons": blockers},
            )
    if to_status == S.SCANNING:
        hold = unit_qc_hold_reason(fresh, day=timezone.localdate(now))
        if hold is not None:
            raise Conflict(
                f"Unit {unit.name} is on QC hold: {hold}",
                code="unit_qc_hold",
                extra={"from": current, "to": to_status, "reasons": [hold]},
            )

    changed = Unit.objects.filter(pk=unit.pk, status=current).update(status=to_status, status_changed_at=now)
    if not changed:
        raise Conflict(
            f"Unit {unit.name} changed status meanwhile; reload and try again",
            code="unit_changed_concurrently",
            extra={"from": current, "to": to_status},
        )
    change = UnitStatusChange.objects.create(
        unit=unit, from_status=current, to_status=to_status, at=now, actor=actor, reason=reason
    )
    audit_record(
        actor=actor,
        action="unit.transition",
        obj=unit,
        details={"from": current, "to": to_status, "reason": reason, "change": change.pk},
    )
    unit.status, unit.status_changed_at = to_status, now
    if to_status == S.OUT_OF_SERVICE:
        _replan_after_breakdown(unit, reason)
    return unit


def _replan_after_breakdown(unit: Unit, reason: str) -> None:
    """A broken-down unit's planned visits from today on go to other units (or back to the queue)."""
    from fleet.services.plans import replan_request

    if Visit.objects.filter(unit=unit, date__gte=timezone.localdate(), status=VisitStatus.PLANNED).exists():
        replan_request(operator=unit.operator, reason=f"{unit.name} out of service: {reason}")
