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
from django.http import HttpRequest
from django.utils import timezone

from core.choices import OrganisationKind, Role
from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import Organisation, User
from core.services import audit_record
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
from fleet.services.notices import HospitalNoticeKind, hospital_notify
from fleet.services.request_exams import clean_exams
from fleet.services.request_moves import service_request_release

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
# A scheduled request may be cancelled until its van leaves (its visit is still planned).
HOSPITAL_CANCELLABLE = (S.SUBMITTED, S.PLANNED, S.SCHEDULED)
CANCELLED_BY_HOSPITAL = "cancelled by hospital"
WINDOW_MAX_DAYS = 60
NOTES_MAX = 2000
REASON_MAX = 500
# Visits a request can still be attached to: not yet over.


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
    was = None
    if to_status == S.DECLINED:
        _check_visit_not_started(service_request)
        was = service_request.visit if service_request.status == S.SCHEDULED else None
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
    if was is not None:
        service_request_release(service_request=moved, visit=was, actor=actor, reason=reason)
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
    """The hospital withdraws its request until its van has left: the booked exams are cancelled,
    the visit too when nothing else is on it, and the rest of the horizon is re-planned."""
    _check_hospital_user(actor, service_request.hospital, "cancel its service requests")
    reason = reason.strip() if isinstance(reason, str) else ""
    full = f"{CANCELLED_BY_HOSPITAL}: {reason}" if reason else CANCELLED_BY_HOSPITAL
    _check_visit_not_started(service_request)
    was = service_request.visit if service_request.status == S.SCHEDULED else None
    cancelled = _move(
        service_request,
        to_status=S.DECLINED,
        actor=actor,
        action="service_request.cancel",
        sources=HOSPITAL_CANCELLABLE,
        fields={"decline_reason": full[:REASON_MAX]},
        details={"reason": full[:REASON_MAX]},
        request=request,
    )
    if was is not None:
        service_request_release(service_request=cancelled, visit=was, actor=actor, reason=full)
    return cancelled


def _check_visit_not_started(service_request: ServiceRequest) -> None:
    service_request.refresh_from_db(fields=["status", "visit"])
    visit = service_request.visit
    if service_request.status == S.SCHEDULED and visit is not None and visit.status != VisitStatus.PLANNED:
        raise Conflict(
            f"The visit of service request {service_request.pk} is "
            f"{VisitStatus(visit.status).label.lower()}; it can no longer be cancelled",
            code="visit_under_way",
        )


def service_requests_fulfil_visit(*, visit: Visit) -> list[ServiceRequest]:
    """The van left the hospital after its visit: the requests scheduled on it are fulfilled."""
    fulfilled = []
    for service_request in ServiceRequest.objects.filter(visit=visit, status=S.SCHEDULED).order_by("pk"):
        try:
            fulfilled.append(
                _move(
                    service_request,
                    to_status=S.FULFILLED,
                    actor=None,
                    action="service_request.fulfilled",
                    sources=(S.SCHEDULED,),
                    details={"visit": visit.pk},
                )
            )
        except Conflict:
            continue  # changed meanwhile (declined at the last minute): leave it as it is
    return fulfilled
