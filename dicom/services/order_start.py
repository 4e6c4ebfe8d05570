"""Starting an exam on the van: the technologist's explicit step, gated by daily QC and the crew rule."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.choices import Role
from core.exceptions import AccessDenied, Conflict
from core.models import User
from core.services import audit_record
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.selectors import visit_for_booking
from fleet.selectors import unit_qc_hold_reason, visit_check_crew

# Who may start an exam on the scanner: the operator's technologists (and its administrators).
_START_ROLES = (Role.TECHNOLOGIST, Role.ADMIN)


@transaction.atomic
def order_start(*, actor: User | None, order: Order, request: HttpRequest | None = None) -> Order:
    """The technologist starts the exam: scheduled -> in progress.

    Refused (409) while the unit is on QC hold (no passing daily phantom check today), naming
    why. Images that arrive anyway are still ingested and take the order to acquired
    (``order_mark_acquired``, from scheduled or in progress): nothing acquired is ever dropped.
    """
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise AccessDenied("Sign in as a technologist to start an exam")
    unit = order.unit
    if not actor.is_superuser and (
        actor.organisation_id != unit.operator_id or not actor.has_role(*_START_ROLES)
    ):
        raise AccessDenied(f"Only technologists of {unit.name}'s operator can start its exams")
    hold = unit_qc_hold_reason(unit)
    if hold is not None:
        raise Conflict(
            f"Unit {unit.name} is on QC hold: {hold}",
            code="unit_qc_hold",
            extra={"reasons": [hold]},
        )
    # The visit's crew rule (a credentialed radiographer for CT/DR, MR-safety training for MRI)
    # holds whether the visit was started by hand or by the geofence on arrival.
    visit = order.visit or visit_for_booking(
        unit_id=unit.pk, hospital_id=order.hospital_id, day=order.scheduled_date
    )
    missing = visit_check_crew(visit) if visit is not None else []
    if missing:
        raise Conflict(
            f"The {unit.name} visit lacks its required crew: {'; '.join(missing)}",
            code="visit_crew_missing",
            extra={"reasons": missing},
        )
    changed = Order.objects.filter(pk=order.pk, status=OrderStatus.SCHEDULED).update(
        status=OrderStatus.IN_PROGRESS, updated_at=timezone.now()
    )
    if not changed:
        current = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
        label = OrderStatus(current).label.lower() if current else "gone"
        raise Conflict(
            f"Order {order.accession_number} is {label}; only scheduled orders can be started",
            code="order_not_scheduled",
        )
    audit_record(
        actor=actor,
        action="order.start",
        obj=order,
        patient_data=True,
        patient_id=order.patient_id,
        request=request,
    )
    order.refresh_from_db()
    return order
