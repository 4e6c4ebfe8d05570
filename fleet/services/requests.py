"""Service requests: a hospital asks for a visit; dispatch plans, schedules, fulfils or declines.

submitted -> planned -> scheduled -> fulfilled; submitted / planned / scheduled -> declined (a
reason is required). Hospital users may cancel their own request while it is submitted or
planned (it is declined "cancelled by hospital"). Every transition is a compare-and-swap on
the status read and is audited in the same transaction. Scheduling links a visit and books
the request's exam list as dicom orders in that same transaction: one refused order undoes all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from core.choices import OrganisationKind, Role
from core.exceptions import AccessDenied, Conflict, DomainError, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
from dicom.choices import Priority
from dicom.models import Order
from dicom.services.orders import order_create
from fleet.access import check_register_writer
from fleet.choices import Modality, VisitStatus
from fleet.models import (
    RequestPriority,
    ServiceContract,
    ServiceRequest,
    ServiceRequestStatus,
    Unit,
    Visit,
)
from fleet.models.planning import PATIENTS_MAX, PATIENTS_MIN
from fleet.services.notices import HospitalNoticeKind, day_label, hospital_notify
from fleet.services.request_exams import clean_exams

S = ServiceRequestStatus
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.SUBMITTED: (S.PLANNED, S.SCHEDULED, S.DECLINED),
    S.PLANNED: (S.SUBMITTED, S.SCHEDULED, S.DECLINED),
    # (scheduled -> submitted happens only when the planner drops the visit:
    # fleet.services.request_moves.service_request_unschedule, not through this graph.)
    S.SCHEDULED: (S.FULFILLED, S.DECLINED),
    S.FULFILLED: (),
    S.DECLINED: (),
}
HOSPITAL_CANCELLABLE = (S.SUBMITTED, S.PLANNED)
CANCELLED_BY_HOSPITAL = "cancelled by hospital"
WINDOW_MAX_DAYS = 60
NOTES_MAX = 2000
REASON_MAX = 500
# Visits a request can still be attached to: not yet over.
SCHEDULABLE_VISIT_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE)
ORDER_PRIORITY = {
    RequestPriority.ROUTINE: Priority.ROUTINE,
    RequestPriority.URGENT: Priority.URGENT,
    RequestPriority.EMERGENCY: Priority.STAT,
}


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=f"invalid_{field}", extra={"field": field})


def _label(status: str) -> str:
    return ServiceRequestStatus(status).label.lower()


def _check_hospital_user(actor: User | None, hospital: Organisation, what: str) -> User:
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise AccessDenied(f"Sign in as a hospital user to {what}")
    if not actor.has_role(Role.HOSPITAL_USER) or actor.organisation_id != hospital.pk:
        raise AccessDenied(f"Only hospital users of {hospital.name} may {what}")
    return actor


def _contract_operators(hospital: Organisation, modality: str) -> list[int]:
    return list(
        ServiceContract.objects.filter(hospital=hospital, modality=modality, active=True)
        .order_by("operator_id")
        .values_list("operator_id", flat=True)
    )


def _choose_operator(hospital: Organisation, modality: str, operator: Organisation | None) -> Organisation:
    serving = _contract_operators(hospital, modality)
    if operator is None:
        if not serving:
            raise _invalid("modality", f"{hospital.name} has no active {modality} service contract")
        if len(serving) > 1:
            raise _invalid("operator", f"choose the operator; contracted for {modality}: {serving}")
        return Organisation.objects.get(pk=serving[0])
    if operator.pk not in serving:
        raise _invalid("operator", f"{operator.name} has no active {modality} contract with {hospital.name}")
    return operator


@transaction.atomic
def service_request_create(
    *,
    actor: User | None,
    hospital: Organisation,
    modality: str,
    patients: int,
    earliest_date: dt.date,
    latest_date: dt.date,
    priority: str = RequestPriority.ROUTINE,
    notes: str = "",
    exams: list[dict[str, Any]] | None = None,
    operator: Organisation | None = None,
    request: HttpRequest | None = None,
) -> ServiceRequest:
    """File a request for ``hospital``; the operator defaults to its only contracted one."""
    author = _check_hospital_user(actor, hospital, "file service requests for it")
    if hospital.kind != OrganisationKind.HOSPITAL or not hospital.is_active:
        raise _invalid("hospital", f"{hospital.name} is not an active hospital")
    if modality not in Modality.values:
        raise _invalid("modality", f"unknown {modality!r}; valid: {', '.join(Modality.values)}")
    if priority not in RequestPriority.values:
        raise _invalid("priority", f"unknown {priority!r}; valid: {', '.join(RequestPriority.values)}")
    if isinstance(patients, bool) or not isinstance(patients, int):
        raise _invalid("patients", "must be a whole number")
    if not PATIENTS_MIN <= patients <= PATIENTS_MAX:
        raise _invalid("patients", f"must be between {PATIENTS_MIN} and {PATIENTS_MAX}")
    for field, value in (("earliest_date", earliest_date), ("latest_date", latest_date)):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise _invalid(field, "must be a date")
    today = timezone.localdate()
    if earliest_date < today:
        raise _invalid("earliest_date", f"{earliest_date.isoformat()} is in the past")
    if latest_date < earliest_date:
        raise _invalid("latest_date", "must not be before earliest_date")
    if (latest_date - earliest_date).days + 1 > WINDOW_MAX_DAYS:
        raise _invalid("latest_date", f"the date window is at most {WINDOW_MAX_DAYS} days")
    if not isinstance(notes, str) or len(notes.strip()) > NOTES_MAX:
        raise _invalid("notes", f"must be text of at most {NOTES_MAX} characters")
    cleaned = clean_exams(exams or [], patients=patients, today=today)
    operator = _choose_operator(hospital, modality, operator)
    if not Unit.objects.filter(operator=operator, modality=modality).exists():
        raise _invalid("modality", f"{operator.name} runs no {modality} unit")

    service_request = ServiceRequest.objects.create(
        hospital=hospital,
        operator=operator,
        modality=modality,
        patients=patients,
        earliest_date=earliest_date,
        latest_date=latest_date,
        priority=priority,
        notes=notes.strip(),
        exams=cleaned,
        created_by=author,
    )
    audit_record(
        actor=author,
        action="service_request.create",
        obj=service_request,
        patient_data=bool(cleaned),
        details={
            "operator": operator.pk,
            "modality": modality,
            "patients": patients,
            "window": [earliest_date, latest_date],
            "priority": priority,
            "exams": len(cleaned),
        },
        request=request,
    )
    return service_request


def _move(
    service_request: ServiceRequest,
    *,
    to_status: str,
    actor: User | None,
    action: str,
    sources: tuple[str, ...] | None = None,
    fields: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> ServiceRequest:
    """Compare-and-swap the request into ``to_status`` from the status it has now; audit it."""
    current = ServiceRequest.objects.filter(pk=service_request.pk).values_list("status", flat=True).first()
    if current is None:
        raise Conflict("The service request no longer exists", code="service_request_gone")
    if sources is not None and current not in sources:
        raise Conflict(
            f"Service request {service_request.pk} is {_label(current)}; only "
            f"{' or '.join(_label(s) for s in sources)} requests allow this",
            code="service_request_transition_refused",
            extra={"from": current, "to": to_status, "allowed": []},
        )
    allowed = TRANSITIONS[current]
    if to_status not in allowed:
        raise Conflict(
            f"Service request {service_request.pk} cannot go from {_label(current)} to {_label(to_status)}",
            code="service_request_transition_refused",
            extra={"from": current, "to": to_status, "allowed": list(allowed)},
        )
    now = timezone.now()
    values = {"status": to_status, "status_changed_at": now, **(fields or {})}
    if not ServiceRequest.objects.filter(pk=service_request.pk, status=current).update(**values):
        raise Conflict(
            f"Service request {service_request.pk} changed meanwhile; reload and try again",
            code="service_request_changed_concurrently",
        )
    audit_record(
        actor=actor,
        action=action,
        obj=service_request,
        details={"from": current, "to": to_status, **(details or {})},
        request=request,
    )
    service_request.refresh_from_db()
    return service_request


def _check_dispatcher(actor: User | None, service_request: ServiceRequest) -> None:
    """``None`` is the system (the planner); people must be the operator's dispatch staff."""
    if actor is not None:
        check_register_writer(actor, service_request.operator_id)


