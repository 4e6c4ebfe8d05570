"""Scheduling a service request on a visit: the request is fixed on it and its exam list is
booked as dicom orders on the visit's unit and day, in one transaction (one refused order undoes
all); the hospital is told the date.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from core.exceptions import Conflict, DomainError, InvalidInput
from core.models import User
from dicom.choices import Priority
from dicom.models import Order
from dicom.services.orders import order_create
from fleet.choices import VisitStatus
from fleet.models import RequestPriority, ServiceRequest, ServiceRequestStatus, Visit
from fleet.services.notices import HospitalNoticeKind, day_label, hospital_notify
from fleet.services.requests import _check_dispatcher, _move

S = ServiceRequestStatus
# Visits a request can still be attached to: not yet over.
SCHEDULABLE_VISIT_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE)
ORDER_PRIORITY = {
    RequestPriority.ROUTINE: Priority.ROUTINE,
    RequestPriority.URGENT: Priority.URGENT,
    RequestPriority.EMERGENCY: Priority.STAT,
}


def _check_visit_fits(service_request: ServiceRequest, visit: Visit) -> None:
    unit = visit.unit
    problems = []
    if unit.operator_id != service_request.operator_id:
        problems.append(f"unit {unit.name} belongs to another operator")
    if unit.modality != service_request.modality:
        problems.append(f"unit {unit.name} is {unit.modality}, the request is {service_request.modality}")
    if visit.hospital_id != service_request.hospital_id:
        problems.append("the visit is at another hospital")
    if not service_request.earliest_date <= visit.date <= service_request.latest_date:
        problems.append(
            f"the visit on {visit.date.isoformat()} is outside the window "
            f"{service_request.earliest_date.isoformat()}..{service_request.latest_date.isoformat()}"
        )
    if visit.status not in SCHEDULABLE_VISIT_STATUSES:
        problems.append(f"the visit is {VisitStatus(visit.status).label.lower()}")
    if visit.date < timezone.localdate():
        problems.append("the visit is in the past")
    if problems:
        raise InvalidInput(
            f"visit: {'; '.join(problems)}",
            code="invalid_visit",
            extra={"field": "visit", "reasons": problems},
        )


@transaction.atomic
def service_request_schedule(
    *, service_request: ServiceRequest, visit: Visit, actor: User | None, request: HttpRequest | None = None
) -> ServiceRequest:
    """Fix the request on ``visit`` and book its exam list as orders on the visit's unit and day.

    The orders are booked in the hospital's name (by the user who filed the request, since
    only hospital users book exams); if any is refused, nothing of the scheduling remains.
    """
    _check_dispatcher(actor, service_request)
    _check_visit_fits(service_request, visit)
    service_request = _move(
        service_request,
        to_status=S.SCHEDULED,
        actor=actor,
        action="service_request.schedule",
        fields={"visit": visit},
        details={"visit": visit.pk, "exams": len(service_request.exams)},
        request=request,
    )
    booker = service_request.created_by
    priority = ORDER_PRIORITY[RequestPriority(service_request.priority)]
    for index, exam in enumerate(service_request.exams):
        key = f"SR{service_request.pk}-{index + 1}"
        if Order.objects.filter(hospital_id=service_request.hospital_id, client_request_id=key).exists():
            key = f"{key}-V{visit.pk}"  # booked before and dropped with its visit: a new booking
        try:
            order_create(
                actor=booker,
                hospital=service_request.hospital,
                unit=visit.unit,
                scheduled_date=visit.date,
                requested_procedure=exam["procedure"],
                modality=service_request.modality,
                body_part=exam["body_part"],
                priority=priority,
                patient_id=exam["patient_id"],
                patient_name=exam["patient_name"],
                patient_sex=exam["sex"],
                patient_birth_date=dt.date.fromisoformat(exam["birth_date"]),
                notes=f"Service request {service_request.pk}",
                client_request_id=key,
                visit=visit,
                request=request,
            )
        except DomainError as exc:
            # Raised out of the atomic block: the status change and earlier orders roll back.
            raise Conflict(
                f"exams[{index}] could not be booked: {exc.message}",
                code="exam_booking_refused",
                extra={"field": f"exams[{index}]", "reason": exc.code},
            ) from exc
    if service_request.exams:
        Visit.objects.filter(pk=visit.pk).update(exams_booked=F("exams_booked") + len(service_request.exams))
    hospital_notify(
        hospital=service_request.hospital_id,
        kind=HospitalNoticeKind.VISIT_SCHEDULED,
        message=(
            f"{service_request.modality} visit booked for request #{service_request.pk}: "
            f"{visit.unit.name} on {day_label(visit.date)}"
        ),
    )
    return service_request
