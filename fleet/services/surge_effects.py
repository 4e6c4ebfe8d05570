"""What confirming an incident does to the units and the routine visits (fleet.services.surge).

Units: available -> en route; returning -> available -> en route; a unit leaving a visit
(on site / scanning) -> returning -> available -> en route; a unit already en route is redirected
(stays en route); a unit finishing its current visit stays as it is until its crew leaves.
Visits: planned / en route routine visits are cancelled, their requests go back to submitted
(through ``service_request_unschedule`` when it applies), their scheduled orders are cancelled
and the hospital is told. A visit left with exams to do is not cancelled: the hospital is told.
"""

from __future__ import annotations

import datetime as dt

from core.models import User
from core.services import audit_record
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.services.order_moves import orders_cancel
from fleet.choices import UnitStatus, VisitStatus
from fleet.models import Incident, ServiceRequest, ServiceRequestStatus, Unit, Visit
from fleet.selectors import MODALITY_SHORT
from fleet.selectors_surge import CANCELLABLE_VISIT_STATUSES
from fleet.services.notices import HospitalNoticeKind, day_label, hospital_notify
from fleet.services.request_moves import MOVABLE_VISIT_STATUSES, service_request_unschedule
from fleet.services.units import unit_transition
from fleet.surge_eta import AT_SITE_STATUSES

S = ServiceRequestStatus
# Requests whose visit is cancelled go back to be planned again.
UNSCHEDULABLE = (S.PLANNED, S.SCHEDULED)


def dispatch_unit(unit: Unit, *, actor: User, leave: bool, reason: str) -> None:
    """Put the unit on the road to the incident (see docs/surge.md for who moves and who stays)."""
    path: list[str] = []
    if unit.status == UnitStatus.AVAILABLE:
        path = [UnitStatus.EN_ROUTE]
    elif unit.status == UnitStatus.RETURNING:
        path = [UnitStatus.AVAILABLE, UnitStatus.EN_ROUTE]
    elif unit.status in AT_SITE_STATUSES and leave:
        path = [UnitStatus.RETURNING, UnitStatus.AVAILABLE, UnitStatus.EN_ROUTE]
    for status in path:
        unit_transition(unit=unit, to_status=status, actor=actor, reason=reason)


def _unschedule(
    service_request: ServiceRequest, *, visit: Visit, actor: User, reason: str, now: dt.datetime
) -> bool:
    """Send the request back to submitted; through the request service when it handles the case."""
    if service_request.status == S.SCHEDULED and visit.status in MOVABLE_VISIT_STATUSES:
        # It cancels the request's booked orders too, and the visit once nothing is left on it.
        service_request_unschedule(service_request=service_request, actor=actor, reason=reason, notify=False)
        return True
    # A planned request, or a visit already en route (the service moves only planned visits):
    # the request state machine has no such move, so a compare-and-swap here, audited.
    current = service_request.status
    changed = ServiceRequest.objects.filter(pk=service_request.pk, status=current, visit=visit).update(
        status=S.SUBMITTED, visit=None, status_changed_at=now
    )
    if changed:
        audit_record(
            actor=actor,
            action="service_request.unschedule",
            obj=service_request,
            details={"from": current, "to": S.SUBMITTED, "visit": visit.pk, "reason": reason},
        )
    return bool(changed)


def cancel_visit(visit: Visit, *, actor: User, incident: Incident, now: dt.datetime) -> list[int] | None:
    """Cancel one routine visit, send its requests back to be planned, cancel its scheduled orders,
    tell the hospital. None (nothing done) when the visit started meanwhile."""
    fresh = (
        Visit.objects.select_for_update().filter(pk=visit.pk, status__in=CANCELLABLE_VISIT_STATUSES).first()
    )
    if fresh is None:
        return None
    reason = f"the unit is sent to an emergency (incident {incident.pk})"
    freed = [
        sr.pk
        for sr in ServiceRequest.objects.filter(visit=fresh, status__in=UNSCHEDULABLE).order_by("pk")
        if _unschedule(sr, visit=fresh, actor=actor, reason=reason, now=now)
    ]
    # The request service may have cancelled the visit already (and audited it).
    if Visit.objects.filter(pk=fresh.pk, status__in=CANCELLABLE_VISIT_STATUSES).update(
        status=VisitStatus.CANCELLED, locked=False
    ):
        audit_record(
            actor=actor,
            action="visit.cancel",
            obj=fresh,
            details={"from": fresh.status, "incident": incident.pk, "date": fresh.date, "reason": reason},
        )
    # Exams booked straight on the visit (not through a request) go with it.
    orders = Order.objects.filter(
        unit_id=fresh.unit_id,
        scheduled_date=fresh.date,
        hospital_id=fresh.hospital_id,
        status=OrderStatus.SCHEDULED,
    )
    orders_cancel(orders=list(orders.order_by("pk")), actor=actor, reason=f"visit cancelled: {reason}")
    what = MODALITY_SHORT.get(visit.unit.modality, visit.unit.modality)
    hospital_notify(
        hospital=visit.hospital_id,
        kind=HospitalNoticeKind.VISIT_CANCELLED,
        message=(
            f"The {what} visit of {visit.unit.name} on {day_label(visit.date)} is cancelled: "
            "the unit is sent to an emergency. It will be rebooked and you will be told the new date."
        ),
    )
    return freed


def interrupt_visit(unit: Unit, candidate: dict) -> int:
    """The unit leaves a visit with exams left: the hospital is told (no patient data)."""
    visit = Visit.objects.select_related("unit").get(pk=candidate["visit_id"])
    hospital_notify(
        hospital=visit.hospital_id,
        kind=HospitalNoticeKind.VISIT_CANCELLED,
        message=(
            f"{unit.name} leaves today's visit ({day_label(visit.date)}) early: the unit is sent to an "
            f"emergency. {candidate['remaining_exams']} booked exam(s) not done will be rebooked."
        ),
    )
    return visit.pk