@transaction.atomic
def service_request_transition(
    *,
    service_request: ServiceRequest,
    to_status: str,
    actor: User | None,
    reason: str = "",
    request: HttpRequest | None = None,
) -> ServiceRequest:
    """Move the request along (planned, back to submitted, fulfilled, declined).

    Scheduling needs a visit (``service_request_schedule``); declining needs a reason.
    """
    _check_dispatcher(actor, service_request)
    if to_status not in ServiceRequestStatus.values:
        raise _invalid("to", f"unknown status {to_status!r}; valid: {', '.join(ServiceRequestStatus.values)}")
    if to_status == S.SCHEDULED:
        raise _invalid("to", "scheduling needs a visit: use the schedule action")
    fields: dict[str, Any] = {}
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if to_status == S.DECLINED:
        if not reason:
            raise _invalid("reason", "a reason is required to decline a request")
        if len(reason) > REASON_MAX:
            raise _invalid("reason", f"at most {REASON_MAX} characters")
        fields["decline_reason"] = reason
    moved = _move(
        service_request,
        to_status=to_status,
        actor=actor,
        action=f"service_request.{to_status}",
        fields=fields,
        details={"reason": reason} if reason else None,
        request=request,
    )
    if to_status == S.DECLINED:
        hospital_notify(
            hospital=moved.hospital_id,
            kind=HospitalNoticeKind.REQUEST_DECLINED,
            message=f"Your {moved.modality} service request #{moved.pk} was declined: {reason}",
        )
    return moved


def service_request_decline(
    *, service_request: ServiceRequest, actor: User | None, reason: str, request: HttpRequest | None = None
) -> ServiceRequest:
    """Dispatch refuses the request, saying why."""
    return service_request_transition(
        service_request=service_request, to_status=S.DECLINED, actor=actor, reason=reason, request=request
    )


@transaction.atomic
def service_request_cancel(
    *,
    service_request: ServiceRequest,
    actor: User | None,
    reason: str = "",
    request: HttpRequest | None = None,
) -> ServiceRequest:
    """The hospital withdraws its request while it is submitted or planned."""
    _check_hospital_user(actor, service_request.hospital, "cancel its service requests")
    reason = reason.strip() if isinstance(reason, str) else ""
    full = f"{CANCELLED_BY_HOSPITAL}: {reason}" if reason else CANCELLED_BY_HOSPITAL
    return _move(
        service_request,
        to_status=S.DECLINED,
        actor=actor,
        action="service_request.cancel",
        sources=HOSPITAL_CANCELLABLE,
        fields={"decline_reason": full[:REASON_MAX]},
        details={"reason": full[:REASON_MAX]},
        request=request,
    )


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
