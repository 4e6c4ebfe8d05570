"""Booking rules: on which visit a hospital may book an exam (``order_create`` applies them).

A hospital books only on a visit to itself, on that visit's day, of a unit whose operator holds an
active service contract with it for the unit's modality, and only while that unit can serve the
visit: not withdrawn, its required licences valid on the visit's day, and (for today's visits)
not held by a failed daily phantom check. Each refusal carries its own ``code`` (docs/orders.md):

- 400 (the booking names the wrong thing): ``no_contract``, ``no_visit``, ``visit_not_at_hospital``,
  ``visit_other_unit``, ``visit_other_date``;
- 409 (the unit or visit cannot take it now): ``visit_cancelled``, ``visit_over``, ``unit_withdrawn``,
  ``unit_unlicensed``, ``unit_qc_hold``.

QC is judged only for today's visits and only on a *failed* latest check: tomorrow's check does
not exist yet, and this morning's may simply not have been done yet (the van checks on arrival).
Neither is a reason to refuse a booking; ``order_start`` still refuses to scan until a check of
the day passes.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict, InvalidInput
from core.models import Organisation, User
from dicom.selectors import visit_for_booking
from fleet.choices import EquipmentQCResult, UnitStatus, VisitStatus
from fleet.models import ServiceContract, Unit, Visit
from fleet.selectors import unit_licence_problems, unit_qc_today

# A visit a new exam may still join: the van has not left the hospital.
BOOKABLE_VISIT_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE)


def booking_check_may_book(actor: User | None, hospital: Organisation) -> User:
    """Only the hospital's own hospital users book its exams (else 403)."""
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise AccessDenied("Sign in as a hospital user to book exams")
    if not actor.has_role(Role.HOSPITAL_USER) or actor.organisation_id != hospital.pk:
        raise AccessDenied(f"Only hospital users of {hospital.name} can book exams for it")
    return actor


def booking_visit_get(*, actor: User | None, hospital: Organisation, visit_id: int) -> Visit:
    """The hospital's visit ``visit_id`` for one of its users to book on; another hospital's
    visit and an unknown id get the same 400, so a visit id reveals nothing about other
    hospitals' schedules."""
    booking_check_may_book(actor, hospital)
    visit = Visit.objects.select_related("unit").filter(pk=visit_id, hospital=hospital).first()
    if visit is None:
        raise InvalidInput(
            f"Visit {visit_id} is not a visit to {hospital.name}",
            code="visit_not_at_hospital",
            extra={"field": "visit"},
        )
    return visit


def _check_contract(hospital: Organisation, unit: Unit) -> None:
    # The contract's starts_on only starts the interval count (coverage), as for service
    # requests: a visit the operator planned before it is still the hospital's visit.
    if not ServiceContract.objects.filter(
        operator_id=unit.operator_id, hospital=hospital, modality=unit.modality, active=True
    ).exists():
        raise InvalidInput(
            f"{hospital.name} has no active {unit.modality} service contract with the operator of "
            f"{unit.name}; book on a unit of a contracted operator",
            code="no_contract",
            extra={"field": "unit"},
        )


def _resolve_visit(hospital: Organisation, unit: Unit, day: dt.date, visit: Visit | None) -> Visit:
    if visit is None:
        found = visit_for_booking(unit_id=unit.pk, hospital_id=hospital.pk, day=day)
        if found is not None:
            return found
        cancelled = Visit.objects.filter(unit=unit, hospital=hospital, date=day, status=VisitStatus.CANCELLED)
        if cancelled.exists():
            raise Conflict(
                f"The visit of {unit.name} to {hospital.name} on {day.isoformat()} is cancelled",
                code="visit_cancelled",
                extra={"field": "visit"},
            )
        raise InvalidInput(
            f"{unit.name} has no visit to {hospital.name} on {day.isoformat()}; book on one of your "
            "hospital's planned visits, or file a service request for a visit",
            code="no_visit",
            extra={"field": "visit"},
        )
    if visit.hospital_id != hospital.pk:
        raise InvalidInput(
            f"Visit {visit.pk} is not a visit to {hospital.name}",
            code="visit_not_at_hospital",
            extra={"field": "visit"},
        )
    if visit.unit_id != unit.pk:
        raise InvalidInput(
            f"Visit {visit.pk} is by {visit.unit.name}, not {unit.name}",
            code="visit_other_unit",
            extra={"field": "unit"},
        )
    if visit.date != day:
        raise InvalidInput(
            f"Visit {visit.pk} is on {visit.date.isoformat()}, not {day.isoformat()}",
            code="visit_other_date",
            extra={"field": "scheduled_date"},
        )
    return visit


def booking_check(*, hospital: Organisation, unit: Unit, day: dt.date, visit: Visit | None) -> Visit:
    """The visit an exam of ``hospital`` on ``unit`` on ``day`` is booked on, or the refusal.

    ``visit`` given: it must be that unit's visit to the hospital that day; else the unit's
    visit there that day is found. The visit row is locked until the booking commits, so a
    withdrawal or cancellation running meanwhile either sees the new order or makes this
    booking wait and then refuse (``visit_cancelled``).
    """
    _check_contract(hospital, unit)
    if Unit.objects.filter(pk=unit.pk, status=UnitStatus.WITHDRAWN).exists():
        raise Conflict(f"{unit.name} is withdrawn from service", code="unit_withdrawn")
    visit = _resolve_visit(hospital, unit, day, visit)
    status = Visit.objects.select_for_update().filter(pk=visit.pk).values_list("status", flat=True).first()
    if status == VisitStatus.CANCELLED:
        raise Conflict(
            f"Visit {visit.pk} ({unit.name} on {day.isoformat()}) is cancelled",
            code="visit_cancelled",
            extra={"field": "visit"},
        )
    if status not in BOOKABLE_VISIT_STATUSES:
        raise Conflict(
            f"Visit {visit.pk} ({unit.name} on {day.isoformat()}) is over; the van has left",
            code="visit_over",
            extra={"field": "visit"},
        )
    problems = unit_licence_problems(unit, on=day)
    if problems:
        raise Conflict(
            f"{unit.name} is not licensed to work on {day.isoformat()}: {'; '.join(problems)}",
            code="unit_unlicensed",
            extra={"reasons": problems},
        )
    if day == timezone.localdate():
        check = unit_qc_today(unit, day=day)
        if check is not None and check.result != EquipmentQCResult.PASS:
            at = timezone.localtime(check.performed_at).strftime("%H:%M")
            reason = f"daily QC failed at {at}: {'; '.join(check.failures)}"
            raise Conflict(
                f"{unit.name} is on QC hold today: {reason}", code="unit_qc_hold", extra={"reasons": [reason]}
            )
    return visit
