"""Orders follow their visit: when dispatch moves or drops a scheduled visit, its booked exams move
with it (same accession numbers, new unit and day) or are cancelled, so the modality worklist on
the van never offers an exam for a visit that will not happen.

Only ``scheduled`` orders move or are cancelled: an exam already started or acquired stays where
it happened. The caller is the planner (``actor`` None, the system) or a dispatcher; each order
changed is audited as patient data.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.models import User
from core.services import audit_record
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.services.orders import order_cancel_if_scheduled
from fleet.models import Visit


def orders_for_request(*, hospital_id: int, request_key: str) -> list[Order]:
    """The scheduled orders booked for a service request (client ids ``<request_key>-...``)."""
    return list(
        Order.objects.filter(
            hospital_id=hospital_id,
            client_request_id__startswith=f"{request_key}-",
            status=OrderStatus.SCHEDULED,
        ).order_by("pk")
    )


def orders_attach_visit(*, visit: Visit) -> int:
    """Link the orders booked on the visit's unit, hospital and day that have no visit yet (booked
    before dispatch planned it); returns how many. Cancelled orders stay unlinked."""
    return (
        Order.objects.filter(
            unit_id=visit.unit_id,
            hospital_id=visit.hospital_id,
            scheduled_date=visit.date,
            visit__isnull=True,
        )
        .exclude(status=OrderStatus.CANCELLED)
        .update(visit=visit, updated_at=timezone.now())
    )


@transaction.atomic
def orders_move(*, orders: list[Order], visit: Visit, actor: User | None, reason: str) -> int:
    """Move scheduled ``orders`` onto ``visit`` (its unit and day); returns how many moved."""
    unit_id, scheduled_date = visit.unit_id, visit.date
    moved = 0
    for order in orders:
        if not Order.objects.filter(pk=order.pk, status=OrderStatus.SCHEDULED).update(
            unit_id=unit_id, scheduled_date=scheduled_date, visit=visit, updated_at=timezone.now()
        ):
            continue  # started meanwhile: it stays where the scan happened
        audit_record(
            actor=actor,
            action="order.move",
            obj=order,
            patient_data=True,
            patient_id=order.patient_id,
            details={
                "from": {
                    "unit": order.unit_id,
                    "date": order.scheduled_date.isoformat(),
                    "visit": order.visit_id,
                },
                "to": {"unit": unit_id, "date": scheduled_date.isoformat(), "visit": visit.pk},
                "reason": reason,
            },
        )
        moved += 1
    return moved


@transaction.atomic
def orders_cancel(*, orders: list[Order], actor: User | None, reason: str) -> int:
    """Cancel scheduled ``orders`` (their visit is dropped); returns how many were cancelled."""
    # An order started meanwhile is not cancelled: it stays where the scan happened.
    return sum(order_cancel_if_scheduled(order=order, actor=actor, reason=reason) for order in orders)
