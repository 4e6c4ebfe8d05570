"""Reads of orders, and the access functions that record who saw which patient's order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from core.access import get_for_user, scope_for_user
from core.exceptions import InvalidInput
from core.services import audit_record
from dicom.choices import IngestStatus, OrderStatus, QCOutcome, QCSeverity
from dicom.models import Order, Study
from dicom.study_access import study_audit_open
from fleet.choices import UnitStatus, VisitStatus
from fleet.models import CrewMember, ServiceContract, Unit, Visit
from fleet.selectors import unit_qc_hold_reason

# Orders the scanner should still offer: booked, or started but not yet acquired (a rescan).
WORKLIST_STATUSES = (OrderStatus.SCHEDULED, OrderStatus.IN_PROGRESS)
# The widest date range one worklist query may cover.
WORKLIST_MAX_DAYS = 31


def _orders() -> QuerySet[Order]:
    return Order.objects.select_related("hospital", "unit", "created_by")


def order_list_for_user(user, *, date: dt.date | None = None, status: str | None = None) -> QuerySet[Order]:
    """Orders the user may see (their hospital's; operator staff: all), optionally filtered.

    Lazy and unaudited: whoever shows the rows records that with ``order_list_audit``.
    """
    orders = scope_for_user(user, _orders())
    if date is not None:
        orders = orders.filter(scheduled_date=date)
    if status:
        if status not in OrderStatus.values:
            raise InvalidInput(
                f"Unknown status {status!r}; valid: {', '.join(OrderStatus.values)}", code="invalid_status"
            )
        orders = orders.filter(status=status)
    return orders.order_by("-scheduled_date", "-id")


def order_list_audit(user, orders: Sequence[Order], *, request: HttpRequest | None = None) -> None:
    """Record that ``user`` was shown these orders (one entry per page, whatever its size)."""
    if not orders:
        return
    audit_record(
        actor=user,
        action="order.list",
        object_type=Order._meta.label_lower,
        patient_data=True,
        details={"orders": [order.pk for order in orders]},
        request=request,
    )


def order_get_for_user(user, pk: int, *, request: HttpRequest | None = None) -> Order:
    """The order with ``pk`` if the user may see it (else ``NotFound``), audited as a view."""
    order = get_for_user(user, _orders(), pk=pk)
    audit_record(
        actor=user,
        action="order.view",
        obj=order,
        patient_data=True,
        patient_id=order.patient_id,
        request=request,
    )
    return order


def order_get_for_write(user, pk: int) -> Order:
    """The order with ``pk`` if the user may see it (else ``NotFound``), for a service to act on.

    Not audited here: the service's own entry records the access along with the change.
    """
    return get_for_user(user, _orders(), pk=pk)


def units_bookable_by_hospital(hospital_id: int | None) -> QuerySet[Unit]:
    """Vans of the operators with an active contract with this hospital for the van's modality:
    what its booking page offers (the booking service checks the rest: visit, licence, QC)."""
    if hospital_id is None:
        return Unit.objects.none()
    contracts = ServiceContract.objects.filter(hospital_id=hospital_id, active=True)
    return (
        Unit.objects.filter(
            Exists(contracts.filter(operator_id=OuterRef("operator_id"), modality=OuterRef("modality")))
        )
        .exclude(status=UnitStatus.WITHDRAWN)
        .order_by("name")
    )


def worklist_for_aet(aet: str, date: dt.date, *, until: dt.date | None = None) -> list[Order]:
    """Orders still to be scanned by the unit with AE title ``aet``, on ``date`` (to ``until``).

    An unknown AE title has an empty worklist, and so has a unit on QC hold today (no passing
    daily phantom check): the scanner must not start exams until the check passes.
    """
    until = until or date
    if until < date:
        raise InvalidInput("The worklist range ends before it starts", code="invalid_range")
    if (until - date).days >= WORKLIST_MAX_DAYS:
        raise InvalidInput(f"A worklist covers at most {WORKLIST_MAX_DAYS} days", code="invalid_range")
    unit = Unit.objects.filter(ae_title=aet).first()
    if unit is None or unit_qc_hold_reason(unit) is not None:
        return []
    return list(
        Order.objects.select_related("unit", "hospital")
        .filter(
            unit=unit,
            scheduled_date__range=(date, until),
            status__in=WORKLIST_STATUSES,
        )
        .order_by("scheduled_date", "id")
    )


# --- studies: the van's QC page and the reconciliation queue ---------------------------------


def user_may_watch_unit(user, unit_id: int) -> bool:
    """Technologists of the unit's crew, and the operator's dispatch/QC/admin staff."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    unit = Unit.objects.filter(pk=unit_id).first()
    if unit is None or user.organisation_id != unit.operator_id:
        return False
    if user.has_role("dispatcher", "qc_officer", "admin"):
        return True
    return user.has_role("technologist") and CrewMember.objects.filter(user=user, unit=unit).exists()


def unit_for_technologist(user) -> Unit | None:
    member = CrewMember.objects.filter(user=user, unit__isnull=False).select_related("unit").first()
    return member.unit if member else None


def unit_recent_studies(*, user, unit: Unit, request=None, limit: int = 25) -> list[Study]:
    """The unit's latest studies with their newest QC result, for the van's QC page (audited).

    The page shows patient names, so each study shown is also audited as opened (``study.open``,
    ``via: van_qc``, with its patient id; once per viewing session as in the viewer): "who has
    seen this patient" lists the crew who saw it here.
    """
    studies = list(
        Study.objects.filter(unit=unit)
        .select_related("order")
        .prefetch_related("qc_results")
        .order_by("-ingested_at")[:limit]
    )
    if studies:
        audit_record(
            actor=user,
            action="unit.qc_view",
            obj=unit,
            patient_data=True,
            details={"studies": [s.pk for s in studies]},
            request=request,
        )
        for study in studies:
            study_audit_open(user=user, study=study, request=request, via="van_qc")
    return studies


def qc_held() -> Q:
    """Matched studies a failed QC verdict keeps off the worklists (not released)."""
    return Q(ingest_status=IngestStatus.MATCHED, qc_outcome=QCOutcome.FAIL, routable_at__isnull=True)


def reconciliation_queue(user) -> QuerySet[Study]:
    """Studies that cannot be routed until a person acts, oldest first: unmatched, Study-UID
    conflicts, and matched studies held by a failed QC verdict (released or rescanned).

    Only cross-organisation staff reach all of them."""
    # Operator staff (the QC officers) see their vans' studies; scope_for_user decides that.
    waiting = Q(ingest_status__in=(IngestStatus.UNMATCHED, IngestStatus.UID_CONFLICT)) | qc_held()
    return scope_for_user(user, Study.objects.filter(waiting).order_by("ingested_at"))


def study_qc_hold_findings(study: Study) -> list[dict]:
    """The failing findings of the study's newest QC result (its ``qc_results`` may be prefetched)."""
    results = sorted(study.qc_results.all(), key=lambda r: (r.created_at, r.pk))
    if not results:
        return []
    return [f for f in results[-1].findings if f.get("severity") == QCSeverity.FAIL.value]


def reconciliation_candidates(user, study: Study) -> list[Order]:
    """Open orders in the user's tenancy a study could fulfil: same modality, same van when the
    study's is known, booked within a day of the study."""
    orders = scope_for_user(user, _orders()).filter(study__isnull=True).exclude(status=OrderStatus.CANCELLED)
    if study.study_date:
        day = dt.timedelta(days=1)
        orders = orders.filter(scheduled_date__range=(study.study_date - day, study.study_date + day))
    modalities = [m for m in study.modalities.split("\\") if m]
    if modalities:
        orders = orders.filter(modality__in=modalities)
    if study.unit_id:
        orders = orders.filter(unit_id=study.unit_id)
    return list(orders.order_by("scheduled_date", "id")[:20])


def reconciliation_list_audit(user, studies: Sequence[Study], *, request: HttpRequest | None = None) -> None:
    """One audit entry per queue page shown (patient data), none for an empty page."""
    if studies:
        audit_record(
            actor=user,
            action="reconciliation.list",
            object_type="dicom.study",
            patient_data=True,
            details={"studies": [s.pk for s in studies]},
            request=request,
        )


def visit_for_booking(*, unit_id: int, hospital_id: int, day: dt.date) -> Visit | None:
    """The unit's visit to the hospital that day that an order booked there belongs to (the
    first one not cancelled), or None while dispatch has planned none."""
    return (
        Visit.objects.filter(unit_id=unit_id, hospital_id=hospital_id, date=day)
        .exclude(status=VisitStatus.CANCELLED)
        .order_by("pk")
        .first()
    )
