"""The planner's moves of scheduled requests: to another visit (a re-plan) or back to submitted
(its visit dropped: a breakdown, an incident, a withdrawal). The booked exams follow
(``dicom.services.order_moves``), the visit left behind is cancelled when nothing else is on it,
and the hospital is told the new date, or that the visit is off and will be rebooked.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.exceptions import Conflict
from core.models import User
from core.services import audit_record
from dicom.services.order_moves import orders_cancel, orders_for_request, orders_move
from fleet.choices import VisitStatus
from fleet.models import ServiceRequest, ServiceRequestStatus, Visit
from fleet.services.notices import HospitalNoticeKind, day_label, hospital_notify

S = ServiceRequestStatus
# A visit the planner may still move or drop: nobody has left for it yet.
MOVABLE_VISIT_STATUSES = (VisitStatus.PLANNED,)


def _request_key(service_request: ServiceRequest) -> str:
    return f"SR{service_request.pk}"


def visit_release_if_empty(*, visit: Visit, actor: User | None, reason: str) -> bool:
    """Cancel ``visit`` when it is still planned and no scheduled request is on it any more."""
    if ServiceRequest.objects.filter(visit=visit, status=S.SCHEDULED).exists():
        return False
    if not Visit.objects.filter(pk=visit.pk, status__in=MOVABLE_VISIT_STATUSES).update(
        status=VisitStatus.CANCELLED, locked=False
    ):
        return False
    audit_record(actor=actor, action="visit.cancel", obj=visit, details={"reason": reason})
    return True


def _movable_visit(service_request: ServiceRequest) -> Visit:
    """The scheduled request's visit, if the planner may still move or drop it (else 409)."""
    old = service_request.visit
    if old is None or service_request.status != S.SCHEDULED:
        raise Conflict(
            f"Service request {service_request.pk} is not scheduled", code="service_request_not_scheduled"
        )
    if old.status not in MOVABLE_VISIT_STATUSES:
        raise Conflict(
            f"The visit of service request {service_request.pk} is {VisitStatus(old.status).label.lower()}",
            code="visit_not_movable",
        )
    return old


def _swap_visit(service_request: ServiceRequest, *, old: Visit, values: dict) -> None:
    if not ServiceRequest.objects.filter(pk=service_request.pk, status=S.SCHEDULED, visit=old).update(
        **values
    ):
        raise Conflict(
            f"Service request {service_request.pk} changed meanwhile; re-plan",
            code="service_request_changed_concurrently",
        )


@transaction.atomic
def service_request_move(
    *, service_request: ServiceRequest, visit: Visit, actor: User | None, reason: str, notify: bool = True
) -> ServiceRequest:
    """Move a scheduled request (and its booked exams) from its planned visit to ``visit``."""
    old = _movable_visit(service_request)
    if old.pk == visit.pk:
        return service_request
    _swap_visit(service_request, old=old, values={"visit": visit})
    orders = orders_for_request(
        hospital_id=service_request.hospital_id, request_key=_request_key(service_request)
    )
    moved = orders_move(orders=orders, visit=visit, actor=actor, reason=reason)
    if moved:
        Visit.objects.filter(pk=old.pk).update(exams_booked=F("exams_booked") - moved)
        Visit.objects.filter(pk=visit.pk).update(exams_booked=F("exams_booked") + moved)
    visit_release_if_empty(visit=old, actor=actor, reason=reason)
    audit_record(
        actor=actor,
        action="service_request.move",
        obj=service_request,
        details={"from_visit": old.pk, "to_visit": visit.pk, "orders": moved, "reason": reason},
    )
    if notify and (old.date, old.unit_id) != (visit.date, visit.unit_id):
        hospital_notify(
            hospital=service_request.hospital_id,
            kind=HospitalNoticeKind.VISIT_MOVED,
            message=(
                f"Your {service_request.modality} visit (request #{service_request.pk}) moved from "
                f"{day_label(old.date)} to {day_label(visit.date)} ({visit.unit.name}): {reason}"
            ),
        )
    service_request.refresh_from_db()
    return service_request


@transaction.atomic
def service_request_unschedule(
    *, service_request: ServiceRequest, actor: User | None, reason: str, notify: bool = True
) -> ServiceRequest:
    """Drop a scheduled request's planned visit: the request is submitted again (to be re-planned),
    its booked exams are cancelled, the visit is cancelled if nothing else is on it."""
    old = _movable_visit(service_request)
    _swap_visit(
        service_request,
        old=old,
        values={"visit": None, "status": S.SUBMITTED, "status_changed_at": timezone.now()},
    )
    orders = orders_for_request(
        hospital_id=service_request.hospital_id, request_key=_request_key(service_request)
    )
    cancelled = orders_cancel(orders=orders, actor=actor, reason=reason)
    if cancelled:
        Visit.objects.filter(pk=old.pk).update(exams_booked=F("exams_booked") - cancelled)
    visit_release_if_empty(visit=old, actor=actor, reason=reason)
    audit_record(
        actor=actor,
        action="service_request.unschedule",
        obj=service_request,
        details={
            "from": S.SCHEDULED,
            "to": S.SUBMITTED,
            "visit": old.pk,
            "orders": cancelled,
            "reason": reason,
        },
    )
    if notify:
        hospital_notify(
            hospital=service_request.hospital_id,
            kind=HospitalNoticeKind.VISIT_CANCELLED,
            message=(
                f"Your {service_request.modality} visit on {day_label(old.date)} (request "
                f"#{service_request.pk}) is cancelled: {reason}. We will book a new date."
            ),
        )
    service_request.refresh_from_db()
    return service_request


def service_request_release(
    *, service_request: ServiceRequest, visit: Visit, actor: User | None, reason: str
) -> None:
    """A scheduled request was cancelled or declined: its booked exams are cancelled, its visit
    too when nothing else is on it, and the operator's horizon is re-planned (capacity is free)."""
    from fleet.services.plans import replan_request

    orders = orders_for_request(
        hospital_id=service_request.hospital_id, request_key=_request_key(service_request)
    )
    cancelled = orders_cancel(orders=orders, actor=actor, reason=reason)
    if cancelled:
        Visit.objects.filter(pk=visit.pk).update(exams_booked=F("exams_booked") - cancelled)
    visit_release_if_empty(visit=visit, actor=actor, reason=reason)
    replan_request(operator=service_request.operator, reason=f"request {service_request.pk} cancelled")
