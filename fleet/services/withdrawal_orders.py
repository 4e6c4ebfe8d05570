"""The booked exams of a withdrawn unit: none is left on it silently.

A service request's exams are cancelled with the request, which goes back to dispatch to be
planned again (``service_request_unschedule``). What is left are exams the hospital booked
straight on the unit's visits (or that lost their visit to an earlier re-plan). Each of those,
from the withdrawal day on, moves to another van's visit to the same hospital on the same day when
that visit could take the booking under the booking rules (same operator and modality, contracted,
licensed that day, not on QC hold, visit not over: ``dicom.services.order_booking``); else it is
cancelled with the reason. Each order moved or cancelled is audited (``order.move`` /
``order.cancel``), and the hospital is told which exams (accession numbers, never a patient).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from core.exceptions import DomainError
from core.models import Organisation, User
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.services.order_booking import BOOKABLE_VISIT_STATUSES, booking_check
from dicom.services.order_moves import orders_cancel, orders_move
from fleet.choices import VisitStatus
from fleet.models import Unit, Visit
from fleet.services.notices import day_label


@dataclass
class OrdersOutcome:
    """What happened to one hospital's exams on the withdrawn unit on one day."""

    hospital_id: int
    day: dt.date
    moved_to: Visit | None = None
    moved: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def sentence(self) -> str:
        """For the hospital's notice: which exams went where (empty when none were booked)."""
        parts = []
        if self.moved and self.moved_to is not None:
            parts.append(
                f"{len(self.moved)} booked exam(s) ({', '.join(self.moved)}) moved to "
                f"{self.moved_to.unit.name}, which visits you the same day."
            )
        if self.cancelled:
            parts.append(
                f"{len(self.cancelled)} booked exam(s) ({', '.join(self.cancelled)}) are cancelled: no "
                "other van can take them that day; book them again on another visit."
            )
        return " ".join(parts)


def _left_behind(unit: Unit) -> QuerySet[Order]:
    """The unit's scheduled orders with no live visit: none, or a cancelled one. (An order on a
    visit that started meanwhile stays: the van is on its way to do it.)"""
    return Order.objects.filter(unit=unit, status=OrderStatus.SCHEDULED).filter(
        Q(visit__isnull=True) | Q(visit__status=VisitStatus.CANCELLED)
    )


def _replacement(unit: Unit, hospital: Organisation, day: dt.date) -> Visit | None:
    """Another van of the operator and modality visiting the hospital that day that could take the
    booking, first planned first; its row is locked (``booking_check``) until the move commits."""
    candidates = (
        Visit.objects.filter(
            hospital=hospital,
            date=day,
            status__in=BOOKABLE_VISIT_STATUSES,
            unit__operator_id=unit.operator_id,
            unit__modality=unit.modality,
        )
        .exclude(unit=unit)
        .select_related("unit")
        .order_by("pk")
    )
    for visit in candidates:
        try:
            return booking_check(hospital=hospital, unit=visit.unit, day=day, visit=visit)
        except DomainError:
            continue
    return None


def withdrawn_unit_orders_settle(
    *, actor: User | None, unit: Unit, hospital: Organisation, day: dt.date, reason: str
) -> OrdersOutcome:
    """Move or cancel the unit's scheduled orders for ``hospital`` on ``day`` (see the module)."""
    outcome = OrdersOutcome(hospital_id=hospital.pk, day=day)
    orders = list(_left_behind(unit).filter(hospital=hospital, scheduled_date=day).order_by("pk"))
    if not orders:
        return outcome
    ids = [order.pk for order in orders]
    replacement = _replacement(unit, hospital, day)
    if replacement is not None:
        orders_move(orders=orders, visit=replacement, actor=actor, reason=reason)
        outcome.moved_to = replacement
        outcome.moved = list(
            Order.objects.filter(pk__in=ids, visit=replacement)
            .order_by("pk")
            .values_list("accession_number", flat=True)
        )
    else:
        orders_cancel(orders=orders, actor=actor, reason=reason)
        outcome.cancelled = list(
            Order.objects.filter(pk__in=ids, status=OrderStatus.CANCELLED)
            .order_by("pk")
            .values_list("accession_number", flat=True)
        )
    return outcome


def withdrawn_unit_order_days(*, unit: Unit, on: dt.date) -> list[tuple[Organisation, dt.date]]:
    """(hospital, day) of every scheduled order still on the unit from ``on``."""
    rows = (
        _left_behind(unit)
        .filter(scheduled_date__gte=on)
        .values_list("hospital_id", "scheduled_date")
        .distinct()
        .order_by("scheduled_date", "hospital_id")
    )
    pairs = list(rows)
    hospitals = Organisation.objects.in_bulk([hospital_id for hospital_id, _ in pairs])
    return [(hospitals[hospital_id], day) for hospital_id, day in pairs]


def orders_notice(unit: Unit, outcome: OrdersOutcome) -> str:
    """The notice for exams that had no visit cancelled with the unit (one per hospital and day)."""
    return f"{unit.name} is withdrawn from service. Exams booked on it for {day_label(outcome.day)}: " + (
        outcome.sentence()
    )
