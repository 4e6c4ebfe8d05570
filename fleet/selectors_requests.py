"""Service request reads: who may see which requests, and which hospitals are overdue a visit.

Hospital users see their hospital's requests; the operator's dispatchers and administrators
see the requests addressed to their operator; everyone else sees none (ids are then 404).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeVar

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest

from core.choices import Role
from core.exceptions import NotFound
from core.services import audit_record
from fleet.choices import VisitStatus
from fleet.models import ServiceContract, ServiceRequest, ServiceRequestStatus, Visit

REQUEST_READER_ROLES = (Role.DISPATCHER, Role.ADMIN)


def user_reads_operator_requests(user) -> bool:
    """Dispatchers and administrators (of an operator: the role implies the organisation kind)."""
    return bool(getattr(user, "is_authenticated", False)) and (
        user.is_superuser or user.has_role(*REQUEST_READER_ROLES)
    )


def user_reads_hospital_requests(user) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and user.has_role(Role.HOSPITAL_USER)


_Scoped = TypeVar("_Scoped", ServiceRequest, ServiceContract)


def hospital_operator_scope_for_user(user, queryset: QuerySet[_Scoped]) -> QuerySet[_Scoped]:
    """Rows with ``hospital_id`` and ``operator_id`` (requests, contracts) the user may see:
    a hospital user their hospital's, dispatchers and administrators their operator's,
    superusers all, anyone else none."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    if user.organisation_id is None:
        return queryset.none()
    if user_reads_hospital_requests(user):
        return queryset.filter(hospital_id=user.organisation_id)
    if user_reads_operator_requests(user):
        return queryset.filter(operator_id=user.organisation_id)
    return queryset.none()


def service_request_list_for_user(user, *, status: str | None = None) -> QuerySet[ServiceRequest]:
    requests = hospital_operator_scope_for_user(
        user, ServiceRequest.objects.select_related("hospital", "operator", "created_by", "visit")
    )
    if status:
        requests = requests.filter(status=status)
    return requests.order_by("-created_at", "-id")


def service_request_get_for_user(user, pk: int) -> ServiceRequest:
    """The request with ``pk`` if the user may see it, else ``NotFound`` (for a service to act on)."""
    found = service_request_list_for_user(user).filter(pk=pk).first()
    if found is None:
        raise NotFound("No service request matches the given id")
    return found


def service_request_view_for_user(user, pk: int, *, request: HttpRequest | None = None) -> ServiceRequest:
    """As ``service_request_get_for_user``, audited as a view (its exam list is patient data)."""
    found = service_request_get_for_user(user, pk)
    audit_record(
        actor=user,
        action="service_request.view",
        obj=found,
        patient_data=bool(found.exams),
        request=request,
    )
    return found


# Requests the planner may still place (planned ones may be re-placed by a re-plan).
PLANNABLE_STATUSES = (ServiceRequestStatus.SUBMITTED, ServiceRequestStatus.PLANNED)
# Visits not over: a scheduled request on one of these is part of the plan being revised.
LIVE_VISIT_STATUSES = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE)


def service_requests_to_plan(*, operator_id: int, start: dt.date, end: dt.date) -> QuerySet[ServiceRequest]:
    """What a plan of ``start..end`` places: the operator's submitted or planned requests whose
    date window overlaps it, and scheduled ones whose visit (not over yet) falls inside it, so a
    re-plan sees the published plan and keeps or moves those visits."""
    return (
        ServiceRequest.objects.filter(operator_id=operator_id)
        .filter(
            Q(status__in=PLANNABLE_STATUSES, earliest_date__lte=end, latest_date__gte=start)
            | Q(
                status=ServiceRequestStatus.SCHEDULED,
                visit__date__gte=start,
                visit__date__lte=end,
                visit__status__in=LIVE_VISIT_STATUSES,
            )
        )
        .select_related("hospital", "visit")
        .order_by("earliest_date", "id")
    )


# --- coverage ------------------------------------------------------------------------------------

# A visit that is not cancelled has happened or is booked: either way the hospital is served.
SERVING_STATUSES = tuple(s for s in VisitStatus.values if s != VisitStatus.CANCELLED)


@dataclass(frozen=True)
class OverdueHospital:
    """A contract whose service interval has lapsed on the day asked about."""

    contract_id: int
    hospital_id: int
    hospital_name: str
    operator_id: int
    modality: str
    interval_days: int
    last_visit: dt.date | None
    next_visit: dt.date | None
    due_on: dt.date
    days_overdue: int


def _serving_visits(on: dt.date) -> QuerySet[Visit]:
    return Visit.objects.filter(
        hospital_id=OuterRef("hospital_id"),
        unit__operator_id=OuterRef("operator_id"),
        unit__modality=OuterRef("modality"),
        status__in=SERVING_STATUSES,
    )


def hospitals_overdue(*, on: dt.date, operator_id: int | None = None) -> list[OverdueHospital]:
    """Active contracts (started by ``on``) whose hospital was last served more than
    ``interval_days`` before ``on``, or never: most overdue first.

    The last visit is the latest not-cancelled visit on or before ``on`` by a unit of the
    contract's operator and modality; it is due again ``interval_days`` later, and overdue from
    the day after. Never served: due on ``starts_on``. A visit booked after ``on`` does not
    cancel the lapse; it is reported as ``next_visit``.
    """
    contracts = ServiceContract.objects.filter(active=True, starts_on__lte=on, hospital__is_active=True)
    if operator_id is not None:
        contracts = contracts.filter(operator_id=operator_id)
    contracts = contracts.select_related("hospital").annotate(
        last_visit=Subquery(_serving_visits(on).filter(date__lte=on).order_by("-date").values("date")[:1]),
        next_visit=Subquery(_serving_visits(on).filter(date__gt=on).order_by("date").values("date")[:1]),
    )
    rows = []
    for contract in contracts:
        last: dt.date | None = contract.last_visit  # type: ignore[attr-defined]
        due_on = last + dt.timedelta(days=contract.interval_days) if last else contract.starts_on
        days = (on - due_on).days
        if days <= 0:
            continue
        rows.append(
            OverdueHospital(
                contract_id=contract.pk,
                hospital_id=contract.hospital_id,
                hospital_name=contract.hospital.name,
                operator_id=contract.operator_id,
                modality=contract.modality,
                interval_days=contract.interval_days,
                last_visit=last,
                next_visit=contract.next_visit,  # type: ignore[attr-defined]
                due_on=due_on,
                days_overdue=days,
            )
        )
    rows.sort(key=lambda row: (-row.days_overdue, row.hospital_name, row.modality))
    return rows
